"""Monitoring: the alarms and the dashboard that tell an on-call engineer the pipeline is hurting.

A fraud pipeline fails quietly: a stuck stream consumer or a filling DLQ means
transactions go unscored while the API still answers 200. Every alarm here
watches one such silent failure and pages the ops topic, and says when it
recovers (OK actions) so a page is not left open after the cause is gone.

What to alarm on is computed by plain functions (`alarm_specs`,
`dashboard_body`) so a test can read the thresholds and the metric math
without running Pulumi.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import ComponentArgs, Namer

_KEY = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")

#: CloudWatch accepts at most this many alarms in one alarm-status widget.
ALARM_WIDGET_MAX_ALARMS = 100


class MonitoredFunction(TypedDict):
    """One Lambda function to watch."""

    key: str
    """Short logical name (``api``, ``stream-ingest``); part of the alarm names."""
    function_name: pulumi.Input[str]
    """The function's physical name (the ``FunctionName`` metric dimension)."""
    timeout_seconds: int
    """The function's timeout; the duration alarm fires at a share of it."""
    stream_consumer: bool
    """True for the Kinesis and DynamoDB stream consumers: their backlog shows as iterator age."""


class MonitoredQueue(TypedDict):
    """One dead-letter queue to watch."""

    key: str
    """Short logical name (``alerts``, ``detection-failures``); part of the alarm names."""
    queue_name: pulumi.Input[str]
    """The queue's physical name (the ``QueueName`` metric dimension)."""


class MonitoredReplication(TypedDict):
    """One S3 replication rule (with replication metrics on)."""

    source_bucket: pulumi.Input[str]
    """The replicated bucket (the ``SourceBucket`` dimension)."""
    destination_bucket: pulumi.Input[str]
    """The replica bucket's name (the ``DestinationBucket`` dimension)."""
    rule_id: str
    """The rule's id (the ``RuleId`` dimension)."""


class MonitoringArgs(ComponentArgs):
    """Inputs of `Monitoring`."""

    region: str
    """Region of the metrics; alarms and dashboard widgets must name it."""
    ops_topic_arn: pulumi.Input[str]
    """SNS topic every alarm notifies, on ALARM and on OK."""
    functions: Sequence[MonitoredFunction]
    """The pipeline's Lambda functions."""
    dead_letter_queues: Sequence[MonitoredQueue]
    """Every DLQ (alert queue's, stream mappings' on-failure queues, event target's)."""
    api_name: pulumi.Input[str]
    """REST API name (the ``ApiName`` dimension)."""
    api_stage: pulumi.Input[str]
    """REST API stage name (the ``Stage`` dimension)."""
    state_machine_arn: pulumi.Input[str]
    """Review workflow state machine."""
    stream_name: pulumi.Input[str]
    """Kinesis ingest stream (dashboard)."""
    table_name: pulumi.Input[str]
    """Transactions table (dashboard)."""
    alert_queue_name: pulumi.Input[str]
    """Alert queue (dashboard)."""
    error_rate_threshold_percent: float
    """Per-function error-rate alarm threshold, errors as a percentage of invocations."""
    duration_alarm_percent_of_timeout: int
    """The duration alarm fires when the maximum duration passes this share of the timeout."""
    iterator_age_alarm_seconds: int
    """Stream consumers' iterator-age alarm threshold."""
    dlq_age_alarm_seconds: int
    """Alarm when the oldest DLQ message is older than this."""
    api_5xx_rate_threshold_percent: float
    """API 5XX responses as a percentage of requests."""
    api_latency_alarm_ms: int
    """API p99 latency alarm threshold."""
    replication: NotRequired[MonitoredReplication]
    """The archive's cross-region replication, if any: an object that fails to replicate raises an alarm."""


@dataclass(frozen=True)
class AlarmSpec:
    """One alarm, provider-neutral: either a single metric or metric-math queries."""

    key: str
    """Logical suffix of the resource name and of the physical name (``api-errors``)."""
    description: str
    threshold: float
    comparison_operator: str = "GreaterThanThreshold"
    namespace: str | None = None
    metric_name: str | None = None
    statistic: str | None = None
    extended_statistic: str | None = None
    dimensions: Mapping[str, Any] | None = None
    metric_queries: list[aws.cloudwatch.MetricAlarmMetricQueryArgsDict] | None = None
    period: int = defaults.ALARM_PERIOD_SECONDS

    @property
    def name_base(self) -> str:
        return f"fraud-{self.key}"


def _check_key(kind: str, key: str) -> None:
    if not _KEY.match(key):
        raise ValueError(f"{kind} key {key!r} must be lowercase letters, digits and dashes (it becomes part of alarm names)")


def _metric(namespace: str, metric_name: str, stat: str, dimensions: Mapping[str, Any],
            period: int) -> aws.cloudwatch.MetricAlarmMetricQueryMetricArgsDict:
    return {"namespace": namespace, "metric_name": metric_name, "stat": stat, "dimensions": dict(dimensions), "period": period}


def rate_queries(namespace: str, numerator: str, denominator: str, dimensions: Mapping[str, Any],
                 label: str, period: int = defaults.ALARM_PERIOD_SECONDS,
                 ) -> list[aws.cloudwatch.MetricAlarmMetricQueryArgsDict]:
    """Metric math for `100 * numerator / denominator`, 0 when there is no traffic.

    A rate rather than a count: the same ten errors are noise at peak traffic
    and an outage at night, and one threshold per stack has to mean both.
    """
    return [
        {"id": "m1", "metric": _metric(namespace, numerator, "Sum", dimensions, period), "return_data": False},
        {"id": "m2", "metric": _metric(namespace, denominator, "Sum", dimensions, period), "return_data": False},
        {"id": "e1", "expression": "IF(m2 > 0, 100 * m1 / m2, 0)", "label": label, "return_data": True},
    ]


def duration_threshold_ms(timeout_seconds: int, percent_of_timeout: int) -> float:
    """Milliseconds (Lambda's Duration unit) at which a run is close enough to its timeout to page."""
    return timeout_seconds * 1000 * percent_of_timeout / 100


def alarm_specs(args: MonitoringArgs) -> list[AlarmSpec]:
    """Every alarm the pipeline needs, from the monitoring args (Inputs pass through untouched)."""
    error_rate = float(args["error_rate_threshold_percent"])
    duration_pct = int(args["duration_alarm_percent_of_timeout"])
    if not 0 < error_rate <= 100:
        raise ValueError(f"error_rate_threshold_percent {error_rate} must be in (0, 100]")
    if not 0 < duration_pct <= 100:
        raise ValueError(f"duration_alarm_percent_of_timeout {duration_pct} must be in (0, 100]")
    specs: list[AlarmSpec] = []

    for fn in args["functions"]:
        _check_key("function", fn["key"])
        key, dims = fn["key"], {"FunctionName": fn["function_name"]}
        if fn["timeout_seconds"] <= 0:
            raise ValueError(f"function {key!r}: timeout_seconds must be positive")
        specs.append(AlarmSpec(
            key=f"{key}-errors",
            description=(f"{key}: more than {error_rate:g}% of invocations failed in "
                         f"{defaults.ALARM_PERIOD_SECONDS // 60} minutes; failed records are retried, then parked in a DLQ."),
            threshold=error_rate,
            metric_queries=rate_queries("AWS/Lambda", "Errors", "Invocations", dims, "Error rate (%)"),
        ))
        specs.append(AlarmSpec(
            key=f"{key}-duration",
            description=(f"{key}: a run took over {duration_pct}% of its {fn['timeout_seconds']} s timeout; "
                         "timeouts next would fail whole batches."),
            threshold=duration_threshold_ms(fn["timeout_seconds"], duration_pct),
            namespace="AWS/Lambda", metric_name="Duration", statistic="Maximum", dimensions=dims,
        ))
        specs.append(AlarmSpec(
            key=f"{key}-throttles",
            description=f"{key}: invocations were throttled (reserved concurrency reached); work is delayed or rejected.",
            threshold=0,
            namespace="AWS/Lambda", metric_name="Throttles", statistic="Sum", dimensions=dims,
        ))
        if fn["stream_consumer"]:
            seconds = int(args["iterator_age_alarm_seconds"])
            specs.append(AlarmSpec(
                key=f"{key}-iterator-age",
                description=(f"{key}: the oldest unprocessed stream record is over {seconds} s old; "
                             "transactions are waiting to be scored and may expire from the stream."),
                threshold=seconds * 1000,
                namespace="AWS/Lambda", metric_name="IteratorAge", statistic="Maximum", dimensions=dims,
            ))

    for queue in args["dead_letter_queues"]:
        _check_key("queue", queue["key"])
        key, dims = queue["key"], {"QueueName": queue["queue_name"]}
        specs.append(AlarmSpec(
            key=f"{key}-dlq-depth",
            description=f"{key} DLQ: a message was parked; something was not processed and needs a look.",
            threshold=0,
            namespace="AWS/SQS", metric_name="ApproximateNumberOfMessagesVisible", statistic="Maximum", dimensions=dims,
        ))
        age = int(args["dlq_age_alarm_seconds"])
        specs.append(AlarmSpec(
            key=f"{key}-dlq-age",
            description=f"{key} DLQ: a message has waited over {age} s; it will be lost when retention ends.",
            threshold=age,
            namespace="AWS/SQS", metric_name="ApproximateAgeOfOldestMessage", statistic="Maximum", dimensions=dims,
        ))

    api_dims = {"ApiName": args["api_name"], "Stage": args["api_stage"]}
    api_rate = float(args["api_5xx_rate_threshold_percent"])
    specs.append(AlarmSpec(
        key="api-5xx-rate",
        description=f"API: more than {api_rate:g}% of requests returned 5XX; clients' transactions are not being accepted.",
        threshold=api_rate,
        metric_queries=rate_queries("AWS/ApiGateway", "5XXError", "Count", api_dims, "5XX rate (%)"),
    ))
    specs.append(AlarmSpec(
        key="api-p99-latency",
        description=f"API: p99 latency over {args['api_latency_alarm_ms']} ms; card authorisations wait on this call.",
        threshold=float(args["api_latency_alarm_ms"]),
        namespace="AWS/ApiGateway", metric_name="Latency", extended_statistic="p99", dimensions=api_dims,
    ))
    specs.append(AlarmSpec(
        key="review-workflow-failed",
        description="Review workflow: an execution failed; a high-value transaction was not reviewed.",
        threshold=0,
        namespace="AWS/States", metric_name="ExecutionsFailed", statistic="Sum",
        dimensions={"StateMachineArn": args["state_machine_arn"]},
    ))

    replication = args.get("replication")
    if replication:
        specs.append(AlarmSpec(
            key="archive-replication-failed",
            description=("Archive: objects failed to replicate to the other region; that evidence would not "
                         "survive the loss of this one. S3 does not retry them: re-replicate with S3 Batch Replication."),
            threshold=0,
            namespace="AWS/S3", metric_name="OperationsFailedReplication", statistic="Sum",
            dimensions={"SourceBucket": replication["source_bucket"], "DestinationBucket": replication["destination_bucket"],
                        "RuleId": replication["rule_id"]},
        ))

    seen: set[str] = set()
    for spec in specs:
        if spec.key in seen:
            raise ValueError(f"two alarms would be named {spec.name_base!r}; give functions and queues distinct keys")
        seen.add(spec.key)
    return specs


# --- dashboard --------------------------------------------------------------

def _widget(title: str, metrics: list, region: str, *, x: int, y: int, width: int, height: int = 6,
            stat: str = "Sum", period: int = defaults.ALARM_PERIOD_SECONDS) -> dict[str, Any]:
    return {
        "type": "metric", "x": x, "y": y, "width": width, "height": height,
        "properties": {"title": title, "metrics": metrics, "region": region, "view": "timeSeries",
                       "stacked": False, "stat": stat, "period": period},
    }


def dashboard_body(*, region: str, functions: Sequence[tuple[str, str]], stream_consumers: Sequence[str],
                   dead_letter_queues: Sequence[tuple[str, str]],
                   api_name: str, api_stage: str, stream_name: str, table_name: str, alert_queue_name: str,
                   state_machine_arn: str, alarm_arns: Sequence[str]) -> dict[str, Any]:
    """The dashboard, laid out in the order a transaction flows: API, stream, functions, table, queues, workflow.

    `functions` and `dead_letter_queues` are (key, physical name) pairs;
    `stream_consumers` the keys of the functions whose iterator age is shown
    next to the stream's.
    """
    api_dims = ["ApiName", api_name, "Stage", api_stage]
    widgets: list[dict[str, Any]] = []
    y = 0

    widgets.append(_widget("API requests and errors", [
        ["AWS/ApiGateway", "Count", *api_dims, {"label": "Requests"}],
        ["AWS/ApiGateway", "4XXError", *api_dims, {"label": "4XX"}],
        ["AWS/ApiGateway", "5XXError", *api_dims, {"label": "5XX"}],
    ], region, x=0, y=y, width=8))
    widgets.append(_widget("API latency (ms)", [
        ["AWS/ApiGateway", "Latency", *api_dims, {"stat": "p50", "label": "p50"}],
        ["AWS/ApiGateway", "Latency", *api_dims, {"stat": "p99", "label": "p99"}],
        ["AWS/ApiGateway", "IntegrationLatency", *api_dims, {"stat": "p99", "label": "integration p99"}],
    ], region, x=8, y=y, width=8, stat="p99"))
    alarm_chunks = [list(alarm_arns[i:i + ALARM_WIDGET_MAX_ALARMS])
                    for i in range(0, len(alarm_arns), ALARM_WIDGET_MAX_ALARMS)] or [[]]
    for n, chunk in enumerate(alarm_chunks):
        widgets.append({"type": "alarm", "x": 16, "y": y + 6 * n, "width": 8, "height": 6,
                        "properties": {"title": "Alarm status" + (f" ({n + 1})" if len(alarm_chunks) > 1 else ""),
                                       "alarms": chunk, "sortBy": "stateUpdatedTimestamp"}})
    y += 6 * max(1, len(alarm_chunks))

    widgets.append(_widget("Kinesis incoming records", [
        ["AWS/Kinesis", "IncomingRecords", "StreamName", stream_name, {"label": "Incoming records"}],
    ], region, x=0, y=y, width=12))
    widgets.append(_widget("Kinesis iterator age (ms)", [
        ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", stream_name, {"label": "GetRecords iterator age"}],
        *[["AWS/Lambda", "IteratorAge", "FunctionName", fn, {"label": f"{key} iterator age"}]
          for key, fn in functions if key in stream_consumers],
    ], region, x=12, y=y, width=12, stat="Maximum"))
    y += 6

    for i, (title, metric, stat) in enumerate((
        ("Lambda invocations", "Invocations", "Sum"),
        ("Lambda errors", "Errors", "Sum"),
        ("Lambda max duration (ms)", "Duration", "Maximum"),
        ("Lambda throttles", "Throttles", "Sum"),
    )):
        widgets.append(_widget(title, [
            ["AWS/Lambda", metric, "FunctionName", fn, {"label": key}] for key, fn in functions
        ], region, x=6 * i, y=y, width=6, stat=stat))
    y += 6

    widgets.append(_widget("DynamoDB consumed capacity", [
        ["AWS/DynamoDB", "ConsumedReadCapacityUnits", "TableName", table_name, {"label": "Read"}],
        ["AWS/DynamoDB", "ConsumedWriteCapacityUnits", "TableName", table_name, {"label": "Write"}],
    ], region, x=0, y=y, width=12))
    # ThrottledRequests is published per Operation only, so a search collects every operation's series.
    throttled = (f"SEARCH('{{AWS/DynamoDB,TableName,Operation}} MetricName=\"ThrottledRequests\" "
                 f"TableName=\"{table_name}\"', 'Sum', {defaults.ALARM_PERIOD_SECONDS})")
    widgets.append(_widget("DynamoDB throttling", [
        [{"expression": throttled, "id": "throttled", "label": "Throttled requests"}],
        ["AWS/DynamoDB", "ReadThrottleEvents", "TableName", table_name, {"label": "Read throttle events"}],
        ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", table_name, {"label": "Write throttle events"}],
    ], region, x=12, y=y, width=12))
    y += 6

    widgets.append(_widget("Queue depth (visible messages)", [
        ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", alert_queue_name, {"label": "alert queue"}],
        *[["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", q, {"label": f"{key} DLQ"}]
          for key, q in dead_letter_queues],
    ], region, x=0, y=y, width=12, stat="Maximum"))
    widgets.append(_widget("Review workflow executions", [
        ["AWS/States", "ExecutionsStarted", "StateMachineArn", state_machine_arn, {"label": "Started"}],
        ["AWS/States", "ExecutionsFailed", "StateMachineArn", state_machine_arn, {"label": "Failed"}],
    ], region, x=12, y=y, width=12))

    return {"widgets": widgets}


class Monitoring(pulumi.ComponentResource):
    """CloudWatch alarms on every silent failure of the pipeline, and its dashboard."""

    dashboard_name: pulumi.Output[str]
    """The CloudWatch dashboard."""
    alarm_names: pulumi.Output[list[str]]
    """Every alarm's name."""
    alarm_arns: pulumi.Output[list[str]]
    """Every alarm's ARN (for composite alarms or subscriptions elsewhere)."""

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:Monitoring", name, None, opts)

        namer = Namer(args["environment"], args["environment_suffix"])
        region = args["region"]
        specs = alarm_specs(args)
        base_tags = {**defaults.BASE_TAGS, "environment": args["environment"]}
        tags = pulumi.Output.from_input(args.get("tags") or {}).apply(lambda extra: {**base_tags, **(extra or {})})
        actions = [args["ops_topic_arn"]]
        child = pulumi.ResourceOptions(parent=self)

        alarms: list[aws.cloudwatch.MetricAlarm] = []
        for spec in specs:
            single_metric = spec.metric_queries is None
            alarms.append(aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                name=namer.name(spec.name_base, "alarm"),
                alarm_description=spec.description,
                comparison_operator=spec.comparison_operator,
                threshold=spec.threshold,
                evaluation_periods=defaults.ALARM_EVALUATION_PERIODS,
                treat_missing_data=defaults.ALARM_MISSING_DATA,
                namespace=spec.namespace,
                metric_name=spec.metric_name,
                statistic=spec.statistic,
                extended_statistic=spec.extended_statistic,
                dimensions=spec.dimensions,
                period=spec.period if single_metric else None,
                metric_queries=spec.metric_queries,
                alarm_actions=actions,
                ok_actions=actions,
                region=region,
                tags=tags,
                opts=child,
            ))

        body = pulumi.Output.all(
            functions=pulumi.Output.all(*[fn["function_name"] for fn in args["functions"]]),
            queues=pulumi.Output.all(*[q["queue_name"] for q in args["dead_letter_queues"]]),
            api_name=args["api_name"], api_stage=args["api_stage"], stream_name=args["stream_name"],
            table_name=args["table_name"], alert_queue_name=args["alert_queue_name"],
            state_machine_arn=args["state_machine_arn"],
            alarm_arns=pulumi.Output.all(*[a.arn for a in alarms]),
        ).apply(lambda v: json.dumps(dashboard_body(
            region=region,
            functions=list(zip([fn["key"] for fn in args["functions"]], v["functions"])),
            stream_consumers=[fn["key"] for fn in args["functions"] if fn["stream_consumer"]],
            dead_letter_queues=list(zip([q["key"] for q in args["dead_letter_queues"]], v["queues"])),
            api_name=v["api_name"], api_stage=v["api_stage"], stream_name=v["stream_name"],
            table_name=v["table_name"], alert_queue_name=v["alert_queue_name"],
            state_machine_arn=v["state_machine_arn"], alarm_arns=v["alarm_arns"],
        )))
        dashboard = aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=namer.name("fraud-pipeline", "dashboard"),
            dashboard_body=body,
            region=region,
            opts=child,
        )

        self.dashboard_name = dashboard.dashboard_name
        self.alarm_names = pulumi.Output.all(*[a.name for a in alarms]).apply(list)
        self.alarm_arns = pulumi.Output.all(*[a.arn for a in alarms]).apply(list)
        self.register_outputs({
            "dashboard_name": self.dashboard_name,
            "alarm_names": self.alarm_names,
            "alarm_arns": self.alarm_arns,
        })
