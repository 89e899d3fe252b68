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
from dataclasses import dataclass
from typing import Any, Mapping


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

    def as_config(self) -> dict[str, Any]:
        out = {CONFIG_KEYS[f.name]: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["allowedRuntimes"] = list(self.allowed_runtimes)
        return out


STRICTEST = Requirements()

#: Per-environment requirements: tracing and PITR off in dev only; dev is fully destroyable;
#: Kinesis retention >= 168 h and no data tracing in prod.
BY_ENVIRONMENT: dict[str, Requirements] = {
    "dev": Requirements("dev", tracing=False, pitr=False, deletion_protection=False,
                        min_kinesis_retention_hours=24, forbid_data_trace=False),
    "staging": Requirements("staging", tracing=True, pitr=True, deletion_protection=True,
                            min_kinesis_retention_hours=24, forbid_data_trace=False),
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
}

#: JSON schema of the config every requirement-aware policy accepts (all optional).
CONFIG_SCHEMA: dict[str, dict[str, Any]] = {
    "environment": {"type": "string", "description": "Environment whose defaults apply (dev, staging, prod; anything else = prod)."},
    "tracingRequired": {"type": "boolean", "description": "X-Ray required on functions, API stage and state machine."},
    "pointInTimeRecoveryRequired": {"type": "boolean", "description": "DynamoDB point-in-time recovery required."},
    "deletionProtectionRequired": {"type": "boolean", "description": "DynamoDB deletion protection on, bucket forceDestroy off."},
    "minKinesisRetentionHours": {"type": "integer", "minimum": 24, "maximum": 8760, "description": "Kinesis retention floor in hours."},
    "forbidDataTrace": {"type": "boolean", "description": "API Gateway dataTraceEnabled forbidden."},
    "allowedRuntimes": {"type": "array", "items": {"type": "string"}, "description": "Lambda runtimes functions may use."},
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
        if field_name == "min_kinesis_retention_hours":
            value = int(float(value))
        elif field_name == "allowed_runtimes":
            value = tuple(str(v) for v in value)
        elif isinstance(value, str):
            value = value.strip().lower() == "true"
        else:
            value = bool(value)
        overrides[field_name] = value
    return dataclasses.replace(base, **overrides)
