"""The WAF policies: each catches a broken copy of the real web ACL or logging setup, and passes the real stacks.

Same pattern as test_policy_failures.py: take a real resource of the evaluated stack,
break one setting in a copy (or remove a companion from the stack), run the policy and
expect the violations that name the resource and the fix. `WAF_RESOURCE_CASES` and
`WAF_STACK_CASES` are importable, so a catalogue-wide coverage check can count them.
"""

from __future__ import annotations

import copy
import json

import fraud_policies as fp
import pytest
from fraud_policies.values import UNKNOWN
from policy_helpers import broken_copy, find, stack_resources, stack_with

WEB_ACL = "aws:wafv2/webAcl:WebAcl"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
WAF_POLICIES = ("waf-managed-rules-block", "waf-rate-limit-per-api-key", "waf-logging-redacts-api-key")
COMMON, BAD_INPUTS, REPUTATION = ("AWSManagedRulesCommonRuleSet", "AWSManagedRulesKnownBadInputsRuleSet",
                                  "AWSManagedRulesAmazonIpReputationList")


# --- breakers of the web ACL's rules ----------------------------------------------------------

def rule(props: dict, name: str) -> dict:
    [found] = [r for r in props["rules"] if r["name"] == name]
    return found


def rate(props: dict, name: str) -> dict:
    return rule(props, name)["statement"]["rateBasedStatement"]


def managed(props: dict, group: str) -> dict:
    return rule(props, f"AWS-{group}")


def group_counts(group):
    def breaker(props):
        managed(props, group)["overrideAction"] = {"count": {}}
    return breaker


def drop_rule(name):
    def breaker(props):
        props["rules"] = [r for r in props["rules"] if r["name"] != name]
    return breaker


def override_to_count(group, rule_name):
    def breaker(props):
        statement = managed(props, group)["statement"]["managedRuleGroupStatement"]
        statement.setdefault("ruleActionOverrides", []).append({"name": rule_name, "actionToUse": {"count": {}}})
    return breaker


def set_rate(name, **changes):
    def breaker(props):
        rate(props, name).update(changes)
    return breaker


def action(name, value):
    def breaker(props):
        rule(props, name)["action"] = value
    return breaker


def old_single_ip_limit(props):
    """The design the review found: one IP rule, 2,000 per 5 minutes, for every request."""
    props["rules"] = [r for r in props["rules"] if "rateBasedStatement" not in r["statement"]] + [{
        "name": "rate-limit-per-ip", "priority": 9, "action": {"block": {}},
        "statement": {"rateBasedStatement": {"aggregateKeyType": "IP", "limit": 2000}},
        "visibilityConfig": {"cloudwatchMetricsEnabled": True, "sampledRequestsEnabled": True, "metricName": "x"}}]


def unkeyed_scope_also_keyed(props):
    """The unkeyed rule loses its NOT: it now counts keyed requests at the tight limit."""
    statement = rate(props, "rate-limit-unkeyed-per-ip")
    statement["scopeDownStatement"] = statement["scopeDownStatement"]["notStatement"]["statement"]


def pascal(value):
    """The provider's camelCase in AWS's PascalCase JSON, as `ruleJson` takes it."""
    if isinstance(value, dict):
        return {k[:1].upper() + k[1:]: pascal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [pascal(v) for v in value]
    return value


def as_rule_json(then=None):
    def breaker(props):
        if then:
            then(props)
        props["ruleJson"] = json.dumps(pascal(props.pop("rules")))
    return breaker


# (policy, stack, name contains, breaker, expected fragments of each message, in order)
WAF_RESOURCE_CASES = [
    ("waf-managed-rules-block", "prod", "", group_counts(COMMON),
     [[COMMON, "only counts", "prod", "Fix: remove the group from wafCountModeRuleGroups"]]),
    ("waf-managed-rules-block", "prod", "", group_counts(REPUTATION), [[REPUTATION, "only counts"]]),
    ("waf-managed-rules-block", "prod", "", drop_rule(f"AWS-{BAD_INPUTS}"),
     [["does not run AWS's managed rule group(s)", BAD_INPUTS, "Fix:"]]),
    ("waf-managed-rules-block", "dev", "", drop_rule(f"AWS-{REPUTATION}"), [[REPUTATION, "does not run"]]),
    ("waf-managed-rules-block", "prod", "", override_to_count(COMMON, "SizeRestrictions_BODY"),
     [["SizeRestrictions_BODY overridden to count", "only NoUserAgent_HEADER may count"]]),
    ("waf-managed-rules-block", "prod", "", override_to_count(BAD_INPUTS, "Log4JRCE_BODY"),
     [["Log4JRCE_BODY", "only none may count"]]),
    ("waf-managed-rules-block", "prod", "", as_rule_json(group_counts(BAD_INPUTS)), [[BAD_INPUTS, "only counts"]]),
    ("waf-rate-limit-per-api-key", "prod", "", drop_rule("rate-limit-per-api-key"),
     [["no blocking rate-based rule limits each API key", "CUSTOM_KEYS", "x-api-key"]]),
    ("waf-rate-limit-per-api-key", "prod", "", action("rate-limit-per-api-key", {"count": {}}),
     [["no blocking rate-based rule limits each API key"]]),
    ("waf-rate-limit-per-api-key", "staging", "",
     set_rate("rate-limit-per-api-key", customKeys=[
         {"header": {"name": "x-api-key", "textTransformations": [{"priority": 0, "type": "NONE"}]}}, {"ip": {}}]),
     [["aggregates the header together with other keys", "per combination"]]),
    ("waf-rate-limit-per-api-key", "prod", "", drop_rule("rate-limit-unkeyed-per-ip"),
     [["no blocking per-IP rate limit for requests without an API key", "notStatement", "wafRateLimit"]]),
    ("waf-rate-limit-per-api-key", "prod", "", set_rate("rate-limit-keyed-per-ip", limit=2000.0),
     [["'rate-limit-keyed-per-ip' blocks an IP above 2000 requests", "below the per-key limit (1e+03 req/s)",
       "a few addresses"]]),
    ("waf-rate-limit-per-api-key", "dev", "", unkeyed_scope_also_keyed,
     [["no blocking per-IP rate limit for requests without an API key"],
      ["'rate-limit-unkeyed-per-ip' blocks an IP above 2000 requests", "including requests with an API key"]]),
    ("waf-rate-limit-per-api-key", "prod", "", old_single_ip_limit,
     [["no blocking rate-based rule limits each API key"], ["no blocking per-IP rate limit"]]),
    ("waf-rate-limit-per-api-key", "prod", "", as_rule_json(drop_rule("rate-limit-per-api-key")),
     [["no blocking rate-based rule limits each API key"]]),
]


@pytest.mark.parametrize("policy, stack_name, name, breaker, expected", WAF_RESOURCE_CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(WAF_RESOURCE_CASES)])
def test_waf_resource_policy_catches_a_broken_web_acl(evaluation, policy, stack_name, name, breaker, expected):
    """GIVEN a copy of the stack's web ACL with one rule broken
    WHEN the policy checks it (requirements from the stack in its URN)
    THEN it reports exactly the expected violations, naming the ACL and the fix."""
    ev = evaluation(stack_name)
    type_, props, rname, urn = broken_copy(ev, WEB_ACL, name, breaker)
    assert fp.check_resource(policy, type_, find(ev, WEB_ACL, name).inputs, rname, urn) == []  # the real one passes
    messages = fp.check_resource(policy, type_, props, rname, urn)
    assert len(messages) == len(expected), messages
    for message, fragments in zip(messages, expected):
        assert rname in message and "Fix:" in message, message
        for fragment in fragments:
            assert fragment in message, message


def test_dev_counts_and_passes_but_fails_where_blocking_is_required(evaluation):
    """GIVEN dev's web ACL (all three groups in count mode)
    WHEN it is checked with dev's requirements THEN it passes; WHEN a config requires blocking THEN each group fails."""
    acl = find(evaluation("dev"), WEB_ACL)
    assert fp.check_resource("waf-managed-rules-block", acl.type, acl.inputs, acl.name, acl.urn) == []
    strict = fp.check_resource("waf-managed-rules-block", acl.type, acl.inputs, acl.name, acl.urn,
                               config={"wafManagedRulesBlockRequired": True})
    assert len(strict) == 3 and all("only counts" in m for m in strict)
    assert {g for g in (COMMON, BAD_INPUTS, REPUTATION) if any(g in m for m in strict)} == {COMMON, BAD_INPUTS, REPUTATION}


def test_header_names_are_case_insensitive(evaluation):
    # HTTP header names are case-insensitive, and so is WAF's match: a capitalised header is the same control
    ev = evaluation("prod")

    def capitalise(props):
        for r in props["rules"]:
            text = json.dumps(r).replace('"x-api-key"', '"X-Api-Key"')
            r.clear()
            r.update(json.loads(text))

    type_, props, rname, urn = broken_copy(ev, WEB_ACL, "", capitalise)
    assert "X-Api-Key" in json.dumps(props)
    assert fp.check_resource("waf-rate-limit-per-api-key", type_, props, rname, urn) == []


@pytest.mark.parametrize("policy", ["waf-managed-rules-block", "waf-rate-limit-per-api-key"])
def test_unknown_rules_are_left_to_up(evaluation, policy):
    # GIVEN a preview where the rules (or one rule's action) are not known yet THEN nothing is reported
    ev = evaluation("prod")
    acl = find(ev, WEB_ACL)
    assert fp.check_resource(policy, acl.type, {**acl.inputs, "rules": UNKNOWN}, acl.name, acl.urn) == []
    props = copy.deepcopy(acl.inputs)
    rule(props, "rate-limit-per-api-key")["action"] = UNKNOWN
    assert fp.check_resource("waf-rate-limit-per-api-key", acl.type, props, acl.name, acl.urn) == []


def test_policies_ignore_other_resource_types(evaluation):
    stage = find(evaluation("prod"), "aws:apigateway/stage:Stage")
    for policy in ("waf-managed-rules-block", "waf-rate-limit-per-api-key"):
        assert fp.check_resource(policy, stage.type, stage.inputs, stage.name, stage.urn) == []


# --- logging ----------------------------------------------------------------------------------

def setter(key, value=None, delete=False):
    def breaker(props):
        if delete:
            props.pop(key, None)
        else:
            props[key] = value
    return breaker


def _dest_suffix(props):
    props["logDestinationConfigs"] = [props["logDestinationConfigs"][0] + ":*"]


# (policy, stack, how to break the stack, who is named, expected fragments of the one violation)
WAF_STACK_CASES = [
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, WAF_LOGGING, ""), "fraud-api-waf",
     ["requests through this web ACL are not logged", "WebAclLoggingConfiguration", "aws-waf-logs-"]),
    ("waf-logging-redacts-api-key", "dev", lambda ev: stack_with(ev, WAF_LOGGING, "", setter("redactedFields", delete=True)), "fraud-api-waf-logging",
     ["x-api-key header is written to the WAF log in clear", "redactedFields"]),
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, WAF_LOGGING, "", setter("redactedFields", [{"singleHeader": {"name": "authorization"}}])),
     "fraud-api-waf-logging", ["in clear"]),
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, WAF_LOGGING, "", _dest_suffix), "fraud-api-waf-logging",
     ["ends with ':*'", "WAF refuses"]),
    ("waf-logging-redacts-api-key", "staging", lambda ev: stack_with(ev, WAF_LOGGING, "", setter("logDestinationConfigs", [
        "arn:aws:firehose:us-west-2:123456789012:deliverystream/aws-waf-logs-elsewhere"])),
     "fraud-api-waf-logging", ["is not a CloudWatch Logs log group"]),
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, WAF_LOGGING, "", setter("logDestinationConfigs", [
        "arn:aws:logs:us-east-1:999999999999:log-group:aws-waf-logs-someone-else"])),
     "fraud-api-waf-logging", ["is not a log group of this stack"]),
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, WAF_LOGGING, "", setter("loggingFilter", {
        "defaultBehavior": "DROP", "filters": [{"behavior": "KEEP", "requirement": "MEETS_ANY",
                                                "conditions": [{"actionCondition": {"action": "BLOCK"}}]}]})),
     "fraud-api-waf-logging", ["drops requests from an audit log"]),
    ("waf-logging-redacts-api-key", "prod", lambda ev: stack_with(ev, LOG_GROUP, "aws-waf-logs", setter("kmsKeyId", delete=True)), "fraud-api-waf-logs",
     ["not encrypted with the customer-managed key", "kmsKeyId"]),
    ("waf-logging-redacts-api-key", "dev", lambda ev: stack_with(ev, LOG_GROUP, "aws-waf-logs", setter("name", "fraud-waf-dev")), "fraud-api-waf-logs",
     ["WAF delivers only to log groups named aws-waf-logs-*"]),
]


@pytest.mark.parametrize("policy, stack_name, breaker, named, expected", WAF_STACK_CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(WAF_STACK_CASES)])
def test_waf_logging_policy_catches_a_broken_setup(evaluation, policy, stack_name, breaker, named, expected):
    """GIVEN the real stack with the logging configuration or its log group broken (or removed)
    WHEN `waf-logging-redacts-api-key` checks all resources
    THEN one violation names the resource at fault and the fix."""
    ev = evaluation(stack_name)
    assert fp.check_stack(policy, stack_resources(ev)) == []
    violations = fp.check_stack(policy, breaker(ev))
    assert len(violations) == 1, violations
    message, urn = violations[0]
    assert named in message and urn.endswith("::" + named) and "Fix:" in message, message
    for fragment in expected:
        assert fragment in message, message


def test_logging_links_through_dependencies_when_arns_are_unknown(evaluation):
    """GIVEN a preview where the ACL is new: its ARN and the logging config's references are unknown
    THEN the config is matched through its dependency on the ACL and nothing is reported; and a
    config that depends on nothing is still not counted as the ACL's."""
    ev = evaluation("prod")
    acl_urn, group_urn = find(ev, WEB_ACL).urn, find(ev, LOG_GROUP, "aws-waf-logs").urn
    logging_urn = find(ev, WAF_LOGGING).urn
    resources = copy.deepcopy(stack_resources(ev))
    for r in resources:
        if r.urn == acl_urn:
            r.props["arn"] = UNKNOWN
        if r.urn == logging_urn:
            r.props.update(resourceArn=UNKNOWN, logDestinationConfigs=[UNKNOWN])
            r.dependencies = (acl_urn, group_urn)
    assert fp.check_stack("waf-logging-redacts-api-key", resources) == []
    for r in resources:
        if r.urn == logging_urn:
            r.props["redactedFields"] = []
    assert [v.urn for v in fp.check_stack("waf-logging-redacts-api-key", resources)] == [logging_urn]


# --- the real stacks pass ------------------------------------------------------------------------

@pytest.mark.parametrize("policy", WAF_POLICIES)
def test_every_stack_passes_the_waf_policies(stack, policy):
    """GIVEN dev, staging and prod as the program declares them (dev's groups count, which dev allows)
    THEN each WAF policy reports nothing."""
    spec = fp.BY_NAME[policy]
    if spec.kind == "resource":
        violations = [m for r in stack.custom_resources() for m in fp.check_resource(spec, r.type, r.inputs, r.name, r.urn)]
    else:
        violations = [v.message for v in fp.check_stack(spec, stack_resources(stack))]
    assert violations == []


def test_every_waf_policy_has_a_failing_case():
    covered = {c[0] for c in WAF_RESOURCE_CASES} | {c[0] for c in WAF_STACK_CASES}
    assert covered == set(WAF_POLICIES)
    assert set(WAF_POLICIES) <= set(fp.BY_NAME)
