"""Least-privilege IAM statements for each function, as pure data.

Kept free of Pulumi so the same statements are unit-tested, printed by the
plan, and (in the local emulation) checked against every AWS call a handler
really makes. Each grant names a specific ARN; the only `Resource: "*"`
statements carry actions from `defaults.STAR_ONLY_ACTIONS`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from . import defaults

#: Logical function keys, in the order the pipeline creates them.
FUNCTIONS = ("api", "ingest", "detection", "notification", "review", "label", "label-ingest")

KMS_USE = ["kms:Decrypt", "kms:GenerateDataKey"]
#: Ingest writes claim + transaction in one TransactWriteItems (authorised as PutItem) and reads
#: the existing item back (GetItem) when a replay cancels the write.
TABLE_INGEST = ["dynamodb:PutItem", "dynamodb:GetItem"]
#: Recording a label: find the transaction (GetItem, BatchGetItem for a bulk file's rows), then update it
#: in the TransactWriteItems that also updates its feature items (authorised as UpdateItem on each table).
TABLE_LABEL = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"]
#: The feature items a label (or a review outcome) moves: Update actions in the same TransactWriteItems.
FEATURES_LABEL = ["dynamodb:UpdateItem"]
#: The parameters detection reads (and re-reads every few minutes).
DETECTION_PARAMETERS = ("ml-endpoint", "model", "model-shadow", "lists")


@dataclass(frozen=True)
class PipelineArns:
    """Resolved ARNs of what the functions touch (strings, not Outputs)."""

    account: str
    region: str
    environment: str
    key: str
    table: str
    features_table: str
    alert_queue: str
    archive_bucket: str
    event_bus: str
    alert_topic: str
    parameters: Mapping[str, str]

    @property
    def sagemaker_endpoints(self) -> str:
        """The only endpoints the ML blend may call: they are named `fraud-<env>-*` (docs/handlers.md)."""
        return f"arn:aws:sagemaker:{self.region}:{self.account}:endpoint/fraud-{self.environment}-*"


def _allow(sid: str, actions: list[str], resources: list[str] | str) -> dict:
    return {"Sid": sid, "Effect": "Allow", "Action": sorted(actions),
            "Resource": resources if isinstance(resources, str) else sorted(resources)}


def handler_statements(function: str, arns: PipelineArns) -> list[dict]:
    """What the handler code itself calls (see handlers/ and docs/handlers.md)."""
    kms = _allow("UseCustomerManagedKey", KMS_USE, [arns.key])
    card_key = _allow("ReadCardTokenKey", ["ssm:GetParameter"], [arns.parameters["card-token-key"]])
    ml_param = arns.parameters["ml-endpoint"]
    templates = arns.parameters["notification-templates"]
    bucket = arns.archive_bucket
    update_features = _allow("UpdateFeatures", FEATURES_LABEL, [arns.features_table])
    publish_labels = _allow("PublishLabels", ["events:PutEvents"], [arns.event_bus])
    record_labels = _allow("RecordLabels", TABLE_LABEL, [arns.table])
    if function == "api":
        return [_allow("WriteTransactions", TABLE_INGEST, [arns.table]), card_key, kms]
    if function == "ingest":
        return [
            # BatchGetItem: which records of the batch were already stored (a retried batch).
            _allow("WriteTransactions", TABLE_INGEST + ["dynamodb:BatchGetItem"], [arns.table]),
            _allow("QuarantineRejectedRecords", ["s3:PutObject"], [f"{bucket}/{defaults.ARCHIVE_REJECTED_PREFIX}*"]),
            card_key, kms,
        ]
    if function == "detection":
        return [
            # BatchGetItem: the batch's transaction items; decision write-back: UpdateItem actions in
            # TransactWriteItems, detection's attributes only.
            _allow("RecordDecisions", ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"], [arns.table]),
            # Features: read the card and merchant items (BatchGetItem), count the batch in (UpdateItem in a transaction).
            _allow("ReadAndCountFeatures", ["dynamodb:BatchGetItem", "dynamodb:UpdateItem"], [arns.features_table]),
            _allow("QueueAlerts", ["sqs:SendMessage"], [arns.alert_queue]),
            _allow("ArchiveHighRisk", ["s3:PutObject"], [f"{bucket}/{defaults.ARCHIVE_HIGH_RISK_PREFIX}*"]),
            # The `model` / `model-shadow` parameters name a key (optionally a version) under models/.
            _allow("ReadModels", ["s3:GetObject", "s3:GetObjectVersion"], [f"{bucket}/{defaults.ARCHIVE_MODELS_PREFIX}*"]),
            _allow("PublishDecisions", ["events:PutEvents"], [arns.event_bus]),
            _allow("ReadDetectionParameters", ["ssm:GetParameter"],
                   [arns.parameters[leaf] for leaf in DETECTION_PARAMETERS]),
            _allow("InvokeEnvironmentModels", ["sagemaker:InvokeEndpoint"], [arns.sagemaker_endpoints]),
            kms,
        ]
    if function == "notification":
        return [
            _allow("MarkAlertSent", ["dynamodb:UpdateItem", "dynamodb:GetItem"], [arns.table]),
            _allow("PublishAlerts", ["sns:Publish"], [arns.alert_topic]),
            _allow("ReadTemplates", ["ssm:GetParameter"], [templates]),
            kms,
        ]
    if function == "review":
        return [
            # GetItem: the stored transaction; BatchGetItem: the label path's claim and item reads.
            _allow("RecordReview", ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:UpdateItem"], [arns.table]),
            # The review outcome records a label: its feature items and the label event.
            update_features, publish_labels,
            _allow("PublishAlerts", ["sns:Publish"], [arns.alert_topic]),
            _allow("ReadParameters", ["ssm:GetParameter"], [ml_param, templates]),
            _allow("InvokeEnvironmentModels", ["sagemaker:InvokeEndpoint"], [arns.sagemaker_endpoints]),
            kms,
        ]
    if function == "label":
        return [record_labels, update_features, publish_labels, kms]
    if function == "label-ingest":
        return [
            _allow("ReadLabelFiles", ["s3:GetObject"], [f"{bucket}/{defaults.ARCHIVE_LABELS_PREFIX}*"]),
            _allow("QuarantineRejectedLabels", ["s3:PutObject"], [f"{bucket}/{defaults.ARCHIVE_REJECTED_LABELS_PREFIX}*"]),
            record_labels, update_features, publish_labels, kms,
        ]
    raise ValueError(f"unknown function {function!r}; known: {', '.join(FUNCTIONS)}")


def log_statements(log_group_arn: str) -> list[dict]:
    """Write to the function's own log group only (created by Pulumi, so no CreateLogGroup)."""
    return [_allow("WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], [f"{log_group_arn}:*"])]


def tracing_statements() -> list[dict]:
    return [_allow("WriteTraces", ["xray:PutTraceSegments", "xray:PutTelemetryRecords"], "*")]


def vpc_statements() -> list[dict]:
    """What AWSLambdaVPCAccessExecutionRole grants, inline: ENI actions have no resource-level scoping."""
    return [_allow("ManageVpcNetworkInterfaces", [
        "ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"], "*")]


def async_failure_statements(on_failure_arn: str) -> list[dict]:
    """Lambda delivers an asynchronous invocation that failed every retry with the function's role."""
    return [_allow("SendFailedEventsToOnFailureQueue", ["sqs:SendMessage"], [on_failure_arn])]


def event_source_statements(kind: str, source_arn: str, on_failure_arn: str | None) -> list[dict]:
    """What Lambda's event source mapping does with the function's role."""
    if kind == "kinesis":
        out = [
            _allow("ReadIngestStream", ["kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
                                        "kinesis:GetShardIterator", "kinesis:ListShards"],
                   [source_arn]),
            _allow("ListStreams", ["kinesis:ListStreams"], "*"),
        ]
    elif kind == "dynamodb":
        out = [
            _allow("ReadTableStream", ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                   [source_arn]),
            _allow("ListStreams", ["dynamodb:ListStreams"], "*"),
        ]
    elif kind == "sqs":
        # What AWSLambdaSQSQueueExecutionRole grants: failed messages wait out their visibility timeout.
        out = [_allow("ConsumeQueue", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"],
                      [source_arn])]
    else:
        raise ValueError(f"unknown event source kind {kind!r}")
    if on_failure_arn:
        out.append(_allow("SendFailedBatchesToOnFailureQueue", ["sqs:SendMessage"], [on_failure_arn]))
    return out


def service_trust_policy(service: str, account_id: str | None = None, source_arn_like: str | None = None) -> dict:
    """Trust policy letting one AWS service assume a role, bound to this account where the service supports it.

    `aws:SourceAccount` (and `aws:SourceArn` where given) keeps another
    account's resource from borrowing the role (the confused-deputy guard).
    """
    statement: dict = {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}
    condition: dict = {}
    if account_id:
        condition["StringEquals"] = {"aws:SourceAccount": account_id}
    if source_arn_like:
        condition["ArnLike"] = {"aws:SourceArn": source_arn_like}
    if condition:
        statement["Condition"] = condition
    return {"Version": "2012-10-17", "Statement": [statement]}


def policy_document(statements: list[dict]) -> dict:
    return {"Version": "2012-10-17", "Statement": statements}

