"""Event sources as Lambda runs them: mappings (batches, windows, filters, partial failures, retries, bisect,
on-failure) and S3 notifications (asynchronous invocations with retries and an on-failure destination).

Each poller reads its source on moto with the mapping's settings from the
program and invokes the function through the Lambda host. Stream pollers keep
a checkpoint per shard: a batch is retried from the first failed record (the
`batchItemFailures` contract) up to the mapping's retry limit, split in half on
a function error when bisect is on, and then described to the on-failure queue
and skipped, so a poison record cannot block its shard.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .host import LambdaHost
from .topology import MappingSpec, Topology


def matches(pattern: Any, value: Any) -> bool:
    """Lambda/EventBridge filter matching for the forms the program uses (exact lists, nesting, prefix, exists)."""
    if isinstance(pattern, dict):
        if not isinstance(value, dict):
            return False
        return all(matches(sub, value.get(key)) for key, sub in pattern.items())
    if isinstance(pattern, list):
        for option in pattern:
            if isinstance(option, dict):
                if "prefix" in option and isinstance(value, str) and value.startswith(option["prefix"]):
                    return True
                if "exists" in option and (value is not None) == option["exists"]:
                    return True
                if "anything-but" in option and value is not None and value not in _listify(option["anything-but"]):
                    return True
            elif value == option or (isinstance(value, list) and option in value):
                return True
        return False
    return pattern == value


def _listify(value: Any) -> list:
    return value if isinstance(value, list) else [value]


@dataclass
class MappingStats:
    records_read: int = 0
    records_filtered_out: int = 0
    records_delivered: int = 0
    invocations: int = 0
    function_errors: int = 0
    partial_failures: int = 0
    retries: int = 0
    sent_to_on_failure: int = 0


@dataclass
class _Shard:
    shard_id: str
    iterator: str | None
    pending: list[dict] = field(default_factory=list)
    first_pending_at: float | None = None


class StreamPoller:
    """Kinesis or DynamoDB stream -> function, one checkpoint per shard."""

    def __init__(self, mapping: MappingSpec, topo: Topology, host: LambdaHost, client: Any, sqs: Any,
                 queue_urls: dict[str, str], stream_arn: str):
        self.mapping, self.topo, self.host, self.client, self.sqs = mapping, topo, host, client, sqs
        self.queue_urls = queue_urls
        self.stream_arn = stream_arn
        self.stats = MappingStats()
        self.shards: list[_Shard] = []

    # -- reading -------------------------------------------------------------
    def _discover(self) -> None:
        if self.mapping.kind == "kinesis":
            ids = [s["ShardId"] for s in self.client.list_shards(StreamARN=self.stream_arn)["Shards"]]
        else:
            ids = [s["ShardId"] for s in self.client.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]["Shards"]]
        known = {s.shard_id for s in self.shards}
        for shard_id in ids:
            if shard_id in known:
                continue
            if self.mapping.kind == "kinesis":
                it = self.client.get_shard_iterator(StreamARN=self.stream_arn, ShardId=shard_id,
                                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            else:
                it = self.client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id,
                                                    ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            self.shards.append(_Shard(shard_id, it))

    def _read(self, shard: _Shard) -> None:
        if shard.iterator is None:
            return
        extra = {"StreamARN": self.stream_arn} if self.mapping.kind == "kinesis" else {}
        response = self.client.get_records(ShardIterator=shard.iterator, Limit=1000, **extra)
        shard.iterator = response.get("NextShardIterator")
        for raw in response.get("Records", []):
            self.stats.records_read += 1
            record = self._event_record(shard.shard_id, raw)
            if self.mapping.filters and not any(matches(f, record) for f in self.mapping.filters):
                self.stats.records_filtered_out += 1
                continue
            if not shard.pending:
                shard.first_pending_at = time.monotonic()
            shard.pending.append(record)

    def _event_record(self, shard_id: str, raw: dict) -> dict:
        if self.mapping.kind == "kinesis":
            arrival = raw["ApproximateArrivalTimestamp"]
            return {
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": raw["PartitionKey"],
                            "sequenceNumber": raw["SequenceNumber"], "data": base64.b64encode(raw["Data"]).decode(),
                            "approximateArrivalTimestamp": arrival.timestamp() if isinstance(arrival, dt.datetime) else arrival},
                "eventSource": "aws:kinesis", "eventVersion": "1.0", "eventID": f"{shard_id}:{raw['SequenceNumber']}",
                "eventName": "aws:kinesis:record", "awsRegion": self.topo.region, "eventSourceARN": self.mapping.source_arn,
                "invokeIdentityArn": f"arn:aws:iam::{self.topo.account}:role/{self.mapping.function}",
            }
        ddb = dict(raw["dynamodb"])
        created = ddb.get("ApproximateCreationDateTime")
        if isinstance(created, dt.datetime):
            ddb["ApproximateCreationDateTime"] = int(created.timestamp())
        return {
            "eventID": raw["eventID"], "eventName": raw["eventName"], "eventVersion": raw.get("eventVersion", "1.1"),
            "eventSource": "aws:dynamodb", "awsRegion": self.topo.region, "dynamodb": ddb,
            "eventSourceARN": self.mapping.source_arn,
        }

    def _sequence(self, record: dict) -> str:
        return record["kinesis"]["sequenceNumber"] if self.mapping.kind == "kinesis" else record["dynamodb"]["SequenceNumber"]

    # -- delivering ----------------------------------------------------------
    def poll(self, flush: bool = False) -> int:
        """Read every shard and deliver the batches that are full or whose window has passed."""
        self._discover()
        delivered = 0
        for shard in self.shards:
            self._read(shard)
            while shard.pending:
                waited = time.monotonic() - (shard.first_pending_at or time.monotonic())
                if not (flush or len(shard.pending) >= self.mapping.batch_size or waited >= self.mapping.window_seconds):
                    break
                batch = shard.pending[: self.mapping.batch_size]
                shard.pending = shard.pending[len(batch):]
                shard.first_pending_at = time.monotonic() if shard.pending else None
                self._process(shard.shard_id, batch)
                delivered += len(batch)
        return delivered

    def _process(self, shard_id: str, batch: list[dict]) -> None:
        attempts = 0
        limit = self.mapping.max_retries if self.mapping.max_retries is not None and self.mapping.max_retries >= 0 else 10000
        while batch:
            failed_from = self._deliver(batch)
            if failed_from is None:
                return
            if failed_from == -1 and self.mapping.bisect and len(batch) > 1:
                # Bisect: each half gets its own attempts, so a poison record is isolated.
                half = len(batch) // 2
                self._process(shard_id, batch[:half])
                self._process(shard_id, batch[half:])
                return
            retry = batch if failed_from == -1 else batch[failed_from:]
            attempts += 1
            if attempts > limit:
                self._on_failure(shard_id, retry)
                return
            self.stats.retries += 1
            batch = retry

    def _deliver(self, batch: list[dict]) -> int | None:
        """None on success; the index to retry from on partial failure; -1 on a function error."""
        self.stats.invocations += 1
        self.stats.records_delivered += len(batch)
        try:
            response = self.host.invoke(self.mapping.function, {"Records": batch})
        except Exception:
            self.stats.function_errors += 1
            return -1
        failures = ((response or {}).get("batchItemFailures") or []) if self.mapping.report_failures else []
        if not failures:
            return None
        self.stats.partial_failures += 1
        sequences = [self._sequence(r) for r in batch]
        positions = [sequences.index(f["itemIdentifier"]) for f in failures if f.get("itemIdentifier") in sequences]
        if len(positions) != len(failures):
            return 0          # an unknown identifier fails the whole batch, as Lambda does
        return min(positions)

    def _on_failure(self, shard_id: str, records: list[dict]) -> None:
        """Send Lambda's on-failure record (metadata only, never the payload) to the destination queue."""
        self.stats.sent_to_on_failure += len(records)
        if not self.mapping.on_failure_arn:
            return
        key = "KinesisBatchInfo" if self.mapping.kind == "kinesis" else "DDBStreamBatchInfo"
        message = {
            "requestContext": {"condition": "RetryAttemptsExhausted", "functionArn": self.host.site(self.mapping.function).arn},
            key: {"shardId": shard_id, "startSequenceNumber": self._sequence(records[0]),
                  "endSequenceNumber": self._sequence(records[-1]), "batchSize": len(records),
                  "streamArn": self.mapping.source_arn},
            "timestamp": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.sqs.send_message(QueueUrl=self.queue_urls[self.mapping.on_failure_arn], MessageBody=json.dumps(message))

    @property
    def backlog(self) -> int:
        return sum(len(s.pending) for s in self.shards)


class QueuePoller:
    """SQS -> function: batches of up to ten, failed messages left to their visibility timeout and redrive."""

    def __init__(self, mapping: MappingSpec, topo: Topology, host: LambdaHost, sqs: Any, queue_url: str):
        self.mapping, self.topo, self.host, self.sqs, self.queue_url = mapping, topo, host, sqs, queue_url
        self.stats = MappingStats()

    def poll(self, flush: bool = False) -> int:
        response = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=min(10, self.mapping.batch_size),
                                            AttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0)
        messages = response.get("Messages", [])
        if not messages:
            return 0
        self.stats.records_read += len(messages)
        records = [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "md5OfBody": m.get("MD5OfBody"),
            "messageAttributes": {k: {"stringValue": v.get("StringValue"), "dataType": v.get("DataType")}
                                  for k, v in m.get("MessageAttributes", {}).items()},
            "eventSource": "aws:sqs", "eventSourceARN": self.mapping.source_arn, "awsRegion": self.topo.region,
        } for m in messages]
        self.stats.invocations += 1
        self.stats.records_delivered += len(records)
        try:
            response = self.host.invoke(self.mapping.function, {"Records": records}) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])} if self.mapping.report_failures else set()
        except Exception:
            self.stats.function_errors += 1
            return len(records)
        if failed:
            self.stats.partial_failures += 1
        done = [m for m in messages if m["MessageId"] not in failed]
        for i in range(0, len(done), 10):
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(done[i:i + 10])])
        return len(records)

    @property
    def backlog(self) -> int:
        return 0



class BucketNotificationPoller:
    """S3 event notification -> function, invoked asynchronously as S3 invokes Lambda.

    moto delivers the bucket's events (its own matching of the program's event
    types and key filter) to a tap queue; each becomes one asynchronous
    invocation with a real-shaped S3 event: `ObjectCreated:Put`, the key
    URL-encoded, size, eTag, versionId, sequencer, bucket name and ARN. On a
    function error the event is retried `max_retries` times (the program's
    FunctionEventInvokeConfig; Lambda waits about a minute, then two -- here
    `retry_delays`), then Lambda's invocation record (the event, the condition,
    the error) goes to the on-failure destination. An event older than the
    maximum event age is not invoked again either.
    """

    def __init__(self, notification: Any, config: Any, topo: Topology, host: LambdaHost, sqs: Any, s3: Any,
                 tap_url: str, queue_urls: dict[str, str], destination_sqs: Any,
                 retry_delays: tuple[float, ...] = (1.0, 2.0)):
        self.notification, self.config, self.topo, self.host = notification, config, topo, host
        self.sqs, self.s3, self.tap_url, self.queue_urls = sqs, s3, tap_url, queue_urls
        self.destination_sqs = destination_sqs
        self.retry_delays = retry_delays
        self.stats = MappingStats()
        self.failures: list[dict] = []              # invocation records sent to the on-failure destination
        self._retries: list[tuple[float, int, dict, float]] = []   # (due, attempts so far, event, first seen)
        self._sequence = 0

    @property
    def function(self) -> str:
        return self.notification.function

    def _real_shape(self, record: dict) -> dict:
        """moto's record plus what S3 puts in one: identity, request ids, versionId, sequencer."""
        s3 = record.setdefault("s3", {})
        obj = s3.setdefault("object", {})
        bucket = s3.setdefault("bucket", {})
        self._sequence += 1
        obj.setdefault("sequencer", f"{int(time.time() * 1000):012X}{self._sequence:04X}")
        if "versionId" not in obj:
            try:
                from urllib.parse import unquote_plus

                head = self.s3.head_object(Bucket=bucket.get("name"), Key=unquote_plus(obj.get("key", "")))
                if head.get("VersionId") and head["VersionId"] != "null":
                    obj["versionId"] = head["VersionId"]
            except Exception:  # noqa: BLE001 -- gone already: S3 would still have sent the event
                pass
        bucket.setdefault("ownerIdentity", {"principalId": "LOCALOWNER"})
        record.setdefault("userIdentity", {"principalId": "AWS:LOCAL"})
        record.setdefault("requestParameters", {"sourceIPAddress": "127.0.0.1"})
        record.setdefault("responseElements", {"x-amz-request-id": f"{self._sequence:016X}",
                                               "x-amz-id-2": "local"})
        return record

    def poll(self, flush: bool = False) -> int:
        moved = 0
        now = time.monotonic()
        due = [r for r in self._retries if flush or r[0] <= now]
        self._retries = [r for r in self._retries if r not in due]
        for _, attempts, event, first_seen in due:
            self._attempt(event, attempts, first_seen)
            moved += 1
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.tap_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return moved
            for message in messages:
                body = json.loads(message["Body"])
                self.sqs.delete_message(QueueUrl=self.tap_url, ReceiptHandle=message["ReceiptHandle"])
                if body.get("Event") == "s3:TestEvent":
                    continue        # S3 sends it to queues when configured; Lambda never sees one
                for record in body.get("Records", []):
                    self.stats.records_read += 1
                    # S3 sends one record per event notification
                    self._attempt({"Records": [self._real_shape(record)]}, 0, time.time())
                    moved += 1

    def _attempt(self, event: dict, attempts: int, first_seen: float) -> None:
        if self.config is not None and time.time() - first_seen > self.config.max_event_age:
            self._on_failure(event, attempts, "EventAgeExceeded", None)
            return
        self.stats.invocations += 1
        self.stats.records_delivered += 1
        try:
            self.host.invoke(self.function, event)
            return
        except Exception as exc:  # a function error: Lambda retries the event
            self.stats.function_errors += 1
            error = exc
        attempts += 1
        limit = self.config.max_retries if self.config else 2
        if attempts <= limit:
            self.stats.retries += 1
            delay = self.retry_delays[min(attempts - 1, len(self.retry_delays) - 1)] if self.retry_delays else 0
            self._retries.append((time.monotonic() + delay, attempts, event, first_seen))
            return
        self._on_failure(event, attempts, "RetriesExhausted", error)

    def _on_failure(self, event: dict, attempts: int, condition: str, error: Exception | None) -> None:
        self.stats.sent_to_on_failure += 1
        record = {
            "version": "1.0", "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "requestContext": {"requestId": str(uuid.uuid4()), "functionArn": f"{self.host.site(self.function).arn}:$LATEST",
                               "condition": condition, "approximateInvokeCount": attempts},
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
            "responsePayload": ({"errorMessage": str(error)[:1000], "errorType": type(error).__name__}
                                if error is not None else None),
        }
        self.failures.append(record)
        destination = self.config.on_failure_arn if self.config else None
        if destination and destination in self.queue_urls:
            self.destination_sqs.send_message(QueueUrl=self.queue_urls[destination], MessageBody=json.dumps(record))

    @property
    def backlog(self) -> int:
        return len(self._retries)
