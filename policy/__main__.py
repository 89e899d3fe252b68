"""The fraud-pipeline-controls policy pack: builds the PolicyPack from `fraud_policies` and serves it.

The checks themselves live in `fraud_policies` (plain functions, no pulumi_policy
import) so tests run them without the Pulumi CLI. This module only adapts them:
it unwraps CrossGuard's unknown-checking proxies into plain data (unknown values
stay as the engine's sentinels, which the checks skip), reads each policy's
config (`--policy-pack-config`) and reports violations. Constructing `PolicyPack`
starts the analyzer's gRPC server and blocks, so it happens only when the
Pulumi CLI runs this directory as a program.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fraud_policies  # noqa: E402
from fraud_policies import PolicySpec, StackResource  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

try:  # pulumi-policy >= 1.x with severities
    from pulumi_policy import Severity  # noqa: E402
except ImportError:  # pragma: no cover
    Severity = None  # type: ignore[assignment,misc]


def plain(value: Any) -> Any:
    """CrossGuard's proxies (which raise on unknown values) -> plain dicts and lists, unknowns kept as sentinels."""
    if isinstance(value, Mapping):
        target = _target(value)
        return {k: plain(target[k]) for k in target}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        target = _target(value)
        return [plain(target[i]) for i in range(len(target))]
    return value


def _target(proxy: Any) -> Any:
    try:
        return proxy["__target"]  # pulumi_policy.proxy: the raw container, no unknown check
    except (KeyError, TypeError, IndexError):
        return proxy


def _config(args: Any) -> dict[str, Any]:
    try:
        return dict(args.get_config() or {})
    except Exception:  # pragma: no cover - older SDKs
        return {}


def _resource_validator(spec: PolicySpec):
    def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
        props = plain(args.props)
        for message in fraud_policies.check_resource(spec, args.resource_type, props, args.name, args.urn, _config(args)):
            report_violation(message, args.urn)
    return validate


def _stack_validator(spec: PolicySpec):
    def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
        resources = [
            StackResource(
                type=r.resource_type, name=r.name, urn=r.urn, props=plain(r.props),
                parent=r.parent.urn if getattr(r, "parent", None) is not None else None,
                dependencies=tuple(d.urn for d in (getattr(r, "dependencies", None) or [])),
                property_dependencies={k: tuple(d.urn for d in v)
                                       for k, v in (getattr(r, "property_dependencies", None) or {}).items()},
            )
            for r in args.resources
        ]
        for violation in fraud_policies.check_stack(spec, resources, _config(args)):
            report_violation(violation.message, violation.urn)
    return validate


#: severity / remediation_steps exist only in newer pulumi-policy releases; pass them where supported.
_OPTIONAL = set(inspect.signature(ResourceValidationPolicy.__init__).parameters) & {"severity", "remediation_steps"}


def build_policies() -> list:
    """One mandatory CrossGuard policy per `fraud_policies.POLICIES` entry."""
    policies = []
    for spec in fraud_policies.POLICIES:
        common = dict(
            name=spec.name,
            description=spec.description,
            enforcement_level=EnforcementLevel.MANDATORY,
            config_schema=PolicyConfigSchema(properties=dict(fraud_policies.CONFIG_SCHEMA)) if spec.uses_requirements else None,
        )
        if "severity" in _OPTIONAL and Severity is not None:
            common["severity"] = Severity(spec.severity)
        if "remediation_steps" in _OPTIONAL:
            common["remediation_steps"] = spec.remediation
        if spec.kind == "resource":
            policies.append(ResourceValidationPolicy(validate=_resource_validator(spec), **common))
        else:
            policies.append(StackValidationPolicy(validate=_stack_validator(spec), **common))
    return policies


def build_pack() -> PolicyPack:
    """Serves the pack to the Pulumi CLI (blocks: PolicyPack starts the analyzer gRPC server)."""
    return PolicyPack(
        name=fraud_policies.PACK_NAME,
        policies=build_policies(),
        enforcement_level=EnforcementLevel.MANDATORY,
        description="Security controls of the fraud-pipeline stacks (see docs/compliance.md).",
    )


if __name__ == "__main__":
    build_pack()
