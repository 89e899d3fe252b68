"""The fraud-pipeline controls as plain functions, importable without `pulumi_policy`.

`POLICIES` is the catalogue `policy/__main__.py` registers (every one mandatory):
resource policies take `(resource_type, props, name, requirements)` and return
messages; stack policies take `(resources, requirements)` and return `Violation`s.
`check_resource` / `check_stack` run them the way the policy pack does, so the
tests exercise exactly what `pulumi preview --policy-pack policy` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from . import alarm_policies, archive_policies, lambda_policies, logging_policies, waf_policies
from . import resource_policies as rp
from . import stack_policies as sp
from .requirements import CONFIG_SCHEMA, Requirements, requirements_for, stack_of_urn
from .stack_policies import StackResource, Violation
from .values import UNKNOWN, is_unknown

PACK_NAME = "fraud-pipeline-controls"


@dataclass(frozen=True)
class PolicySpec:
    name: str
    description: str
    kind: Literal["resource", "stack"]
    check: Callable[..., list]
    severity: Literal["low", "medium", "high", "critical"]
    remediation: str
    #: Reads the stack requirements (config schema `CONFIG_SCHEMA`).
    uses_requirements: bool = False


def _r(name, description, check, severity, remediation, uses_requirements=False) -> PolicySpec:
    return PolicySpec(name, description, "resource", check, severity, remediation, uses_requirements)


def _s(name, description, check, severity, remediation, uses_requirements=False) -> PolicySpec:
    return PolicySpec(name, description, "stack", check, severity, remediation, uses_requirements)


POLICIES: tuple[PolicySpec, ...] = (
    # encryption and keys
    _r("encryption-at-rest-cmk",
       "DynamoDB tables, SQS queues, SNS topics, Kinesis streams, S3 (SSE-KMS with bucket key, and the objects the "
       "program uploads), log groups, Step Functions, Lambda environment, EventBridge bus and SSM parameters are "
       "encrypted with a customer-managed KMS key.",
       rp.encryption_at_rest_cmk, "high", "Pass the pipeline's KMS key ARN to the resource's encryption setting."),
    _s("encryption-uses-stack-key",
       "Every KMS key reference is the customer-managed key (or its alias) that this stack manages and rotates.",
       sp.encryption_uses_stack_key, "high", "Use KmsKeys.key.arn, not a key from elsewhere."),
    _r("kms-key-rotation", "Customer-managed KMS keys rotate automatically.",
       rp.kms_key_rotation, "high", "Set enableKeyRotation = true."),
    _r("dynamodb-point-in-time-recovery", "DynamoDB tables have point-in-time recovery where the stack requires it.",
       rp.dynamodb_point_in_time_recovery, "medium", "Set pointInTimeRecovery.enabled = true.", True),
    _r("deletion-protection",
       "DynamoDB tables have deletion protection, and buckets are not force-destroyable, where the stack requires it.",
       rp.deletion_protection, "medium", "Set deletionProtectionEnabled = true / forceDestroy = false.", True),
    # S3
    _r("s3-public-access-block", "S3 public access blocks set all four flags.",
       rp.s3_public_access_block, "critical", "Set the four block/ignore/restrict flags to true."),
    _r("s3-tls-only-policy", "S3 bucket policies deny every request made without TLS.",
       rp.s3_tls_only_policy, "high", "Add a Deny on aws:SecureTransport = false."),
    _r("s3-object-ownership-enforced", "S3 object ownership is BucketOwnerEnforced (ACLs disabled).",
       rp.s3_object_ownership_enforced, "medium", "Set rule.objectOwnership = BucketOwnerEnforced."),
    _r("s3-lifecycle", "S3 lifecycle configurations have an enabled rule that transitions or expires objects.",
       rp.s3_lifecycle, "medium", "Add an enabled rule with transitions and expiration."),
    _s("s3-bucket-companions",
       "Every bucket has its SSE configuration, public access block, ownership controls, lifecycle and TLS-only policy.",
       sp.s3_bucket_companions, "high", "Declare the missing companion resource for the bucket."),
    # Lambda
    _r("lambda-supported-runtime", "Lambda functions use a supported runtime.",
       rp.lambda_supported_runtime, "high", "Set runtime to a supported Python version.", True),
    _r("lambda-tracing", "Lambda functions trace with X-Ray (Active) where the stack requires it.",
       rp.lambda_tracing, "low", "Set tracingConfig.mode = Active.", True),
    _r("lambda-reserved-concurrency", "Lambda functions have reserved concurrency of at least 1.",
       rp.lambda_reserved_concurrency, "medium", "Set reservedConcurrentExecutions."),
    _r("lambda-permission-scoped",
       "Lambda invoke permissions name a service principal and a specific source ARN (with the source account "
       "for S3, whose ARNs name none); never principal '*'.",
       rp.lambda_permission_scoped, "critical", "Set principal and sourceArn to the one calling resource."),
    _s("lambda-permission-source-in-stack", "Lambda invoke permissions' source ARNs are resources of this stack.",
       sp.lambda_permission_source_in_stack, "high", "Derive sourceArn from the calling resource's output."),
    _r("lambda-no-public-url", "No Lambda function URL (or URL permission) without IAM auth.",
       rp.lambda_no_public_url, "critical", "Remove the function URL or use AWS_IAM auth."),
    _s("function-log-group-and-masking",
       "Every function writes to a log group the stack manages, with a data-protection policy that masks card numbers.",
       sp.function_log_group_and_masking, "high", "Declare the log group and its LogDataProtectionPolicy."),
    # API Gateway
    _r("apigateway-api-key-required", "Every API Gateway method requires an API key.",
       rp.apigateway_api_key_required, "high", "Set apiKeyRequired = true."),
    _s("apigateway-waf-on-every-stage", "Every API Gateway stage is associated with a WAF web ACL.",
       sp.apigateway_waf_on_every_stage, "high", "Declare a WebAclAssociation for the stage."),
    _r("apigateway-access-logging", "API Gateway stages write access logs.",
       rp.apigateway_access_logging, "medium", "Set accessLogSettings."),
    _r("apigateway-execution-logging", "API Gateway method settings log execution at ERROR or INFO.",
       rp.apigateway_execution_logging, "medium", "Set settings.loggingLevel = ERROR."),
    _s("apigateway-execution-logging-on-every-stage",
       "Every API Gateway stage has method settings for */* with execution logging.",
       sp.apigateway_execution_logging_on_every_stage, "medium", "Declare MethodSettings */* for the stage."),
    _r("apigateway-xray-tracing", "API Gateway stages trace with X-Ray where the stack requires it.",
       rp.apigateway_xray_tracing, "low", "Set xrayTracingEnabled = true.", True),
    _r("apigateway-no-data-trace", "No full request/response data tracing where the stack forbids it (prod).",
       rp.apigateway_no_data_trace, "critical", "Set settings.dataTraceEnabled = false.", True),
    # Step Functions
    _r("stepfunctions-logging-and-tracing",
       "State machines log executions, and trace with X-Ray where the stack requires it.",
       rp.stepfunctions_logging_and_tracing, "medium", "Set loggingConfiguration and tracingConfiguration.", True),
    # SQS and event sources
    _s("sqs-consumer-queue-has-dlq", "Every queue a function consumes has a dead-letter queue in the stack.",
       sp.sqs_consumer_queue_has_dlq, "high", "Set redrivePolicy with the DLQ's ARN and maxReceiveCount."),
    _s("sqs-visibility-covers-consumer", "Queue visibility timeout is at least 6 x its consuming function's timeout.",
       sp.sqs_visibility_covers_consumer, "medium", "Raise visibilityTimeoutSeconds or lower the function timeout."),
    _s("sqs-dlq-retention-exceeds-source", "A dead-letter queue keeps messages longer than its source queue.",
       sp.sqs_dlq_retention_exceeds_source, "medium", "Set the DLQ's messageRetentionSeconds to 14 days."),
    _r("event-source-mapping-failure-handling",
       "Event source mappings report batch item failures; stream mappings also bisect on error, bound retries and "
       "record age, and send exhausted batches to an on-failure destination.",
       rp.event_source_mapping_failure_handling, "high", "Set the failure-handling options of the mapping."),
    # Kinesis
    _r("kinesis-retention", "Kinesis streams keep records at least as long as the stack requires (168 h in prod).",
       rp.kinesis_retention, "medium", "Raise retentionPeriod.", True),
    # IAM
    _r("iam-least-privilege",
       "IAM policies grant no '*' or 'service:*' actions and use Resource '*' only for actions AWS grants solely on '*'.",
       rp.iam_least_privilege, "critical", "Name specific actions and resource ARNs."),
    # CloudWatch Logs
    _r("log-group-retention", "Log groups have a retention period.",
       rp.log_group_retention, "medium", "Set retentionInDays."),
    _r("log-data-protection-masks-card-numbers", "Log data-protection policies mask card numbers.",
       rp.log_data_protection_masks_card_numbers, "high", "Add a Deidentify/MaskConfig statement for CreditCardNumber."),
    _s("audit-log-retention",
       "Audit log groups (API access and execution, WAF, VPC flow, state machine) keep their logs at least as long "
       "as the stack requires (365 days in prod, PCI DSS 10.5.1).",
       logging_policies.audit_log_retention, "high", "Raise auditLogRetentionDays.", True),
    # alarms
    _s("alarm-topic-has-subscriber",
       "Every topic an alarm publishes to has at least one subscription where the stack requires it (staging, prod).",
       alarm_policies.alarm_topic_has_subscriber, "high",
       "Set opsEmailSubscribers, opsSmsSubscribers or opsHttpsSubscribers.", True),
    # WAF
    _r("waf-managed-rules-block",
       "The web ACL runs AWS's IP reputation, known-bad-inputs and common rule sets, blocking where the stack "
       "requires it (prod).",
       waf_policies.waf_managed_rules_block, "high", "Remove the group from wafCountModeRuleGroups.", True),
    _r("waf-rate-limit-per-api-key",
       "The web ACL limits each client by its API key (custom key on the x-api-key header) and, per IP, the "
       "requests that carry no key.",
       waf_policies.waf_rate_limit_per_api_key, "high",
       "Add a rate-based rule with custom_keys on the x-api-key header, and an IP rule scoped to unkeyed requests."),
    _s("waf-logging-redacts-api-key",
       "Every web ACL logs to a CMK-encrypted `aws-waf-logs-` log group with the x-api-key header redacted.",
       waf_policies.waf_logging_redacts_api_key, "high",
       "Declare a WebAclLoggingConfiguration with redactedFields singleHeader x-api-key."),
    # archive evidence
    _s("archive-access-logged",
       "Every object read and write of the archive bucket is recorded by an encrypted, validated CloudTrail "
       "trail of data events where the stack requires it (staging, prod).",
       archive_policies.archive_access_logged, "high", "Set archiveAccessLogging = true.", True),
    _s("archive-replicated",
       "The archive bucket replicates every object to a hardened bucket in another region under that region's own "
       "CMK where the stack requires it (prod).",
       archive_policies.archive_replicated, "high", "Set archiveReplicationRegion.", True),
    # function placement and provenance
    _s("lambda-in-private-subnets",
       "Every function runs in private subnets of the stack's VPC (no route to the internet) where the stack "
       "requires it (staging, prod).",
       lambda_policies.lambda_in_private_subnets, "high", "Set networkEnabled = true.", True),
    _s("lambda-code-signing",
       "Every function has a code signing config that enforces the stack's Signer profile where the stack requires "
       "it (prod).",
       lambda_policies.lambda_code_signing, "high", "Set codeSigning = true.", True),
    _r("transaction-retention",
       "Functions that write transactions keep them at least as long as the stack requires (540 days in prod: the "
       "longest card-scheme dispute windows).",
       rp.transaction_retention, "high", "Raise transactionRetentionDays (0 = never expire).", True),
)

BY_NAME: dict[str, PolicySpec] = {p.name: p for p in POLICIES}
RESOURCE_POLICIES = tuple(p for p in POLICIES if p.kind == "resource")
STACK_POLICIES = tuple(p for p in POLICIES if p.kind == "stack")


def check_resource(spec: PolicySpec | str, resource_type: str, props: Mapping[str, Any], name: str = "",
                   urn: str | None = None, config: Mapping[str, Any] | None = None) -> list[str]:
    """Run one resource policy; requirements come from `config`, else the stack named in `urn`."""
    spec = BY_NAME[spec] if isinstance(spec, str) else spec
    req = requirements_for(stack_of_urn(urn), config)
    return list(spec.check(resource_type, dict(props), name, req))


def check_stack(spec: PolicySpec | str, resources: Iterable[StackResource],
                config: Mapping[str, Any] | None = None) -> list[Violation]:
    spec = BY_NAME[spec] if isinstance(spec, str) else spec
    resources = list(resources)
    stack = next((s for r in resources if (s := stack_of_urn(r.urn))), None)
    return list(spec.check(resources, requirements_for(stack, config)))


def policy_config(stack: str) -> dict[str, dict[str, Any]]:
    """The `--policy-pack-config` document that states `stack`'s requirements explicitly (policy/config/<stack>.json)."""
    req = requirements_for(stack)
    return {p.name: req.as_config() for p in POLICIES if p.uses_requirements}


__all__ = [
    "PACK_NAME", "POLICIES", "BY_NAME", "RESOURCE_POLICIES", "STACK_POLICIES", "PolicySpec", "StackResource",
    "Violation", "Requirements", "requirements_for", "stack_of_urn", "check_resource", "check_stack",
    "policy_config", "CONFIG_SCHEMA", "UNKNOWN", "is_unknown",
]
