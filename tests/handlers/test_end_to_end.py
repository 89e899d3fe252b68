"""The whole pipeline on moto: API -> table -> real stream record -> detection -> alert -> notification -> SNS."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from handlers import api_handler, fraud_detection, notification_handler, review_workflow, stream_ingest

CARD = "4111 1111 1111 1111"
CARD_DIGITS = "4111111111111111"


def noon_today_ms() -> int:
    now = datetime.now(UTC)
    return int(now.replace(hour=12, minute=0, second=0, microsecond=0).timestamp() * 1000) - (86_400_000 if now.hour < 12 else 0)


def test_blocked_transaction_flows_from_api_to_sns(aws, ctx, log_lines):
    # GIVEN a high-value purchase at a blocked merchant in a high-risk country, posted to the API
    body = {"amount": 15000.00, "merchant": "Unknown Store", "card_number": CARD, "location": "Lagos, Nigeria",
            "transaction_id": "e2e-block-1", "currency": "USD"}
    response = api_handler.handler(aws.api_event(body), ctx)
    assert response["statusCode"] == 201, response["body"]
    created = json.loads(response["body"])

    # WHEN its real stream record is scored and the alert it produces is handed to the notification handler
    records = aws.new_stream_records()
    assert [r["dynamodb"]["NewImage"]["transaction_id"]["S"] for r in records] == ["e2e-block-1"]
    assert fraud_detection.handler(aws.stream_event(records), ctx) == {"batchItemFailures": []}
    alerts = aws.alert_messages()
    assert notification_handler.handler(aws.sqs_event(alerts), ctx) == {"batchItemFailures": []}

    # THEN the decision is written back beside the ingest attributes
    (item,) = aws.transactions()
    assert item["decision"] == "block" and item["score"] == 100
    assert {"HIGH_AMOUNT", "HIGH_RISK_LOCATION", "BLOCKED_MERCHANT"} <= set(item["reasons"])
    assert item["card_last4"] == "1111" and len(item["card_token"]) == 64 and item["source"] == "api"
    assert int(item["timestamp"]) == created["timestamp"]
    # AND exactly one alert was queued with the documented fields
    (alert,) = [json.loads(m["Body"]) for m in alerts]
    assert {k: alert[k] for k in ("transaction_id", "timestamp", "amount", "currency", "merchant", "card_last4",
                                  "score", "decision")} == {
        "transaction_id": "e2e-block-1", "timestamp": created["timestamp"], "amount": 15000, "currency": "USD",
        "merchant": "Unknown Store", "card_last4": "1111", "score": 100, "decision": "block"}
    assert set(alert["reasons"]) >= {"HIGH_AMOUNT", "HIGH_RISK_LOCATION"}
    # AND the high-risk transaction is archived under its date
    day = datetime.fromtimestamp(created["timestamp"] / 1000, tz=UTC)
    archived = aws.objects("high-risk/")
    assert list(archived) == [f"high-risk/{day:%Y/%m/%d}/e2e-block-1.json"]
    # AND the decision went to the bus with a numeric amount
    (event,) = aws.decision_events()
    assert event["source"] == "fraud-pipeline.detection" and event["detail-type"] == "FraudDecision"
    assert event["detail"]["amount"] == 15000 and isinstance(event["detail"]["amount"], (int, float))
    # AND one SNS message reached the subscription, with masked card, attributes and subject rules
    (note,) = aws.sns_notifications()
    assert note["Subject"] == "Fraud alert: BLOCK 15,000.00 USD at Unknown Store"
    assert "**** 1111" in note["Message"] and "e2e-block-1" in note["Message"] and "HIGH_AMOUNT" in note["Message"]
    assert note["MessageAttributes"]["decision"] == {"Type": "String", "Value": "block"}
    assert note["MessageAttributes"]["severity"] == {"Type": "String", "Value": "high"}
    assert "alert_sent_at" in aws.transactions()[0]
    # AND the card number is nowhere: items, objects, messages, events, log lines
    everything = "\n".join([aws.raw_dump(), json.dumps(alerts), json.dumps(event), json.dumps(note), *log_lines()])
    assert CARD_DIGITS not in everything and CARD not in everything
    assert log_lines(), "the handlers logged nothing; the log scan would prove nothing"


def test_readme_examples_behave_as_documented(aws, ctx):
    # GIVEN the three examples of docs/handlers.md: the blocked API call, the minimal stream record, an ordinary purchase
    blocked = {"amount": 15000.00, "merchant": "Unknown Store", "card_number": "1234567890123456", "location": "Nigeria"}
    ordinary = {"amount": 125.50, "merchant": "Corner Bakery", "card_number": "5500 0000 0000 0004",
                "location": "New York, USA", "timestamp": noon_today_ms()}
    minimal = {"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": True, "velocity_flag": False}
    blocked_id = json.loads(api_handler.handler(aws.api_event(blocked), ctx)["body"])["transaction_id"]
    ordinary_id = json.loads(api_handler.handler(aws.api_event(ordinary), ctx)["body"])["transaction_id"]
    assert stream_ingest.handler(aws.kinesis_event([minimal]), ctx) == {"batchItemFailures": []}

    # WHEN detection scores their stream records
    assert fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx) == {"batchItemFailures": []}

    # THEN: blocked with HIGH_AMOUNT and HIGH_RISK_LOCATION; review for the stream record; approve at noon
    by_id = {i["transaction_id"]: i for i in aws.transactions()}
    assert by_id[blocked_id]["decision"] == "block"
    assert {"HIGH_AMOUNT", "HIGH_RISK_LOCATION"} <= set(by_id[blocked_id]["reasons"])
    assert by_id["test-123"]["decision"] == "review"
    assert by_id["test-123"]["reasons"] == ["ELEVATED_AMOUNT", "ODD_HOUR", "LOCATION_MISMATCH"]
    assert by_id["test-123"]["score"] == 60
    assert by_id[ordinary_id]["decision"] == "approve" and by_id[ordinary_id]["reasons"] == []
    assert by_id[ordinary_id]["hour"] == 12
    # AND only the two flagged ones were alerted
    assert sorted(json.loads(m["Body"])["transaction_id"] for m in aws.alert_messages()) == sorted([blocked_id, "test-123"])


def test_review_workflow_runs_on_the_decision_event(aws, ctx):
    # GIVEN a scored 15,000 transaction and the FraudDecision event the bus delivered for it
    body = {"amount": 15000, "merchant": "Jeweller", "card_number": CARD, "location": "Tehran, Iran",
            "transaction_id": "wf-1", "location_mismatch": True}
    api_handler.handler(aws.api_event(body), ctx)
    fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx)
    (event,) = aws.decision_events()

    # WHEN the state machine runs validate -> analyze -> store -> notify, each output feeding the next
    state = event
    for task in ("validate", "analyze", "store", "notify"):
        state = review_workflow.handler({"task": task, "input": state}, ctx)
        json.dumps(state)  # Step Functions needs plain JSON between states

    # THEN the outcome is stored on the item without touching detection's attributes, and notified once
    (item,) = aws.transactions()
    assert item["review_decision"] == "block" and item["review_status"] == "reviewed"
    assert item["decision"] == "block" and item["score"] == state["analysis"]["score"]
    assert "review_notified_at" in item
    (note,) = aws.sns_notifications()
    assert note["Subject"].startswith("Fraud review: BLOCK 15,000.00 USD")
    assert note["MessageAttributes"]["stage"]["Value"] == "review"

    # AND a duplicate execution for the same event changes nothing and sends nothing
    state = event
    for task in ("validate", "analyze", "store", "notify"):
        state = review_workflow.handler({"task": task, "input": state}, ctx)
    assert state["stored"]["already_reviewed"] is True and state["notified"]["sent"] is False
    assert aws.sns_notifications() == []
    assert aws.transactions()[0]["reviewed_at"] == item["reviewed_at"]


def test_no_card_number_anywhere_on_realistic_traffic(aws, ctx, log_lines, capsys):
    # GIVEN realistic traffic through both ingest paths, some of it invalid, all the way to SNS and the review workflow
    from handler_fixtures import realistic_traffic

    traffic = realistic_traffic(60, seed=11)
    traffic[5]["amount"] = "not a number"  # quarantined with its card number removed
    traffic[6]["cvv"] = traffic[6]["card_number"]  # an unknown field that holds a card number
    cards = {t["card_number"] for t in traffic}
    for t in traffic[:20]:
        api_handler.handler(aws.api_event({k: v for k, v in t.items() if k != "hour"}), ctx)
    stream_ingest.handler(aws.kinesis_event(traffic[20:]), ctx)
    stream_ingest.handler(aws.kinesis_event([traffic[5], traffic[6]]), ctx)
    fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx)
    alerts = aws.alert_messages()
    notification_handler.handler(aws.sqs_event(alerts), ctx)
    events = aws.decision_events()
    states = []
    for event in events:
        if event["detail"]["amount"] > 5000:
            state = event
            for task in ("validate", "analyze", "store", "notify"):
                state = review_workflow.handler({"task": task, "input": state}, ctx)
            states.append(state)
    notes = aws.sns_notifications()
    # WHEN everything the pipeline stored, queued, archived, published and logged is collected
    emitted = "\n".join([aws.raw_dump(), json.dumps(alerts), json.dumps(events), json.dumps(notes), json.dumps(states),
                         *log_lines(), capsys.readouterr().out])
    # THEN it is not empty, and no card number appears in it in any form the clients sent
    assert alerts and events and notes and states and aws.objects("rejected/") and aws.objects("high-risk/")
    assert len(aws.transactions()) == 58
    for card in cards:
        assert card not in emitted
    assert '"TransactionsScored"' in emitted and '"card_last4"' in emitted


def test_a_retried_detection_batch_still_sends_one_alert_per_transaction(aws, ctx):
    # GIVEN two flagged transactions (HIGH_AMOUNT + HIGH_RISK_LOCATION at noon: flagged whatever the hour the
    # suite runs at) whose detection batch is delivered twice (e.g. a later record failed)
    for i in range(2):
        api_handler.handler(aws.api_event({"amount": 12000, "merchant": "Electronics", "card_number": CARD,
                                           "location": "Tehran, Iran", "transaction_id": f"retry-{i}",
                                           "timestamp": noon_today_ms()}), ctx)
    records = aws.new_stream_records()
    assert fraud_detection.handler(aws.stream_event(records), ctx) == {"batchItemFailures": []}
    assert fraud_detection.handler(aws.stream_event(records), ctx) == {"batchItemFailures": []}
    # WHEN the notification handler consumes every alert message (four: two per delivery)
    alerts = aws.alert_messages()
    assert len(alerts) == 4
    for message in alerts:  # one at a time, as separate invocations would
        assert notification_handler.handler(aws.sqs_event([message]), ctx) == {"batchItemFailures": []}
    # THEN SNS carried exactly one alert per transaction
    notes = aws.sns_notifications()
    assert sorted(n["Message"].split(":")[0] for n in notes) == ["Transaction retry-0", "Transaction retry-1"]
    # AND velocity still counts each transaction once
    assert [i["velocity_count"] for i in sorted(aws.transactions(), key=lambda i: i["transaction_id"])] == [1, 2]
