"""Audit logs kept long enough (PCI DSS 10.5.1: twelve months, three of them at hand).

Which log groups are audit logs follows from what writes to them, not from a tag a
change could drop: a stage's access-log destination, API Gateway's execution-log group
(`API-Gateway-Execution-Logs_<api>/<stage>`), a WAF logging destination (`aws-waf-logs-...`),
a VPC flow log's destination and a state machine's log destination. Function logs are
operational and keep the stack's shorter `logRetentionDays`.
"""

from __future__ import annotations

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .stack_policies import StackResource, Violation, _of, _who
from .values import as_list, fmt, get, is_unknown, num

FLOW_LOG = "aws:ec2/flowLog:FlowLog"
WAF_LOGGING = "aws:wafv2/webAclLoggingConfiguration:WebAclLoggingConfiguration"
#: Log group names that only audit logs have (API Gateway names its execution-log group; WAF requires the prefix).
AUDIT_NAME_PREFIXES = ("API-Gateway-Execution-Logs_", "aws-waf-logs-")


def _arn(value) -> str | None:
    """A log group ARN as destinations write it (Step Functions appends `:*`)."""
    if not isinstance(value, str) or is_unknown(value):
        return None
    return value[:-2] if value.endswith(":*") else value


def _destinations(resources: list[StackResource]) -> list[tuple[StackResource, str, object]]:
    """(writer, property, value) for every log destination an audit-log writer names."""
    out: list[tuple[StackResource, str, object]] = []
    for stage in _of(resources, rp.STAGE):
        out.append((stage, "accessLogSettings", get(stage.props, "accessLogSettings", "destinationArn")))
    for flow in _of(resources, FLOW_LOG):
        out.append((flow, "logDestination", flow.props.get("logDestination")))
    for machine in _of(resources, rp.STATE_MACHINE):
        for d in as_list(get(machine.props, "loggingConfiguration", "logDestination")):
            out.append((machine, "loggingConfiguration", d))
    for waf in _of(resources, WAF_LOGGING):
        for d in as_list(waf.props.get("logDestinationConfigs")):
            out.append((waf, "logDestinationConfigs", d))
    return out


def audit_log_groups(resources: list[StackResource]) -> list[StackResource]:
    groups = _of(resources, rp.LOG_GROUP)
    audit = [g for g in groups if isinstance(name := g.props.get("name"), str) and name.startswith(AUDIT_NAME_PREFIXES)]
    for writer, prop, value in _destinations(resources):
        arn = _arn(value)
        for g in groups:
            linked = (arn is not None and arn == _arn(g.props.get("arn"))) or (
                arn is None and g.urn in writer.property_dependencies.get(prop, ()))
            if linked and g not in audit:
                audit.append(g)
    return audit


def audit_log_retention(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    floor = req.min_audit_log_retention_days
    out: list[Violation] = []
    for group in audit_log_groups(resources):
        raw = group.props.get("retentionInDays")
        if is_unknown(raw):
            continue
        days = num(raw)
        if days is None or days == 0:
            continue  # never expires: `log-group-retention` asks for a period, this floor is met
        if days < floor:
            out.append(Violation(
                f"{_who(group)}: an audit log kept {fmt(raw)} days; {req.environment} requires at least {floor}. "
                "Fix: raise auditLogRetentionDays.", group.urn))
    return out
