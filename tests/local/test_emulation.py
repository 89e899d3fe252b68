"""The local emulation: the program's own resources on moto, the real handlers wired as AWS wires them."""

import json
import urllib.error
import urllib.request

import pytest

from fraud_pipeline.evaluation import stack_config
from fraud_pipeline.local import demo
from fraud_pipeline.local.emulator import Emulator
from fraud_pipeline.local.iam import Call, check
from fraud_pipeline.local.traffic import generate


@pytest.fixture(scope="module")
def em():
    emulator = Emulator("dev")
    emulator.start_api()
    yield emulator
    emulator.close()


def post(em, body, key=None):
    url = f"http://127.0.0.1:{em._http.server_address[1]}/{em.topo.api.stage}{em.topo.api.path}"
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"x-api-key": key if key is not None else em.api.api_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_resources_are_the_programs(em):
    # GIVEN the dev stack materialised WHEN listing moto's resources THEN they carry the program's names
    names = {t.name for t in em.topo.tables}
    assert set(em.client("dynamodb").list_tables()["TableNames"]) == names
    stream = em.client("kinesis").describe_stream_summary(StreamName=em.topo.streams[0]["name"])["StreamDescriptionSummary"]
    assert stream["OpenShardCount"] == 1 and stream["EncryptionType"] == "KMS"
    alerts = next(q for q in em.topo.queues if q.name.startswith("fraud-alerts-dev"))
    attrs = em.sqs.get_queue_attributes(QueueUrl=em.resources.queue_urls[alerts.arn], AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "360"
    assert json.loads(attrs["RedrivePolicy"])["deadLetterTargetArn"] == alerts.dead_letter_arn
    detection = em.function("detection")
    assert detection.environment["TABLE_NAME"] == next(t.name for t in em.topo.tables if t.stream_view_type)


def test_api_checks_key_and_request_model_then_invokes_the_handler(em):
    assert post(em, {"amount": 10.5, "merchant": "Cafe", "card_number": "4111111111111111", "location": "Austin, USA"},
                key="wrong")[0] == 403
    status, body = post(em, {"amount": "ten"})
    assert status == 400 and body["error"] == "Invalid request body"
    status, body = post(em, {"amount": 125.50, "merchant": "Corner Cafe", "card_number": "4111 1111 1111 1111",
                             "location": "New York, USA", "hour": 12, "transaction_id": "t-api-1"})
    assert (status, body["transaction_id"]) == (201, "t-api-1")
    status, again = post(em, {"amount": 125.50, "merchant": "Corner Cafe", "card_number": "4111 1111 1111 1111",
                              "location": "New York, USA", "hour": 12, "transaction_id": "t-api-1"})
    assert (status, again["timestamp"]) == (200, body["timestamp"])


def test_readme_examples_flow_through_the_whole_pipeline(em):
    # GIVEN the README's three examples, two by the API and one by Kinesis
    status, blocked = post(em, {"amount": 15000.00, "merchant": "Unknown Store", "card_number": "1234567890123456",
                                "location": "Nigeria", "transaction_id": "readme-block"})
    assert status == 201
    em.client("kinesis").put_record(StreamName=em.topo.streams[0]["name"], PartitionKey="p", Data=json.dumps(
        {"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": True, "velocity_flag": False}).encode())
    # WHEN the mappings, rule and workflow run until settled
    assert em.drain(idle_seconds=1.5, timeout=90)
    # THEN decisions, alerts and the review workflow are as documented
    table = next(t.name for t in em.topo.tables if t.stream_view_type)
    items = {i["transaction_id"]["S"]: i for i in em.client("dynamodb").scan(TableName=table)["Items"]
             if i.get("record_type", {}).get("S") == "transaction"}
    assert items["readme-block"]["decision"]["S"] == "block"
    assert {r["S"] for r in items["readme-block"]["reasons"]["L"]} >= {"HIGH_AMOUNT", "HIGH_RISK_LOCATION"}
    assert items["test-123"]["decision"]["S"] == "review"
    assert items["t-api-1"]["decision"]["S"] == "approve"
    detection_alerts = [a for a in em.alerts if a.attributes.get("stage") != "review" and a.topic.startswith("fraud-alerts")]
    assert sorted(a.attributes["decision"] for a in detection_alerts) == ["block", "review"]
    assert all("1234567890123456" not in a.message and "3456" in a.message or "test-123" in a.message
               for a in detection_alerts)
    assert sorted(r.transaction_id for r in em.reviews) == ["readme-block", "test-123"]
    assert all(r.status == "SUCCEEDED" and r.path == ["Validate", "Analyze", "Store", "Notify"] for r in em.reviews)
    archive = em.client("s3").list_objects_v2(Bucket=em.topo.buckets[0], Prefix="high-risk/")
    assert [o["Key"].rsplit("/", 1)[1] for o in archive.get("Contents", [])] == ["readme-block.json"]


def test_every_handler_call_is_allowed_by_its_generated_policy(em):
    report = em.privilege_report()
    assert report.denied == []
    assert any(c.action == "dynamodb:PutItem" for c in report.used[em.function("api").name])
    assert any(c.action == "events:PutEvents" for c in report.used[em.function("detection").name])


def test_a_call_outside_the_policy_is_reported():
    policy = {"Statement": [{"Effect": "Allow", "Action": ["sqs:SendMessage"], "Resource": ["arn:aws:sqs:us-east-1:1:q"]}]}
    calls = [Call("fn", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q"),
             Call("fn", "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:other")]
    report = check(calls, {"fn": policy})
    assert report.denied == [calls[1]]


def test_card_scan_catches_a_leak():
    traffic = generate(5, seed=1)
    card = next(iter(traffic.card_numbers))
    sources = [("stored item", json.dumps({"card_last4": card[-4:]})), ("log line", f"charging card {card}")]
    hits = demo.find_card_numbers(traffic.card_numbers, sources)
    assert len(hits) == 1 and hits[0].startswith("log line: charging card <card ...") and card not in hits[0]
