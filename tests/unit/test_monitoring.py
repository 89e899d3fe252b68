"""Monitoring under Pulumi's mock engine: every silent failure of the pipeline pages the ops topic."""

from __future__ import annotations

import json

import pulumi
import pytest

from fraud_pipeline import defaults
from fraud_pipeline.evaluation import Evaluation, evaluate
from fraud_pipeline.monitoring import Monitoring, alarm_specs, dashboard_body, duration_threshold_ms

REGION = "us-east-1"
OPS_TOPIC = "arn:aws:sns:us-east-1:123456789012:fraud-ops-prod-abc12"
STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:fraud-review-prod-abc12"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"

FUNCTIONS = [
    # (key, physical name, timeout, stream consumer)
    ("api", "fraud-api-prod-abc12", 30, False),
    ("stream-ingest", "fraud-stream-ingest-prod-abc12", 60, True),
    ("detection", "fraud-detection-prod-abc12", 120, True),
    ("notification", "fraud-notification-prod-abc12", 45, False),
]
DLQS = [("alerts", "fraud-alerts-dlq-prod-abc12"), ("detection-failures", "fraud-detection-failures-prod-abc12")]
THRESHOLDS = {
    "error_rate_threshold_percent": 2.0,
    "duration_alarm_percent_of_timeout": 80,
    "iterator_age_alarm_seconds": 90,
    "dlq_age_alarm_seconds": 3600,
    "api_5xx_rate_threshold_percent": 1.5,
    "api_latency_alarm_ms": 2500,
}


def _args(functions_as_outputs: bool = False) -> dict:
    def name(value: str):
        return pulumi.Output.from_input(value) if functions_as_outputs else value

    return {
        "environment": "prod", "environment_suffix": "abc12", "region": REGION,
        "ops_topic_arn": name(OPS_TOPIC),
        "functions": [{"key": k, "function_name": name(n), "timeout_seconds": t, "stream_consumer": s} for k, n, t, s in FUNCTIONS],
        "dead_letter_queues": [{"key": k, "queue_name": name(n)} for k, n in DLQS],
        "api_name": name("fraud-api-prod-abc12"), "api_stage": "v1",
        "state_machine_arn": name(STATE_MACHINE),
        "stream_name": "fraud-transactions-stream-prod-abc12",
        "table_name": "fraud-transactions-prod-abc12",
        "alert_queue_name": "fraud-alerts-prod-abc12",
        **THRESHOLDS,
        "tags": {"team": "fraud"},
    }


@pytest.fixture(scope="module")
def ev() -> Evaluation:
    """GIVEN Monitoring built from literal inputs, some of them Outputs as in the real pipeline."""
    def program() -> None:
        monitoring = Monitoring("mon", _args(functions_as_outputs=True))
        pulumi.export("dashboard_name", monitoring.dashboard_name)
        pulumi.export("alarm_names", monitoring.alarm_names)
        pulumi.export("alarm_arns", monitoring.alarm_arns)

    return evaluate("prod", {"aws:region": REGION}, program=program)


def _alarms(ev: Evaluation) -> dict[str, dict]:
    return {r.inputs["name"]: r.inputs for r in ev.of_type(ALARM)}


def _named(ev: Evaluation, key: str) -> dict:
    return _alarms(ev)[f"fraud-{key}-prod-abc12"]


def test_every_alarm_pages_the_ops_topic_and_reports_recovery(ev):
    alarms = _alarms(ev)
    assert len(alarms) == len(FUNCTIONS) * 3 + 2 + len(DLQS) * 2 + 3
    for name, alarm in alarms.items():
        assert alarm["alarmActions"] == [OPS_TOPIC], name
        assert alarm["okActions"] == [OPS_TOPIC], name
        assert alarm["treatMissingData"] == defaults.ALARM_MISSING_DATA
        assert alarm["evaluationPeriods"] == defaults.ALARM_EVALUATION_PERIODS
        assert alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["region"] == REGION
        assert alarm["alarmDescription"]
        assert name.startswith("fraud-") and name.endswith("-prod-abc12")
        assert alarm["tags"]["team"] == "fraud" and alarm["tags"]["environment"] == "prod"


def test_error_rate_alarm_per_function_uses_metric_math(ev):
    for key, function_name, _, _ in FUNCTIONS:
        alarm = _named(ev, f"{key}-errors")
        # THEN the threshold is a percentage of invocations, not a count
        assert alarm["threshold"] == THRESHOLDS["error_rate_threshold_percent"]
        assert "metricName" not in alarm and "statistic" not in alarm
        queries = {q["id"]: q for q in alarm["metricQueries"]}
        assert set(queries) == {"m1", "m2", "e1"}
        for qid, metric_name in (("m1", "Errors"), ("m2", "Invocations")):
            metric = queries[qid]["metric"]
            assert (metric["namespace"], metric["metricName"], metric["stat"]) == ("AWS/Lambda", metric_name, "Sum")
            assert metric["dimensions"] == {"FunctionName": function_name}
            assert metric["period"] == defaults.ALARM_PERIOD_SECONDS
        assert queries["e1"]["expression"].replace(" ", "") == "IF(m2>0,100*m1/m2,0)"
        assert [q["id"] for q in alarm["metricQueries"] if q.get("returnData")] == ["e1"]


def test_duration_alarm_fires_at_the_configured_share_of_the_timeout(ev):
    for key, function_name, timeout, _ in FUNCTIONS:
        alarm = _named(ev, f"{key}-duration")
        assert (alarm["namespace"], alarm["metricName"], alarm["statistic"]) == ("AWS/Lambda", "Duration", "Maximum")
        assert alarm["dimensions"] == {"FunctionName": function_name}
        assert alarm["threshold"] == timeout * 1000 * THRESHOLDS["duration_alarm_percent_of_timeout"] / 100


def test_throttle_alarm_per_function(ev):
    for key, function_name, _, _ in FUNCTIONS:
        alarm = _named(ev, f"{key}-throttles")
        assert (alarm["metricName"], alarm["statistic"], alarm["threshold"]) == ("Throttles", "Sum", 0)
        assert alarm["dimensions"] == {"FunctionName": function_name}


def test_iterator_age_alarms_exactly_for_stream_consumers(ev):
    iterator = [a for a in _alarms(ev).values() if a.get("metricName") == "IteratorAge"]
    assert {a["dimensions"]["FunctionName"] for a in iterator} == {n for _, n, _, s in FUNCTIONS if s}
    assert len(iterator) == sum(1 for f in FUNCTIONS if f[3])
    for alarm in iterator:
        assert alarm["statistic"] == "Maximum"
        assert alarm["threshold"] == THRESHOLDS["iterator_age_alarm_seconds"] * 1000  # IteratorAge is in ms


def test_dlq_depth_and_age_alarms(ev):
    for key, queue in DLQS:
        depth, age = _named(ev, f"{key}-dlq-depth"), _named(ev, f"{key}-dlq-age")
        assert (depth["namespace"], depth["metricName"], depth["statistic"], depth["threshold"]) == (
            "AWS/SQS", "ApproximateNumberOfMessagesVisible", "Maximum", 0)
        assert (age["namespace"], age["metricName"], age["statistic"], age["threshold"]) == (
            "AWS/SQS", "ApproximateAgeOfOldestMessage", "Maximum", THRESHOLDS["dlq_age_alarm_seconds"])
        assert depth["dimensions"] == age["dimensions"] == {"QueueName": queue}


def test_api_5xx_rate_and_p99_latency_alarms(ev):
    dims = {"ApiName": "fraud-api-prod-abc12", "Stage": "v1"}
    rate = _named(ev, "api-5xx-rate")
    assert rate["threshold"] == THRESHOLDS["api_5xx_rate_threshold_percent"]
    queries = {q["id"]: q for q in rate["metricQueries"]}
    assert (queries["m1"]["metric"]["metricName"], queries["m1"]["metric"]["stat"]) == ("5XXError", "Sum")
    assert (queries["m2"]["metric"]["metricName"], queries["m2"]["metric"]["stat"]) == ("Count", "Sum")
    assert all(queries[q]["metric"]["dimensions"] == dims and queries[q]["metric"]["namespace"] == "AWS/ApiGateway"
               for q in ("m1", "m2"))
    assert queries["e1"]["expression"].replace(" ", "") == "IF(m2>0,100*m1/m2,0)"
    assert [q["id"] for q in rate["metricQueries"] if q.get("returnData")] == ["e1"]

    latency = _named(ev, "api-p99-latency")
    assert (latency["namespace"], latency["metricName"], latency["extendedStatistic"]) == ("AWS/ApiGateway", "Latency", "p99")
    assert "statistic" not in latency
    assert latency["threshold"] == THRESHOLDS["api_latency_alarm_ms"]
    assert latency["dimensions"] == dims


def test_state_machine_failure_alarm(ev):
    alarm = _named(ev, "review-workflow-failed")
    assert (alarm["namespace"], alarm["metricName"], alarm["statistic"], alarm["threshold"]) == (
        "AWS/States", "ExecutionsFailed", "Sum", 0)
    assert alarm["dimensions"] == {"StateMachineArn": STATE_MACHINE}


def test_dashboard_shows_every_part_of_the_pipeline(ev):
    dashboard = ev.one(DASHBOARD)
    assert dashboard.inputs["dashboardName"] == "fraud-pipeline-prod-abc12"
    body = json.loads(dashboard.inputs["dashboardBody"])
    widgets = body["widgets"]
    text = json.dumps(body)
    # THEN every function, queue and the other resources appear, and the alarm widget lists every alarm
    for _, function_name, _, _ in FUNCTIONS:
        assert f'"FunctionName", "{function_name}"' in text
    for _, queue in DLQS:
        assert f'"QueueName", "{queue}"' in text
    for needle in ("fraud-alerts-prod-abc12", "fraud-transactions-prod-abc12", "fraud-transactions-stream-prod-abc12", STATE_MACHINE):
        assert needle in text
    # AND each Lambda widget has a line per function, and only stream consumers show an iterator age
    for title in ("Lambda invocations", "Lambda errors", "Lambda max duration (ms)", "Lambda throttles"):
        widget = next(w for w in widgets if w["properties"].get("title") == title)
        assert sorted(m[3] for m in widget["properties"]["metrics"]) == sorted(f[1] for f in FUNCTIONS)
    iterator_lines = [m for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"]
                      if isinstance(m[0], str) and m[1] == "IteratorAge"]
    assert sorted(m[3] for m in iterator_lines) == sorted(f[1] for f in FUNCTIONS if f[3])
    metrics = {m[1] for w in widgets if w["type"] == "metric" for m in w["properties"]["metrics"] if isinstance(m[0], str)}
    assert {"Count", "4XXError", "5XXError", "Latency", "IncomingRecords", "GetRecords.IteratorAgeMilliseconds",
            "Invocations", "Errors", "Duration", "Throttles", "ConsumedReadCapacityUnits", "ConsumedWriteCapacityUnits",
            "ApproximateNumberOfMessagesVisible", "ExecutionsStarted", "ExecutionsFailed"} <= metrics
    assert "ThrottledRequests" in text
    alarm_widgets = [w for w in widgets if w["type"] == "alarm"]
    assert sorted(a for w in alarm_widgets for a in w["properties"]["alarms"]) == sorted(r.outputs["arn"] for r in ev.of_type(ALARM))
    assert all(w["properties"]["region"] == REGION for w in widgets if w["type"] == "metric")


def test_every_child_is_parented_to_the_component(ev):
    component = ev.one("fraud-pipeline:index:Monitoring")
    children = [r for r in ev.resources if r is not component]
    assert children and all(r.parent == component.urn for r in children)
    assert all(r.name.startswith("mon-") for r in children)


def test_outputs(ev):
    assert ev.exports["dashboard_name"] == "fraud-pipeline-prod-abc12"
    assert sorted(ev.exports["alarm_names"]) == sorted(_alarms(ev))
    assert sorted(ev.exports["alarm_arns"]) == sorted(r.outputs["arn"] for r in ev.of_type(ALARM))


# --- pure logic, no engine ----------------------------------------------------

def test_duration_threshold_is_in_milliseconds():
    assert duration_threshold_ms(30, 80) == 24000
    assert duration_threshold_ms(900, 90) == 810000


def test_no_stream_consumer_means_no_iterator_alarm():
    args = _args()
    args["functions"] = [{**f, "stream_consumer": False} for f in args["functions"]]
    assert not [s for s in alarm_specs(args) if s.metric_name == "IteratorAge"]


def test_alarm_keys_must_be_unique_and_name_safe():
    args = _args()
    args["functions"] = [*args["functions"], args["functions"][0]]
    with pytest.raises(ValueError, match="distinct keys"):
        alarm_specs(args)
    args = _args()
    args["dead_letter_queues"] = [{"key": "Alerts DLQ", "queue_name": "q"}]
    with pytest.raises(ValueError, match="lowercase"):
        alarm_specs(args)


def test_thresholds_out_of_range_are_refused():
    with pytest.raises(ValueError, match="error_rate"):
        alarm_specs({**_args(), "error_rate_threshold_percent": 0})
    with pytest.raises(ValueError, match="duration"):
        alarm_specs({**_args(), "duration_alarm_percent_of_timeout": 150})


def test_alarm_widget_splits_past_the_cloudwatch_limit():
    body = dashboard_body(region=REGION, functions=[("api", "f")], stream_consumers=[], dead_letter_queues=[], api_name="a", api_stage="v1",
                          stream_name="s", table_name="t", alert_queue_name="q", state_machine_arn="arn",
                          alarm_arns=[f"arn:{i}" for i in range(150)])
    alarm_widgets = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert [len(w["properties"]["alarms"]) for w in alarm_widgets] == [100, 50]


def test_alarms_reach_the_ops_rota_in_staging_and_prod(stack):
    # GIVEN a stack WHEN its subscriptions are listed THEN the ops topic (where every alarm goes) has the
    # stack file's mail, SMS and HTTPS subscribers in staging and prod, none in dev, and the alert topic's
    # subscribers are not mixed in
    from fraud_pipeline.plan import settings_of

    s = settings_of(stack.stack)
    ops_arn = stack.one("aws:sns/topic:Topic", "fraud-ops").outputs["arn"]
    subs = [r.inputs for r in stack.of_type("aws:sns/topicSubscription:TopicSubscription") if r.inputs["topic"] == ops_arn]
    expected = ({("email", e) for e in s.ops_email_subscribers} | {("sms", n) for n in s.ops_sms_subscribers}
                | {("https", u) for u in s.ops_https_subscribers})
    assert {(x["protocol"], x["endpoint"]) for x in subs} == expected
    assert bool(expected) is (stack.stack != "dev")
    for alarm in stack.of_type("aws:cloudwatch/metricAlarm:MetricAlarm"):
        assert alarm.inputs["alarmActions"] == [ops_arn], alarm.name


def test_a_failed_replication_alarms_in_prod_only(stack):
    # GIVEN a stack WHEN its alarms are listed THEN prod (the only one replicating) alarms on any object
    # that failed to replicate, by the rule the replication config declares
    alarms = {a.name: a.inputs for a in stack.of_type(ALARM)}
    name = "fraud-monitoring-archive-replication-failed"
    if stack.stack != "prod":
        assert name not in alarms
        return
    config = stack.one("aws:s3/bucketReplicationConfig:BucketReplicationConfig").inputs
    alarm = alarms[name]
    assert (alarm["namespace"], alarm["metricName"], alarm["threshold"]) == ("AWS/S3", "OperationsFailedReplication", 0)
    assert alarm["dimensions"] == {
        "SourceBucket": stack.one("aws:s3/bucket:Bucket", "fraud-archive-bucket").outputs["bucket"],
        "DestinationBucket": stack.one("aws:s3/bucket:Bucket", "fraud-archive-replica-bucket").outputs["bucket"],
        "RuleId": config["rules"][0]["id"]}
    assert config["rules"][0]["destination"]["metrics"]["status"] == "Enabled"
