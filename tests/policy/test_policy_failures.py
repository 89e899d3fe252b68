"""Each policy catches the misconfiguration it exists for.

Every case takes a real resource of the evaluated stack, breaks one setting in a
copy (or removes a companion from the stack), runs the policy and expects a
violation whose message names the resource and the fix.
"""

from __future__ import annotations

import json
from pathlib import Path

import fraud_policies as fp
import pytest
from policy_helpers import broken_copy, find, stack_resources, stack_with

T = {
    "table": "aws:dynamodb/table:Table", "queue": "aws:sqs/queue:Queue", "topic": "aws:sns/topic:Topic",
    "stream": "aws:kinesis/stream:Stream", "bucket": "aws:s3/bucket:Bucket",
    "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "pab": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "own": "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "life": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "bpol": "aws:s3/bucketPolicy:BucketPolicy", "log": "aws:cloudwatch/logGroup:LogGroup",
    "dpp": "aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy", "sm": "aws:sfn/stateMachine:StateMachine",
    "fn": "aws:lambda/function:Function", "perm": "aws:lambda/permission:Permission",
    "esm": "aws:lambda/eventSourceMapping:EventSourceMapping", "key": "aws:kms/key:Key",
    "method": "aws:apigateway/method:Method", "stage": "aws:apigateway/stage:Stage",
    "ms": "aws:apigateway/methodSettings:MethodSettings", "waf": "aws:wafv2/webAclAssociation:WebAclAssociation",
    "rp": "aws:iam/rolePolicy:RolePolicy", "bus": "aws:cloudwatch/eventBus:EventBus", "param": "aws:ssm/parameter:Parameter",
    "obj": "aws:s3/bucketObjectv2:BucketObjectv2", "sub": "aws:sns/topicSubscription:TopicSubscription",
    "alarm": "aws:cloudwatch/metricAlarm:MetricAlarm",
}
OTHER_KEY = "arn:aws:kms:us-east-1:999999999999:key/00000000-0000-0000-0000-000000000000"


def setter(*path, value=None, delete=False):
    def breaker(props):
        cur = props
        for step in path[:-1]:
            cur = cur[step]
        if delete:
            cur.pop(path[-1], None)
        else:
            cur[path[-1]] = value
    return breaker


def edit_json(prop, fn):
    def breaker(props):
        doc = json.loads(props[prop])
        fn(doc)
        props[prop] = json.dumps(doc)
    return breaker


# (policy, stack, resource type, name contains, breaker, expected fragments of the message)
RESOURCE_CASES = [
    ("transaction-retention", "prod", "fn", "fraud-api-function",
     setter("environment", "variables", "TRANSACTION_RETENTION_DAYS", value="90"),
     ["keeps transactions 90 days", "at least 540", "transactionRetentionDays"]),
    ("transaction-retention", "prod", "fn", "fraud-ingest-function",
     setter("environment", "variables", "TRANSACTION_RETENTION_DAYS", value="ninety"),
     ["not a whole number"]),
    ("encryption-at-rest-cmk", "prod", "table", "fraud-transactions", setter("serverSideEncryption", "enabled", value=False), ["server-side encryption", "Fix:"]),
    ("encryption-at-rest-cmk", "prod", "queue", "fraud-alerts-queue-queue", setter("kmsMasterKeyId", delete=True), ["no KMS key set", "kmsMasterKeyId"]),
    ("encryption-at-rest-cmk", "prod", "queue", "fraud-alerts-queue-dlq", setter("kmsMasterKeyId", value="alias/aws/sqs"), ["AWS-managed key alias/aws/sqs"]),
    ("encryption-at-rest-cmk", "prod", "topic", "fraud-topics-alerts", setter("kmsMasterKeyId", delete=True), ["no KMS key set"]),
    ("encryption-at-rest-cmk", "prod", "stream", "", setter("encryptionType", value="NONE"), ["encryptionType is 'NONE'", "KMS"]),
    ("encryption-at-rest-cmk", "prod", "sse", "fraud-archive-encryption", lambda p: p["rules"][0]["applyServerSideEncryptionByDefault"].update(sseAlgorithm="AES256"), ["'AES256'", "aws:kms"]),
    ("encryption-at-rest-cmk", "prod", "sse", "fraud-archive-encryption", lambda p: p["rules"][0].update(bucketKeyEnabled=False), ["Bucket Key", "bucketKeyEnabled = true"]),
    ("encryption-at-rest-cmk", "prod", "log", "fraud-api-access-logs", setter("kmsKeyId", delete=True), ["no KMS key set", "kmsKeyId"]),
    ("encryption-at-rest-cmk", "prod", "sm", "", setter("encryptionConfiguration", "type", value="AWS_OWNED_KEY"), ["CUSTOMER_MANAGED_KMS_KEY"]),
    ("encryption-at-rest-cmk", "prod", "fn", "fraud-detection", setter("kmsKeyArn", delete=True), ["no KMS key set", "kmsKeyArn"]),
    ("encryption-at-rest-cmk", "prod", "bus", "", setter("kmsKeyIdentifier", delete=True), ["kmsKeyIdentifier"]),
    ("encryption-at-rest-cmk", "prod", "param", "card-token-key", setter("type", value="String"), ["'String'", "SecureString"]),
    ("kms-key-rotation", "prod", "key", "fraud-kms-key", setter("enableKeyRotation", value=False), ["rotation is off", "enableKeyRotation = true"]),
    ("dynamodb-point-in-time-recovery", "prod", "table", "fraud-features", setter("pointInTimeRecovery", "enabled", value=False), ["point-in-time recovery is off", "prod", "pointInTimeRecovery"]),
    ("deletion-protection", "staging", "table", "fraud-transactions", setter("deletionProtectionEnabled", value=False), ["deletion protection is off", "staging"]),
    ("deletion-protection", "prod", "table", "fraud-features", setter("deletionProtectionEnabled", value=False), ["deletion protection is off", "prod"]),
    ("deletion-protection", "prod", "bucket", "fraud-archive-bucket", setter("forceDestroy", value=True), ["forceDestroy = true", "forceDestroy = false"]),
    ("s3-public-access-block", "prod", "pab", "fraud-archive-public-access-block", setter("blockPublicPolicy", value=False), ["blockPublicPolicy", "all four"]),
    ("s3-tls-only-policy", "prod", "bpol", "fraud-archive-policy", edit_json("policy", lambda d: d.update(Statement=[s for s in d["Statement"] if s["Sid"] != "DenyInsecureTransport"])), ["without TLS", "aws:SecureTransport"]),
    ("s3-object-ownership-enforced", "prod", "own", "fraud-archive-ownership", setter("rule", "objectOwnership", value="ObjectWriter"), ["'ObjectWriter'", "BucketOwnerEnforced"]),
    ("s3-lifecycle", "prod", "life", "fraud-archive-lifecycle", lambda p: [r.update(status="Disabled") for r in p["rules"]], ["no enabled lifecycle rule", "archiveExpirationDays"]),
    ("lambda-supported-runtime", "prod", "fn", "fraud-api", setter("runtime", value="python3.8"), ["'python3.8'", "supported"]),
    ("lambda-tracing", "staging", "fn", "fraud-ingest", setter("tracingConfig", "mode", value="PassThrough"), ["'PassThrough'", "staging", "Active"]),
    ("lambda-reserved-concurrency", "dev", "fn", "fraud-notification", setter("reservedConcurrentExecutions", delete=True), ["not set", "reservedConcurrentExecutions >= 1"]),
    ("lambda-reserved-concurrency", "dev", "fn", "fraud-review", setter("reservedConcurrentExecutions", value=0.0), ["0 (the function is throttled"]),
    ("lambda-permission-scoped", "prod", "perm", "fraud-api-invoke-permission", setter("sourceArn", delete=True), ["no sourceArn", "Fix: set sourceArn"]),
    ("lambda-permission-scoped", "prod", "perm", "fraud-api-invoke-permission", setter("principal", value="*"), ["principal '*'"]),
    ("lambda-permission-scoped", "prod", "perm", "fraud-api-invoke-permission", setter("sourceArn", value="arn:aws:execute-api:us-east-1:123456789012:*"), ["matches every"]),
    ("lambda-no-public-url", "prod", "perm", "fraud-api-invoke-permission", lambda p: p.update(action="lambda:InvokeFunctionUrl", functionUrlAuthType="NONE", principal="*"), ["function URL without IAM auth"]),
    ("apigateway-api-key-required", "prod", "method", "fraud-api-post", setter("apiKeyRequired", value=False), ["POST method does not require an API key", "apiKeyRequired = true"]),
    ("apigateway-api-key-required", "prod", "method", "fraud-api-label-post", setter("apiKeyRequired", value=False), ["POST method does not require an API key"]),
    ("lambda-permission-scoped", "prod", "perm", "fraud-api-label-invoke-permission", setter("sourceArn", delete=True), ["no sourceArn"]),
    ("lambda-permission-scoped", "prod", "perm", "fraud-label-ingest-bucket-permission", setter("sourceAccount", delete=True), ["names no account", "sourceAccount"]),
    ("lambda-permission-scoped", "staging", "perm", "fraud-label-ingest-bucket-permission", setter("sourceArn", value="arn:aws:s3:::*"), ["matches every s3 resource"]),
    ("encryption-at-rest-cmk", "prod", "obj", "fraud-archive-default-model", setter("serverSideEncryption", value="AES256"), ["'AES256'", "aws:kms"]),
    ("encryption-at-rest-cmk", "dev", "obj", "fraud-archive-default-model", setter("kmsKeyId", delete=True), ["no KMS key set", "kmsKeyId"]),
    ("apigateway-access-logging", "prod", "stage", "", setter("accessLogSettings", delete=True), ["no access logging", "accessLogSettings"]),
    ("apigateway-execution-logging", "prod", "ms", "", setter("settings", "loggingLevel", value="OFF"), ["'OFF'", "loggingLevel = \"ERROR\""]),
    ("apigateway-xray-tracing", "prod", "stage", "", setter("xrayTracingEnabled", value=False), ["X-Ray tracing is off", "prod", "xrayTracingEnabled = true"]),
    ("apigateway-no-data-trace", "prod", "ms", "", setter("settings", "dataTraceEnabled", value=True), ["data tracing is on in prod", "dataTraceEnabled = false"]),
    ("stepfunctions-logging-and-tracing", "dev", "sm", "", setter("loggingConfiguration", "level", value="OFF"), ["execution logging is off", "loggingConfiguration"]),
    ("stepfunctions-logging-and-tracing", "prod", "sm", "", setter("tracingConfiguration", "enabled", value=False), ["X-Ray tracing is off", "tracingConfiguration"]),
    ("event-source-mapping-failure-handling", "prod", "esm", "fraud-notification", setter("functionResponseTypes", value=[]), ["whole batch", "ReportBatchItemFailures"]),
    ("event-source-mapping-failure-handling", "prod", "esm", "fraud-ingest", setter("bisectBatchOnFunctionError", value=False), ["not split", "bisectBatchOnFunctionError = true"]),
    ("event-source-mapping-failure-handling", "prod", "esm", "fraud-detection", setter("maximumRetryAttempts", value=-1.0), ["maximumRetryAttempts is -1", "0-10000"]),
    ("event-source-mapping-failure-handling", "prod", "esm", "fraud-ingest", setter("maximumRecordAgeInSeconds", delete=True), ["maximumRecordAgeInSeconds is unset"]),
    ("event-source-mapping-failure-handling", "prod", "esm", "fraud-detection", setter("destinationConfig", delete=True), ["dropped", "onFailure"]),
    ("kinesis-retention", "prod", "stream", "", setter("retentionPeriod", value=72.0), ["72 h", ">= 168 h", "kinesisRetentionHours"]),
    ("iam-least-privilege", "prod", "rp", "fraud-detection-policy", edit_json("policy", lambda d: d["Statement"].append({"Sid": "Lazy", "Effect": "Allow", "Action": "dynamodb:*", "Resource": ["arn:aws:dynamodb:us-east-1:123456789012:table/x"]})), ["Lazy: action 'dynamodb:*' grants a whole service"]),
    ("iam-least-privilege", "prod", "rp", "fraud-api-policy", edit_json("policy", lambda d: d["Statement"].append({"Sid": "AnyBucket", "Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "*"})), ["AnyBucket: s3:PutObject on Resource '*'", "STAR_ONLY_ACTIONS"]),
    ("iam-least-privilege", "dev", "rp", "fraud-review-sfn-policy", edit_json("policy", lambda d: d["Statement"].append({"Sid": "Admin", "Effect": "Allow", "Action": "*", "Resource": ["arn:aws:s3:::any"]})), ["Admin: action '*'"]),
    ("log-group-retention", "prod", "log", "fraud-detection-logs", setter("retentionInDays", delete=True), ["no retention", "logRetentionDays"]),
    ("log-data-protection-masks-card-numbers", "prod", "dpp", "fraud-ingest", edit_json("policyDocument", lambda d: d.update(Statement=d["Statement"][:1])), ["does not mask card numbers", "Deidentify"]),
]


@pytest.mark.parametrize("policy, stack_name, kind, name, breaker, expected", RESOURCE_CASES,
                         ids=[f"{c[0]}-{c[3] or c[2]}-{i}" for i, c in enumerate(RESOURCE_CASES)])
def test_resource_policy_catches_its_misconfiguration(evaluation, policy, stack_name, kind, name, breaker, expected):
    """GIVEN a copy of a real resource of the stack with one setting broken
    WHEN the policy checks it
    THEN exactly that policy reports a violation naming the resource and the fix."""
    ev = evaluation(stack_name)
    type_, props, rname, urn = broken_copy(ev, T[kind], name, breaker)
    original = find(ev, T[kind], name)
    assert fp.check_resource(policy, type_, original.inputs, rname, urn) == []  # the real one passes
    messages = fp.check_resource(policy, type_, props, rname, urn)
    assert len(messages) == 1, messages
    assert rname in messages[0] and "Fix:" in messages[0]
    for fragment in expected:
        assert fragment in messages[0], messages[0]


def _other_key(props):
    props["kmsMasterKeyId"] = OTHER_KEY


def _drop_ingest_protection(ev):
    return stack_with(ev, T["dpp"], "fraud-ingest")


def _mask_audit_only(props):
    doc = json.loads(props["policyDocument"])
    doc["Statement"] = doc["Statement"][:1]
    props["policyDocument"] = json.dumps(doc)


def _without_ops_subscriptions(ev):
    """The stack as it would be with no ops subscriber set (the alert topic's own subscribers do not count)."""
    ops_topic = find(ev, T["topic"], "fraud-ops").outputs["arn"]
    return [r for r in stack_resources(ev) if not (r.type == T["sub"] and r.props.get("topic") == ops_topic)]


def _group_retention(days):
    return setter("retentionInDays", value=days)


# (policy, stack, how to break the stack, who is named, expected fragments)
STACK_CASES = [
    ("alarm-topic-has-subscriber", "prod", _without_ops_subscriptions, "fraud-topics-ops",
     ["alarms publish to this topic but it has no subscription", "opsEmailSubscribers"]),
    ("alarm-topic-has-subscriber", "staging", _without_ops_subscriptions, "fraud-topics-ops", ["no subscription"]),
    ("alarm-topic-has-subscriber", "prod",
     lambda ev: stack_with(ev, T["alarm"], "fraud-monitoring-detection-errors", setter("alarmActions", value=[])),
     "fraud-monitoring-detection-errors", ["has no alarm action"]),
    ("audit-log-retention", "prod",
     lambda ev: stack_with(ev, T["log"], "fraud-network-flow-logs", _group_retention(90.0)),
     "fraud-network-flow-logs", ["an audit log kept 90 days", "at least 365", "auditLogRetentionDays"]),
    ("audit-log-retention", "prod",
     lambda ev: stack_with(ev, T["log"], "fraud-api-access-logs", _group_retention(30.0)),
     "fraud-api-access-logs", ["kept 30 days"]),
    ("audit-log-retention", "prod",
     lambda ev: stack_with(ev, T["log"], "fraud-api-execution-logs", _group_retention(180.0)),
     "fraud-api-execution-logs", ["kept 180 days"]),
    ("audit-log-retention", "prod",
     lambda ev: stack_with(ev, T["log"], "vendedlogs/states", _group_retention(7.0)),
     "fraud-review-logs", ["kept 7 days"]),
    ("encryption-uses-stack-key", "prod", lambda ev: stack_with(ev, T["queue"], "fraud-review-dlq", _other_key),
     "fraud-review-dlq", ["not the customer-managed key this stack manages", OTHER_KEY]),
    ("encryption-uses-stack-key", "prod", lambda ev: stack_with(ev, T["obj"], "fraud-archive-default-model", setter("kmsKeyId", value=OTHER_KEY)),
     "fraud-archive-default-model", ["kmsKeyId", OTHER_KEY]),
    ("lambda-permission-source-in-stack", "prod",
     lambda ev: stack_with(ev, T["perm"], "fraud-label-ingest-bucket-permission", setter("sourceArn", value="arn:aws:s3:::someone-elses-bucket")),
     "fraud-label-ingest-bucket-permission", ["is not a resource of this stack"]),
    ("s3-bucket-companions", "prod", lambda ev: stack_with(ev, T["pab"], "fraud-archive-public-access-block"), "fraud-archive-bucket",
     ["has no public access block", "BucketPublicAccessBlock"]),
    ("s3-bucket-companions", "dev", lambda ev: stack_with(ev, T["sse"], "fraud-archive-encryption"), "fraud-archive-bucket",
     ["has no server-side encryption configuration"]),
    ("lambda-permission-source-in-stack", "prod",
     lambda ev: stack_with(ev, T["perm"], "fraud-api-invoke-permission", setter("sourceArn", value="arn:aws:execute-api:us-east-1:999999999999:abcdef/*/POST/transactions")),
     "fraud-api-invoke-permission", ["is not a resource of this stack", "execution_arn"]),
    ("function-log-group-and-masking", "prod", _drop_ingest_protection, "fraud-ingest-function",
     ["has no data-protection policy", "LogDataProtectionPolicy"]),
    ("function-log-group-and-masking", "prod", lambda ev: stack_with(ev, T["dpp"], "fraud-api", _mask_audit_only),
     "fraud-api-function", ["does not mask card numbers"]),
    ("function-log-group-and-masking", "dev", lambda ev: stack_with(ev, T["log"], "fraud-notification-logs"),
     "fraud-notification-function", ["is not managed by the stack", "loggingConfig.logGroup"]),
    ("apigateway-waf-on-every-stage", "prod", lambda ev: stack_with(ev, T["waf"], ""), "fraud-api-stage",
     ["no WAF web ACL", "WebAclAssociation"]),
    ("apigateway-execution-logging-on-every-stage", "prod", lambda ev: stack_with(ev, T["ms"], ""), "fraud-api-stage",
     ["no execution logging", "MethodSettings"]),
    ("sqs-consumer-queue-has-dlq", "prod",
     lambda ev: stack_with(ev, T["queue"], "fraud-alerts-queue-queue", setter("redrivePolicy", delete=True)),
     "fraud-alerts-queue-queue", ["has no dead-letter queue", "consumed by", "redrivePolicy"]),
    ("sqs-visibility-covers-consumer", "prod",
     lambda ev: stack_with(ev, T["queue"], "fraud-alerts-queue-queue", setter("visibilityTimeoutSeconds", value=120.0)),
     "fraud-alerts-queue-queue", ["120 s is less than 6 x", "fraud-notification-function", "360"]),
    ("sqs-dlq-retention-exceeds-source", "prod",
     lambda ev: stack_with(ev, T["queue"], "fraud-alerts-queue-dlq", setter("messageRetentionSeconds", value=345600.0)),
     "fraud-alerts-queue-dlq", ["not longer than that of its source", "1209600"]),
]


@pytest.mark.parametrize("policy, stack_name, breaker, named, expected", STACK_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(STACK_CASES)])
def test_stack_policy_catches_its_misconfiguration(evaluation, policy, stack_name, breaker, named, expected):
    """GIVEN the real stack with one resource broken or one companion removed
    WHEN the stack policy checks all resources
    THEN it reports one violation against the resource at fault, with the fix."""
    ev = evaluation(stack_name)
    assert fp.check_stack(policy, stack_resources(ev)) == []
    violations = fp.check_stack(policy, breaker(ev))
    assert len(violations) == 1, violations
    message, urn = violations[0]
    assert named in message and urn.endswith("::" + named) and "Fix:" in message
    for fragment in expected:
        assert fragment in message, message


def test_every_policy_has_a_failing_case():
    """GIVEN the pack's catalogue
    WHEN we list the policies the cases above and the topic files (test_policy_<topic>.py) break
    THEN every policy has at least one failing-case test."""
    import importlib

    covered = {c[0] for c in RESOURCE_CASES} | {c[0] for c in STACK_CASES}
    for module in sorted(Path(__file__).parent.glob("test_policy_*.py")):
        cases = importlib.import_module(module.stem)
        for name in dir(cases):
            if name.endswith("_CASES") and name not in ("RESOURCE_CASES", "STACK_CASES"):
                covered |= {c[0] for c in getattr(cases, name)}
    assert covered == {p.name for p in fp.POLICIES}
