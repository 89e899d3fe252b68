"""The local emulation: the program's own resources on moto, the real handlers wired as AWS wires them."""

import json
import urllib.error
import urllib.request

import pytest

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
    # GIVEN the three examples of docs/handlers.md, two by the API and one by Kinesis
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


def label(em, tid, body, key=None, method="POST"):
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    request = urllib.request.Request(em.url(em.function("label").name, transaction_id=tid), data=data, method=method,
                                     headers={"x-api-key": key if key is not None else em.api.api_key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def items(em):
    table = next(t.name for t in em.topo.tables if t.stream_view_type)
    return {i["transaction_id"]["S"]: i for i in em.client("dynamodb").scan(TableName=table)["Items"]
            if i.get("record_type", {}).get("S") == "transaction"}


def features(em):
    table = next(t.name for t in em.topo.tables if t.name.startswith("fraud-features"))
    return {i["entity"]["S"]: i for i in em.client("dynamodb").scan(TableName=table)["Items"]}


def test_functions_routes_and_triggers_are_the_programs(em):
    assert {f.key for f in em.topo.functions.values()} == {
        "api", "ingest", "detection", "notification", "review", "label", "label-ingest"}
    assert [(r.method, r.path, r.function) for r in em.topo.api.routes] == [
        ("POST", "/transactions", em.function("api").name),
        ("POST", "/transactions/{transaction_id}/label", em.function("label").name)]
    (notification,) = em.topo.notifications
    assert (notification.function, notification.prefix) == (em.function("label-ingest").name, "labels/")
    assert em.topo.async_configs[notification.function].max_retries == 2
    assert any(t.name.startswith("fraud-features") and t.hash_key == "entity" for t in em.topo.tables)


def test_a_label_posted_through_the_api_is_stored_and_updates_the_feature_items(em):
    # GIVEN a stored, scored transaction
    status, _ = post(em, {"amount": 42.0, "merchant": "Label Test Shop", "card_number": "4000 0000 0000 0002",
                          "location": "Leeds, UK", "transaction_id": "t-label-1"})
    assert status == 201 and em.drain(idle_seconds=1.0, timeout=60)
    # WHEN the gateway checks key, route and the label model, then the label function records it
    assert label(em, "t-label-1", {"label": "fraud", "source": "analyst"}, key="wrong")[0] == 403
    assert label(em, "t-label-1", {"label": "fraud", "source": "analyst"}, method="PUT")[0] == 403
    status, body = label(em, "t-label-1", {"label": "fraud", "source": "analyst", "labelled_at": 1})
    assert (status, body["error"]) == (400, "Invalid request body")
    assert label(em, "ghost-1", {"label": "fraud", "source": "analyst"})[0] == 404
    status, body = label(em, "t-label-1", {"label": "fraud", "source": "chargeback", "note": "case 7"})
    assert status == 201 and body["label"] == "fraud" and body["previous_label"] is None
    assert label(em, "t-label-1", {"label": "fraud", "source": "chargeback"})[0] == 200
    # THEN the item carries the label, and the card's and the merchant's feature items count it
    item = items(em)["t-label-1"]
    assert (item["label"]["S"], item["label_source"]["S"], int(item["labelled_at"]["N"])) == (
        "fraud", "chargeback", body["labelled_at"])
    feats = features(em)
    card = next(f for k, f in feats.items() if k.startswith("card#") and "frauds" in f)
    assert card["frauds"]["SS"] == [f"{body['labelled_at']}#t-label-1"]
    merchant = feats["merchant#label test shop"]
    assert sum(int(v["N"]) for a, v in merchant.items() if a.startswith("f_")) == 1


def test_a_labels_csv_put_under_labels_is_ingested_and_bad_rows_quarantined(em):
    # GIVEN two stored transactions
    for tid in ("t-bulk-1", "t-bulk-2"):
        assert post(em, {"amount": 12.5, "merchant": "Bulk Shop", "card_number": "4000 0000 0000 0010",
                         "location": "Leeds, UK", "transaction_id": tid})[0] == 201
    ts = int(items(em)["t-bulk-1"]["timestamp"]["N"])
    # WHEN a chargeback CSV lands under labels/ (a good row with its date, a bad label, an unknown id, a bad date)
    csv = ("transaction_id,label,source,labelled_at\n"
           f"t-bulk-1,fraud,chargeback,{ts}\n"
           "t-bulk-2,stolen,chargeback,\n"
           "t-nobody,fraud,chargeback,\n"
           f"t-bulk-2,fraud,chargeback,{ts - 60_000}\n")
    em.client("s3").put_object(Bucket=em.archive_bucket, Key="labels/2026/chargebacks 1.csv", Body=csv.encode())
    assert em.drain(idle_seconds=1.0, timeout=60)
    # THEN label-ingest ran once on the S3 event, recorded the good row at its chargeback date
    ingest = em.function("label-ingest").name
    assert (em.host.invocations[ingest], em.host.errors[ingest]) == (1, 0)
    stored = items(em)
    assert (stored["t-bulk-1"]["label"]["S"], int(stored["t-bulk-1"]["labelled_at"]["N"])) == ("fraud", ts)
    assert "label" not in stored["t-bulk-2"]
    # AND quarantined the others by line, under rejected/labels/
    body = em.client("s3").get_object(Bucket=em.archive_bucket, Key="rejected/labels/2026/chargebacks 1.csv.json")
    document = json.loads(body["Body"].read())
    assert document["source_key"] == "labels/2026/chargebacks 1.csv"
    assert [(r["line"], r["reasons"][0]["field"]) for r in document["records"]] == [
        (3, "label"), (4, "transaction_id"), (5, "labelled_at")]
    failures = next(q for q in em.topo.queues if q.name.startswith("fraud-label-ingest-failures"))
    assert em.queue_depth(failures.arn) == 0


def test_the_shipped_model_is_uploaded_and_scores_detection(em):
    # GIVEN the model parameter the program seeded, naming the object the program uploads
    ssm = em.client("ssm")
    param = em.function("detection").environment["MODEL_PARAM"]
    key = ssm.get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"]
    obj = em.client("s3").get_object(Bucket=em.archive_bucket, Key=key)
    assert key.startswith("models/default-") and obj["ServerSideEncryption"] == "aws:kms"
    version = json.loads(obj["Body"].read())["version"]
    # THEN every decision the run made carries that model's version
    scored = [i for i in items(em).values() if "decision" in i]
    assert scored and {i["model_version"]["S"] for i in scored} == {version}


def test_every_handler_call_is_allowed_by_its_generated_policy(em):
    report = em.privilege_report()
    assert report.denied == []
    assert any(c.action == "dynamodb:PutItem" for c in report.used[em.function("api").name])
    detection = {c.action for c in report.used[em.function("detection").name]}
    assert {"events:PutEvents", "s3:GetObject", "dynamodb:BatchGetItem", "ssm:GetParameter"} <= detection
    assert {"dynamodb:UpdateItem", "events:PutEvents"} <= {c.action for c in report.used[em.function("label").name]}
    assert {"s3:GetObject", "s3:PutObject"} <= {c.action for c in report.used[em.function("label-ingest").name]}


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
