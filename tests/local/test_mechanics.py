"""The emulation's own mechanics, without moto: stream retries and bisect, filters, the state machine runner."""

import json

import pytest

from fraud_pipeline.local import stepfunctions
from fraud_pipeline.local.mappings import StreamPoller, matches
from fraud_pipeline.local.topology import MappingSpec


class FakeHost:
    """A function that fails on chosen sequence numbers, by raising or by reporting them."""

    def __init__(self, poison=(), report=()):
        self.poison, self.report, self.batches = set(poison), set(report), []

    def invoke(self, name, event):
        seqs = [r["kinesis"]["sequenceNumber"] for r in event["Records"]]
        self.batches.append(seqs)
        if self.poison & set(seqs):
            raise RuntimeError("poison")
        return {"batchItemFailures": [{"itemIdentifier": s} for s in seqs if s in self.report]}

    def site(self, name):
        return type("S", (), {"arn": "arn:aws:lambda:us-east-1:123456789012:function:f"})()


class FakeSqs:
    def __init__(self):
        self.sent = []

    def send_message(self, QueueUrl, MessageBody):
        self.sent.append(json.loads(MessageBody))


def poller(host, retries=2, bisect=True):
    mapping = MappingSpec(function="f", kind="kinesis", source_arn="arn:aws:kinesis:us-east-1:123456789012:stream/s",
                          batch_size=10, window_seconds=0, max_retries=retries, max_record_age=60, bisect=bisect,
                          on_failure_arn="arn:aws:sqs:us-east-1:123456789012:fail", filters=[], report_failures=True)
    sqs = FakeSqs()
    p = StreamPoller(mapping, topo=type("T", (), {"region": "us-east-1", "account": "123456789012"})(), host=host,
                     client=None, sqs=sqs, queue_urls={mapping.on_failure_arn: "url"}, stream_arn=mapping.source_arn)
    return p, sqs


def records(n):
    return [{"kinesis": {"sequenceNumber": str(i)}} for i in range(n)]


def test_poison_record_is_isolated_by_bisect_and_sent_to_on_failure():
    # GIVEN a batch of 8 with record 5 crashing the function
    host = FakeHost(poison={"5"})
    p, sqs = poller(host, retries=2)
    # WHEN the batch is processed
    p._process("shardId-0", records(8))
    # THEN every other record was delivered successfully and only record 5 went to the on-failure queue
    delivered_ok = {s for b in host.batches if "5" not in b for s in b}
    assert delivered_ok == {str(i) for i in range(8)} - {"5"}
    assert [m["KinesisBatchInfo"]["startSequenceNumber"] for m in sqs.sent] == ["5"]
    assert sqs.sent[0]["KinesisBatchInfo"]["batchSize"] == 1
    assert "data" not in json.dumps(sqs.sent)  # metadata only, never the payload


def test_partial_failure_retries_from_the_first_failed_record_then_gives_up():
    host = FakeHost(report={"3"})
    p, sqs = poller(host, retries=2)
    p._process("shardId-0", records(6))
    assert host.batches == [["0", "1", "2", "3", "4", "5"], ["3", "4", "5"], ["3", "4", "5"]]
    assert sqs.sent[0]["KinesisBatchInfo"]["startSequenceNumber"] == "3"
    assert p.stats.retries == 2


def test_filters_match_like_lambda():
    pattern = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"record_type": {"S": ["transaction"]}}}}
    assert matches(pattern, {"eventName": "INSERT", "dynamodb": {"NewImage": {"record_type": {"S": "transaction"}}}})
    assert not matches(pattern, {"eventName": "INSERT", "dynamodb": {"NewImage": {"record_type": {"S": "claim"}}}})
    assert not matches(pattern, {"eventName": "MODIFY", "dynamodb": {"NewImage": {"record_type": {"S": "transaction"}}}})


DEFINITION = {
    "StartAt": "A",
    "States": {
        "A": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"FunctionName": "fn", "Payload": {"task": "a", "input.$": "$"}},
              "ResultSelector": {"result.$": "$.Payload"}, "OutputPath": "$.result",
              "Retry": [{"ErrorEquals": ["Flaky"], "MaxAttempts": 2}],
              "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Failed"}], "Next": "B"},
        "B": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"FunctionName": "fn", "Payload": {"task": "b", "input.$": "$"}},
              "ResultSelector": {"result.$": "$.Payload"}, "OutputPath": "$.result", "End": True},
        "Failed": {"Type": "Fail", "Error": "ReviewFailed", "Cause": "a task failed"},
    },
}


class Flaky(Exception):
    pass


def test_state_machine_passes_each_result_to_the_next_task_and_retries():
    calls = []

    def invoke(fn, payload):
        calls.append(payload["task"])
        if payload["task"] == "a" and calls.count("a") < 3:
            raise Flaky("try again")
        return {**payload["input"], payload["task"]: True}

    ex = stepfunctions.run(DEFINITION, {"x": 1}, invoke)
    assert ex.status == "SUCCEEDED" and ex.output == {"x": 1, "a": True, "b": True}
    assert ex.attempts == {"A": 3, "B": 1}


def test_state_machine_catches_to_the_failure_state():
    def invoke(fn, payload):
        raise ValueError("bad decision event")

    ex = stepfunctions.run(DEFINITION, {}, invoke)
    assert (ex.status, ex.error, ex.path) == ("FAILED", "ReviewFailed", ["A", "Failed"])


@pytest.mark.parametrize("path, expected", [("$", {"a": {"b": [1, 2]}}), ("$.a.b[1]", 2)])
def test_paths(path, expected):
    assert stepfunctions.read_path({"a": {"b": [1, 2]}}, path) == expected


def test_an_s3_event_that_keeps_failing_is_retried_twice_then_sent_to_the_on_failure_queue():
    from fraud_pipeline.local.mappings import BucketNotificationPoller
    from fraud_pipeline.local.topology import AsyncConfig, NotificationSpec

    class Failing:
        calls = 0

        def invoke(self, name, event):
            Failing.calls += 1
            raise RuntimeError("throttled")

        def site(self, name):
            return type("S", (), {"arn": "arn:aws:lambda:us-east-1:123456789012:function:f"})()

    sqs = FakeSqs()
    config = AsyncConfig("f", max_retries=2, max_event_age=3600, on_failure_arn="arn:fail", on_success_arn=None)
    poller = BucketNotificationPoller(NotificationSpec("b", "f", ["s3:ObjectCreated:*"], "labels/", ""), config,
                                      topo=None, host=Failing(), sqs=None, s3=None, tap_url="tap",
                                      queue_urls={"arn:fail": "url"}, destination_sqs=sqs, retry_delays=(0, 0))
    event = {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "b"},
                                                                   "object": {"key": "labels/a+b.csv", "size": 3}}}]}
    poller._attempt(event, 0, __import__("time").time())
    while poller.backlog:
        for due in list(poller._retries):
            poller._retries.remove(due)
            poller._attempt(due[2], due[1], due[3])
    assert Failing.calls == 3 and poller.stats.retries == 2
    (record,) = sqs.sent
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 3
    assert record["requestPayload"] == event and record["responsePayload"]["errorType"] == "RuntimeError"
