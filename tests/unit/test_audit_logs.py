"""Audit logs are kept for the audit retention; function logs keep the operational one.

PCI DSS 10.5.1 asks for twelve months of audit trail. The stacks used one
`logRetentionDays` (30 days in prod) for everything; the API's access and execution
logs, WAF logs, VPC flow logs and the state machine's logs now follow
`auditLogRetentionDays` (365 in prod).
"""

from __future__ import annotations

from fraud_pipeline.plan import settings_of

LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"


def test_each_log_group_has_the_retention_of_its_kind(stack):
    s = settings_of(stack.stack)
    groups = {r.inputs["name"]: r.inputs["retentionInDays"] for r in stack.of_type(LOG_GROUP)}
    function_groups = {n for n in groups if n.startswith("/aws/lambda/")}
    audit_groups = set(groups) - function_groups
    # every function's log group, and nothing else, keeps the operational retention
    assert len(function_groups) == 7
    assert {groups[n] for n in function_groups} == {s.log_retention_days}
    # the rest are audit logs: API access and execution, state machine, flow logs (with a VPC), WAF
    expected_kinds = {"/aws/apigateway/", "API-Gateway-Execution-Logs_", "/aws/vendedlogs/states/", "aws-waf-logs-"}
    if s.network_enabled:
        expected_kinds.add("/aws/vpc-flow-logs/")
    assert {k for k in expected_kinds if any(n.startswith(k) for n in audit_groups)} == expected_kinds
    assert {n: groups[n] for n in audit_groups} == {n: s.audit_log_retention_days for n in audit_groups}


def test_prod_keeps_audit_logs_a_year():
    assert settings_of("prod").audit_log_retention_days >= 365 > settings_of("prod").log_retention_days
