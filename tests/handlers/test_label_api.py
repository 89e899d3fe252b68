"""POST /transactions/{transaction_id}/label: responses, the stored label, the feature items, the event."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from handler_fixtures import LabelEventCapture, label_api_event

from handlers import api_handler, label_api

TXN = {"transaction_id": "lbl-1", "amount": 120.5, "merchant": "Corner  Bakery", "card_number": "4111 1111 1111 1111",
       "location": "Austin, USA", "timestamp": "2025-06-01T12:00:00Z"}
TS = 1748779200000
NOTE_PAN = "4012888888881881"


@pytest.fixture
def txn(aws, ctx):
    """GIVEN one recorded transaction (through POST /transactions) and a capture of FraudLabel events."""
    assert api_handler.handler(aws.api_event(TXN), ctx)["statusCode"] == 201
    return LabelEventCapture(aws)


def post(ctx, body, transaction_id="lbl-1", **kwargs):
    response = label_api.handler(label_api_event(transaction_id, body, **kwargs), ctx)
    return response["statusCode"], json.loads(response["body"]), response["headers"]


def feature_items(aws):
    from boto3.dynamodb.types import TypeDeserializer

    d = TypeDeserializer()
    return {i["entity"]["S"]: {k: d.deserialize(v) for k, v in i.items()}
            for i in aws.ddb.scan(TableName=aws.features_table)["Items"]}


def card_and_merchant(aws):
    items = feature_items(aws)
    (card,) = [v for k, v in items.items() if k.startswith("card#")]
    (merchant,) = [v for k, v in items.items() if k.startswith("merchant#")]
    return card, merchant


def day(ms):
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%d")


def test_fraud_label_is_recorded_once_and_a_repeat_is_idempotent(aws, ctx, txn):
    # WHEN an analyst labels the transaction as fraud
    status, body, headers = post(ctx, {"label": "fraud", "source": "analyst", "note": "customer called"})
    # THEN 201 with the stored label
    assert status == 201 and headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    at = body["labelled_at"]
    assert body == {"message": "Label recorded", "transaction_id": "lbl-1", "timestamp": TS, "label": "fraud",
                    "source": "analyst", "labelled_at": at, "previous_label": None}
    (item,) = aws.transactions()
    assert (item["label"], item["label_source"], item["label_note"], item["labelled_at"]) == \
        ("fraud", "analyst", "customer called", at)
    # AND the card knows the fraud, the merchant counts one fraud on the label's day
    card, merchant = card_and_merchant(aws)
    assert card["frauds"] == {f"{at}#lbl-1"}
    assert merchant["entity"] == "merchant#corner bakery" and merchant[f"f_{day(at)}"] == 1
    # AND one FraudLabel event, without card data
    (event,) = txn.events()
    assert (event["source"], event["detail-type"]) == ("fraud-pipeline.labels", "FraudLabel")
    assert event["detail"] == {"schema_version": 1, "transaction_id": "lbl-1", "timestamp": TS, "label": "fraud",
                               "source": "analyst", "labelled_at": at, "previous_label": None}

    # WHEN the same label is sent again (a retry)
    status, again, _ = post(ctx, {"label": "fraud", "source": "analyst"})
    # THEN 200, the original labelled_at, nothing written: the counts stay exactly at one
    assert status == 200 and again == {**body, "message": "Label already recorded"}
    assert aws.transactions() == [item]
    assert card_and_merchant(aws) == (card, merchant)
    # AND the event is published again, identical (at-least-once: a lost first event is made good)
    (event2,) = txn.events()
    assert event2["detail"] == event["detail"]


def test_changing_fraud_to_genuine_reverses_the_feature_counts(aws, ctx, txn):
    # GIVEN a fraud label
    status, first, _ = post(ctx, {"label": "fraud", "source": "analyst"})
    assert status == 201
    # WHEN a chargeback investigation finds it genuine
    status, body, _ = post(ctx, {"label": "genuine", "source": "chargeback"})
    # THEN 201, the item holds the new label and remembers the previous one
    assert status == 201 and body["label"] == "genuine" and body["previous_label"] == "fraud"
    assert body["labelled_at"] >= first["labelled_at"]
    (item,) = aws.transactions()
    assert (item["label"], item["label_source"], item["label_previous"]) == ("genuine", "chargeback", "fraud")
    assert "label_note" not in item
    # AND the card's fraud entry is gone and the merchant's day counter is back to zero
    card, merchant = card_and_merchant(aws)
    assert "frauds" not in card
    assert merchant[f"f_{day(first['labelled_at'])}"] == 0
    details = [e["detail"] for e in txn.events()]
    assert [(d["label"], d["previous_label"]) for d in details] == [("fraud", None), ("genuine", "fraud")]
    # AND labelling it fraud again counts it once more (exactly one)
    status, third, _ = post(ctx, {"label": "fraud", "source": "chargeback"})
    assert status == 201 and third["previous_label"] == "genuine"
    card, merchant = card_and_merchant(aws)
    assert card["frauds"] == {f"{third['labelled_at']}#lbl-1"}
    assert sum(v for k, v in merchant.items() if k.startswith("f_")) == 1


def test_a_new_source_for_the_same_label_keeps_its_time_and_counts(aws, ctx, txn):
    _, first, _ = post(ctx, {"label": "fraud", "source": "customer"})
    status, body, _ = post(ctx, {"label": "fraud", "source": "chargeback", "note": "confirmed by the issuer"})
    assert status == 201 and body["labelled_at"] == first["labelled_at"] and body["previous_label"] is None
    (item,) = aws.transactions()
    assert (item["label_source"], item["label_note"]) == ("chargeback", "confirmed by the issuer")
    card, merchant = card_and_merchant(aws)
    assert card["frauds"] == {f"{first['labelled_at']}#lbl-1"} and merchant[f"f_{day(first['labelled_at'])}"] == 1


def test_unknown_transaction_is_404(aws, ctx, txn):
    status, body, _ = post(ctx, {"label": "fraud", "source": "analyst"}, transaction_id="nobody")
    assert status == 404
    assert body == {"error": "Transaction not found",
                    "details": [{"field": "transaction_id", "message": "is not a known transaction"}]}
    assert txn.events() == [] and "label" not in aws.transactions()[0]


@pytest.mark.parametrize("body, transaction_id, field, message", [
    ({"label": "FRAUD", "source": "analyst"}, "lbl-1", "label", "must be one of: fraud, genuine"),
    ({"label": "chargeback", "source": "analyst"}, "lbl-1", "label", "must be one of: fraud, genuine"),
    ({"label": "fraud", "source": "bank"}, "lbl-1", "source", "must be one of: analyst, chargeback, customer"),
    ({"label": "fraud", "source": None}, "lbl-1", "source", "must be one of: analyst, chargeback, customer"),
    ({"source": "analyst"}, "lbl-1", "label", "is required"),
    ({"label": "fraud"}, "lbl-1", "source", "is required"),
    ({"label": "fraud", "source": "analyst", "note": "x" * 501}, "lbl-1", "note",
     "must be 1-500 characters after trimming"),
    ({"label": "fraud", "source": "analyst", "note": "   "}, "lbl-1", "note", "must be 1-500 characters after trimming"),
    ({"label": "fraud", "source": "analyst", "note": 42}, "lbl-1", "note", "must be a string"),
    ({"label": "fraud", "source": "analyst", "note": "line\nbreak"}, "lbl-1", "note",
     "must not contain control, bidirectional-override or invalid Unicode characters"),
    ({"label": "fraud", "source": "analyst", "amount": 5}, "lbl-1", "amount", "is not a recognised field"),
    ({"label": "fraud", "source": "analyst", "transaction_id": "lbl-1"}, "lbl-1", "transaction_id",
     "is not a recognised field"),
    (["fraud"], "lbl-1", "body", "must be a JSON object"),
    ({"label": "fraud", "source": "analyst"}, "bad id!", "transaction_id",
     "must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"),
    ({"label": "fraud", "source": "analyst"}, "4111111111111111", "transaction_id", "must not contain a card number"),
    ({"label": "fraud", "source": "analyst"}, None, "transaction_id", "is required (in the path)"),
])
def test_invalid_labels_are_400_naming_the_field(aws, ctx, txn, body, transaction_id, field, message):
    status, answer, _ = post(ctx, body, transaction_id=transaction_id)
    assert status == 400
    assert answer["error"] == "Invalid label"
    assert {"field": field, "message": message} in answer["details"]
    assert "label" not in aws.transactions()[0] and txn.events() == []


def test_every_problem_is_listed(aws, ctx, txn):
    status, answer, _ = post(ctx, {"label": "maybe", "note": "", "cvv": "123"})
    assert status == 400
    assert answer["details"] == [
        {"field": "label", "message": "must be one of: fraud, genuine"},
        {"field": "source", "message": "is required"},
        {"field": "note", "message": "must be 1-500 characters after trimming"},
        {"field": "cvv", "message": "is not a recognised field"},
    ]


@pytest.mark.parametrize("note", [f"card {NOTE_PAN} used abroad", "card 4012 8888 8888 1881 used abroad",
                                  "ref 4012-8888-8888-1881"])
def test_a_note_holding_a_card_number_is_refused_and_never_stored_or_logged(aws, ctx, txn, log_lines, note):
    status, answer, _ = post(ctx, {"label": "fraud", "source": "customer", "note": note})
    assert status == 400
    assert answer["details"] == [{"field": "note", "message": "must not contain a card number"}]
    assert NOTE_PAN not in json.dumps(answer)
    dump = aws.raw_dump() + "\n".join(log_lines())
    for form in (NOTE_PAN, "4012 8888 8888 1881", "4012-8888-8888-1881"):
        assert form not in dump
    assert "label" not in aws.transactions()[0]


def test_notes_are_never_logged(aws, ctx, txn, log_lines):
    assert post(ctx, {"label": "fraud", "source": "analyst", "note": "secret-analyst-remark"})[0] == 201
    assert "secret-analyst-remark" not in "\n".join(log_lines())


def test_method_size_and_syntax(aws, ctx, txn):
    status, body, headers = post(ctx, {"label": "fraud", "source": "analyst"}, method="GET")
    assert status == 405 and headers["Allow"] == "POST"
    status, body, _ = post(ctx, {"label": "fraud", "source": "analyst", "note": "x" * 17000})
    assert status == 413 and body["details"] == [{"field": "body", "message": "must be at most 16384 bytes"}]
    big = base64.b64encode(json.dumps({"note": "y" * 20000}).encode()).decode()
    event = label_api_event("lbl-1", big, raw=True)
    event["isBase64Encoded"] = True
    assert label_api.handler(event, ctx)["statusCode"] == 413
    status, body, _ = post(ctx, "{not json", raw=True)
    assert status == 400 and body["details"] == [{"field": "body", "message": "is not valid JSON"}]
    status, body, _ = post(ctx, '{"label": "fraud", "label": "genuine", "source": "analyst"}', raw=True)
    assert status == 400 and body["details"] == [{"field": "label", "message": "appears more than once in the same object"}]
    status, body, _ = post(ctx, {"label": "genuine", "source": "analyst"}, base64_encoded=True)
    assert status == 201
    event = label_api_event("lbl-1", None)
    event["body"] = None
    assert label_api.handler(event, ctx)["statusCode"] == 400


def test_dependency_failure_is_503_with_retry_after(aws, ctx, txn, monkeypatch):
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    status, body, headers = post(ctx, {"label": "fraud", "source": "analyst"})
    assert status == 503 and headers["Retry-After"] == "1" and body["details"] == []
    monkeypatch.setenv("TABLE_NAME", aws.table)
    # the event bus failing after the write: 503, and the retry publishes it (200: already recorded)
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    status, _, _ = post(ctx, {"label": "fraud", "source": "analyst"})
    assert status == 503 and txn.events() == []
    monkeypatch.setenv("EVENT_BUS_NAME", "fraud-events-test")
    status, body, _ = post(ctx, {"label": "fraud", "source": "analyst"})
    assert status == 200
    (event,) = txn.events()
    assert event["detail"]["labelled_at"] == body["labelled_at"]


def test_iam_actions_the_label_api_calls(aws, ctx, txn, calls):
    assert post(ctx, {"label": "fraud", "source": "analyst"})[0] == 201
    assert {a for a, _ in calls.authorised} == {"dynamodb:BatchGetItem", "dynamodb:UpdateItem", "events:PutEvents"}
    assert {r for _, r in calls.authorised} == {f"table/{aws.table}", f"table/{aws.features_table}",
                                                "event-bus/fraud-events-test"}
    assert sorted(calls.calls) == [("dynamodb", "BatchGetItem"), ("dynamodb", "BatchGetItem"),
                                   ("dynamodb", "TransactWriteItems"), ("events", "PutEvents")]
