"""What each environment requires, and how the policy pack's config overrides it.

The requirements are minimums: a stack may do more (tracing on in dev is fine),
never less. Without config, the requirements follow the stack name found in the
resource URNs (`urn:pulumi:<stack>::...`): `dev`, `staging` and `prod` get the
table below, and **any other stack name gets the strictest (prod) set**, so a
new or misspelt stack fails closed. Config (`pulumi preview --policy-pack-config`)
overrides any field; see `CONFIG_SCHEMA` and policy/config/<stack>.json.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Requirements:
    environment: str = "prod"
    #: X-Ray on functions, the API stage and the state machine.
    tracing: bool = True
    #: DynamoDB point-in-time recovery.
    pitr: bool = True
    #: DynamoDB deletion protection and no force-destroy on buckets.
    deletion_protection: bool = True
    #: Kinesis retention floor (hours); 168 = 7 days (Security Hub Kinesis.3's default).
    min_kinesis_retention_hours: int = 168
    #: API Gateway full request/response data tracing forbidden.
    forbid_data_trace: bool = True
    #: Lambda runtimes AWS supports (not deprecated) that functions may use.
    allowed_runtimes: tuple[str, ...] = ("python3.11", "python3.12", "python3.13")
    #: The topic alarms publish to has at least one subscription (someone is told).
    alarm_subscribers: bool = True
    #: WAF's AWS managed rule groups (common, known bad inputs, IP reputation) block rather than count.
    waf_managed_rules_block: bool = True
    #: Floor of the audit log groups' retention (days): API access/execution, WAF, VPC flow, state machine.
    min_audit_log_retention_days: int = 365
    #: Every object read and write of the archive bucket is recorded (CloudTrail data events).
    archive_access_logging: bool = True
    #: Every function runs in private subnets of the stack's VPC.
    functions_in_vpc: bool = True
    #: Every function's code is signed and checked by an enforcing code signing config.
    code_signing: bool = True
    #: The archive bucket replicates to a bucket in another region under that region's own key.
    archive_replication: bool = True
    #: Floor of the transactions' retention (days, 0 = never expire) the functions write with.
    min_transaction_retention_days: int = 540

    def as_config(self) -> dict[str, Any]:
        out = {CONFIG_KEYS[f.name]: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["allowedRuntimes"] = list(self.allowed_runtimes)
        return out


STRICTEST = Requirements()

#: Per-environment requirements: tracing and PITR off in dev only; dev is fully destroyable;
#: Kinesis retention >= 168 h and no data tracing in prod. Staging and prod: alarms reach someone,
#: managed WAF rules block, the archive's reads are recorded and every function is in the VPC. Prod
#: only: a year of audit logs, signed code, a replicated archive, transactions kept 540 days.
BY_ENVIRONMENT: dict[str, Requirements] = {
    "dev": Requirements("dev", tracing=False, pitr=False, deletion_protection=False,
                        min_kinesis_retention_hours=24, forbid_data_trace=False, alarm_subscribers=False,
                        waf_managed_rules_block=False, min_audit_log_retention_days=1, archive_access_logging=False,
                        functions_in_vpc=False, code_signing=False, archive_replication=False,
                        min_transaction_retention_days=1),
    "staging": Requirements("staging", tracing=True, pitr=True, deletion_protection=True,
                            min_kinesis_retention_hours=24, forbid_data_trace=False, alarm_subscribers=True,
                            waf_managed_rules_block=True, min_audit_log_retention_days=90,
                            archive_access_logging=True, functions_in_vpc=True, code_signing=False,
                            archive_replication=False, min_transaction_retention_days=1),
    "prod": STRICTEST,
}

#: Requirements field -> config key (camelCase, like the stack files).
CONFIG_KEYS = {
    "environment": "environment",
    "tracing": "tracingRequired",
    "pitr": "pointInTimeRecoveryRequired",
    "deletion_protection": "deletionProtectionRequired",
    "min_kinesis_retention_hours": "minKinesisRetentionHours",
    "forbid_data_trace": "forbidDataTrace",
    "allowed_runtimes": "allowedRuntimes",
    "alarm_subscribers": "alarmSubscribersRequired",
    "waf_managed_rules_block": "wafManagedRulesBlockRequired",
    "min_audit_log_retention_days": "minAuditLogRetentionDays",
    "archive_access_logging": "archiveAccessLoggingRequired",
    "functions_in_vpc": "functionsInVpcRequired",
    "code_signing": "codeSigningRequired",
    "archive_replication": "archiveReplicationRequired",
    "min_transaction_retention_days": "minTransactionRetentionDays",
}

#: Requirements fields that are whole numbers (the others are booleans, or the runtime list).
_INTEGER_FIELDS = ("min_kinesis_retention_hours", "min_audit_log_retention_days", "min_transaction_retention_days")

#: JSON schema of the config every requirement-aware policy accepts (all optional).
CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "environment": {"type": "string", "description": "Environment whose defaults apply (dev, staging, prod; anything else = prod)."},
    "tracingRequired": {"type": "boolean", "description": "X-Ray required on functions, API stage and state machine."},
    "pointInTimeRecoveryRequired": {"type": "boolean", "description": "DynamoDB point-in-time recovery required."},
    "deletionProtectionRequired": {"type": "boolean", "description": "DynamoDB deletion protection on, bucket forceDestroy off."},
    "minKinesisRetentionHours": {"type": "integer", "minimum": 24, "maximum": 8760, "description": "Kinesis retention floor in hours."},
    "forbidDataTrace": {"type": "boolean", "description": "API Gateway dataTraceEnabled forbidden."},
    "allowedRuntimes": {"type": "array", "items": {"type": "string"}, "description": "Lambda runtimes functions may use."},
    "alarmSubscribersRequired": {"type": "boolean", "description": "The alarms' topic must have a subscription."},
    "wafManagedRulesBlockRequired": {"type": "boolean", "description": "WAF's AWS managed rule groups must block (not count)."},
    "minAuditLogRetentionDays": {"type": "integer", "minimum": 1, "maximum": 3653, "description": "Audit log groups' retention floor in days."},
    "archiveAccessLoggingRequired": {"type": "boolean", "description": "The archive bucket's object reads and writes must be recorded."},
    "functionsInVpcRequired": {"type": "boolean", "description": "Every function must run in private subnets."},
    "codeSigningRequired": {"type": "boolean", "description": "Every function must have an enforcing code signing config."},
    "archiveReplicationRequired": {"type": "boolean", "description": "The archive bucket must replicate to another region."},
    "minTransactionRetentionDays": {"type": "integer", "minimum": 0, "maximum": 3650, "description": "Transactions' retention floor in days (0 = never expire satisfies any floor)."},
}


def stack_of_urn(urn: str | None) -> str | None:
    """`urn:pulumi:prod::fraud-pipeline::...` -> `prod`."""
    if not isinstance(urn, str) or not urn.startswith("urn:pulumi:"):
        return None
    return urn[len("urn:pulumi:"):].split("::", 1)[0] or None


def requirements_for(stack: str | None, config: Mapping[str, Any] | None = None) -> Requirements:
    """Defaults of the environment (from config `environment`, else the stack name), overlaid with config."""
    config = dict(config or {})
    environment = config.get("environment") or stack or "prod"
    base = BY_ENVIRONMENT.get(str(environment), dataclasses.replace(STRICTEST, environment=str(environment)))
    overrides: dict[str, Any] = {}
    for field_name, key in CONFIG_KEYS.items():
        if key == "environment" or config.get(key) is None:
            continue
        value = config[key]
        if field_name in _INTEGER_FIELDS:
            value = int(float(value))
        elif field_name == "allowed_runtimes":
            value = tuple(str(v) for v in value)
        elif isinstance(value, str):
            value = value.strip().lower() == "true"
        else:
            value = bool(value)
        overrides[field_name] = value
    return dataclasses.replace(base, **overrides)
