"""Secure defaults, in one place.

Like the AWS Solutions Constructs `*-defaults` modules: every component takes
its hardening from here, so a reviewer reads one file to know what the stack
enforces, and a deliberate override is a visible change to a named constant.
Values that differ per environment are stack settings (`settings.py`); what is
here is the same for every environment.
"""

from __future__ import annotations

from handlers import contract
from handlers.contract import (  # noqa: F401 -- the library's names for the contract's prefixes
    ARCHIVE_HIGH_RISK_PREFIX,
    ARCHIVE_LABELS_PREFIX,
    ARCHIVE_MODELS_PREFIX,
    ARCHIVE_REJECTED_LABELS_PREFIX,
    ARCHIVE_REJECTED_PREFIX,
)

# --- Lambda -----------------------------------------------------------------
LAMBDA_RUNTIME = "python3.11"
LAMBDA_ARCHITECTURE = "arm64"
#: Structured logs let CloudWatch Logs Insights and the data-protection policy parse fields.
LAMBDA_LOG_FORMAT = "JSON"
LAMBDA_APPLICATION_LOG_LEVEL = "INFO"
LAMBDA_SYSTEM_LOG_LEVEL = "WARN"

#: AWS publishes the Powertools layer in account 017000801446 under one name per
#: Python version and architecture; the version below is the one the handlers are tested with.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27


def powertools_layer_arn(region: str, architecture: str = LAMBDA_ARCHITECTURE, runtime: str = LAMBDA_RUNTIME) -> str:
    py = runtime.replace("python", "python").replace(".", "")
    arch = "arm64" if architecture == "arm64" else "x86_64"
    return (f"arn:aws:lambda:{region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{py}-{arch}:{POWERTOOLS_LAYER_VERSION}")


# --- event source mappings --------------------------------------------------
#: Start from the oldest record so nothing written before the mapping existed is skipped.
STREAM_STARTING_POSITION = "TRIM_HORIZON"
STREAM_FUNCTION_RESPONSE_TYPES = ["ReportBatchItemFailures"]
STREAM_BISECT_ON_ERROR = True
#: SQS batch: alerts are few; ten keeps one SNS burst small.
ALERT_BATCH_SIZE = 10
ALERT_BATCH_WINDOW_SECONDS = 0
#: Asynchronous invocations (S3 notifications): Lambda's own retries, then the on-failure queue.
ASYNC_MAX_RETRY_ATTEMPTS = 2
ASYNC_MAX_EVENT_AGE_SECONDS = 6 * 3600

# --- KMS --------------------------------------------------------------------
KMS_ENABLE_ROTATION = True
KMS_ROTATION_PERIOD_DAYS = 365
#: Waiting period before a scheduled key deletion completes; short where the stack is destroyable.
KMS_DELETION_WINDOW_DAYS_PROTECTED = 30
KMS_DELETION_WINDOW_DAYS_DESTROYABLE = 7
#: Services that may use the key through their own service principal (key policy).
KMS_SERVICE_PRINCIPALS = {
    "logs": "logs.{region}.amazonaws.com",
    "sns": "sns.amazonaws.com",
    "events": "events.amazonaws.com",
    "states": "states.amazonaws.com",
}
#: Services that use the key on behalf of a caller in this account (kms:ViaService).
KMS_VIA_SERVICES = ("dynamodb", "kinesis", "sqs", "s3", "sns", "ssm", "lambda", "states", "logs")

# --- DynamoDB ---------------------------------------------------------------
TABLE_STREAM_VIEW_TYPE = "NEW_IMAGE"
TABLE_TTL_ATTRIBUTE = "expires_at"
#: Feature items (card and merchant aggregates) expire once no window they feed can read them.
FEATURES_TTL_ATTRIBUTE = "expires_at"
FEATURES_HASH_KEY = "entity"
AUTOSCALING_SCALE_IN_COOLDOWN = 60
AUTOSCALING_SCALE_OUT_COOLDOWN = 60

# --- SQS --------------------------------------------------------------------
#: AWS requires the SSE key to be reused for this long at most; 5 minutes trades KMS calls against exposure.
SQS_KMS_DATA_KEY_REUSE_SECONDS = 300
SQS_RECEIVE_WAIT_SECONDS = 20

# --- S3 ---------------------------------------------------------------------
S3_OBJECT_OWNERSHIP = "BucketOwnerEnforced"
S3_ARCHIVE_STORAGE_CLASS = "GLACIER_IR"
S3_NONCURRENT_EXPIRATION_DAYS = 30
S3_ABORT_MULTIPART_DAYS = 7
# The archive's prefixes are the handler contract's (handlers/contract.py): ARCHIVE_HIGH_RISK_PREFIX,
# ARCHIVE_REJECTED_PREFIX, ARCHIVE_LABELS_PREFIX, ARCHIVE_REJECTED_LABELS_PREFIX, ARCHIVE_MODELS_PREFIX.
#: Prefixes that hold evidence and age out with the archive lifecycle. `models/` is not one of them:
#: a model the `model` parameter names must not expire under it.
ARCHIVE_EXPIRING_PREFIXES = (ARCHIVE_HIGH_RISK_PREFIX, ARCHIVE_REJECTED_PREFIX, ARCHIVE_LABELS_PREFIX)
#: The S3 events that start label ingestion.
LABEL_FILE_EVENTS = ("s3:ObjectCreated:*",)
#: The default model shipped with the handlers, relative to the handlers package directory.
DEFAULT_MODEL_FILE = "models/default.json"
#: Hex digits of the model file's SHA-256 in its object key (`models/default-<digest>.json`).
MODEL_DIGEST_LENGTH = 12

# --- API Gateway ------------------------------------------------------------
API_STAGE_NAME = "v1"
API_ENDPOINT_TYPE = "REGIONAL"
API_EXECUTION_LOG_LEVEL = "ERROR"
#: Full request/response logging would write card numbers to CloudWatch; never on.
API_DATA_TRACE = False
#: Where the WAF's common rule set blocks (staging, prod), its SizeRestrictions_BODY rule makes 8 KB the
#: effective ceiling (answered 403 by the WAF); the largest valid body is about 6 KB (tests/unit/test_api.py).
API_MAX_BODY_BYTES = contract.MAX_TRANSACTION_BYTES
API_ACCESS_LOG_FORMAT = (
    '{"requestId":"$context.requestId","ip":"$context.identity.sourceIp",'
    '"requestTime":"$context.requestTime","httpMethod":"$context.httpMethod",'
    '"resourcePath":"$context.resourcePath","status":"$context.status",'
    '"responseLength":"$context.responseLength","latencyMs":"$context.responseLatency",'
    '"apiKeyId":"$context.identity.apiKeyId","wafStatus":"$context.waf.status",'
    '"integrationError":"$context.integration.error"}'
)

# --- WAF --------------------------------------------------------------------
#: The AWS managed rule groups the web ACL runs, in evaluation order (cheapest, most certain first):
#: IP reputation (known bad sources), known bad inputs (Log4j, exploit payloads), the common rule set.
#: Each blocks unless the stack lists it in `wafCountModeRuleGroups` (count mode, to watch matches first).
WAF_MANAGED_RULE_VENDOR = "AWS"
WAF_MANAGED_RULE_GROUPS = (
    "AWSManagedRulesAmazonIpReputationList",
    "AWSManagedRulesKnownBadInputsRuleSet",
    "AWSManagedRulesCommonRuleSet",
)
#: The header API Gateway reads the API key from: the WAF's per-client rate limit is keyed on it,
#: and it is redacted from WAF logs (a logged key is a usable key).
API_KEY_HEADER = "x-api-key"
#: WAF delivers logs to CloudWatch Logs only into groups whose name starts with this.
WAF_LOG_GROUP_PREFIX = "aws-waf-logs-"

# --- audit trail and replication ---------------------------------------------
#: The archive's access trail records object-level reads and writes (data events), not management events:
#: an account or organisation trail already records those, and a second copy would be billed twice.
TRAIL_INCLUDE_MANAGEMENT_EVENTS = False
TRAIL_LOG_FILE_VALIDATION = True
#: Replicas are evidence kept for a regional disaster: read rarely, kept long.
ARCHIVE_REPLICA_STORAGE_CLASS = "STANDARD_IA"

# --- code signing -------------------------------------------------------------
SIGNER_PLATFORM_ID = "AWSLambda-SHA384-ECDSA"
#: How long a signature stays valid; re-signing happens at every code change anyway.
SIGNATURE_VALIDITY_MONTHS = 135
#: A function whose code is not signed by the profile fails to deploy (not just a warning).
CODE_SIGNING_UNTRUSTED_ARTIFACT_ACTION = "Enforce"

# --- Step Functions ---------------------------------------------------------
WORKFLOW_TASK_RETRY = {
    # LabelNotRecorded: the review's label write met a transient failure (the task is safe to run again).
    "ErrorEquals": ["Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException",
                    "Lambda.TooManyRequestsException", "States.Timeout", "LabelNotRecorded"],
    "IntervalSeconds": 2,
    "MaxAttempts": 3,
    "BackoffRate": 2.0,
    "JitterStrategy": "FULL",
}
WORKFLOW_TASK_TIMEOUT_SECONDS = 60
WORKFLOW_LOG_LEVEL = "ERROR"
#: How long Step Functions may reuse a data key of the CMK (AWS allows 60-900 s).
WORKFLOW_KMS_DATA_KEY_REUSE_SECONDS = 300
WORKFLOW_INCLUDE_EXECUTION_DATA = False

# --- EventBridge ------------------------------------------------------------
#: The bus's sources and detail types are the handler contract's (handlers/contract.py).
EVENT_SOURCE = contract.DECISION_EVENT_SOURCE
EVENT_DETAIL_TYPE = contract.DECISION_EVENT_DETAIL_TYPE
LABEL_EVENT_SOURCE = contract.LABEL_EVENT_SOURCE
LABEL_EVENT_DETAIL_TYPE = contract.LABEL_EVENT_DETAIL_TYPE
EVENT_TARGET_MAX_RETRIES = 10
EVENT_TARGET_MAX_AGE_SECONDS = 3600

# --- monitoring -------------------------------------------------------------
ALARM_PERIOD_SECONDS = 300
ALARM_EVALUATION_PERIODS = 1
ALARM_MISSING_DATA = "notBreaching"

# --- IAM --------------------------------------------------------------------
#: Actions AWS authorises only on `Resource: "*"` (no resource-level permissions),
#: each with the reason it is granted. Every other statement names specific ARNs.
STAR_ONLY_ACTIONS: dict[str, str] = {
    "xray:PutTraceSegments": "X-Ray writes have no resource type; granted only where tracing is on.",
    "xray:PutTelemetryRecords": "X-Ray writes have no resource type; granted only where tracing is on.",
    "ec2:CreateNetworkInterface": "Lambda creates its VPC ENIs with the execution role; granted only to functions in the VPC.",
    "ec2:DescribeNetworkInterfaces": "Describe calls have no resource-level permissions; functions in the VPC only.",
    "ec2:DeleteNetworkInterface": "Lambda removes its VPC ENIs with the execution role; functions in the VPC only.",
    "ec2:AssignPrivateIpAddresses": "Part of Lambda's VPC ENI management; functions in the VPC only.",
    "ec2:UnassignPrivateIpAddresses": "Part of Lambda's VPC ENI management; functions in the VPC only.",
    "kinesis:ListStreams": "Listing streams has no resource-level permissions; the Kinesis event source mapping calls it.",
    "dynamodb:ListStreams": "Listing streams has no resource-level permissions; the DynamoDB stream mapping calls it.",
    "cloudwatch:PutMetricData": "Metrics have no resource type. Granted to no function today: Powertools Metrics writes EMF through the log group.",
    "logs:CreateLogDelivery": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:GetLogDelivery": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:UpdateLogDelivery": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:DeleteLogDelivery": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:ListLogDeliveries": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:PutResourcePolicy": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:DescribeResourcePolicies": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "logs:DescribeLogGroups": "Vended log delivery (Step Functions logging) has no resource-level permissions.",
    "xray:GetSamplingRules": "X-Ray sampling rules have no resource type; state machine tracing only.",
    "xray:GetSamplingTargets": "X-Ray sampling targets have no resource type; state machine tracing only.",
}

#: Tags every resource carries (plus `environment`).
BASE_TAGS = {"project": "fraud-pipeline", "managed-by": "pulumi", "data-classification": "pci-tokenised"}
