"""Resource policies: one resource's type and props in, violation messages out.

Every function has the signature `(resource_type, props, name="", req=STRICTEST) -> list[str]`
and returns [] for resource types it does not govern. Props are the resource's
inputs exactly as CrossGuard sees them (`args.props`: camelCase, numbers as
floats, JSON documents as strings). A value that is unknown during preview is
skipped (see `values`). Each message names the resource and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import star_only
from .requirements import STRICTEST, Requirements
from .values import as_list, fmt, get, is_unknown, label, num, parse_json

ResourcePolicyFn = Callable[..., list]

TABLE = "aws:dynamodb/table:Table"
QUEUE = "aws:sqs/queue:Queue"
TOPIC = "aws:sns/topic:Topic"
STREAM = "aws:kinesis/stream:Stream"
BUCKET = "aws:s3/bucket:Bucket"
BUCKET_V2 = "aws:s3/bucketV2:BucketV2"
BUCKET_TYPES = (BUCKET, BUCKET_V2)
SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
SSE_V2 = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
PAB = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
OWNERSHIP = "aws:s3/bucketOwnershipControls:BucketOwnershipControls"
LIFECYCLE = "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"
LIFECYCLE_V2 = "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
BUCKET_OBJECT = "aws:s3/bucketObjectv2:BucketObjectv2"
BUCKET_OBJECT_V1 = "aws:s3/bucketObject:BucketObject"
BUCKET_OBJECT_TYPES = (BUCKET_OBJECT, BUCKET_OBJECT_V1)
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
LOG_PROTECTION = "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy"
STATE_MACHINE = "aws:sfn/stateMachine:StateMachine"
FUNCTION = "aws:lambda/function:Function"
PERMISSION = "aws:lambda/permission:Permission"
FUNCTION_URL = "aws:lambda/functionUrl:FunctionUrl"
ESM = "aws:lambda/eventSourceMapping:EventSourceMapping"
EVENT_BUS = "aws:cloudwatch/eventBus:EventBus"
PARAMETER = "aws:ssm/parameter:Parameter"
KMS_KEY = "aws:kms/key:Key"
KMS_ALIAS = "aws:kms/alias:Alias"
METHOD = "aws:apigateway/method:Method"
STAGE = "aws:apigateway/stage:Stage"
METHOD_SETTINGS = "aws:apigateway/methodSettings:MethodSettings"
REST_API = "aws:apigateway/restApi:RestApi"
WAF_ASSOCIATION = "aws:wafv2/webAclAssociation:WebAclAssociation"
ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy"
IAM_POLICY = "aws:iam/policy:Policy"
ROLE = "aws:iam/role:Role"

CARD_NUMBER_IDENTIFIER = "arn:aws:dataprotection::aws:data-identifier/CreditCardNumber"


def _key_problem(value: Any, service: str) -> str | None:
    """None if `value` names a customer-managed key (or cannot be known yet), else what is wrong."""
    if is_unknown(value):
        return None
    if not isinstance(value, str) or not value.strip():
        return "no KMS key set (AWS-owned or AWS-managed encryption only)"
    if "alias/aws/" in value:
        return f"uses the AWS-managed key {value}, not the customer-managed key"
    return None


def _fix_key(prop: str) -> str:
    return f"set {prop} to the pipeline's customer-managed KMS key ARN (KmsKeys.key.arn)"


# --- encryption at rest ---------------------------------------------------------

def encryption_at_rest_cmk(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    """Everything that rests is encrypted with the customer-managed key."""
    who = label(resource_type, name, props)
    out: list[str] = []

    def key(prop_path: tuple, prop_name: str, service: str) -> None:
        problem = _key_problem(get(props, *prop_path), service)
        if problem:
            out.append(f"{who}: {problem}. Fix: {_fix_key(prop_name)}.")

    if resource_type == TABLE:
        enabled = get(props, "serverSideEncryption", "enabled")
        if not is_unknown(enabled) and enabled is not True:
            out.append(f"{who}: server-side encryption with a customer-managed key is off. "
                       "Fix: set serverSideEncryption = {enabled: true, kmsKeyArn: <pipeline key ARN>}.")
        else:
            key(("serverSideEncryption", "kmsKeyArn"), "serverSideEncryption.kmsKeyArn", "dynamodb")
    elif resource_type == QUEUE:
        if get(props, "sqsManagedSseEnabled") is True:
            out.append(f"{who}: uses SQS-managed SSE, not the customer-managed key. "
                       f"Fix: drop sqsManagedSseEnabled and {_fix_key('kmsMasterKeyId')}.")
        else:
            key(("kmsMasterKeyId",), "kmsMasterKeyId", "sqs")
    elif resource_type == TOPIC:
        key(("kmsMasterKeyId",), "kmsMasterKeyId", "sns")
    elif resource_type == STREAM:
        enc = get(props, "encryptionType")
        if not is_unknown(enc) and enc != "KMS":
            out.append(f"{who}: encryptionType is {enc!r}, records rest unencrypted. "
                       "Fix: set encryptionType = \"KMS\" and kmsKeyId to the pipeline's customer-managed key ARN.")
        else:
            key(("kmsKeyId",), "kmsKeyId", "kinesis")
    elif resource_type in (SSE, SSE_V2):
        rules = get(props, "rules")
        if is_unknown(rules):
            return out
        if not as_list(rules):
            out.append(f"{who}: no encryption rule. Fix: add a rule with sseAlgorithm \"aws:kms\", "
                       "kmsMasterKeyId = the pipeline key ARN and bucketKeyEnabled = true.")
        for i, rule in enumerate(as_list(rules)):
            algo = get(rule, "applyServerSideEncryptionByDefault", "sseAlgorithm")
            if not is_unknown(algo) and algo not in ("aws:kms", "aws:kms:dsse"):
                out.append(f"{who}: rules[{i}] uses sseAlgorithm {algo!r} (not SSE-KMS). "
                           "Fix: set applyServerSideEncryptionByDefault.sseAlgorithm = \"aws:kms\".")
            problem = _key_problem(get(rule, "applyServerSideEncryptionByDefault", "kmsMasterKeyId"), "s3")
            if problem:
                out.append(f"{who}: rules[{i}] {problem}. "
                           f"Fix: {_fix_key('applyServerSideEncryptionByDefault.kmsMasterKeyId')}.")
            bucket_key = get(rule, "bucketKeyEnabled")
            if not is_unknown(bucket_key) and bucket_key is not True:
                out.append(f"{who}: rules[{i}] has no S3 Bucket Key (one KMS call per object). "
                           "Fix: set bucketKeyEnabled = true.")
    elif resource_type in BUCKET_OBJECT_TYPES:
        # An object the program uploads (a model) names its encryption itself, not only through the bucket default.
        algo = get(props, "serverSideEncryption")
        if not is_unknown(algo) and algo not in ("aws:kms", "aws:kms:dsse"):
            out.append(f"{who}: serverSideEncryption is {algo!r} (not SSE-KMS with the customer-managed key). "
                       "Fix: set serverSideEncryption = \"aws:kms\" and kmsKeyId to the pipeline's customer-managed key ARN.")
        else:
            key(("kmsKeyId",), "kmsKeyId", "s3")
    elif resource_type == LOG_GROUP:
        key(("kmsKeyId",), "kmsKeyId", "logs")
    elif resource_type == STATE_MACHINE:
        kind = get(props, "encryptionConfiguration", "type")
        if not is_unknown(kind) and kind != "CUSTOMER_MANAGED_KMS_KEY":
            out.append(f"{who}: encryptionConfiguration.type is {kind!r}, not the customer-managed key. "
                       "Fix: set encryptionConfiguration = {type: \"CUSTOMER_MANAGED_KMS_KEY\", kmsKeyId: <pipeline key ARN>}.")
        else:
            key(("encryptionConfiguration", "kmsKeyId"), "encryptionConfiguration.kmsKeyId", "states")
    elif resource_type == FUNCTION:
        variables = get(props, "environment", "variables")
        if is_unknown(variables) or variables:
            key(("kmsKeyArn",), "kmsKeyArn", "lambda")
    elif resource_type == EVENT_BUS:
        key(("kmsKeyIdentifier",), "kmsKeyIdentifier", "events")
    elif resource_type == PARAMETER:
        kind = get(props, "type")
        if not is_unknown(kind) and kind != "SecureString":
            out.append(f"{who}: type is {kind!r}, stored unencrypted. "
                       "Fix: set type = \"SecureString\" and keyId to the pipeline's customer-managed key ARN.")
        else:
            key(("keyId",), "keyId", "ssm")
    return out


# --- KMS, PITR, deletion protection -------------------------------------------

def kms_key_rotation(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != KMS_KEY:
        return []
    rotation = get(props, "enableKeyRotation")
    if is_unknown(rotation) or rotation is True:
        return []
    return [f"{label(resource_type, name, props)}: automatic key rotation is off. Fix: set enableKeyRotation = true "
            "(fraud_pipeline/defaults.py KMS_ENABLE_ROTATION)."]


def dynamodb_point_in_time_recovery(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != TABLE or not req.pitr:
        return []
    enabled = get(props, "pointInTimeRecovery", "enabled")
    if is_unknown(enabled) or enabled is True:
        return []
    return [f"{label(resource_type, name, props)}: point-in-time recovery is off but the {req.environment} stack requires it. "
            "Fix: set pointInTimeRecovery = {enabled: true} (stack setting pointInTimeRecovery: true)."]


def deletion_protection(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if not req.deletion_protection:
        return []
    who = label(resource_type, name, props)
    if resource_type == TABLE:
        enabled = get(props, "deletionProtectionEnabled")
        if not is_unknown(enabled) and enabled is not True:
            return [f"{who}: deletion protection is off but the {req.environment} stack requires it. "
                    "Fix: set deletionProtectionEnabled = true (stack setting deletionProtection: true)."]
    if resource_type in BUCKET_TYPES:
        force = get(props, "forceDestroy")
        if force is True:
            return [f"{who}: forceDestroy = true lets `pulumi destroy` delete every archived object, but the "
                    f"{req.environment} stack requires deletion protection. Fix: set forceDestroy = false "
                    "(stack setting deletionProtection: true)."]
    return []


# --- S3 -------------------------------------------------------------------------

PUBLIC_ACCESS_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")


def s3_public_access_block(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != PAB:
        return []
    off = [f for f in PUBLIC_ACCESS_FLAGS if not is_unknown(get(props, f)) and get(props, f) is not True]
    if not off:
        return []
    return [f"{label(resource_type, name, props)}: {', '.join(off)} not true for bucket {get(props, 'bucket')!r}. "
            f"Fix: set all four of {', '.join(PUBLIC_ACCESS_FLAGS)} = true."]


def _statements(document: Any) -> list[dict]:
    return [st for st in as_list(get(document, "Statement")) if isinstance(st, dict)]


def denies_insecure_transport(document: Any) -> bool:
    """A Deny for every principal when aws:SecureTransport is false."""
    for st in _statements(document):
        if st.get("Effect") != "Deny":
            continue
        principal = st.get("Principal")
        if principal not in ("*", {"AWS": "*"}, {"AWS": ["*"]}):
            continue
        cond = get(st, "Condition", "Bool", "aws:SecureTransport")
        if cond is None:
            continue
        if str(cond[0] if isinstance(cond, list) and cond else cond).lower() == "false":
            return True
    return False


def s3_tls_only_policy(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != BUCKET_POLICY:
        return []
    doc = parse_json(get(props, "policy"))
    if is_unknown(doc):
        return []
    if doc is None or not denies_insecure_transport(doc):
        return [f"{label(resource_type, name, props)}: bucket policy of {get(props, 'bucket')!r} does not deny requests "
                "without TLS. Fix: add a statement {Effect: Deny, Principal: \"*\", Action: \"s3:*\", Resource: "
                "[bucket ARN, bucket ARN/*], Condition: {Bool: {\"aws:SecureTransport\": \"false\"}}}."]
    return []


def s3_object_ownership_enforced(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != OWNERSHIP:
        return []
    value = get(props, "rule", "objectOwnership")
    if is_unknown(value) or value == "BucketOwnerEnforced":
        return []
    return [f"{label(resource_type, name, props)}: objectOwnership is {value!r}, so ACLs still apply. "
            "Fix: set rule.objectOwnership = \"BucketOwnerEnforced\" (ACLs disabled)."]


def s3_lifecycle(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type not in (LIFECYCLE, LIFECYCLE_V2):
        return []
    rules = get(props, "rules")
    if is_unknown(rules):
        return []
    active = [r for r in as_list(rules) if isinstance(r, dict) and r.get("status") == "Enabled"
              and (r.get("expiration") or r.get("transitions") or r.get("noncurrentVersionExpiration"))]
    if active:
        return []
    return [f"{label(resource_type, name, props)}: no enabled lifecycle rule that transitions or expires objects in "
            f"bucket {get(props, 'bucket')!r}. Fix: add a rule with status \"Enabled\", transitions and expiration "
            "(stack settings archiveTransitionDays / archiveExpirationDays)."]


# --- Lambda ---------------------------------------------------------------------

def lambda_supported_runtime(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != FUNCTION or get(props, "packageType") == "Image":
        return []
    allowed = req.allowed_runtimes
    runtime = get(props, "runtime")
    if is_unknown(runtime) or runtime in allowed:
        return []
    return [f"{label(resource_type, name, props)}: runtime {runtime!r} is not a supported runtime "
            f"({', '.join(allowed)}). Fix: set runtime to one of them (fraud_pipeline/defaults.py LAMBDA_RUNTIME)."]


def lambda_tracing(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != FUNCTION or not req.tracing:
        return []
    mode = get(props, "tracingConfig", "mode")
    if is_unknown(mode) or mode == "Active":
        return []
    return [f"{label(resource_type, name, props)}: X-Ray tracing mode is {mode!r} but the {req.environment} stack "
            "requires active tracing. Fix: set tracingConfig = {mode: \"Active\"} (stack setting tracingEnabled: true)."]


def lambda_reserved_concurrency(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != FUNCTION:
        return []
    value = get(props, "reservedConcurrentExecutions")
    if is_unknown(value):
        return []
    n = num(value)
    if n is not None and n >= 1:
        return []
    what = "not set (unreserved: can starve or be starved by other functions)" if n is None or n < 0 else \
        "0 (the function is throttled completely)"
    return [f"{label(resource_type, name, props)}: reservedConcurrentExecutions is {what}. "
            "Fix: set reservedConcurrentExecutions >= 1 (stack settings *ReservedConcurrency)."]


def _principal_is_service(principal: Any) -> bool:
    return isinstance(principal, str) and principal.endswith(".amazonaws.com")


def lambda_permission_scoped(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    """Invoke permissions name one caller: a service principal with a source ARN, never everyone."""
    if resource_type != PERMISSION:
        return []
    who = label(resource_type, name, props)
    principal = get(props, "principal")
    source = get(props, "sourceArn")
    if is_unknown(principal):
        return []
    if principal == "*" or principal in ({"AWS": "*"},):
        return [f"{who}: grants {get(props, 'action')} to principal '*' (anyone). "
                "Fix: name the calling service principal (e.g. apigateway.amazonaws.com) and set sourceArn."]
    if _principal_is_service(principal):
        if is_unknown(source):
            return []
        if not isinstance(source, str) or not source:
            return [f"{who}: {principal} may invoke the function from any resource in any account (no sourceArn). "
                    "Fix: set sourceArn to the calling resource, e.g. <api executionArn>/*/POST/transactions."]
        parts = source.split(":", 5)
        s3 = len(parts) == 6 and parts[2] == "s3"
        if source == "*" or len(parts) < 6 or parts[5] in ("*", "") or (parts[4] in ("*", "") and not s3):
            return [f"{who}: sourceArn {source!r} matches every {principal.split('.')[0]} resource. "
                    "Fix: scope sourceArn to the one calling resource (API execution ARN, rule ARN, ...)."]
        if s3:
            # Bucket ARNs name no account, and a deleted bucket's name can be registered by anyone.
            account = get(props, "sourceAccount")
            if not is_unknown(account) and not account:
                return [f"{who}: sourceArn {source!r} is a bucket ARN, which names no account, and sourceAccount is "
                        "unset: a bucket of that name in another account could invoke the function. "
                        "Fix: set sourceAccount to this account's id."]
    return []


def lambda_no_public_url(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    who = label(resource_type, name, props)
    if resource_type == FUNCTION_URL:
        auth = get(props, "authorizationType")
        if not is_unknown(auth) and auth != "AWS_IAM":
            return [f"{who}: function URL with authorizationType {auth!r} is public. "
                    "Fix: remove the function URL (the API Gateway front is the only entry) or set authorizationType = \"AWS_IAM\"."]
    if resource_type == PERMISSION:
        if get(props, "action") == "lambda:InvokeFunctionUrl" or get(props, "functionUrlAuthType") == "NONE":
            if get(props, "functionUrlAuthType") != "AWS_IAM":
                return [f"{who}: allows invoking a function URL without IAM auth. "
                        "Fix: remove the permission, or set functionUrlAuthType = \"AWS_IAM\"."]
    return []


# --- API Gateway ------------------------------------------------------------------

def apigateway_api_key_required(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != METHOD:
        return []
    required = get(props, "apiKeyRequired")
    if is_unknown(required) or required is True:
        return []
    return [f"{label(resource_type, name, props)}: {get(props, 'httpMethod')} method does not require an API key. "
            "Fix: set apiKeyRequired = true (clients call with x-api-key; usage plan applies)."]


def apigateway_access_logging(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != STAGE:
        return []
    settings = get(props, "accessLogSettings")
    if is_unknown(settings):
        return []
    dest, fmt_ = get(settings, "destinationArn"), get(settings, "format")
    if (is_unknown(dest) or dest) and (is_unknown(fmt_) or fmt_):
        return []
    return [f"{label(resource_type, name, props)}: no access logging. Fix: set accessLogSettings = "
            "{destinationArn: <API access log group ARN>, format: defaults.API_ACCESS_LOG_FORMAT}."]


def apigateway_execution_logging(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != METHOD_SETTINGS:
        return []
    level = get(props, "settings", "loggingLevel")
    if is_unknown(level) or level in ("ERROR", "INFO"):
        return []
    return [f"{label(resource_type, name, props)}: execution logging level is {level!r} for stage "
            f"{get(props, 'stageName')!r} ({get(props, 'methodPath')}). Fix: set settings.loggingLevel = \"ERROR\" "
            "(or \"INFO\")."]


def apigateway_xray_tracing(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != STAGE or not req.tracing:
        return []
    enabled = get(props, "xrayTracingEnabled")
    if is_unknown(enabled) or enabled is True:
        return []
    return [f"{label(resource_type, name, props)}: X-Ray tracing is off but the {req.environment} stack requires it. "
            "Fix: set xrayTracingEnabled = true (stack setting tracingEnabled: true)."]


def apigateway_no_data_trace(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != METHOD_SETTINGS or not req.forbid_data_trace:
        return []
    if get(props, "settings", "dataTraceEnabled") is not True:
        return []
    return [f"{label(resource_type, name, props)}: full request/response data tracing is on in {req.environment}; "
            "it would write card numbers to CloudWatch. Fix: set settings.dataTraceEnabled = false "
            "(fraud_pipeline/defaults.py API_DATA_TRACE)."]


# --- Step Functions ---------------------------------------------------------------

def stepfunctions_logging_and_tracing(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != STATE_MACHINE:
        return []
    who = label(resource_type, name, props)
    out = []
    level, dest = get(props, "loggingConfiguration", "level"), get(props, "loggingConfiguration", "logDestination")
    if not is_unknown(level) and (level in (None, "OFF") or (not dest and not is_unknown(dest))):
        out.append(f"{who}: execution logging is off (level {level!r}). Fix: set loggingConfiguration = "
                   "{level: \"ERROR\", includeExecutionData: false, logDestination: <log group ARN>:*}.")
    if req.tracing:
        enabled = get(props, "tracingConfiguration", "enabled")
        if not is_unknown(enabled) and enabled is not True:
            out.append(f"{who}: X-Ray tracing is off but the {req.environment} stack requires it. "
                       "Fix: set tracingConfiguration = {enabled: true} (stack setting tracingEnabled: true).")
    return out


# --- event source mappings ------------------------------------------------------

def source_kind(props: dict) -> str | None:
    """"stream" (Kinesis / DynamoDB Streams), "queue" (SQS), or None if it cannot be told yet."""
    arn = get(props, "eventSourceArn")
    if isinstance(arn, str) and not is_unknown(arn):
        if arn.startswith("arn:aws:kinesis:") or ":kinesis:" in arn or "/stream/" in arn:
            return "stream"
        if ":sqs:" in arn:
            return "queue"
        if ":kafka:" in arn or ":mq:" in arn:
            return "other"
    if get(props, "startingPosition") is not None:
        return "stream"  # required for streams, rejected for SQS
    return None


def event_source_mapping_failure_handling(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != ESM:
        return []
    who = label(resource_type, name, props)
    out = []
    types = get(props, "functionResponseTypes")
    if not is_unknown(types) and "ReportBatchItemFailures" not in as_list(types):
        out.append(f"{who}: a single bad record fails (and retries) the whole batch. "
                   "Fix: set functionResponseTypes = [\"ReportBatchItemFailures\"] and return batchItemFailures.")
    if source_kind(props) != "stream":
        return out  # SQS sources: retries and the DLQ belong to the queue's redrive policy (stack policies).
    bisect = get(props, "bisectBatchOnFunctionError")
    if not is_unknown(bisect) and bisect is not True:
        out.append(f"{who}: a failing stream batch is not split. Fix: set bisectBatchOnFunctionError = true.")
    retries = get(props, "maximumRetryAttempts")
    if not is_unknown(retries):
        n = num(retries)
        if n is None or n < 0 or n > 10000:
            out.append(f"{who}: maximumRetryAttempts is {fmt(retries) if retries is not None else 'unset'} "
                       "(unset or -1 retries a poison record until it expires, blocking the shard). "
                       "Fix: set maximumRetryAttempts to 0-10000 (stack setting streamMaxRetryAttempts).")
    age = get(props, "maximumRecordAgeInSeconds")
    if not is_unknown(age):
        n = num(age)
        if n is None or n < 60 or n > 604800:
            out.append(f"{who}: maximumRecordAgeInSeconds is {fmt(age) if age is not None else 'unset'} "
                       "(unset or -1 = records never age out). Fix: set maximumRecordAgeInSeconds to 60-604800 "
                       "(stack setting streamMaxRecordAgeSeconds).")
    dest = get(props, "destinationConfig", "onFailure", "destinationArn")
    if not is_unknown(dest) and not dest:
        out.append(f"{who}: batches that exhaust their retries are dropped. Fix: set destinationConfig = "
                   "{onFailure: {destinationArn: <on-failure SQS queue ARN>}}.")
    return out


# --- Kinesis --------------------------------------------------------------------

def kinesis_retention(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != STREAM:
        return []
    value = get(props, "retentionPeriod")
    if is_unknown(value):
        return []
    hours = num(value) if value is not None else 24.0  # AWS default
    if hours is None or hours >= req.min_kinesis_retention_hours:   # None: not a number (as visibility-timeout)
        return []
    return [f"{label(resource_type, name, props)}: retention is {fmt(hours)} h but the {req.environment} stack requires "
            f">= {req.min_kinesis_retention_hours} h. Fix: set retentionPeriod >= {req.min_kinesis_retention_hours} "
            "(stack setting kinesisRetentionHours)."]


# --- IAM ------------------------------------------------------------------------

def policy_document_violations(document: Any) -> list[str]:
    """Allow statements with `*` / `service:*` actions, NotAction, or `Resource: "*"` beyond the star-only allowlist."""
    problems = []
    for i, st in enumerate(_statements(document)):
        if st.get("Effect") != "Allow":
            continue
        sid = st.get("Sid") or f"Statement[{i}]"
        if "NotAction" in st:
            problems.append(f"{sid}: Allow with NotAction grants everything not listed")
        actions = [a for a in as_list(st.get("Action")) if isinstance(a, str)]
        for action in actions:
            if action == "*" or action.endswith(":*"):
                problems.append(f"{sid}: action {action!r} grants a whole service")
        resources = as_list(st.get("Resource"))
        if "*" in resources or "NotResource" in st:
            wide = [a for a in actions if a not in star_only.STAR_ONLY_ACTIONS]
            if wide:
                problems.append(f"{sid}: {', '.join(sorted(wide))} on Resource '*' (not in the star-only allowlist)")
    return problems


def iam_least_privilege(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    documents = []
    if resource_type in (ROLE_POLICY, IAM_POLICY):
        documents.append(get(props, "policy"))
    elif resource_type == ROLE:
        documents += [get(p, "policy") for p in as_list(get(props, "inlinePolicies"))]
    else:
        return []
    out = []
    who = label(resource_type, name, props)
    for raw in documents:
        doc = parse_json(raw)
        if is_unknown(doc) or doc is None:
            continue
        for problem in policy_document_violations(doc):
            out.append(f"{who}: {problem}. Fix: name the specific actions and resource ARNs; only actions AWS grants "
                       "solely on '*' (fraud_pipeline/defaults.py STAR_ONLY_ACTIONS) may use Resource '*'.")
    return out


# --- CloudWatch Logs --------------------------------------------------------------

def log_group_retention(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != LOG_GROUP:
        return []
    value = get(props, "retentionInDays")
    if is_unknown(value):
        return []
    n = num(value)
    if n is not None and n > 0:
        return []
    return [f"{label(resource_type, name, props)}: no retention (logs are kept forever). "
            "Fix: set retentionInDays (stack setting logRetentionDays)."]


def masks_card_numbers(document: Any) -> bool:
    for st in _statements(document):
        if CARD_NUMBER_IDENTIFIER in as_list(st.get("DataIdentifier")) and get(st, "Operation", "Deidentify", "MaskConfig") is not None:
            return True
    return False


def log_data_protection_masks_card_numbers(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    if resource_type != LOG_PROTECTION:
        return []
    doc = parse_json(get(props, "policyDocument"))
    if is_unknown(doc) or (doc is not None and masks_card_numbers(doc)):
        return []
    return [f"{label(resource_type, name, props)}: the data-protection policy of {get(props, 'logGroupName')!r} does not "
            "mask card numbers. Fix: add a statement with DataIdentifier [\"" + CARD_NUMBER_IDENTIFIER + "\"] and "
            "Operation {Deidentify: {MaskConfig: {}}} (fraud_pipeline/functions.py log_data_protection_policy)."]


def transaction_retention(resource_type: str, props: dict, name: str = "", req: Requirements = STRICTEST) -> list[str]:
    """A function that carries TRANSACTION_RETENTION_DAYS writes transactions with that TTL: it must meet the floor."""
    if resource_type != "aws:lambda/function:Function":
        return []
    variables = get(props, "environment", "variables")
    if is_unknown(variables) or not isinstance(variables, dict) or "TRANSACTION_RETENTION_DAYS" not in variables:
        return []
    raw = variables["TRANSACTION_RETENTION_DAYS"]
    if is_unknown(raw):
        return []
    days = num(raw)
    floor = req.min_transaction_retention_days
    if days is None or days < 0 or not float(days).is_integer():
        return [f"{label(resource_type, name, props)} has TRANSACTION_RETENTION_DAYS = {fmt(raw)}, not a whole number "
                f"of days. Fix: set transactionRetentionDays."]
    if days != 0 and days < floor:
        return [f"{label(resource_type, name, props)} keeps transactions {int(days)} days; {req.environment} requires at "
                f"least {floor} (0 = never expire). Fix: raise transactionRetentionDays."]
    return []
