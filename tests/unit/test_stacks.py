"""Every stack, evaluated with Pulumi's mock engine: required values and secure settings of each component.

Each assertion names a control; if a setting regressed in a component or a
stack file, the matching test fails.
"""

import json
import re

import pytest
from fraud_policies.resource_policies import policy_document_violations  # policy/ is on sys.path (tests/conftest.py)

from fraud_pipeline import defaults, permissions
from fraud_pipeline.evaluation import Evaluation
from fraud_pipeline.plan import settings_of
from fraud_pipeline.wiring import CONTRACT, DETECTION_FILTER

FUNCTIONS = permissions.FUNCTIONS
T = {
    "key": "aws:kms/key:Key", "alias": "aws:kms/alias:Alias", "table": "aws:dynamodb/table:Table",
    "stream": "aws:kinesis/stream:Stream", "queue": "aws:sqs/queue:Queue", "queue_policy": "aws:sqs/queuePolicy:QueuePolicy",
    "fn": "aws:lambda/function:Function", "esm": "aws:lambda/eventSourceMapping:EventSourceMapping",
    "log": "aws:cloudwatch/logGroup:LogGroup", "role_policy": "aws:iam/rolePolicy:RolePolicy", "role": "aws:iam/role:Role",
    "topic": "aws:sns/topic:Topic", "param": "aws:ssm/parameter:Parameter", "bucket": "aws:s3/bucket:Bucket",
    "target": "aws:appautoscaling/target:Target", "vpc": "aws:ec2/vpc:Vpc", "sm": "aws:sfn/stateMachine:StateMachine",
}


def key_arn(ev: Evaluation) -> str:
    return ev.one(T["key"], "fraud-kms-key").outputs["arn"]


def function_component(ev: Evaluation, key: str):
    [component] = [r for r in ev.of_type("fraud-pipeline:index:PipelineFunction") if r.name == f"fraud-{key}"]
    kids = ev.children(component.urn)
    pick = lambda t: [k for k in kids if k.type == t]  # noqa: E731
    return {
        "function": pick(T["fn"])[0], "policy": json.loads(pick(T["role_policy"])[0].inputs["policy"]),
        "log": pick(T["log"])[0], "esm": (pick(T["esm"]) or [None])[0],
    }


def parameter(ev: Evaluation, leaf: str):
    [found] = [p for p in ev.of_type(T["param"]) if p.inputs["name"] == f"/fraud-detection/{ev.stack}/{leaf}"]
    return found


def statements(policy: dict) -> list[dict]:
    return policy["Statement"]


def granted(policy: dict, action: str) -> list[str]:
    out = []
    for st in statements(policy):
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        if action in actions:
            out += st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
    return out


# --- naming ------------------------------------------------------------------

def test_physical_names_follow_base_env_suffix(stack):
    s = settings_of(stack.stack)
    pattern = re.compile(rf"^[a-z][a-z0-9-]*-{s.environment}-{s.environment_suffix}$")
    named = [r.inputs.get("name") or r.inputs.get("bucket") for r in stack.custom_resources()
             if r.type in (T["table"], T["stream"], T["queue"], T["fn"], T["topic"], T["bucket"], T["sm"], T["role"])]
    assert len(named) >= 20
    for name in named:
        assert pattern.match(name), name
        assert len(name) <= 63


# --- KMS ---------------------------------------------------------------------

def test_kms_key_rotates_and_admits_exactly_the_pipeline_services(stack):
    key = stack.one(T["key"], "fraud-kms-key")
    assert key.inputs["enableKeyRotation"] is True
    policy = json.loads(key.inputs["policy"])
    via = next(st for st in policy["Statement"] if st["Sid"] == "AccountPrincipalsUseKeyThroughPipelineServices")
    services = {v.split(".")[0] for v in via["Condition"]["StringEquals"]["kms:ViaService"]}
    assert {"dynamodb", "kinesis", "sqs", "s3", "sns", "states", "logs"} <= services
    assert via["Condition"]["StringEquals"]["kms:CallerAccount"] == "123456789012"
    principals = set()
    for st in policy["Statement"]:
        svc = st["Principal"].get("Service")
        principals |= set(svc if isinstance(svc, list) else [svc] if svc else [])
    s = settings_of(stack.stack)
    # CloudTrail only where the archive's access trail exists (it encrypts the trail's log files)
    assert principals == {f"logs.{s.region}.amazonaws.com", "events.amazonaws.com", "cloudwatch.amazonaws.com",
                          "states.amazonaws.com", "sns.amazonaws.com", "delivery.logs.amazonaws.com",
                          *(["cloudtrail.amazonaws.com"] if s.archive_access_logging else [])}
    assert stack.one(T["alias"], "fraud-kms-alias").inputs["name"].startswith("alias/fraud-pipeline-")


# --- store -------------------------------------------------------------------

def test_transactions_table(stack):
    s = settings_of(stack.stack)
    table = stack.one(T["table"], "fraud-transactions")
    i = table.inputs
    assert (i["hashKey"], i["rangeKey"]) == ("transaction_id", "timestamp")
    assert {a["name"]: a["type"] for a in i["attributes"]} == {"transaction_id": "S", "timestamp": "N"}
    assert i["streamEnabled"] and i["streamViewType"] == "NEW_IMAGE"
    assert i["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key_arn(stack)}
    assert i["pointInTimeRecovery"]["enabled"] is s.point_in_time_recovery
    assert i["deletionProtectionEnabled"] is s.deletion_protection
    assert i["ttl"] == {"attributeName": defaults.TABLE_TTL_ATTRIBUTE, "enabled": True}
    assert (i["billingMode"], i["readCapacity"], i["writeCapacity"]) == (
        "PROVISIONED", s.dynamodb_read_capacity, s.dynamodb_write_capacity)


@pytest.mark.parametrize("table_name", ["fraud-transactions", "fraud-features"])
def test_both_tables_share_cmk_pitr_deletion_protection_and_billing(stack, table_name):
    s = settings_of(stack.stack)
    i = stack.one(T["table"], table_name).inputs
    assert i["name"] == f"{table_name}-{s.environment}-{s.environment_suffix}"
    assert i["serverSideEncryption"] == {"enabled": True, "kmsKeyArn": key_arn(stack)}
    assert i["pointInTimeRecovery"]["enabled"] is s.point_in_time_recovery
    assert i["deletionProtectionEnabled"] is s.deletion_protection
    assert (i["billingMode"], i["readCapacity"], i["writeCapacity"]) == (
        "PROVISIONED", s.dynamodb_read_capacity, s.dynamodb_write_capacity)


def test_features_table_keyed_by_entity_with_ttl_and_no_stream(stack):
    i = stack.one(T["table"], "fraud-features").inputs
    assert i["hashKey"] == "entity" and "rangeKey" not in i
    assert i["attributes"] == [{"name": "entity", "type": "S"}]
    assert i["ttl"] == {"attributeName": "expires_at", "enabled": True}
    assert not i.get("streamEnabled")
    # the velocity table is gone: two tables, the transactions table and this one
    assert {t.inputs["name"].split("-")[1] for t in stack.of_type(T["table"])} == {"transactions", "features"}


def test_autoscaling_from_provisioned_floor_to_stack_ceiling(stack):
    s = settings_of(stack.stack)
    targets = stack.of_type(T["target"])
    tables = {t.inputs["name"] for t in stack.of_type(T["table"])}
    # a read and a write target on each table
    assert sorted((t.inputs["resourceId"], t.inputs["scalableDimension"].split(":")[-1]) for t in targets) == sorted(
        (f"table/{n}", d) for n in tables for d in ("ReadCapacityUnits", "WriteCapacityUnits"))
    for t in targets:
        if t.inputs["scalableDimension"].endswith("WriteCapacityUnits"):
            assert (t.inputs["minCapacity"], t.inputs["maxCapacity"]) == (s.dynamodb_write_capacity, s.dynamodb_max_write_capacity)
        else:
            assert (t.inputs["minCapacity"], t.inputs["maxCapacity"]) == (s.dynamodb_read_capacity, s.dynamodb_max_read_capacity)
    policies = stack.of_type("aws:appautoscaling/policy:Policy")
    assert sorted(p.inputs["resourceId"] for p in policies) == sorted(t.inputs["resourceId"] for t in targets)


# --- stream ------------------------------------------------------------------

def test_kinesis_stream_shards_and_cmk(stack):
    s = settings_of(stack.stack)
    i = stack.one(T["stream"]).inputs
    assert i["shardCount"] == s.kinesis_shard_count
    assert i["retentionPeriod"] == s.kinesis_retention_hours
    assert (i["encryptionType"], i["kmsKeyId"]) == ("KMS", key_arn(stack))


# --- queues ------------------------------------------------------------------

def test_alert_queue_and_dlq(stack):
    queue = stack.one(T["queue"], "fraud-alerts-queue-queue")
    dlq = stack.one(T["queue"], "fraud-alerts-queue-dlq")
    assert queue.inputs["visibilityTimeoutSeconds"] == 360
    assert dlq.inputs["messageRetentionSeconds"] == 14 * 86400 > queue.inputs["messageRetentionSeconds"]
    redrive = json.loads(queue.inputs["redrivePolicy"])
    assert redrive == {"deadLetterTargetArn": dlq.outputs["arn"], "maxReceiveCount": 5}


def test_every_queue_is_cmk_encrypted_with_tls_only_policy(stack):
    queues = stack.of_type(T["queue"])
    assert len(queues) == 6  # alerts, alerts DLQ, three on-failure queues (ingest, detection, label-ingest), review-events DLQ
    policies = {p.inputs["queueUrl"]: json.loads(p.inputs["policy"]) for p in stack.of_type(T["queue_policy"])}
    for q in queues:
        assert q.inputs["kmsMasterKeyId"] == key_arn(stack), q.name
        deny = [st for st in policies[q.outputs["url"]]["Statement"] if st["Effect"] == "Deny"]
        assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


# --- archive -----------------------------------------------------------------

def test_archive_bucket_side_resources(stack):
    s = settings_of(stack.stack)
    bucket = stack.one(T["bucket"], "fraud-archive-bucket")
    assert bucket.inputs["forceDestroy"] is (not s.deletion_protection)
    name = bucket.outputs["id"]

    def one(t):
        [r] = [r for r in stack.of_type(t) if r.inputs["bucket"] == name]
        return r.inputs

    sse = one("aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms", "kmsMasterKeyId": key_arn(stack)}
    assert sse["bucketKeyEnabled"] is True
    pab = one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(pab[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"))
    assert one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    assert one("aws:s3/bucketVersioning:BucketVersioning")["versioningConfiguration"]["status"] == "Enabled"
    rules = one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration")["rules"]
    expiring = {r["filter"].get("prefix"): r for r in rules if "expiration" in r}
    # evidence and label files age out; models/ never expires (the model parameter may name any artifact there)
    assert set(expiring) == {"high-risk/", "rejected/", "labels/"}
    for rule in expiring.values():
        assert rule["status"] == "Enabled"
        assert rule["transitions"][0]["days"] == s.archive_transition_days
        assert rule["expiration"]["days"] == s.archive_expiration_days
    [housekeeping] = [r for r in rules if "expiration" not in r]
    assert housekeeping["filter"] == {} and "transitions" not in housekeeping
    assert housekeeping["noncurrentVersionExpiration"]["noncurrentDays"] == defaults.S3_NONCURRENT_EXPIRATION_DAYS
    assert not any(r["filter"].get("prefix", "").startswith("models") for r in rules)
    policy = json.loads(one("aws:s3/bucketPolicy:BucketPolicy")["policy"])
    assert any(st["Effect"] == "Deny" and st["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
               for st in policy["Statement"])


def test_default_model_uploaded_under_its_digest_with_the_cmk(stack):
    import hashlib

    from fraud_pipeline.pipeline import default_model_file, handlers_directory

    data = default_model_file(handlers_directory()).read_bytes()
    obj = stack.one("aws:s3/bucketObjectv2:BucketObjectv2", "default-model")
    bucket = stack.one(T["bucket"], "fraud-archive-bucket")
    assert obj.inputs["bucket"] == bucket.outputs["id"]
    assert obj.inputs["key"] == f"models/default-{hashlib.sha256(data).hexdigest()[:12]}.json"
    assert (obj.inputs["serverSideEncryption"], obj.inputs["kmsKeyId"]) == ("aws:kms", key_arn(stack))
    assert obj.inputs["contentType"] == "application/json"
    # a child of the archive component, and the model parameter is seeded with its key
    assert stack.by_urn(obj.parent).type == "fraud-pipeline:index:ArchiveBucket"
    assert parameter(stack, "model").inputs["value"] == obj.inputs["key"]


def test_label_files_under_labels_prefix_invoke_label_ingest(stack):
    fn = function_component(stack, "label-ingest")["function"]
    bucket = stack.one(T["bucket"], "fraud-archive-bucket")
    [notification] = stack.of_type("aws:s3/bucketNotification:BucketNotification")
    assert notification.inputs["bucket"] == bucket.outputs["id"]
    assert notification.inputs["lambdaFunctions"] == [{
        "lambdaFunctionArn": fn.outputs["arn"], "events": ["s3:ObjectCreated:*"], "filterPrefix": "labels/"}]
    permission = stack.one("aws:lambda/permission:Permission", "bucket-permission")
    assert permission.inputs == {"action": "lambda:InvokeFunction", "function": fn.outputs["name"],
                                 "principal": "s3.amazonaws.com", "sourceArn": bucket.outputs["arn"],
                                 "sourceAccount": "123456789012"}
    # S3 tests its right to invoke when the configuration is put
    assert permission.urn in notification.depends_on
    assert stack.by_urn(notification.parent).name == "fraud-label-ingest"



def test_failed_label_file_events_are_parked_not_dropped(stack):
    # S3 invokes asynchronously: after Lambda's retries the event goes to an encrypted on-failure queue
    parts = function_component(stack, "label-ingest")
    config = stack.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig").inputs
    failures = stack.one(T["queue"], "fraud-label-ingest-failures")
    assert config["functionName"] == parts["function"].outputs["name"]
    assert config["maximumRetryAttempts"] == defaults.ASYNC_MAX_RETRY_ATTEMPTS
    assert config["destinationConfig"] == {"onFailure": {"destination": failures.outputs["arn"]}}
    assert failures.inputs["kmsMasterKeyId"] == key_arn(stack)
    assert granted(parts["policy"], "sqs:SendMessage") == [failures.outputs["arn"]]
    # and its depth pages the ops topic like every DLQ
    s = settings_of(stack.stack)
    alarm_names = {a.inputs["name"] for a in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert f"fraud-label-ingest-failures-dlq-depth-{s.environment}-{s.environment_suffix}" in alarm_names


# --- topics ------------------------------------------------------------------

def test_alert_and_ops_topics_encrypted(stack):
    s = settings_of(stack.stack)
    names = {t.inputs["name"]: t for t in stack.of_type(T["topic"])}
    assert set(names) == {f"fraud-alerts-{s.environment}-{s.environment_suffix}",
                          f"fraud-ops-{s.environment}-{s.environment_suffix}"}
    assert all(t.inputs["kmsMasterKeyId"] == key_arn(stack) for t in names.values())


def test_subscribers_come_from_settings_and_sms_gets_blocks_only():
    from fraud_pipeline.evaluation import evaluate, stack_config

    config = {**stack_config("dev"),
              "fraud-pipeline:alertEmailSubscribers": '["fraud-team@example.com"]',
              "fraud-pipeline:alertSmsSubscribers": '["+15555550100"]'}
    ev = evaluate("dev", config)
    subs = {s.inputs["protocol"]: s.inputs for s in ev.of_type("aws:sns/topicSubscription:TopicSubscription")}
    assert subs["email"]["endpoint"] == "fraud-team@example.com"
    assert subs["sms"]["endpoint"] == "+15555550100"
    assert json.loads(subs["sms"]["filterPolicy"]) == {"decision": ["block"]}
    alerts_topic = ev.one(T["topic"], "fraud-topics-alerts").outputs["arn"]
    assert {s["topic"] for s in subs.values()} == {alerts_topic}


# --- functions ---------------------------------------------------------------

def test_functions_runtime_arch_memory_concurrency_tracing(stack):
    s = settings_of(stack.stack)
    for key in FUNCTIONS:
        f = function_component(stack, key)["function"].inputs
        assert (f["runtime"], f["architectures"]) == ("python3.11", ["arm64"]), key
        assert f["reservedConcurrentExecutions"] >= 1
        assert f["tracingConfig"]["mode"] == ("Active" if s.tracing_enabled else "PassThrough")
        assert f["kmsKeyArn"] == key_arn(stack)
        assert f["loggingConfig"]["logFormat"] == "JSON"
        if s.code_signing:
            # Enforce rejects unsigned layers: the stack signs and publishes Powertools itself
            # (tests/unit/test_code_signing.py checks the layer's contents)
            assert f["layers"] == [stack.one("aws:lambda/layerVersion:LayerVersion").outputs["arn"]]
        else:
            assert f["layers"] == [defaults.powertools_layer_arn(s.region)]
            assert "AWSLambdaPowertoolsPythonV3-python311-arm64" in f["layers"][0]
    for key in ("ingest", "detection"):
        f = function_component(stack, key)["function"].inputs
        assert f["memorySize"] == s.processing_memory_mb
        assert f["reservedConcurrentExecutions"] == s.processing_reserved_concurrency
    for key, handler in (("label", "handlers.label_api.handler"), ("label-ingest", "handlers.label_ingest.handler")):
        f = function_component(stack, key)["function"].inputs
        assert f["handler"] == handler
        assert (f["memorySize"], f["timeout"], f["reservedConcurrentExecutions"]) == (
            s.support_memory_mb, s.support_timeout_seconds, s.support_reserved_concurrency)


def test_handler_environment_follows_the_design_contract(stack):
    for key in FUNCTIONS:
        variables = function_component(stack, key)["function"].inputs["environment"]["variables"]
        contract = {name for name, users in CONTRACT.items() if key in users}
        assert contract <= set(variables), key
        assert not ({name for name in CONTRACT} - contract) & set(variables), key
        assert variables["ENVIRONMENT"] == stack.stack
    detection = function_component(stack, "detection")["function"].inputs["environment"]["variables"]
    assert detection["TABLE_NAME"] == stack.one(T["table"], "fraud-transactions").inputs["name"]
    assert detection["ALERT_QUEUE_URL"] == stack.one(T["queue"], "fraud-alerts-queue-queue").outputs["url"]
    assert detection["ML_ENDPOINT_PARAM"] == f"/fraud-detection/{stack.stack}/ml-endpoint"
    rules = json.loads(detection["RULES_JSON"])
    assert rules["high_amount"] == 10000 and "Nigeria" in rules["high_risk_countries"]
    features = stack.one(T["table"], "fraud-features").inputs["name"]
    bus = stack.one("aws:cloudwatch/eventBus:EventBus").inputs["name"]
    for key in ("detection", "review", "label", "label-ingest"):
        variables = function_component(stack, key)["function"].inputs["environment"]["variables"]
        assert variables["FEATURES_TABLE_NAME"] == features, key
        assert variables["EVENT_BUS_NAME"] == bus, key
        assert "VELOCITY_TABLE_NAME" not in variables
    for variable, leaf in (("MODEL_PARAM", "model"), ("MODEL_SHADOW_PARAM", "model-shadow"), ("LISTS_PARAM", "lists")):
        assert detection[variable] == f"/fraud-detection/{stack.stack}/{leaf}"
    label_ingest = function_component(stack, "label-ingest")["function"].inputs["environment"]["variables"]
    assert label_ingest["ARCHIVE_BUCKET"] == stack.one(T["bucket"], "fraud-archive-bucket").outputs["bucket"]


def test_log_groups_have_retention_and_cmk(stack):
    s = settings_of(stack.stack)
    groups = stack.of_type(T["log"])
    assert len(groups) >= 10  # seven functions, API access and execution logs, workflow
    for g in groups:
        # function logs are operational; the rest (API, WAF, flow, state machine) are audit logs:
        # tests/unit/test_audit_logs.py checks which is which
        expected = s.log_retention_days if g.inputs["name"].startswith("/aws/lambda/") else s.audit_log_retention_days
        assert g.inputs["retentionInDays"] == expected, g.inputs["name"]
        assert g.inputs["kmsKeyId"] == key_arn(stack), g.inputs["name"]
    for key in FUNCTIONS:
        parts = function_component(stack, key)
        assert parts["function"].inputs["loggingConfig"]["logGroup"] == parts["log"].inputs["name"]


def test_function_log_groups_mask_card_numbers(stack):
    policies = stack.of_type("aws:cloudwatch/logDataProtectionPolicy:LogDataProtectionPolicy")
    assert len(policies) == len(FUNCTIONS)
    for p in policies:
        doc = json.loads(p.inputs["policyDocument"])
        ops = [st["Operation"] for st in doc["Statement"]]
        assert {"Deidentify": {"MaskConfig": {}}} in ops
        assert all(st["DataIdentifier"] == ["arn:aws:dataprotection::aws:data-identifier/CreditCardNumber"]
                   for st in doc["Statement"])


# --- event sources -----------------------------------------------------------

@pytest.mark.parametrize("key, source", [("ingest", "aws:kinesis/stream:Stream"), ("detection", "aws:dynamodb/table:Table")])
def test_stream_mappings_report_failures_bisect_and_bound_retries(stack, key, source):
    s = settings_of(stack.stack)
    esm = function_component(stack, key)["esm"].inputs
    assert esm["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["bisectBatchOnFunctionError"] is True
    assert 0 <= esm["maximumRetryAttempts"] == s.stream_max_retry_attempts
    assert 60 <= esm["maximumRecordAgeInSeconds"] == s.stream_max_record_age_seconds
    failure_queue = stack.one(T["queue"], f"fraud-{key}-failures")
    assert esm["destinationConfig"]["onFailure"]["destinationArn"] == failure_queue.outputs["arn"]
    assert failure_queue.inputs["kmsMasterKeyId"] == key_arn(stack)
    src = stack.one(source, "fraud-transactions" if key == "detection" else "")
    assert esm["eventSourceArn"] == (src.outputs["streamArn"] if key == "detection" else src.outputs["arn"])


def test_detection_mapping_filters_new_transactions(stack):
    esm = function_component(stack, "detection")["esm"].inputs
    assert [json.loads(f["pattern"]) for f in esm["filterCriteria"]["filters"]] == [DETECTION_FILTER]


def test_notification_consumes_alert_queue_with_partial_failures(stack):
    esm = function_component(stack, "notification")["esm"].inputs
    assert esm["eventSourceArn"] == stack.one(T["queue"], "fraud-alerts-queue-queue").outputs["arn"]
    assert esm["functionResponseTypes"] == ["ReportBatchItemFailures"]
    assert esm["batchSize"] == defaults.ALERT_BATCH_SIZE


# --- IAM -----------------------------------------------------------------------

def test_no_wildcard_resources_outside_star_only_actions(stack):
    docs = [json.loads(p.inputs["policy"]) for p in stack.of_type(T["role_policy"])]
    assert len(docs) >= 8
    for doc in docs:
        # the policy pack's own check (one implementation): no `*` / `service:*`, `*` only for star-only actions
        assert policy_document_violations(doc) == []


def test_each_function_policy_names_its_own_resources(stack):
    table = stack.one(T["table"], "fraud-transactions").outputs["arn"]
    features = stack.one(T["table"], "fraud-features").outputs["arn"]
    bucket = stack.one(T["bucket"], "fraud-archive-bucket").outputs["arn"]
    queue = stack.one(T["queue"], "fraud-alerts-queue-queue").outputs["arn"]
    detection_failures = stack.one(T["queue"], "fraud-detection-failures").outputs["arn"]
    topic = stack.one(T["topic"], "fraud-topics-alerts").outputs["arn"]
    bus = stack.one("aws:cloudwatch/eventBus:EventBus").outputs["arn"]
    param = lambda leaf: parameter(stack, leaf).outputs["arn"]  # noqa: E731
    p = {k: function_component(stack, k)["policy"] for k in FUNCTIONS}
    assert granted(p["api"], "dynamodb:PutItem") == [table]
    assert granted(p["ingest"], "s3:PutObject") == [f"{bucket}/rejected/*"]
    # detection
    assert granted(p["detection"], "s3:PutObject") == [f"{bucket}/high-risk/*"]
    assert granted(p["detection"], "s3:GetObject") == granted(p["detection"], "s3:GetObjectVersion") == [f"{bucket}/models/*"]
    assert set(granted(p["detection"], "sqs:SendMessage")) == {queue, detection_failures}
    assert granted(p["detection"], "events:PutEvents") == [bus]
    assert sorted(granted(p["detection"], "dynamodb:UpdateItem")) == sorted([table, features])
    assert sorted(granted(p["detection"], "dynamodb:BatchGetItem")) == sorted([table, features])
    assert sorted(granted(p["detection"], "ssm:GetParameter")) == sorted(
        param(leaf) for leaf in ("ml-endpoint", "model", "model-shadow", "lists"))
    assert granted(p["detection"], "sagemaker:InvokeEndpoint") == [
        f"arn:aws:sagemaker:{settings_of(stack.stack).region}:123456789012:endpoint/fraud-{stack.stack}-*"]
    assert granted(p["detection"], "dynamodb:PutItem") == granted(p["detection"], "dynamodb:DeleteItem") == []
    # label (API) and label-ingest (S3 files): record on the transaction, move its features, publish the label
    for key in ("label", "label-ingest"):
        assert sorted(granted(p[key], "dynamodb:UpdateItem")) == sorted([table, features]), key
        assert granted(p[key], "dynamodb:GetItem") == granted(p[key], "dynamodb:BatchGetItem") == [table], key
        assert granted(p[key], "dynamodb:PutItem") == [] and granted(p[key], "ssm:GetParameter") == [], key
        assert granted(p[key], "events:PutEvents") == [bus], key
    assert granted(p["label"], "s3:GetObject") == granted(p["label"], "s3:PutObject") == []
    assert granted(p["label-ingest"], "s3:GetObject") == [f"{bucket}/labels/*"]
    assert granted(p["label-ingest"], "s3:PutObject") == [f"{bucket}/rejected/labels/*"]
    # review: as before, plus the label its outcome records
    assert sorted(granted(p["review"], "dynamodb:UpdateItem")) == sorted([table, features])
    assert granted(p["review"], "dynamodb:GetItem") == [table]
    assert granted(p["review"], "events:PutEvents") == [bus]
    assert granted(p["notification"], "sns:Publish") == [topic]
    assert granted(p["api"], "sns:Publish") == [] and granted(p["api"], "s3:PutObject") == []
    card_key = param("card-token-key")
    assert granted(p["api"], "ssm:GetParameter") == [card_key]
    assert card_key not in granted(p["detection"], "ssm:GetParameter")
    for key in FUNCTIONS:
        log = function_component(stack, key)["log"].outputs["arn"]
        assert granted(p[key], "logs:PutLogEvents") == [f"{log}:*"]
        assert granted(p[key], "kms:Decrypt") == [key_arn(stack)]


def test_tracing_and_vpc_grants_only_where_needed(stack):
    s = settings_of(stack.stack)
    for key in FUNCTIONS:
        policy = function_component(stack, key)["policy"]
        assert bool(granted(policy, "xray:PutTraceSegments")) is s.tracing_enabled
        assert bool(granted(policy, "ec2:CreateNetworkInterface")) is s.network_enabled


def test_security_doc_lists_every_star_only_action_with_reason():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for action, reason in defaults.STAR_ONLY_ACTIONS.items():
        assert f"| `{action}` | {reason} |" in doc, action


# --- network -----------------------------------------------------------------

def test_network_per_stack(stack):
    s = settings_of(stack.stack)
    vpcs = stack.of_type(T["vpc"])
    detection = function_component(stack, "detection")["function"].inputs
    if s.network_enabled:
        assert len(vpcs) == 1
        sg = stack.one("aws:ec2/securityGroup:SecurityGroup", "lambda").outputs["id"]
        assert detection["vpcConfig"]["securityGroupIds"] == [sg]
        assert len(detection["vpcConfig"]["subnetIds"]) == 2
    else:
        assert vpcs == [] and "vpcConfig" not in detection
    assert stack.of_type("aws:ec2/natGateway:NatGateway") == []


# --- parameters ----------------------------------------------------------------

def test_ssm_parameters_secure_cmk_and_not_overwritten(stack):
    params = {p.inputs["name"]: p for p in stack.of_type(T["param"])}
    env = stack.stack
    leaves = ("api-key", "connection-string", "ml-endpoint", "notification-templates", "card-token-key",
              "model", "model-shadow", "lists")
    assert set(params) == {f"/fraud-detection/{env}/{leaf}" for leaf in leaves}
    for p in params.values():
        assert p.inputs["type"] == "SecureString" and p.inputs["keyId"] == key_arn(stack)
        assert p.ignore_changes == ["value"]
    value = lambda leaf: params[f"/fraud-detection/{env}/{leaf}"].inputs["value"]  # noqa: E731
    assert value("ml-endpoint") == "none"
    assert len(value("card-token-key")) == 64
    assert value("model") == stack.one("aws:s3/bucketObjectv2:BucketObjectv2", "default-model").inputs["key"]
    assert value("model").startswith("models/default-")
    assert value("model-shadow") == "none"
    s = settings_of(stack.stack)
    assert json.loads(value("lists")) == {"blocked_merchants": list(s.blocked_merchants),
                                          "high_risk_countries": list(s.high_risk_countries),
                                          "allowed_card_tokens": list(s.allowed_card_tokens)}
    assert json.loads(value("notification-templates"))["subject"]


# --- API, workflow and monitoring wiring -------------------------------------

def test_api_invokes_the_api_and_label_functions_with_scoped_permissions(stack):
    execution_arn = stack.one("aws:apigateway/restApi:RestApi").outputs["executionArn"]
    for key, route, suffix in (("api", "integration", "/*/POST/transactions"),
                               ("label", "label-integration", "/*/POST/transactions/*/label")):
        fn = function_component(stack, key)["function"].outputs
        assert stack.one("aws:apigateway/integration:Integration", f"fraud-api-{route}").inputs["uri"] == fn["invokeArn"]
        [permission] = [p for p in stack.of_type("aws:lambda/permission:Permission")
                        if p.inputs["function"] == fn["name"]]
        assert permission.inputs["principal"] == "apigateway.amazonaws.com"
        assert permission.inputs["sourceArn"] == execution_arn + suffix
    plan = stack.one("aws:apigateway/usagePlan:UsagePlan").inputs
    assert plan["throttleSettings"] == {"rateLimit": 1000, "burstLimit": 1000}


def test_review_workflow_runs_the_review_function_on_large_amounts(stack):
    review_arn = function_component(stack, "review")["function"].outputs["arn"]
    definition = json.loads(stack.one(T["sm"]).inputs["definition"])
    tasks = [st for st in definition["States"].values() if st["Type"] == "Task"]
    assert [t["Parameters"]["Payload"]["task"] for t in tasks] == ["validate", "analyze", "store", "notify"]
    assert all(t["Parameters"]["FunctionName"] == review_arn and t["Retry"] and t["Catch"] for t in tasks)
    pattern = json.loads(stack.one("aws:cloudwatch/eventRule:EventRule").inputs["eventPattern"])
    assert pattern["detail"]["amount"] == [{"numeric": [">", 5000]}]
    bus = stack.one("aws:cloudwatch/eventBus:EventBus").outputs["name"]
    assert function_component(stack, "detection")["function"].inputs["environment"]["variables"]["EVENT_BUS_NAME"] == bus
    # the review task is created before the bus, so its name and ARN are computed: they must be the bus's
    review = function_component(stack, "review")
    assert review["function"].inputs["environment"]["variables"]["EVENT_BUS_NAME"] == bus
    assert granted(review["policy"], "events:PutEvents") == [stack.one("aws:cloudwatch/eventBus:EventBus").outputs["arn"]]


def test_alarms_go_to_the_ops_topic(stack):
    ops = stack.one(T["topic"], "fraud-topics-ops").outputs["arn"]
    alarms = stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm")
    assert len(alarms) >= len(FUNCTIONS) * 3 + 2 + 2 * 4 + 3
    assert all(a.inputs["alarmActions"] == [ops] for a in alarms)
    s = settings_of(stack.stack)
    error_rates = [a for a in alarms if "errors" in a.inputs["name"]]
    assert sorted(a.inputs["name"] for a in error_rates) == sorted(
        f"fraud-{k}-errors-{s.environment}-{s.environment_suffix}" for k in FUNCTIONS)
    assert all(a.inputs["threshold"] == s.error_rate_threshold_percent for a in error_rates)
    assert stack.one("aws:cloudwatch/dashboard:Dashboard").inputs["dashboardName"].startswith("fraud-pipeline-")


# --- the program ---------------------------------------------------------------

def test_program_exports(stack):
    expected = {"apiEndpoint", "labelEndpoint", "apiKeyId", "transactionsTable", "featuresTable", "kinesisStream",
                "alertQueueUrl", "dlqUrl", "alertTopicArn", "archiveBucket", "defaultModelKey", "kmsKeyArn",
                "stateMachineArn", "dashboardName"}
    assert set(stack.exports) == expected
    assert stack.exports["apiEndpoint"].endswith("/transactions")
    assert stack.exports["labelEndpoint"] == stack.exports["apiEndpoint"] + "/{transaction_id}/label"
    assert stack.exports["featuresTable"] == stack.one(T["table"], "fraud-features").inputs["name"]
    assert stack.exports["defaultModelKey"] == stack.one("aws:s3/bucketObjectv2:BucketObjectv2", "default-model").inputs["key"]
    assert stack.exports["transactionsTable"] == stack.one(T["table"], "fraud-transactions").inputs["name"]


def test_every_resource_is_parented_to_the_pipeline(stack):
    [root] = stack.of_type("fraud-pipeline:index:FraudPipeline")
    for r in stack.resources:
        if r is root:
            continue
        assert stack.ancestors(r)[-1] is root, r.urn
        assert r.type.startswith("fraud-pipeline:index:") or r.custom


def test_a_new_default_model_is_a_new_key_and_a_new_seed(tmp_path):
    from fraud_pipeline import FraudPipeline, FraudPipelineArgs
    from fraud_pipeline.evaluation import evaluate

    def run(content: str, where):
        where.mkdir()
        (where / "__init__.py").write_text("")
        (where / "models").mkdir()
        (where / "models" / "default.json").write_text(content)
        program = lambda: FraudPipeline("fraud", FraudPipelineArgs(  # noqa: E731
            settings=settings_of("dev"), handlers_path=str(where)))
        ev = evaluate("dev", program=program)
        return ev.one("aws:s3/bucketObjectv2:BucketObjectv2", "default-model").inputs["key"], parameter(ev, "model").inputs["value"]

    key_a, seed_a = run('{"format": "placeholder"}', tmp_path / "a")
    key_b, seed_b = run('{"format": "placeholder", "v": 2}', tmp_path / "b")
    assert key_a == seed_a and key_b == seed_b
    assert key_a != key_b and key_a.startswith("models/default-") and key_b.startswith("models/default-")
