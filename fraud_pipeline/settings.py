"""Typed, validated stack settings.

Every knob a stack file may turn lives here, once: its config key, type, unit,
default and allowed range. A stack file is checked as a whole before any
resource is declared, so a typo or an out-of-range value stops `pulumi preview`
with one message that names the stack, the key, the value and the rule, instead
of surfacing later as a half-created stack or an AWS API error.

Pulumi hands config values to the program as strings (structured values as
JSON), so every parser here accepts both the string form and the native form
that YAML or a calling program would give.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .defaults import WAF_MANAGED_RULE_GROUPS

#: The project's config namespace (`fraud-pipeline:<key>` in a stack file).
NAMESPACE = "fraud-pipeline"

#: Retention periods CloudWatch Logs accepts (days); anything else is rejected by the API.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827,
    2192, 2557, 2922, 3288, 3653,
)

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_REGION = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_SUFFIX = re.compile(r"^[a-z0-9]{1,8}$")
_ENVIRONMENT = re.compile(r"^[a-z][a-z0-9]{0,9}$")
#: The `lists` parameter the list settings seed is a standard-tier SSM parameter (4 KB).
LISTS_PARAMETER_MAX_BYTES = 4096
#: A card token as handlers/tokenise.py makes it: HMAC-SHA256, lowercase hex.
_CARD_TOKEN = re.compile(r"^[0-9a-f]{64}$")
#: An HTTPS endpoint SNS can deliver to (a paging webhook); plain HTTP would carry alarms in clear.
_HTTPS_URL = re.compile(r"^https://[^\s/$.?#][^\s]*$")
_REGION_OR_EMPTY = re.compile(r"^$|^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d$")
_WAF_RULE_GROUP = re.compile("^(" + "|".join(WAF_MANAGED_RULE_GROUPS) + ")$")
#: WAF rate-based rules count requests over this window (seconds); the limit is per window.
WAF_RATE_WINDOW_SECONDS = 300


class SettingsError(ValueError):
    """A stack's settings break one or more rules; `problems` lists each of them."""

    def __init__(self, stack: str, problems: list[str]):
        self.stack = stack
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"stack '{stack}' has invalid settings:\n{lines}")


def _meta(
    key: str,
    unit: str,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple | None = None,
    pattern: re.Pattern | None = None,
    item_pattern: re.Pattern | None = None,
    rule: str | None = None,
    required: bool = False,
) -> dict[str, Any]:
    return {
        "key": key,
        "unit": unit,
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "choices": choices,
        "pattern": pattern,
        "item_pattern": item_pattern,
        "rule": rule,
        "required": required,
    }


def _setting(default: Any, key: str, unit: str, doc: str, **rules: Any) -> Any:
    if isinstance(default, (list, tuple)):
        frozen = tuple(default)
        return field(default_factory=lambda: frozen, metadata=_meta(key, unit, doc, **rules))
    return field(default=default, metadata=_meta(key, unit, doc, **rules))


def _required(key: str, unit: str, doc: str, **rules: Any) -> Any:
    return field(metadata=_meta(key, unit, doc, required=True, **rules))


@dataclass(frozen=True)
class PipelineSettings:
    """One environment's settings; constructing it validates every field.

    Programs that import `FraudPipeline` build this directly; stacks build it
    from their config through `from_config`.
    """

    environment: str = _required(
        "environment", "name", "Environment name (the stack name): the `<env>` of every physical name.",
        pattern=_ENVIRONMENT, rule="1-10 lowercase letters and digits, starting with a letter",
    )
    environment_suffix: str = _required(
        "environmentSuffix", "name", "Suffix appended to every physical name (`<base>-<env>-<suffix>`).",
        pattern=_SUFFIX, rule="1-8 lowercase letters and digits",
    )
    region: str = _required(
        "aws:region", "region", "AWS region the stack deploys to.",
        pattern=_REGION, rule="an AWS region name such as us-east-1",
    )

    # --- network -----------------------------------------------------------
    network_enabled: bool = _setting(
        True, "networkEnabled", "bool",
        "Run every function in a private VPC with endpoints and no route out (no NAT). Dev may turn it off to save endpoint cost.",
    )

    # --- ingest stream -----------------------------------------------------
    kinesis_shard_count: int = _setting(1, "kinesisShardCount", "shards", "Provisioned shards of the ingest stream.", minimum=1, maximum=500)
    kinesis_retention_hours: int = _setting(24, "kinesisRetentionHours", "hours", "How long the ingest stream keeps records.", minimum=24, maximum=8760)
    stream_batch_size: int = _setting(100, "streamBatchSize", "records", "Records per invocation for both stream event source mappings.", minimum=1, maximum=1000)
    stream_batch_window_seconds: int = _setting(1, "streamBatchWindowSeconds", "seconds", "Longest wait to fill a stream batch.", minimum=0, maximum=300)
    stream_max_retry_attempts: int = _setting(5, "streamMaxRetryAttempts", "attempts", "Retries of a failing stream batch before it goes to the on-failure queue.", minimum=0, maximum=10000)
    stream_max_record_age_seconds: int = _setting(3600, "streamMaxRecordAgeSeconds", "seconds", "Oldest stream record still delivered; older ones go to the on-failure queue.", minimum=60, maximum=604800)
    stream_parallelization_factor: int = _setting(1, "streamParallelizationFactor", "batches per shard", "Concurrent batches per shard.", minimum=1, maximum=10)

    # --- functions ---------------------------------------------------------
    processing_memory_mb: int = _setting(512, "processingMemoryMb", "MB", "Memory of the stream-ingest and detection functions.", minimum=128, maximum=10240)
    api_memory_mb: int = _setting(256, "apiMemoryMb", "MB", "Memory of the API function.", minimum=128, maximum=10240)
    support_memory_mb: int = _setting(256, "supportMemoryMb", "MB", "Memory of the notification, review-workflow, label and label-ingest functions.", minimum=128, maximum=10240)
    processing_timeout_seconds: int = _setting(60, "processingTimeoutSeconds", "seconds", "Timeout of the stream-ingest and detection functions.", minimum=3, maximum=900)
    api_timeout_seconds: int = _setting(10, "apiTimeoutSeconds", "seconds", "Timeout of the API function (API Gateway gives up at 29 s).", minimum=1, maximum=29)
    support_timeout_seconds: int = _setting(60, "supportTimeoutSeconds", "seconds", "Timeout of the notification, review-workflow, label and label-ingest functions.", minimum=3, maximum=900)
    api_reserved_concurrency: int = _setting(10, "apiReservedConcurrency", "executions", "Reserved concurrency of the API function.", minimum=1, maximum=1000)
    processing_reserved_concurrency: int = _setting(5, "processingReservedConcurrency", "executions", "Reserved concurrency of the stream-ingest and of the detection function, each.", minimum=1, maximum=1000)
    support_reserved_concurrency: int = _setting(5, "supportReservedConcurrency", "executions", "Reserved concurrency of the notification, review-workflow, label and label-ingest functions, each.", minimum=1, maximum=1000)
    tracing_enabled: bool = _setting(False, "tracingEnabled", "bool", "X-Ray tracing on functions, API stage and state machine.")
    manage_api_gateway_account: bool = _setting(True, "manageApiGatewayAccount", "bool", "Create API Gateway's account-level CloudWatch role (one per account and region): exactly one stack per account and region sets true.")

    # --- transaction store -------------------------------------------------
    dynamodb_billing_mode: str = _setting("PROVISIONED", "dynamodbBillingMode", "mode", "PROVISIONED (with auto-scaling) or PAY_PER_REQUEST.", choices=("PROVISIONED", "PAY_PER_REQUEST"))
    dynamodb_read_capacity: int = _setting(5, "dynamodbReadCapacity", "RCU", "Provisioned read capacity (the auto-scaling minimum).", minimum=1, maximum=40000)
    dynamodb_write_capacity: int = _setting(5, "dynamodbWriteCapacity", "WCU", "Provisioned write capacity (the auto-scaling minimum).", minimum=1, maximum=40000)
    dynamodb_max_read_capacity: int = _setting(50, "dynamodbMaxReadCapacity", "RCU", "Auto-scaling ceiling for reads.", minimum=1, maximum=40000)
    dynamodb_max_write_capacity: int = _setting(50, "dynamodbMaxWriteCapacity", "WCU", "Auto-scaling ceiling for writes.", minimum=1, maximum=40000)
    dynamodb_target_utilization_percent: int = _setting(70, "dynamodbTargetUtilizationPercent", "%", "Auto-scaling target utilisation.", minimum=20, maximum=90)
    point_in_time_recovery: bool = _setting(False, "pointInTimeRecovery", "bool", "DynamoDB point-in-time recovery on both tables.")
    deletion_protection: bool = _setting(False, "deletionProtection", "bool", "Protect tables from deletion and keep a non-empty archive bucket; off makes every resource destroyable.")
    transaction_retention_days: int = _setting(540, "transactionRetentionDays", "days", "Days a transaction item lives before DynamoDB's TTL removes it (0 = never expire); passed to every function that writes transactions as TRANSACTION_RETENTION_DAYS. Card-scheme dispute windows reach 540 days.", minimum=0, maximum=3650)

    # --- API ---------------------------------------------------------------
    api_throttle_rate: int = _setting(1000, "apiThrottleRate", "requests/s", "Usage-plan and stage steady-state rate.", minimum=1, maximum=10000)
    api_throttle_burst: int = _setting(1000, "apiThrottleBurst", "requests", "Usage-plan and stage burst.", minimum=1, maximum=5000)
    api_quota_limit: int = _setting(1000000, "apiQuotaLimit", "requests/period", "Usage-plan quota per API key.", minimum=1, maximum=2000000000)
    api_quota_period: str = _setting("DAY", "apiQuotaPeriod", "period", "Usage-plan quota period.", choices=("DAY", "WEEK", "MONTH"))
    waf_rate_limit: int = _setting(2000, "wafRateLimit", "requests/5 min/IP", "WAF rate-based rule for requests without an `x-api-key` header: requests one IP may make in any 5 minutes. Keyed requests are limited per API key at the usage plan's rate (apiThrottleRate x 300).", minimum=10, maximum=2000000000)
    waf_count_mode_rule_groups: tuple[str, ...] = _setting((), "wafCountModeRuleGroups", "list of rule-group names", "AWS managed WAF rule groups that only count matches instead of blocking (all block by default; dev may count to watch false positives).", item_pattern=_WAF_RULE_GROUP, rule="names among " + ", ".join(WAF_MANAGED_RULE_GROUPS))

    # --- alert queue -------------------------------------------------------
    alert_visibility_timeout_seconds: int = _setting(360, "alertVisibilityTimeoutSeconds", "seconds", "Alert queue visibility timeout (at least 6 x the notification timeout).", minimum=0, maximum=43200)
    alert_retention_seconds: int = _setting(345600, "alertRetentionSeconds", "seconds", "Alert queue message retention.", minimum=60, maximum=1209600)
    dlq_retention_seconds: int = _setting(1209600, "dlqRetentionSeconds", "seconds", "Dead-letter queues' retention (longer than the alert queue's).", minimum=60, maximum=1209600)
    alert_max_receive_count: int = _setting(5, "alertMaxReceiveCount", "receives", "Receives before an alert message moves to the DLQ.", minimum=1, maximum=1000)

    # --- alerts ------------------------------------------------------------
    alert_email_subscribers: tuple[str, ...] = _setting((), "alertEmailSubscribers", "list of e-mail addresses", "E-mail subscriptions of the fraud-alert topic.", item_pattern=_EMAIL, rule="e-mail addresses")
    alert_sms_subscribers: tuple[str, ...] = _setting((), "alertSmsSubscribers", "list of E.164 numbers", "SMS subscriptions of the fraud-alert topic (blocks only).", item_pattern=_E164, rule="E.164 phone numbers such as +15555550100")
    ops_email_subscribers: tuple[str, ...] = _setting((), "opsEmailSubscribers", "list of e-mail addresses", "E-mail subscriptions of the ops topic every alarm publishes to.", item_pattern=_EMAIL, rule="e-mail addresses")
    ops_sms_subscribers: tuple[str, ...] = _setting((), "opsSmsSubscribers", "list of E.164 numbers", "SMS subscriptions of the ops topic (alarms).", item_pattern=_E164, rule="E.164 phone numbers such as +15555550100")
    ops_https_subscribers: tuple[str, ...] = _setting((), "opsHttpsSubscribers", "list of HTTPS URLs", "HTTPS subscriptions of the ops topic, e.g. a paging service's webhook.", item_pattern=_HTTPS_URL, rule="https:// URLs")

    # --- archive -----------------------------------------------------------
    archive_transition_days: int = _setting(30, "archiveTransitionDays", "days", "Days before archived objects move to Glacier Instant Retrieval.", minimum=1, maximum=3650)
    archive_expiration_days: int = _setting(365, "archiveExpirationDays", "days", "Days before archived objects expire.", minimum=2, maximum=36500)
    archive_access_logging: bool = _setting(True, "archiveAccessLogging", "bool", "Record every object read and write of the archive bucket as CloudTrail data events in an encrypted trail of its own.")
    archive_replication_region: str = _setting("", "archiveReplicationRegion", "region", "Replicate the archive bucket to a bucket with its own key in this region (empty = no replication).", pattern=_REGION_OR_EMPTY, rule="empty or an AWS region name such as us-west-2")

    # --- deployment --------------------------------------------------------
    code_signing: bool = _setting(False, "codeSigning", "bool", "Deploy every function (and its Powertools layer) as artifacts signed by an AWS Signer profile, with a code signing config that rejects anything else.")

    # --- logs and alarms ---------------------------------------------------
    log_retention_days: int = _setting(7, "logRetentionDays", "days", "Retention of the functions' log groups (operational logs).", choices=LOG_RETENTION_DAYS)
    audit_log_retention_days: int = _setting(365, "auditLogRetentionDays", "days", "Retention of the audit logs: API access and execution logs, WAF logs, VPC flow logs, state-machine logs and the archive's access trail (PCI DSS 10.5.1 asks for 12 months).", choices=LOG_RETENTION_DAYS)
    error_rate_threshold_percent: float = _setting(10.0, "errorRateThresholdPercent", "%", "Per-function error-rate alarm threshold (errors / invocations).", minimum=0.1, maximum=100)
    duration_alarm_percent_of_timeout: int = _setting(80, "durationAlarmPercentOfTimeout", "% of timeout", "Duration alarm fires when the maximum duration nears the timeout.", minimum=10, maximum=100)
    iterator_age_alarm_seconds: int = _setting(60, "iteratorAgeAlarmSeconds", "seconds", "Iterator-age alarm threshold on both stream mappings.", minimum=1, maximum=604800)
    dlq_age_alarm_seconds: int = _setting(3600, "dlqAgeAlarmSeconds", "seconds", "Alarm when the oldest DLQ message is older than this.", minimum=60, maximum=1209600)
    api_5xx_rate_threshold_percent: float = _setting(1.0, "api5xxRateThresholdPercent", "%", "API 5XX-rate alarm threshold.", minimum=0.1, maximum=100)
    api_latency_alarm_ms: int = _setting(2000, "apiLatencyAlarmMs", "ms", "API p99 latency alarm threshold.", minimum=50, maximum=29000)

    # --- rules -------------------------------------------------------------
    high_amount_threshold: float = _setting(10000.0, "highAmountThreshold", "currency units", "HIGH_AMOUNT fires above this amount.", minimum=1, maximum=1000000)
    elevated_amount_threshold: float = _setting(5000.0, "elevatedAmountThreshold", "currency units", "ELEVATED_AMOUNT fires above this amount (up to the high threshold); also the review-workflow rule's amount.", minimum=1, maximum=1000000)
    review_score: int = _setting(40, "reviewScore", "score", "Lowest score decided `review`.", minimum=1, maximum=100)
    block_score: int = _setting(70, "blockScore", "score", "Lowest score decided `block`.", minimum=1, maximum=100)
    velocity_max_transactions: int = _setting(5, "velocityMaxTransactions", "transactions", "VELOCITY fires above this many transactions per card in the window.", minimum=1, maximum=1000)
    velocity_window_minutes: int = _setting(10, "velocityWindowMinutes", "minutes", "Velocity window.", minimum=1, maximum=1440)
    blocked_merchants: tuple[str, ...] = _setting(("Unknown Store",), "blockedMerchants", "list of names", "Merchants that always score BLOCKED_MERCHANT (case-insensitive).", item_pattern=re.compile(r"^.{1,128}$"), rule="names of 1-128 characters")
    high_risk_countries: tuple[str, ...] = _setting(("Nigeria", "North Korea", "Iran"), "highRiskCountries", "list of names", "Countries that score HIGH_RISK_LOCATION (case-insensitive).", item_pattern=re.compile(r"^.{1,64}$"), rule="names of 1-64 characters")
    allowed_card_tokens: tuple[str, ...] = _setting((), "allowedCardTokens", "list of card tokens", "Card tokens on the allow list (`allowed_card_tokens` of the `lists` parameter, e.g. a team's test cards); seeds that parameter with blockedMerchants and highRiskCountries.", item_pattern=_CARD_TOKEN, rule="card tokens: 64 lowercase hex characters (handlers/tokenise.py)")

    # --- capacity (see `capacity.py` and docs/capacity.md) ------------------
    peak_transactions_per_second: float = _setting(1.0, "peakTransactionsPerSecond", "transactions/s", "Peak load the stack must carry; the preview checks every stage's capacity against it.", minimum=0.01, maximum=1000000)
    average_transaction_bytes: int = _setting(512, "averageTransactionBytes", "bytes", "Average size of a submitted transaction (JSON, as written to Kinesis and stored before detection's attributes).", minimum=64, maximum=409600)
    capacity_check: str = _setting("error", "capacityCheck", "mode", "What a peak above a stage's capacity does to the preview: `error` fails it, `warn` logs a warning.", choices=("error", "warn"))

    def __post_init__(self) -> None:
        problems = [p for f in dataclasses.fields(self) for p in _check_field(f, getattr(self, f.name))]
        problems += self._cross_field_problems()
        if problems:
            raise SettingsError(self.environment if isinstance(self.environment, str) else "?", problems)

    def _cross_field_problems(self) -> list[str]:
        out: list[str] = []

        def need(ok: bool, key: str, value: Any, rule: str) -> None:
            if not ok:
                out.append(f"{key} = {value!r}: {rule}")

        need(self.dynamodb_max_read_capacity >= self.dynamodb_read_capacity, "dynamodbMaxReadCapacity",
             self.dynamodb_max_read_capacity, f"must be at least dynamodbReadCapacity ({self.dynamodb_read_capacity})")
        need(self.dynamodb_max_write_capacity >= self.dynamodb_write_capacity, "dynamodbMaxWriteCapacity",
             self.dynamodb_max_write_capacity, f"must be at least dynamodbWriteCapacity ({self.dynamodb_write_capacity})")
        need(self.dlq_retention_seconds > self.alert_retention_seconds, "dlqRetentionSeconds", self.dlq_retention_seconds,
             f"must be longer than alertRetentionSeconds ({self.alert_retention_seconds}) so a message cannot expire on the way to the DLQ")
        need(self.alert_visibility_timeout_seconds >= 6 * self.support_timeout_seconds, "alertVisibilityTimeoutSeconds",
             self.alert_visibility_timeout_seconds,
             f"must be at least 6 x supportTimeoutSeconds ({6 * self.support_timeout_seconds}), as AWS advises for SQS event sources")
        need(self.archive_expiration_days > self.archive_transition_days, "archiveExpirationDays", self.archive_expiration_days,
             f"must be after archiveTransitionDays ({self.archive_transition_days})")
        need(self.elevated_amount_threshold < self.high_amount_threshold, "elevatedAmountThreshold", self.elevated_amount_threshold,
             f"must be below highAmountThreshold ({self.high_amount_threshold})")
        need(self.archive_replication_region != self.region, "archiveReplicationRegion", self.archive_replication_region,
             f"must be another region than the stack's ({self.region}): a replica in the same region survives nothing a region loses")
        need(self.audit_log_retention_days >= self.log_retention_days, "auditLogRetentionDays", self.audit_log_retention_days,
             f"must be at least logRetentionDays ({self.log_retention_days}): audit logs outlive operational ones")
        need(self.review_score < self.block_score, "reviewScore", self.review_score, f"must be below blockScore ({self.block_score})")
        lists_bytes = len(json.dumps(self.lists()).encode())
        need(lists_bytes <= LISTS_PARAMETER_MAX_BYTES, "allowedCardTokens", f"{len(self.allowed_card_tokens)} token(s)",
             f"blockedMerchants, highRiskCountries and allowedCardTokens make a {lists_bytes}-byte `lists` parameter; "
             f"a standard SSM parameter holds {LISTS_PARAMETER_MAX_BYTES}: shorten the lists")
        return out

    # --- derived values (kept here so every consumer agrees) ---------------
    @property
    def provisioned(self) -> bool:
        return self.dynamodb_billing_mode == "PROVISIONED"

    @property
    def waf_api_key_rate_limit(self) -> int:
        """Requests one API key may make per WAF window: the usage plan's steady rate over the window."""
        return self.api_throttle_rate * WAF_RATE_WINDOW_SECONDS

    def rules(self) -> dict[str, Any]:
        """The detection rules as the `RULES_JSON` environment variable carries them."""
        return {
            "high_amount": self.high_amount_threshold,
            "elevated_amount": self.elevated_amount_threshold,
            "review_score": self.review_score,
            "block_score": self.block_score,
            "velocity_max_transactions": self.velocity_max_transactions,
            "velocity_window_minutes": self.velocity_window_minutes,
            "blocked_merchants": list(self.blocked_merchants),
            "high_risk_countries": list(self.high_risk_countries),
        }

    def lists(self) -> dict[str, list[str]]:
        """The first value of the `lists` parameter (operators own it after the first deploy)."""
        return {
            "blocked_merchants": list(self.blocked_merchants),
            "high_risk_countries": list(self.high_risk_countries),
            "allowed_card_tokens": list(self.allowed_card_tokens),
        }

    def replace(self, **changes: Any) -> PipelineSettings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_config(cls, stack: str, values: Mapping[str, Any]) -> PipelineSettings:
        """Build settings from a stack's config (`key -> value`, keys without the namespace).

        `environment` defaults to the stack name. Every problem is collected
        before raising, so one preview reports the whole stack file.
        """
        values = dict(values)
        values.setdefault("environment", stack)
        by_key = {f.metadata["key"]: f for f in dataclasses.fields(cls)}
        problems: list[str] = []
        kwargs: dict[str, Any] = {}
        for key in sorted(set(values) - set(by_key)):
            problems.append(f"{key} = {values[key]!r}: unknown key (known keys: see README 'Configuration reference')")
        for key, f in by_key.items():
            if key not in values:
                if f.metadata["required"]:
                    problems.append(f"{key}: missing key (required)")
                continue
            try:
                kwargs[f.name] = _parse(f, values[key])
            except ValueError as exc:
                problems.append(f"{key} = {values[key]!r}: {exc}")
        if problems:
            raise SettingsError(stack, problems)
        try:
            return cls(**kwargs)
        except SettingsError as exc:
            raise SettingsError(stack, exc.problems) from None


def setting_fields() -> tuple[dataclasses.Field, ...]:
    """The settings in declaration order, for docs and the plan."""
    return dataclasses.fields(PipelineSettings)


def describe_rule(f: dataclasses.Field) -> str:
    m = f.metadata
    if m["rule"]:
        return m["rule"]
    if m["choices"]:
        return "one of " + ", ".join(str(c) for c in m["choices"])
    if m["minimum"] is not None:
        return f"{_fmt(m['minimum'])} to {_fmt(m['maximum'])}"
    return "true or false" if _kind(f) is bool else "any"


def setting_kind(f: dataclasses.Field) -> type:
    """The type a setting holds: bool, int, float, str, or tuple (a list of strings)."""
    return _kind(f)


def _fmt(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def _kind(f: dataclasses.Field) -> type:
    annotation = str(f.type)
    if annotation.startswith("tuple"):
        return tuple
    return {"int": int, "float": float, "bool": bool, "str": str}[annotation]


def _parse(f: dataclasses.Field, raw: Any) -> Any:
    """Turn a config value (string or native) into the field's type, or raise ValueError naming the rule."""
    kind = _kind(f)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            return raw.strip().lower() == "true"
        raise ValueError("wrong type: expected true or false")
    if kind is int:
        if isinstance(raw, bool):
            raise ValueError("wrong type: expected a whole number")
        if isinstance(raw, int):
            return raw
        if isinstance(raw, float) and raw.is_integer():
            return int(raw)
        if isinstance(raw, str) and re.fullmatch(r"\s*-?\d+\s*", raw):
            return int(raw)
        raise ValueError("wrong type: expected a whole number")
    if kind is float:
        if isinstance(raw, bool):
            raise ValueError("wrong type: expected a number")
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValueError("wrong type: expected a number") from None
        if not math.isfinite(value):
            raise ValueError("wrong type: expected a finite number")
        return value
    if kind is tuple:
        items = raw
        if isinstance(raw, str):
            try:
                items = json.loads(raw) if raw.strip() else []
            except json.JSONDecodeError:
                items = [part.strip() for part in raw.split(",") if part.strip()]
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ValueError("wrong type: expected a list of strings")
        return tuple(items)
    if not isinstance(raw, str):
        raise ValueError("wrong type: expected a string")
    return raw


def _check_field(f: dataclasses.Field, value: Any) -> list[str]:
    m = f.metadata
    key = m["key"]
    kind = _kind(f)
    ok_type = {
        bool: lambda v: isinstance(v, bool),
        int: lambda v: isinstance(v, int) and not isinstance(v, bool),
        float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
        str: lambda v: isinstance(v, str),
        tuple: lambda v: isinstance(v, (tuple, list)) and all(isinstance(i, str) for i in v),
    }[kind]
    if not ok_type(value):
        return [f"{key} = {value!r}: wrong type: expected {kind.__name__}"]
    problems = []
    if m["choices"] is not None and value not in m["choices"]:
        problems.append(f"{key} = {value!r}: out of range: must be {describe_rule(f)}")
    if m["minimum"] is not None and not (m["minimum"] <= value <= m["maximum"]):
        problems.append(f"{key} = {value!r}: out of range: must be {describe_rule(f)}")
    if m["pattern"] is not None and not m["pattern"].match(value):
        problems.append(f"{key} = {value!r}: invalid: must be {describe_rule(f)}")
    if m["item_pattern"] is not None:
        bad = [item for item in value if not m["item_pattern"].match(item)]
        if bad:
            problems.append(f"{key} = {list(value)!r}: invalid item(s) {bad!r}: must be {describe_rule(f)}")
    return problems

