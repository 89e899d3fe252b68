"""Test helpers: the moto resources, events as AWS delivers them, and readers for what the pipeline emitted."""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import boto3
from boto3.dynamodb.types import TypeDeserializer

from handlers import clients

CARD_KEY = "k" * 8 + "0123456789abcdef0123456789abcdef"  # 40 characters
ACCOUNT = "123456789012"
REGION = "us-east-1"
#: The detection event source mapping's filter (the component sets the same pattern).
def passes_detection_filter(record: dict[str, Any]) -> bool:
    image = (record.get("dynamodb") or {}).get("NewImage") or {}
    return record.get("eventName") == "INSERT" and image.get("record_type") == {"S": "transaction"}


@dataclass
class LambdaContext:
    function_name: str = "fraud-handler-test"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:fraud-handler-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


class Aws:
    """The moto account the handlers run against, with test-side clients (not counted as handler calls)."""

    def __init__(self, session: boto3.session.Session) -> None:
        self.session = session
        self.ddb = session.client("dynamodb")
        self.streams = session.client("dynamodbstreams")
        self.sqs = session.client("sqs")
        self.s3 = session.client("s3")
        self.sns = session.client("sns")
        self.ssm = session.client("ssm")
        self.events = session.client("events")
        self.table = os.environ["TABLE_NAME"]
        self.features_table = os.environ["FEATURES_TABLE_NAME"]
        self.bucket = os.environ["ARCHIVE_BUCKET"]
        self._seen_stream: set[str] = set()
        self._seq = itertools.count(49_600_000_000_000_000_000_000_000_000_000_000_000_000_000_000)

    # ------------------------------------------------------------------ setup
    def create_all(self) -> None:
        self.ddb.create_table(
            TableName=self.table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "transaction_id", "AttributeType": "S"},
                                  {"AttributeName": "timestamp", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "transaction_id", "KeyType": "HASH"},
                       {"AttributeName": "timestamp", "KeyType": "RANGE"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
        self.ddb.create_table(
            TableName=self.features_table, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "entity", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "entity", "KeyType": "HASH"}])
        self.alert_queue_url = self.sqs.create_queue(QueueName="fraud-alerts-test")["QueueUrl"]
        assert self.alert_queue_url.endswith("/fraud-alerts-test")
        self.s3.create_bucket(Bucket=self.bucket)
        # capture: decisions on the bus and messages on the topic land in SQS queues the tests read
        self.events_capture_url = self.sqs.create_queue(QueueName="events-capture")["QueueUrl"]
        self.sns_capture_url = self.sqs.create_queue(QueueName="sns-capture")["QueueUrl"]
        self.events.create_event_bus(Name=os.environ["EVENT_BUS_NAME"])
        self.events.put_rule(Name="all-decisions", EventBusName=os.environ["EVENT_BUS_NAME"],
                             EventPattern=json.dumps({"source": ["fraud-pipeline.detection"]}))
        self.events.put_targets(Rule="all-decisions", EventBusName=os.environ["EVENT_BUS_NAME"], Targets=[
            {"Id": "capture", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:events-capture"}])
        topic = self.sns.create_topic(Name="fraud-alerts-test")["TopicArn"]
        assert topic == os.environ["ALERT_TOPIC_ARN"]
        self.sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=f"arn:aws:sqs:{REGION}:{ACCOUNT}:sns-capture")
        self.ssm.put_parameter(Name=os.environ["CARD_TOKEN_KEY_PARAM"], Type="SecureString", Value=CARD_KEY)
        self.ssm.put_parameter(Name=os.environ["ML_ENDPOINT_PARAM"], Type="String", Value="none")
        self.ssm.put_parameter(Name=os.environ["MODEL_PARAM"], Type="SecureString", Value="none")
        self.ssm.put_parameter(Name=os.environ["MODEL_SHADOW_PARAM"], Type="SecureString", Value="none")
        self.ssm.put_parameter(Name=os.environ["TEMPLATES_PARAM"], Type="String", Value=json.dumps({
            "subject": "Fraud alert: {decision} {amount} {currency} at {merchant}",
            "body": "Transaction {transaction_id}: {decision} ({score}/100) for {amount} {currency} at {merchant}, "
                    "card {card}. Reasons: {reasons}."}))

    # ------------------------------------------------------------------ events as AWS delivers them
    @staticmethod
    def api_event(body: Any, *, method: str = "POST", raw: bool = False, base64_encoded: bool = False) -> dict[str, Any]:
        text = body if raw else json.dumps(body)
        if base64_encoded:
            text = base64.b64encode(text.encode()).decode()
        return {
            "resource": "/transactions", "path": "/transactions", "httpMethod": method,
            "headers": {"Content-Type": "application/json", "x-api-key": "redacted"},
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "v1", "httpMethod": method,
                               "identity": {"apiKeyId": "test"}},
            "body": text, "isBase64Encoded": base64_encoded,
        }

    def kinesis_event(self, payloads: list[Any], *, raw: bool = False, arrival: float | None = None) -> dict[str, Any]:
        records = []
        for payload in payloads:
            data = payload if raw else json.dumps(payload).encode()
            seq = str(next(self._seq))
            records.append({
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": "pk-1", "sequenceNumber": seq,
                            "data": base64.b64encode(data).decode() if isinstance(data, bytes) else data,
                            "approximateArrivalTimestamp": arrival if arrival is not None else time.time()},
                "eventSource": "aws:kinesis", "eventVersion": "1.0",
                "eventID": f"shardId-000000000000:{seq}", "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/ingest",
                "awsRegion": REGION, "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/fraud-test",
            })
        return {"Records": records}

    def new_stream_records(self, *, filtered: bool = True) -> list[dict[str, Any]]:
        """Records written to the table's DynamoDB stream since the last call, as Lambda delivers them."""
        arn = self.ddb.describe_table(TableName=self.table)["Table"]["LatestStreamArn"]
        out = []
        for shard in self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                                       ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
            while iterator:
                page = self.streams.get_records(ShardIterator=iterator, Limit=1000)
                for record in page["Records"]:
                    if record["eventID"] in self._seen_stream:
                        continue
                    self._seen_stream.add(record["eventID"])
                    record = json.loads(json.dumps(record, default=str))  # as the Lambda service sends JSON
                    record.update(eventSourceARN=arn, awsRegion=REGION)
                    out.append(record)
                if not page["Records"]:
                    break
                iterator = page.get("NextShardIterator")
        return [r for r in out if passes_detection_filter(r)] if filtered else out

    @staticmethod
    def stream_event(records: list[dict[str, Any]]) -> dict[str, Any]:
        return {"Records": records}

    # ------------------------------------------------------------------ what was emitted
    def drain(self, queue_url: str) -> list[dict[str, Any]]:
        messages = []
        while True:
            page = self.sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                            MessageAttributeNames=["All"], AttributeNames=["All"])
            batch = page.get("Messages", [])
            if not batch:
                return messages
            for m in batch:
                self.sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            messages.extend(batch)

    def sqs_event(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        """An SQS event for the notification handler from received messages."""
        return {"Records": [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}),
            "messageAttributes": {k: {"stringValue": v.get("StringValue"), "dataType": v["DataType"]}
                                  for k, v in m.get("MessageAttributes", {}).items()},
            "md5OfBody": m.get("MD5OfBody", ""), "eventSource": "aws:sqs",
            "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:fraud-alerts-test", "awsRegion": REGION,
        } for m in messages]}

    def alert_messages(self) -> list[dict[str, Any]]:
        return self.drain(self.alert_queue_url)

    def decision_events(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.drain(self.events_capture_url)]

    def sns_notifications(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.drain(self.sns_capture_url)]

    def items(self) -> list[dict[str, Any]]:
        deserializer = TypeDeserializer()
        items, kwargs = [], {}
        while True:
            page = self.ddb.scan(TableName=self.table, ConsistentRead=True, **kwargs)
            items.extend({k: deserializer.deserialize(v) for k, v in i.items()} for i in page["Items"])
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def transactions(self) -> list[dict[str, Any]]:
        return [i for i in self.items() if i.get("record_type") == "transaction"]

    def raw_dump(self) -> str:
        """Everything at rest in the account that the pipeline writes: table items, feature items, objects."""
        parts = [json.dumps(self.ddb.scan(TableName=self.table)["Items"]),
                 json.dumps(self.ddb.scan(TableName=self.features_table)["Items"])]
        for obj in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []):
            parts.append(self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read().decode())
        return "\n".join(parts)

    def objects(self, prefix: str = "") -> dict[str, Any]:
        out = {}
        for obj in self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix).get("Contents", []):
            out[obj["Key"]] = json.loads(self.s3.get_object(Bucket=self.bucket, Key=obj["Key"])["Body"].read())
        return out


#: Batch/transaction APIs and the IAM action each of their entries is authorised as.
_ENTRY_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "ConditionCheck": "ConditionCheckItem", "Delete": "DeleteItem"}
_IAM_ACTION = {("sqs", "SendMessageBatch"): "sqs:SendMessage", ("sns", "PublishBatch"): "sns:Publish",
               ("sagemaker-runtime", "InvokeEndpoint"): "sagemaker:InvokeEndpoint"}


def iam_view(service: str, operation: str, params: dict[str, Any]) -> set[tuple[str, str]]:
    """The (IAM action, resource) pairs a call is authorised against."""
    if service == "dynamodb" and operation == "TransactWriteItems":
        return {(f"dynamodb:{_ENTRY_ACTIONS[kind]}", f"table/{body['TableName']}")
                for item in params["TransactItems"] for kind, body in item.items()}
    if service == "dynamodb" and operation == "BatchGetItem":
        return {("dynamodb:BatchGetItem", f"table/{t}") for t in params["RequestItems"]}
    action = _IAM_ACTION.get((service, operation), f"{service}:{operation}")
    if service == "dynamodb":
        return {(action, f"table/{params['TableName']}")}
    if service == "s3":
        return {(action, f"{params['Bucket']}/{params['Key']}")}
    if service == "sqs":
        return {(action, params["QueueUrl"].rsplit("/", 1)[-1])}
    if service == "sns":
        return {(action, params["TopicArn"])}
    if service == "events":
        return {(action, f"event-bus/{e['EventBusName']}") for e in params["Entries"]}
    if service == "ssm":
        return {(action, f"parameter{params['Name']}")}
    if service == "sagemaker-runtime":
        return {(action, f"endpoint/{params['EndpointName']}")}
    return {(action, "?")}


class CallCounter:
    """Records AWS API calls made through boto3's default session (the handlers' clients)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.authorised: set[tuple[str, str]] = set()
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", self._hook)

    def _hook(self, model: Any, params: Any, **_: Any) -> None:
        service = model.service_model.service_name
        self.calls.append((service, model.name))
        self.authorised |= iam_view(service, model.name, params)

    def reset(self) -> None:
        self.calls.clear()
        self.authorised.clear()

    def close(self) -> None:
        boto3.DEFAULT_SESSION.events.unregister("before-parameter-build", self._hook)


def realistic_traffic(n: int, seed: int = 7) -> list[dict]:
    """Mostly everyday daytime purchases; ~4 % suspicious: big amounts in risky places (block) or
    elevated amounts with a location mismatch (review)."""
    rng = random.Random(seed)
    cards = [f"4{rng.randrange(10**14, 10**15)}{rng.randrange(10)}" for _ in range(int(n * 0.8))]
    merchants = ["Corner Bakery", "Fuel Stop", "Grocer", "Book Shop", "Pharmacy", "Cinema", "Airline"]
    out = []
    for i in range(n):
        kind = rng.choices(["plain", "block", "review"], weights=[96, 2, 2])[0]
        txn = {
            "transaction_id": f"rt-{i:05d}",
            "amount": round(rng.lognormvariate(3.5, 1.0) + 50, 2),
            "merchant": rng.choice(merchants),
            "card_number": rng.choice(cards),
            "location": rng.choice(["Austin, USA", "Leeds, UK", "Lyon, France"]),
            "timestamp": int(time.time() * 1000) - rng.randrange(0, 3_600_000),
            "hour": rng.randrange(7, 22),
        }
        if kind == "block":
            txn.update(amount=round(rng.uniform(12000, 40000), 2), location="Lagos, Nigeria",
                       merchant=rng.choice(["Unknown Store", "Jeweller"]))
        elif kind == "review":
            txn.update(amount=round(rng.uniform(5200, 9000), 2), location_mismatch=True)
        out.append(txn)
    return out


class FakeBody(io.BytesIO):
    pass


def fake_endpoint(score):
    """sagemaker-runtime cannot host a model in moto: answer InvokeEndpoint in the client with `score`."""
    seen = []

    def respond(model, params, **kwargs):
        if model.name != "InvokeEndpoint":
            return None
        seen.append(json.loads(params["body"]))
        if isinstance(score, Exception):
            raise score
        instances = seen[-1]["instances"]
        return (type("R", (), {"status_code": 200, "headers": {}})(),
                {"Body": FakeBody(json.dumps({"predictions": [score] * len(instances)}).encode()),
                 "ContentType": "application/json", "ResponseMetadata": {"HTTPStatusCode": 200}})

    clients.client("sagemaker-runtime").meta.events.register("before-call", respond)
    return seen


# --------------------------------------------------------------------------- labels (helpers for the label tests)
def label_api_event(transaction_id: str | None, body: Any, *, method: str = "POST", raw: bool = False,
                    base64_encoded: bool = False) -> dict[str, Any]:
    """POST /transactions/{transaction_id}/label as API Gateway's REST proxy integration delivers it."""
    event = Aws.api_event(body, method=method, raw=raw, base64_encoded=base64_encoded)
    event.update(resource="/transactions/{transaction_id}/label",
                 path=f"/transactions/{transaction_id}/label",
                 pathParameters=None if transaction_id is None else {"transaction_id": transaction_id})
    return event


def s3_event(bucket: str, *keys: str, sizes: list[int] | None = None,
             event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    """An S3 notification for `keys`, URL-encoded as S3 sends them (spaces as '+')."""
    from urllib.parse import quote_plus

    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": REGION, "eventName": event_name,
        "eventTime": "2025-06-01T12:00:00.000Z",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "labels",
               "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
               "object": {"key": quote_plus(key, safe="/"), "size": (sizes or [0] * len(keys))[i],
                          "sequencer": f"{i:016X}"}},
    } for i, key in enumerate(keys)]}


class LabelEventCapture:
    """FraudLabel events on the bus, captured in their own SQS queue (a second rule on the bus)."""

    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.url = aws.sqs.create_queue(QueueName="label-events-capture")["QueueUrl"]
        bus = os.environ["EVENT_BUS_NAME"]
        aws.events.put_rule(Name="all-labels", EventBusName=bus,
                            EventPattern=json.dumps({"source": ["fraud-pipeline.labels"]}))
        aws.events.put_targets(Rule="all-labels", EventBusName=bus, Targets=[
            {"Id": "capture-labels", "Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:label-events-capture"}])

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(m["Body"]) for m in self.aws.drain(self.url)]


def luhn_complete(partial: str) -> str:
    """`partial` digits with the Luhn check digit appended (a card number PCI scanners would flag)."""
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return partial + str((10 - total % 10) % 10)


def store_transactions(aws: Aws, ctx: Any, bodies: list[dict[str, Any]]) -> None:
    """Record transactions through the stream ingest (one Kinesis batch), as producers would."""
    from handlers import stream_ingest

    assert stream_ingest.handler(aws.kinesis_event(bodies), ctx) == {"batchItemFailures": []}
