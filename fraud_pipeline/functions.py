"""PipelineFunction: one Lambda with its own role, inline least-privilege policy, log group and event source.

A function, its permissions and the mapping that feeds it are one unit: the
role can read exactly the source it is mapped to, and removing the function
removes its grants with it. A bucket that pushes S3 events to the function
(`bucket_trigger`) is wired the same way: its notification and the invoke
permission it needs live and die with the function.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Literal, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults, permissions
from .naming import ComponentArgs, Namer

CARD_NUMBER_IDENTIFIER = "arn:aws:dataprotection::aws:data-identifier/CreditCardNumber"


def log_data_protection_policy(name: str) -> dict:
    """Mask card numbers in the function's logs even if code ever logged one (defence in depth)."""
    identifiers = [CARD_NUMBER_IDENTIFIER]
    return {
        "Name": name,
        "Version": "2021-06-01",
        "Statement": [
            {"Sid": "audit-card-numbers", "DataIdentifier": identifiers,
             "Operation": {"Audit": {"FindingsDestination": {}}}},
            {"Sid": "mask-card-numbers", "DataIdentifier": identifiers,
             "Operation": {"Deidentify": {"MaskConfig": {}}}},
        ],
    }


class EventSourceBatching(TypedDict):
    """How an event source mapping batches and retries records (the part of `EventSource` settings give)."""

    batch_size: int
    """Records per invocation."""
    batching_window_seconds: NotRequired[int]
    """Longest wait to fill a batch."""
    max_retry_attempts: NotRequired[int]
    """Streams: retries of a failing batch before the on-failure destination."""
    max_record_age_seconds: NotRequired[int]
    """Streams: oldest record still delivered."""
    parallelization_factor: NotRequired[int]
    """Streams: concurrent batches per shard."""


class EventSource(EventSourceBatching):
    """A mapping that feeds the function."""

    kind: Literal["kinesis", "dynamodb", "sqs"]
    """Source type; decides the permissions and the mapping's options."""
    arn: pulumi.Input[str]
    """Stream or queue ARN."""
    on_failure_arn: NotRequired[pulumi.Input[str]]
    """Streams: SQS queue that receives the metadata of batches that exhausted their retries."""
    filter_patterns: NotRequired[Sequence[dict]]
    """Event filters; records that match none are dropped before invoking the function."""


class BucketTrigger(TypedDict):
    """S3 event notifications that invoke the function.

    S3 keeps one notification configuration per bucket, so one function only
    may take a given bucket as its trigger (another would overwrite it).
    """

    bucket: pulumi.Input[str]
    """Name (id) of the bucket."""
    bucket_arn: pulumi.Input[str]
    """ARN of the bucket: the invoke permission's source ARN."""
    events: Sequence[str]
    """S3 event types, e.g. `s3:ObjectCreated:*`."""
    filter_prefix: str
    """Only keys under this prefix notify the function."""
    on_failure_arn: pulumi.Input[str]
    """SQS queue that receives the events whose invocation failed every retry (S3 invokes asynchronously:
    without it, such an event is dropped)."""


class S3Code(TypedDict):
    """A deployment package stored in S3 (the signed object of a signing job)."""

    bucket: pulumi.Input[str]
    """Bucket name."""
    key: pulumi.Input[str]
    """Object key."""


class VpcPlacement(TypedDict):
    """Where a function's Hyperplane ENIs go: the private subnets and the functions' security group."""

    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets (two AZs)."""
    security_group_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """The Lambda security group."""


class PipelineFunctionArgs(ComponentArgs):
    key: str
    """Logical name (`api`, `ingest`, ...): the function is `fraud-<key>-<env>-<suffix>`."""
    handler: str
    """Module path of the handler inside the archive, e.g. `handlers.api_handler.handler`."""
    code: NotRequired[pulumi.Input[pulumi.Archive]]
    """The handlers archive (shared by every function of the pipeline); exactly one of `code` and `s3_code`."""
    s3_code: NotRequired[S3Code]
    """The handlers as an S3 object (the signed object of a signing job) instead of `code`."""
    code_signing_config_arn: NotRequired[pulumi.Input[str]]
    """Code signing config that checks the code's and every layer's signature at each deployment; needs
    `s3_code` (an archive uploaded by Pulumi carries no signature, and an enforcing config rejects it)."""
    memory_mb: pulumi.Input[int]
    """Memory (and so CPU share)."""
    timeout_seconds: pulumi.Input[int]
    """Timeout."""
    reserved_concurrency: pulumi.Input[int]
    """Reserved concurrency: caps the function and guarantees it capacity."""
    tracing_enabled: bool
    """X-Ray active tracing (and the X-Ray write grant) when true."""
    log_retention_days: pulumi.Input[int]
    """Retention of the function's log group."""
    kms_key_arn: pulumi.Input[str]
    """CMK for the log group and the environment variables."""
    environment_variables: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    """The handler contract's variables."""
    handler_statements: pulumi.Input[Sequence[Mapping]]
    """IAM statements for what the handler code calls (from `permissions.handler_statements`)."""
    layers: NotRequired[Sequence[pulumi.Input[str]]]
    """Layer ARNs: the Powertools layer (AWS's, or the stack's own signed copy under code signing)."""
    vpc: NotRequired[VpcPlacement]
    """Run inside the private network (and get the ENI grants Lambda needs for it)."""
    event_source: NotRequired[EventSource]
    """The mapping that feeds this function, if any."""
    bucket_trigger: NotRequired[BucketTrigger]
    """S3 notifications that invoke this function, if any."""


class PipelineFunction(pulumi.ComponentResource):
    """python3.11 on arm64, JSON logs to its own CMK log group, env vars under the CMK."""

    function_name: pulumi.Output[str]
    function_arn: pulumi.Output[str]
    invoke_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    role_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    policy_document: pulumi.Output[str]

    def __init__(self, name: str, args: PipelineFunctionArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:PipelineFunction", name, None, opts)
        if ("code" in args) == ("s3_code" in args):
            raise ValueError(f"PipelineFunction {name}: give exactly one of code and s3_code")
        if "code_signing_config_arn" in args and "s3_code" not in args:
            raise ValueError(f"PipelineFunction {name}: a code signing config needs s3_code (the signed object); "
                             "an archive uploaded as `code` carries no signature and would be rejected")
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        function_name = namer.name(f"fraud-{args['key']}", "function")
        tags = args.get("tags")
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id

        self.log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/aws/lambda/{function_name}",
            retention_in_days=args["log_retention_days"],
            kms_key_id=args["kms_key_arn"],
            tags=tags,
            opts=child,
        )
        aws.cloudwatch.LogDataProtectionPolicy(
            f"{name}-log-protection",
            log_group_name=self.log_group.name,
            policy_document=json.dumps(log_data_protection_policy(f"{function_name}-card-numbers")),
            opts=child,
        )
        self.role = aws.iam.Role(
            f"{name}-role",
            name=namer.name(f"fraud-{args['key']}", "role"),
            assume_role_policy=account.apply(
                lambda a: json.dumps(permissions.service_trust_policy("lambda.amazonaws.com", a))),
            description=f"Execution role of {function_name}",
            tags=tags,
            opts=child,
        )
        source = args.get("event_source")
        trigger = args.get("bucket_trigger")
        vpc = args.get("vpc")
        self.policy_document = pulumi.Output.all(
            self.log_group.arn,
            args["handler_statements"],
            source["arn"] if source else None,
            source.get("on_failure_arn") if source else None,
            trigger["on_failure_arn"] if trigger else None,
        ).apply(lambda a: json.dumps(permissions.policy_document(
            permissions.log_statements(a[0])
            + list(a[1])
            + (permissions.event_source_statements(source["kind"], a[2], a[3]) if source else [])
            + (permissions.async_failure_statements(a[4]) if trigger else [])
            + (permissions.tracing_statements() if args["tracing_enabled"] else [])
            + (permissions.vpc_statements() if vpc else [])
        )))
        self.role_policy = aws.iam.RolePolicy(
            f"{name}-policy",
            role=self.role.id,
            policy=self.policy_document,
            opts=child,
        )
        self.function = aws.lambda_.Function(
            f"{name}-function",
            name=function_name,
            role=self.role.arn,
            runtime=defaults.LAMBDA_RUNTIME,
            architectures=[defaults.LAMBDA_ARCHITECTURE],
            handler=args["handler"],
            code=args.get("code"),
            # A signed package is a new key per signing job, so a re-signed change is a code update.
            s3_bucket=args["s3_code"]["bucket"] if "s3_code" in args else None,
            s3_key=args["s3_code"]["key"] if "s3_code" in args else None,
            code_signing_config_arn=args.get("code_signing_config_arn"),
            memory_size=args["memory_mb"],
            timeout=args["timeout_seconds"],
            reserved_concurrent_executions=args["reserved_concurrency"],
            layers=args.get("layers"),
            kms_key_arn=args["kms_key_arn"],
            environment={"variables": args["environment_variables"]},
            tracing_config={"mode": "Active" if args["tracing_enabled"] else "PassThrough"},
            logging_config={
                "log_format": defaults.LAMBDA_LOG_FORMAT,
                "log_group": self.log_group.name,
                "application_log_level": defaults.LAMBDA_APPLICATION_LOG_LEVEL,
                "system_log_level": defaults.LAMBDA_SYSTEM_LOG_LEVEL,
            },
            vpc_config=({"subnet_ids": vpc["subnet_ids"], "security_group_ids": vpc["security_group_ids"]}
                        if vpc else None),
            tags=tags,
            # The role must be able to write logs and read its source before the first invocation.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy, self.log_group]),
        )
        if source:
            self.mapping = self._event_source_mapping(name, source, child)
        if trigger:
            self._bucket_notification(name, trigger, account, child)

        self.function_name = self.function.name
        self.function_arn = self.function.arn
        self.invoke_arn = self.function.invoke_arn
        self.role_arn = self.role.arn
        self.role_name = self.role.name
        self.log_group_name = self.log_group.name
        self.register_outputs({
            "function_name": self.function_name, "function_arn": self.function_arn, "invoke_arn": self.invoke_arn,
            "role_arn": self.role_arn, "log_group_name": self.log_group_name,
        })

    def _bucket_notification(self, name: str, trigger: BucketTrigger, account: pulumi.Output[str],
                             child: pulumi.ResourceOptions) -> None:
        # S3 ARNs carry no account, and a deleted bucket's name can be taken by anyone:
        # source_account keeps another account's bucket of the same name from invoking the function.
        self.bucket_permission = aws.lambda_.Permission(
            f"{name}-bucket-permission",
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="s3.amazonaws.com",
            source_arn=trigger["bucket_arn"],
            source_account=account,
            opts=child,
        )
        # Asynchronous invocations: bounded retries, then the event goes to the on-failure queue, not away.
        self.invoke_config = aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-async-config",
            function_name=self.function.name,
            maximum_retry_attempts=defaults.ASYNC_MAX_RETRY_ATTEMPTS,
            maximum_event_age_in_seconds=defaults.ASYNC_MAX_EVENT_AGE_SECONDS,
            destination_config={"on_failure": {"destination": trigger["on_failure_arn"]}},
            # Lambda checks the role may send to the destination.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy]),
        )
        # S3 checks that it may invoke the function when the configuration is put.
        self.bucket_notification = aws.s3.BucketNotification(
            f"{name}-bucket-notification",
            bucket=trigger["bucket"],
            lambda_functions=[{
                "lambda_function_arn": self.function.arn,
                "events": list(trigger["events"]),
                "filter_prefix": trigger["filter_prefix"],
            }],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.bucket_permission]),
        )

    def _event_source_mapping(self, name: str, source: EventSource,
                              child: pulumi.ResourceOptions) -> aws.lambda_.EventSourceMapping:
        # Streams (Kinesis, DynamoDB) take a starting position, retries and an on-failure destination; SQS none.
        stream = source["kind"] != "sqs"
        filter_criteria: aws.lambda_.EventSourceMappingFilterCriteriaArgsDict | None = (
            {"filters": [{"pattern": json.dumps(p)} for p in source["filter_patterns"]]}
            if source.get("filter_patterns") else None)
        destination_config: aws.lambda_.EventSourceMappingDestinationConfigArgsDict | None = (
            {"on_failure": {"destination_arn": source["on_failure_arn"]}} if stream else None)
        return aws.lambda_.EventSourceMapping(
            f"{name}-source",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.role_policy]),
            event_source_arn=source["arn"],
            function_name=self.function.arn,
            batch_size=source["batch_size"],
            maximum_batching_window_in_seconds=source.get("batching_window_seconds"),
            function_response_types=defaults.STREAM_FUNCTION_RESPONSE_TYPES,
            filter_criteria=filter_criteria,
            starting_position=defaults.STREAM_STARTING_POSITION if stream else None,
            bisect_batch_on_function_error=defaults.STREAM_BISECT_ON_ERROR if stream else None,
            maximum_retry_attempts=source["max_retry_attempts"] if stream else None,
            maximum_record_age_in_seconds=source["max_record_age_seconds"] if stream else None,
            parallelization_factor=source.get("parallelization_factor", 1) if stream else None,
            destination_config=destination_config,
        )
