"""The pack as the Pulumi CLI runs it: registration, config, unknown values at preview, and docs in sync."""

from __future__ import annotations

import copy
import json
import runpy

import fraud_policies as fp
import pytest
from fraud_policies import StackResource
from fraud_policies.star_only import STAR_ONLY_ACTIONS
from fraud_policies.values import UNKNOWN, UNKNOWN_SENTINELS
from policy_helpers import POLICY_DIR, broken_copy

REPO = POLICY_DIR.parent


@pytest.fixture(scope="module")
def pack_module():
    """policy/__main__.py imported under another name: it defines the pack but does not serve it."""
    return runpy.run_path(str(POLICY_DIR / "__main__.py"), run_name="fraud_policy_pack")


def test_main_builds_a_mandatory_pack_with_every_policy(pack_module, monkeypatch):
    """GIVEN policy/__main__.py
    WHEN the CLI would build the pack (PolicyPack replaced by a recorder: the real one starts a gRPC server and blocks)
    THEN the pack is fraud-pipeline-controls, mandatory, with one policy per catalogue entry."""
    import pulumi_policy

    built = {}

    class RecordingPack:
        def __init__(self, name, policies, enforcement_level=None, **kwargs):
            built.update(name=name, policies=policies, enforcement_level=enforcement_level)

    monkeypatch.setitem(pack_module["build_pack"].__globals__, "PolicyPack", RecordingPack)
    pack_module["build_pack"]()
    assert built["name"] == "fraud-pipeline-controls"
    assert built["enforcement_level"] == pulumi_policy.EnforcementLevel.MANDATORY
    policies = built["policies"]
    assert [p.name for p in policies] == [s.name for s in fp.POLICIES]
    assert len({p.name for p in policies}) == len(policies) == len(fp.POLICIES) == 43
    for policy, spec in zip(policies, fp.POLICIES):
        assert policy.enforcement_level == pulumi_policy.EnforcementLevel.MANDATORY
        expected = pulumi_policy.ResourceValidationPolicy if spec.kind == "resource" else pulumi_policy.StackValidationPolicy
        assert isinstance(policy, expected)
        assert (policy.config_schema is not None) is spec.uses_requirements


def _policy(pack_module, name):
    return next(p for p in pack_module["build_policies"]() if p.name == name)


def _proxied(props):
    from pulumi_policy.proxy import unknown_checking_proxy
    return unknown_checking_proxy(copy.deepcopy(props))


def _resource_args(type_, props, name, urn, config=None):
    from pulumi_policy import ResourceValidationArgs
    return ResourceValidationArgs(type_, _proxied(props), urn, name, None, None, config or {})


def test_resource_policy_reports_through_crossguard(pack_module, prod):
    """GIVEN the pack's lambda-tracing policy and a prod function whose tracing was switched off
    WHEN CrossGuard calls validate with its proxied props
    THEN one violation is reported against the function's URN."""
    type_, props, name, urn = broken_copy(prod, "aws:lambda/function:Function", "fraud-api",
                                          lambda p: p["tracingConfig"].update(mode="PassThrough"))
    reported = []
    _policy(pack_module, "lambda-tracing").validate(_resource_args(type_, props, name, urn),
                                                    lambda msg, urn=None: reported.append((msg, urn)))
    assert len(reported) == 1 and reported[0][1] == urn and "requires active tracing" in reported[0][0]


def test_config_overrides_the_stack_defaults(pack_module, dev):
    """GIVEN a dev function without active tracing (dev does not require tracing)
    WHEN the policy runs without config, then with config tracingRequired: true
    THEN it passes, then fails: config wins over the stack-name default."""
    fn = dev.one("aws:lambda/function:Function", "fraud-api")
    policy = _policy(pack_module, "lambda-tracing")
    quiet, loud = [], []
    policy.validate(_resource_args(fn.type, fn.inputs, fn.name, fn.urn), lambda m, u=None: quiet.append(m))
    policy.validate(_resource_args(fn.type, fn.inputs, fn.name, fn.urn, {"tracingRequired": True}),
                    lambda m, u=None: loud.append(m))
    assert quiet == [] and len(loud) == 1


def test_unknown_stack_names_get_the_strictest_requirements():
    """GIVEN a stack name the pack does not know
    WHEN requirements are derived without config
    THEN they are prod's (fail closed)."""
    req = fp.requirements_for(fp.stack_of_urn("urn:pulumi:perf-test::fraud-pipeline::aws:s3/bucket:Bucket::b"))
    assert (req.tracing, req.pitr, req.deletion_protection, req.min_kinesis_retention_hours, req.forbid_data_trace) == (
        True, True, True, 168, True)
    assert fp.requirements_for("dev").tracing is False


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
def test_config_files_state_each_stacks_requirements(stack_name):
    """GIVEN policy/config/<stack>.json (for `--policy-pack-config`)
    WHEN compared with the requirements the pack derives for that stack
    THEN they are equal, and every requirement-aware policy is configured."""
    on_disk = json.loads((POLICY_DIR / "config" / f"{stack_name}.json").read_text())
    assert on_disk == json.loads(json.dumps(fp.policy_config(stack_name)))
    for settings in on_disk.values():
        assert set(settings) <= set(fp.CONFIG_SCHEMA)


# --- preview: unknown values -------------------------------------------------------

def _as_in_preview(ev):
    """The stack as a first `pulumi preview` sees it: every computed output unknown, and every input derived from one."""
    computed = set()
    for r in ev.custom_resources():
        inputs = {v for v in r.inputs.values() if isinstance(v, str)}
        computed |= {v for k, v in r.outputs.items()
                     if k not in r.inputs and isinstance(v, str) and len(v) > 6 and v not in inputs}

    def blur(value):
        if isinstance(value, str):
            return UNKNOWN if any(c in value for c in computed) else value
        if isinstance(value, dict):
            return {k: blur(v) for k, v in value.items()}
        if isinstance(value, list):
            return [blur(v) for v in value]
        return value

    out = []
    for r in ev.custom_resources():
        inputs = blur(r.inputs)
        outputs = {k: (UNKNOWN if k not in r.inputs else inputs[k]) for k in r.outputs}
        out.append((r, inputs, StackResource(r.type, r.name, r.urn, {**inputs, **outputs}, r.parent, tuple(r.depends_on))))
    return out


def test_unknown_values_at_preview_are_skipped_not_failed(stack, pack_module):
    """GIVEN a stack as a first preview sees it (ARNs, ids, URLs and documents built from them unknown)
    WHEN every policy runs through CrossGuard's proxies
    THEN nothing crashes and nothing is reported: what cannot be known is checked at `pulumi up`."""
    from pulumi_policy import PolicyResource, StackValidationArgs

    preview = _as_in_preview(stack)
    assert sum(1 for _, inputs, _ in preview if UNKNOWN in json.dumps(inputs, default=str)) > 20  # the simulation bites
    reported = []
    policies = pack_module["build_policies"]()
    for policy, spec in zip(policies, fp.POLICIES):
        if spec.kind == "resource":
            for r, inputs, _ in preview:
                policy.validate(_resource_args(r.type, inputs, r.name, r.urn), lambda m, u=None: reported.append(m))
        else:
            resources = [PolicyResource(s.type, _proxied(s.props), s.urn, s.name, None, None, None, [], {})
                         for _, _, s in preview]
            by_urn = {p.urn: p for p in resources}
            for p, (_, _, s) in zip(resources, preview):
                p.dependencies = [by_urn[d] for d in s.dependencies if d in by_urn]
            policy.validate(StackValidationArgs(resources, {}), lambda m, u=None: reported.append(m))
    assert reported == []


def test_stack_policies_still_link_resources_through_dependencies_at_preview(prod):
    """GIVEN prod as a first preview sees it, with the bucket's public access block removed
    WHEN s3-bucket-companions runs
    THEN it still finds the other companions (through dependencies) and reports the missing one."""
    preview = [s for _, _, s in _as_in_preview(prod)
               if not (s.type == "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock" and s.name == "fraud-archive-public-access-block")]
    violations = fp.check_stack("s3-bucket-companions", preview)
    assert [v.message.split(": ")[1] for v in violations] == ["has no public access block. Fix"]


# --- the pack and the library stay in sync ---------------------------------------------

def test_star_only_allowlist_matches_the_library_defaults():
    from fraud_pipeline import defaults
    assert STAR_ONLY_ACTIONS == frozenset(defaults.STAR_ONLY_ACTIONS)


def test_unknown_sentinels_match_pulumi_policy():
    from pulumi_policy import proxy
    assert UNKNOWN_SENTINELS == {getattr(proxy, n) for n in dir(proxy) if n.startswith("UNKNOWN_") and n.endswith("_VALUE")}


def test_plain_unwraps_proxies_and_keeps_unknowns(pack_module):
    props = {"a": {"b": [1.0, {"c": UNKNOWN}]}, "d": UNKNOWN}
    assert pack_module["plain"](_proxied(props)) == props


def test_pack_files_exist_and_name_the_runtime():
    yaml_text = (POLICY_DIR / "PulumiPolicy.yaml").read_text()
    assert "name: python" in yaml_text
    reqs = (POLICY_DIR / "requirements.txt").read_text()
    assert "pulumi-policy" in reqs and "pulumi>=" in reqs


def test_compliance_doc_covers_every_policy():
    doc = (REPO / "docs" / "compliance.md").read_text()
    for spec in fp.POLICIES:
        assert f"`{spec.name}`" in doc, spec.name


def test_policy_doc_shows_how_to_run_the_pack():
    doc = (REPO / "docs" / "policy.md").read_text()
    assert "pulumi preview --policy-pack policy" in doc and "--policy-pack-config" in doc
    assert "(docs/policy.md)" in (REPO / "README.md").read_text()


def test_hardening_requirements_per_environment_and_overrides():
    """GIVEN the environments' requirements WHEN read, and overridden by --policy-pack-config values
    THEN staging and prod need alarm subscribers, a recorded archive and functions in the VPC; prod alone
    needs blocking managed rules, a year of audit logs, signed code, a replica and 540-day transactions;
    and config strings override each of them."""
    dev, staging, prod = (fp.requirements_for(s) for s in ("dev", "staging", "prod"))
    flags = ("alarm_subscribers", "archive_access_logging", "functions_in_vpc")
    prod_only = ("code_signing", "archive_replication")
    assert all(getattr(staging, f) and getattr(prod, f) and not getattr(dev, f) for f in flags)
    assert all(getattr(prod, f) and not getattr(staging, f) and not getattr(dev, f) for f in prod_only)
    assert staging.waf_managed_rules_block and not dev.waf_managed_rules_block
    assert (prod.min_audit_log_retention_days, prod.min_transaction_retention_days) == (365, 540)
    relaxed = fp.requirements_for("prod", {"codeSigningRequired": "false", "minAuditLogRetentionDays": "90",
                                           "minTransactionRetentionDays": 0, "wafManagedRulesBlockRequired": False})
    assert (relaxed.code_signing, relaxed.min_audit_log_retention_days, relaxed.min_transaction_retention_days,
            relaxed.waf_managed_rules_block) == (False, 90, 0, False)
