"""FraudPipeline: the whole detection pipeline of one environment, as one component.

It only assembles: each child component owns its resources and hardening, and
`wiring.py` / `permissions.py` say which function gets which variables and
grants. A program (the repo's `__main__.py`, or a team's own) passes validated
`PipelineSettings` and gets typed outputs back.
"""

# No `from __future__ import annotations`: Pulumi's component analyzer (provider/, the package
# other Pulumi languages use) reads FraudPipeline's output annotations as real types.

import dataclasses
import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults, permissions, wiring
from .alerts import AlertTopics
from .api import ApiFront
from .archive import ArchiveBucket, model_object_key
from .code_signing import SignedCode, powertools_layer_archive
from .functions import (
    BucketTrigger,
    EventSource,
    EventSourceBatching,
    PipelineFunction,
    PipelineFunctionArgs,
    VpcPlacement,
)
from .kms import KmsKeys
from .monitoring import Monitoring, MonitoringArgs
from .naming import ComponentArgs, Namer
from .network import PrivateNetwork
from .params import PipelineParameters
from .queue import AlertQueue, encrypted_queue
from .replication import replication_rule_id
from .settings import PipelineSettings
from .store import TransactionStore
from .stream import IngestStream
from .workflow import ReviewWorkflow, event_bus_arn, event_bus_name


class FraudPipelineArgs(TypedDict):
    settings: PipelineSettings
    """The environment's validated settings (see `settings.py`; `PipelineSettings.from_config` for stack files)."""
    handlers_path: NotRequired[str]
    """Directory of the `handlers` package to deploy; defaults to the installed package."""
    powertools_layer_arn: NotRequired[str]
    """Override the AWS-published Powertools layer (e.g. a pinned copy in your account)."""
    tags: NotRequired[Mapping[str, str]]
    """Extra tags for every taggable resource (merged over the defaults)."""


def handlers_directory(explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    spec = importlib.util.find_spec("handlers")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the `handlers` package is not importable; install fraud-pipeline or pass handlers_path")
    return Path(list(spec.submodule_search_locations)[0])


def handler_files(directory: Path) -> list[Path]:
    """The package's .py modules and .json data (the shipped models), so caches and tests never ship."""
    files = sorted(p for pattern in ("*.py", "*.json") for p in directory.rglob(pattern) if "__pycache__" not in p.parts)
    if not any(p.suffix == ".py" for p in files):
        raise RuntimeError(f"no handler modules under {directory}")
    return files


def default_model_file(directory: Path) -> Path:
    """The default model the handlers ship (`handlers/models/default.json`); the stack uploads it."""
    path = directory / defaults.DEFAULT_MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"no default model at {path}: the handlers package must ship {defaults.DEFAULT_MODEL_FILE}")
    return path


def handlers_archive(directory: Path) -> pulumi.AssetArchive:
    """The package's files (see `handler_files`), under `handlers/`."""
    files = handler_files(directory)
    return pulumi.AssetArchive({
        f"handlers/{p.relative_to(directory).as_posix()}": pulumi.FileAsset(str(p)) for p in files
    })


class FraudPipeline(pulumi.ComponentResource):
    """Ingest (REST + Kinesis) -> transactions table -> detection -> alerts, archive, review workflow; labels back."""

    api_endpoint: pulumi.Output[str]
    label_endpoint: pulumi.Output[str]
    api_key_id: pulumi.Output[str]
    api_key_value: pulumi.Output[str]
    table_name: pulumi.Output[str]
    features_table_name: pulumi.Output[str]
    stream_name: pulumi.Output[str]
    alert_queue_url: pulumi.Output[str]
    dlq_url: pulumi.Output[str]
    alert_topic_arn: pulumi.Output[str]
    ops_topic_arn: pulumi.Output[str]
    archive_bucket: pulumi.Output[str]
    default_model_key: str
    kms_key_arn: pulumi.Output[str]
    event_bus_name: pulumi.Output[str]
    state_machine_arn: pulumi.Output[str]
    dashboard_name: pulumi.Output[str]
    function_names: dict[str, pulumi.Output[str]]

    def __init__(self, name: str, args: FraudPipelineArgs, opts: pulumi.ResourceOptions | None = None):
        # Capacity first, from the settings alone: a peak a stage cannot carry stops the
        # preview (CapacityError) before anything is registered, or warns in `capacityCheck: warn`.
        from . import capacity  # imported here so `python -m fraud_pipeline.capacity` runs it as __main__ cleanly

        settings = args.get("settings")
        capacity_warning = capacity.check(settings) if isinstance(settings, PipelineSettings) else None
        super().__init__("fraud-pipeline:index:FraudPipeline", name, None, opts)
        s = args["settings"]
        if not isinstance(s, PipelineSettings):
            raise TypeError("FraudPipelineArgs.settings must be a PipelineSettings")
        if capacity_warning:
            pulumi.log.warn(capacity_warning, resource=self)
        env, sfx = s.environment, s.environment_suffix
        namer = Namer(env, sfx)
        child = pulumi.ResourceOptions(parent=self)
        tags = {**defaults.BASE_TAGS, "environment": env, **(args.get("tags") or {})}
        base: ComponentArgs = {"environment": env, "environment_suffix": sfx, "tags": tags}

        handlers_dir = handlers_directory(args.get("handlers_path"))
        code = handlers_archive(handlers_dir)
        model_file = default_model_file(handlers_dir)
        model_key = model_object_key(model_file.read_bytes())

        kms = KmsKeys(f"{name}-kms", {**base, "region": s.region, "destroyable": not s.deletion_protection,
                                      "access_trail": s.archive_access_logging}, child)
        key = kms.key_arn
        params = PipelineParameters(f"{name}-params", {
            **base, "kms_key_arn": key, "model": model_key, "lists": s.lists(),
        }, child)
        # Flow logs, API access/execution logs, WAF logs and state-machine logs are audit logs.
        audit_days = s.audit_log_retention_days
        network = PrivateNetwork(f"{name}-network", {
            **base, "region": s.region, "kms_key_arn": key, "log_retention_days": audit_days,
        }, child) if s.network_enabled else None
        store = TransactionStore(f"{name}-store", {
            **base, "kms_key_arn": key, "billing_mode": s.dynamodb_billing_mode,
            "read_capacity": s.dynamodb_read_capacity, "write_capacity": s.dynamodb_write_capacity,
            "max_read_capacity": s.dynamodb_max_read_capacity, "max_write_capacity": s.dynamodb_max_write_capacity,
            "target_utilization_percent": s.dynamodb_target_utilization_percent,
            "point_in_time_recovery": s.point_in_time_recovery, "deletion_protection": s.deletion_protection,
        }, child)
        stream = IngestStream(f"{name}-stream", {
            **base, "kms_key_arn": key, "shard_count": s.kinesis_shard_count, "retention_hours": s.kinesis_retention_hours,
        }, child)
        queue = AlertQueue(f"{name}-alerts-queue", {
            **base, "kms_key_arn": key, "visibility_timeout_seconds": s.alert_visibility_timeout_seconds,
            "retention_seconds": s.alert_retention_seconds, "dlq_retention_seconds": s.dlq_retention_seconds,
            "max_receive_count": s.alert_max_receive_count,
        }, child)
        archive = ArchiveBucket(f"{name}-archive", {
            **base, "kms_key_arn": key, "transition_days": s.archive_transition_days,
            "expiration_days": s.archive_expiration_days, "force_destroy": not s.deletion_protection,
            "default_model_path": str(model_file), "region": s.region,
            "access_logging": s.archive_access_logging, "access_log_retention_days": audit_days,
            "replication_region": s.archive_replication_region,
        }, child)
        topics = AlertTopics(f"{name}-topics", {
            **base, "kms_key_arn": key, "email_subscribers": list(s.alert_email_subscribers),
            "sms_subscribers": list(s.alert_sms_subscribers), "ops_email_subscribers": list(s.ops_email_subscribers),
            "ops_sms_subscribers": list(s.ops_sms_subscribers), "ops_https_subscribers": list(s.ops_https_subscribers),
        }, child)
        failure_queues = {
            kind: encrypted_queue(f"{name}-{kind}-failures", namer.name(f"fraud-{kind}-failures", "queue"), key,
                                  s.dlq_retention_seconds, child, tags=tags).queue
            for kind in ("ingest", "detection", "label-ingest")
        }

        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        # The review function is created before the workflow (whose state machine runs it) but publishes
        # labels on the workflow's bus: its name is computed, and its ARN follows from it.
        bus_name = event_bus_name(namer)
        arns = pulumi.Output.all(
            account, key, store.table_arn, store.features_table_arn, queue.queue_arn, archive.bucket_arn,
            topics.alert_topic_arn, pulumi.Output.all(**params.arns),
        ).apply(lambda a: permissions.PipelineArns(
            account=a[0], region=s.region, environment=env, key=a[1], table=a[2], features_table=a[3],
            alert_queue=a[4], archive_bucket=a[5], event_bus=event_bus_arn(s.region, a[0], bus_name),
            alert_topic=a[6], parameters=a[7]))

        specs = wiring.function_specs(s)
        # Code signing: the handlers and the Powertools layer are deployed as artifacts the stack's Signer
        # profile signed, and a config that enforces it rejects anything else (AWS's own layer included).
        signing = SignedCode(f"{name}-signing", {
            **base, "kms_key_arn": key, "code": code, "layer_code": powertools_layer_archive(),
            "force_destroy": not s.deletion_protection,
        }, child) if s.code_signing else None
        layer = (signing.layer_arn if signing
                 else args.get("powertools_layer_arn") or defaults.powertools_layer_arn(s.region))
        placement: VpcPlacement | None = (
            {"subnet_ids": network.subnet_ids, "security_group_ids": [network.lambda_security_group_id]}
            if network else None)

        def function(key_: str, values: Mapping[str, pulumi.Input[str]], fn_arns: pulumi.Output[permissions.PipelineArns],
                     event_source: EventSource | None = None,
                     bucket_trigger: BucketTrigger | None = None) -> PipelineFunction:
            spec = specs[key_]
            variables = pulumi.Output.all(**values).apply(
                lambda v: wiring.environment_variables(key_, v, s, spec.service_name))
            fn_args: PipelineFunctionArgs = {
                **base, "key": key_, "handler": spec.handler, "memory_mb": spec.memory_mb,
                "timeout_seconds": spec.timeout_seconds, "reserved_concurrency": spec.reserved_concurrency,
                "tracing_enabled": s.tracing_enabled, "log_retention_days": s.log_retention_days,
                "kms_key_arn": key, "environment_variables": variables, "layers": [layer],
                "handler_statements": fn_arns.apply(lambda a: permissions.handler_statements(key_, a)),
            }
            if signing:
                fn_args["s3_code"] = {"bucket": signing.code_bucket, "key": signing.code_key}
                fn_args["code_signing_config_arn"] = signing.code_signing_config_arn
            else:
                fn_args["code"] = code
            if placement and key_ in wiring.VPC_FUNCTIONS:
                fn_args["vpc"] = placement
            if event_source is not None:
                fn_args["event_source"] = event_source
            if bucket_trigger is not None:
                fn_args["bucket_trigger"] = bucket_trigger
            return PipelineFunction(f"{name}-{key_}", fn_args, child)

        table = {"TABLE_NAME": store.table_name}
        labels = {**table, "FEATURES_TABLE_NAME": store.features_table_name}
        review = function("review", {**labels, "ALERT_TOPIC_ARN": topics.alert_topic_arn, "EVENT_BUS_NAME": bus_name,
                                     "ML_ENDPOINT_PARAM": params.names["ml-endpoint"],
                                     "TEMPLATES_PARAM": params.names["notification-templates"]}, arns)
        workflow = ReviewWorkflow(f"{name}-review", {
            **base, "kms_key_arn": key, "task_function_arn": review.function_arn,
            "review_amount_threshold": s.elevated_amount_threshold, "log_retention_days": audit_days,
            "tracing_enabled": s.tracing_enabled, "dlq_retention_seconds": s.dlq_retention_seconds,
        }, child)
        full_arns = pulumi.Output.all(arns, workflow.event_bus_arn).apply(
            lambda a: dataclasses.replace(a[0], event_bus=a[1]))

        api_fn = function("api", {**table, "CARD_TOKEN_KEY_PARAM": params.names["card-token-key"]}, full_arns)
        stream_source: EventSourceBatching = {
            "batch_size": s.stream_batch_size, "batching_window_seconds": s.stream_batch_window_seconds,
            "max_retry_attempts": s.stream_max_retry_attempts, "max_record_age_seconds": s.stream_max_record_age_seconds,
            "parallelization_factor": s.stream_parallelization_factor,
        }
        ingest = function("ingest", {
            **table, "ARCHIVE_BUCKET": archive.bucket_name, "CARD_TOKEN_KEY_PARAM": params.names["card-token-key"],
        }, full_arns, event_source={
            "kind": "kinesis", "arn": stream.stream_arn, "on_failure_arn": failure_queues["ingest"].arn, **stream_source,
        })
        detection = function("detection", {
            **labels, "ALERT_QUEUE_URL": queue.queue_url,
            "ARCHIVE_BUCKET": archive.bucket_name, "EVENT_BUS_NAME": workflow.event_bus_name,
            "ML_ENDPOINT_PARAM": params.names["ml-endpoint"], "MODEL_PARAM": params.names["model"],
            "MODEL_SHADOW_PARAM": params.names["model-shadow"], "LISTS_PARAM": params.names["lists"],
        }, full_arns, event_source={
            "kind": "dynamodb", "arn": store.stream_arn, "on_failure_arn": failure_queues["detection"].arn,
            "filter_patterns": [wiring.DETECTION_FILTER], **stream_source,
        })
        notification = function("notification", {
            **table, "ALERT_TOPIC_ARN": topics.alert_topic_arn, "TEMPLATES_PARAM": params.names["notification-templates"],
        }, full_arns, event_source={
            "kind": "sqs", "arn": queue.queue_arn, "batch_size": defaults.ALERT_BATCH_SIZE,
            "batching_window_seconds": defaults.ALERT_BATCH_WINDOW_SECONDS,
        })
        label = function("label", {**labels, "EVENT_BUS_NAME": workflow.event_bus_name}, full_arns)
        label_ingest = function("label-ingest", {
            **labels, "EVENT_BUS_NAME": workflow.event_bus_name, "ARCHIVE_BUCKET": archive.bucket_name,
        }, full_arns, bucket_trigger={
            "bucket": archive.bucket_name, "bucket_arn": archive.bucket_arn,
            "events": list(defaults.LABEL_FILE_EVENTS), "filter_prefix": defaults.ARCHIVE_LABELS_PREFIX,
            "on_failure_arn": failure_queues["label-ingest"].arn,
        })
        functions = {"api": api_fn, "ingest": ingest, "detection": detection, "notification": notification,
                     "review": review, "label": label, "label-ingest": label_ingest}

        api = ApiFront(f"{name}-api", {
            **base, "handler_function_name": api_fn.function_name, "handler_function_arn": api_fn.function_arn,
            "handler_invoke_arn": api_fn.invoke_arn, "label_function_name": label.function_name,
            "label_invoke_arn": label.invoke_arn, "kms_key_arn": key, "throttle_rate": s.api_throttle_rate,
            "throttle_burst": s.api_throttle_burst, "quota_limit": s.api_quota_limit, "quota_period": s.api_quota_period,
            "waf_rate_limit": s.waf_rate_limit, "waf_api_key_rate_limit": s.waf_api_key_rate_limit,
            "waf_count_mode_rule_groups": list(s.waf_count_mode_rule_groups), "log_retention_days": audit_days,
            "tracing_enabled": s.tracing_enabled, "manage_account_logging_role": s.manage_api_gateway_account,
        }, child)
        monitoring_args: MonitoringArgs = {
            **base, "region": s.region, "ops_topic_arn": topics.ops_topic_arn,
            "functions": [{"key": k, "function_name": f.function_name, "timeout_seconds": specs[k].timeout_seconds,
                           "stream_consumer": k in ("ingest", "detection")} for k, f in functions.items()],
            "dead_letter_queues": [
                {"key": "alerts", "queue_name": queue.dlq_name},
                {"key": "ingest-failures", "queue_name": failure_queues["ingest"].name},
                {"key": "detection-failures", "queue_name": failure_queues["detection"].name},
                {"key": "label-ingest-failures", "queue_name": failure_queues["label-ingest"].name},
                {"key": "review-events", "queue_name": workflow.dlq_arn.apply(lambda a: a.split(":")[-1])},
            ],
            "api_name": api.rest_api_name, "api_stage": api.stage_name, "state_machine_arn": workflow.state_machine_arn,
            "stream_name": stream.stream_name, "table_name": store.table_name, "alert_queue_name": queue.queue_name,
            "error_rate_threshold_percent": s.error_rate_threshold_percent,
            "duration_alarm_percent_of_timeout": s.duration_alarm_percent_of_timeout,
            "iterator_age_alarm_seconds": s.iterator_age_alarm_seconds, "dlq_age_alarm_seconds": s.dlq_age_alarm_seconds,
            "api_5xx_rate_threshold_percent": s.api_5xx_rate_threshold_percent, "api_latency_alarm_ms": s.api_latency_alarm_ms,
        }
        if archive.replica_bucket_name is not None:
            monitoring_args["replication"] = {
                "source_bucket": archive.bucket_name, "destination_bucket": archive.replica_bucket_name,
                "rule_id": replication_rule_id(s.archive_replication_region)}
        monitoring = Monitoring(f"{name}-monitoring", monitoring_args, child)

        self.settings = s
        # The children, reachable (as AWS Solutions Constructs expose theirs): a team reads a child's
        # resources or outputs, or adjusts one with ResourceOptions(transforms=...) on the pipeline.
        self.kms: KmsKeys = kms
        self.params: PipelineParameters = params
        self.network: PrivateNetwork | None = network
        self.store: TransactionStore = store
        self.stream: IngestStream = stream
        self.alert_queue: AlertQueue = queue
        self.archive: ArchiveBucket = archive
        self.topics: AlertTopics = topics
        self.signing: SignedCode | None = signing
        self.functions: dict[str, PipelineFunction] = functions
        self.workflow: ReviewWorkflow = workflow
        self.api: ApiFront = api
        self.monitoring: Monitoring = monitoring
        self.api_endpoint = api.endpoint
        self.label_endpoint = api.label_endpoint
        self.api_key_id = api.api_key_id
        self.api_key_value = api.api_key_value
        self.table_name = store.table_name
        self.features_table_name = store.features_table_name
        self.stream_name = stream.stream_name
        self.alert_queue_url = queue.queue_url
        self.dlq_url = queue.dlq_url
        self.alert_topic_arn = topics.alert_topic_arn
        self.ops_topic_arn = topics.ops_topic_arn
        self.archive_bucket = archive.bucket_name
        self.default_model_key = model_key
        self.kms_key_arn = key
        self.event_bus_name = workflow.event_bus_name
        self.state_machine_arn = workflow.state_machine_arn
        self.dashboard_name = monitoring.dashboard_name
        self.function_names = {k: f.function_name for k, f in functions.items()}
        self.register_outputs({
            "api_endpoint": self.api_endpoint, "label_endpoint": self.label_endpoint, "api_key_id": self.api_key_id,
            "table_name": self.table_name, "features_table_name": self.features_table_name,
            "stream_name": self.stream_name, "alert_queue_url": self.alert_queue_url, "dlq_url": self.dlq_url,
            "alert_topic_arn": self.alert_topic_arn, "archive_bucket": self.archive_bucket,
            "default_model_key": self.default_model_key,
            "kms_key_arn": self.kms_key_arn, "state_machine_arn": self.state_machine_arn,
            "dashboard_name": self.dashboard_name,
        })
