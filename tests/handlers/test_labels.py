"""handlers.labels: validation rules and the batched, concurrency-safe write."""

from __future__ import annotations

import time

import pytest
from boto3.dynamodb.types import TypeDeserializer
from handler_fixtures import LabelEventCapture, luhn_complete, store_transactions

from handlers import clients, labels
from handlers.labels import LabelRequest, record_labels, validate_label
from handlers.validation import FieldError

TS = 1748779200000


def now():
    return int(time.time() * 1000)


def txns(n, merchants=3, cards=None):
    cards = cards or n
    return [{"transaction_id": f"t-{i:03d}", "amount": 10 + i, "merchant": f"Shop {i % merchants}",
             "card_number": luhn_complete(f"4000{i % cards:011d}"), "location": "Leeds, UK", "timestamp": TS + i}
            for i in range(n)]


def features(aws):
    d = TypeDeserializer()
    return {i["entity"]["S"]: {k: d.deserialize(v) for k, v in i.items()}
            for i in aws.ddb.scan(TableName=aws.features_table)["Items"]}


def merchant_frauds(aws):
    return {k: sum(v for a, v in item.items() if a.startswith("f_"))
            for k, item in features(aws).items() if k.startswith("merchant#")}


def card_frauds(aws):
    return {k: set(item.get("frauds", ())) for k, item in features(aws).items() if k.startswith("card#")}


# --------------------------------------------------------------------------- validate_label
def test_a_bulk_row_needs_a_transaction_id():
    request, problems = validate_label({"label": "fraud", "source": "analyst"})
    assert request is None and problems == [FieldError("transaction_id", "is required")]
    request, problems = validate_label({"transaction_id": "t-1", "label": "genuine", "source": "customer",
                                        "note": "  ok  "})
    assert problems == [] and request == LabelRequest("t-1", "genuine", "customer", "ok")


def test_messages_never_quote_the_values():
    secret = "4012888888881881"
    _, problems = validate_label({"transaction_id": secret, "label": secret, "source": secret, "note": secret,
                                  secret: 1})
    assert secret not in repr(problems)
    assert [p.field for p in problems] == ["transaction_id", "label", "source", "note", "[REDACTED-PAN]"]


def test_null_note_is_no_note():
    request, _ = validate_label({"label": "fraud", "source": "analyst", "note": None}, transaction_id="t-1")
    assert request == LabelRequest("t-1", "fraud", "analyst", None)


# --------------------------------------------------------------------------- record_labels
def test_many_labels_on_shared_cards_and_merchants_are_exact(aws, ctx, calls):
    # GIVEN 60 transactions on 3 merchants and 20 cards (so a call cannot hold two updates of one item)
    store_transactions(aws, ctx, txns(60, merchants=3, cards=20))
    capture = LabelEventCapture(aws)
    calls.reset()
    # WHEN all are labelled fraud in one call, then again
    at = now()
    outcomes = record_labels([LabelRequest(f"t-{i:03d}", "fraud", "chargeback") for i in range(60)], at)
    # THEN every label is recorded and each merchant counts exactly its 20 frauds, each card its 3
    assert [o.status for o in outcomes] == ["recorded"] * 60
    assert merchant_frauds(aws) == {f"merchant#shop {m}": 20 for m in range(3)}
    assert sorted(len(v) for v in card_frauds(aws).values()) == [3] * 20
    transacts = calls.calls.count(("dynamodb", "TransactWriteItems"))
    assert 2 <= transacts <= 25  # 180 actions; at most 20 updates of one card item => ~20 calls, never one per label
    assert calls.calls.count(("events", "PutEvents")) == 6
    assert len(capture.events()) == 60
    again = record_labels([LabelRequest(f"t-{i:03d}", "fraud", "chargeback") for i in range(60)], at + 1000)
    assert [o.status for o in again] == ["unchanged"] * 60
    assert [o.labelled_at for o in again] == [at] * 60
    assert merchant_frauds(aws) == {f"merchant#shop {m}": 20 for m in range(3)}


def test_two_labels_for_one_transaction_in_one_call_apply_in_order(aws, ctx):
    store_transactions(aws, ctx, txns(2))
    outcomes = record_labels([LabelRequest("t-000", "fraud", "analyst"), LabelRequest("t-001", "fraud", "analyst"),
                              LabelRequest("t-000", "genuine", "analyst", "mistake")], now())
    assert [o.status for o in outcomes] == ["recorded", "recorded", "recorded"]
    assert outcomes[2].previous_label == "fraud"
    items = {i["transaction_id"]: i for i in aws.transactions()}
    assert (items["t-000"]["label"], items["t-000"]["label_note"]) == ("genuine", "mistake")
    assert merchant_frauds(aws) == {"merchant#shop 0": 0, "merchant#shop 1": 1}


def test_unknown_ids_are_not_found_and_nothing_is_written(aws, ctx):
    store_transactions(aws, ctx, txns(1))
    outcomes = record_labels([LabelRequest("ghost", "fraud", "analyst"), LabelRequest("t-000", "genuine", "analyst")],
                             now())
    assert [o.status for o in outcomes] == ["not_found", "recorded"]
    assert features(aws) == {}  # a genuine label moves no counter


def test_a_concurrent_label_is_detected_and_the_write_retried(aws, ctx):
    # GIVEN a fraud label, and another writer that changes it to genuine right after our read
    store_transactions(aws, ctx, txns(1))
    (first,) = record_labels([LabelRequest("t-000", "fraud", "analyst")], now())
    raced = []

    def rival(**kwargs):
        if not raced:
            raced.append(1)
            (o,) = record_labels([LabelRequest("t-000", "genuine", "customer")], now())
            assert o.status == "recorded"

    client = clients.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.TransactWriteItems", rival)
    try:
        # WHEN we label it fraud by chargeback
        (outcome,) = record_labels([LabelRequest("t-000", "fraud", "chargeback")], now())
    finally:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", rival)
    # THEN our write saw the rival's label (condition failed), re-read and applied on top of it
    assert outcome.status == "recorded" and outcome.previous_label == "genuine"
    (item,) = aws.transactions()
    assert (item["label"], item["label_source"]) == ("fraud", "chargeback")
    # AND the counters are exact: fraud (+1), genuine (-1), fraud (+1)
    assert merchant_frauds(aws) == {"merchant#shop 0": 1}
    assert card_frauds(aws) == {next(iter(card_frauds(aws))): {f"{outcome.labelled_at}#t-000"}}
    assert first.labelled_at <= outcome.labelled_at


def test_conflicts_twice_in_a_row_are_reported(aws, ctx):
    store_transactions(aws, ctx, txns(1))

    def rival(**kwargs):
        source = "customer" if rival.n % 2 else "analyst"
        rival.n += 1
        aws.ddb.update_item(TableName=aws.table, Key={"transaction_id": {"S": "t-000"}, "timestamp": {"N": str(TS)}},
                            UpdateExpression="SET label = :l, label_source = :s",
                            ExpressionAttributeValues={":l": {"S": "genuine"}, ":s": {"S": source}})
    rival.n = 0
    client = clients.client("dynamodb")
    client.meta.events.register("before-call.dynamodb.TransactWriteItems", rival)
    try:
        (outcome,) = record_labels([LabelRequest("t-000", "fraud", "chargeback")], now())
    finally:
        client.meta.events.unregister("before-call.dynamodb.TransactWriteItems", rival)
    assert outcome.status == "conflict" and rival.n == 2
    assert features(aws) == {}


def test_an_unpublished_event_fails_the_label_and_a_retry_publishes_it(aws, ctx, monkeypatch):
    store_transactions(aws, ctx, txns(1))
    capture = LabelEventCapture(aws)
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")
    monkeypatch.setattr(labels.dynamo, "backoff", lambda attempt: None)
    (outcome,) = record_labels([LabelRequest("t-000", "fraud", "analyst")], now())
    assert outcome.status == "failed" and "event not published" in outcome.detail
    monkeypatch.setenv("EVENT_BUS_NAME", "fraud-events-test")
    (retry,) = record_labels([LabelRequest("t-000", "fraud", "analyst")], now())
    assert retry.status == "unchanged"
    (event,) = capture.events()
    assert event["detail"]["labelled_at"] == retry.labelled_at
    assert merchant_frauds(aws) == {"merchant#shop 0": 1}


def test_a_throttled_write_is_failed_not_raised(aws, ctx, monkeypatch):
    store_transactions(aws, ctx, txns(1))
    monkeypatch.setattr(labels.dynamo, "transact",
                        lambda groups: [[labels.dynamo.ActionFailure("ThrottlingError")] * len(g) for g in groups])
    (outcome,) = record_labels([LabelRequest("t-000", "fraud", "analyst")], now())
    assert outcome.status == "failed" and "ThrottlingError" in outcome.detail


@pytest.mark.parametrize("record_type", ["idempotency-claim"])
def test_only_transaction_items_are_labelled(aws, ctx, record_type):
    store_transactions(aws, ctx, txns(1))
    # the claim points at a key that holds no transaction
    aws.ddb.update_item(TableName=aws.table, Key={"transaction_id": {"S": "t-000"}, "timestamp": {"N": "0"}},
                        UpdateExpression="SET transaction_timestamp = :t", ExpressionAttributeValues={":t": {"N": "0"}})
    (outcome,) = record_labels([LabelRequest("t-000", "fraud", "analyst")], now())
    assert outcome.status == "not_found"
    assert all("label" not in i for i in aws.items())


# --------------------------------------------------------------------------- labelled_at (bulk rows)
@pytest.mark.parametrize("value, expected", [
    (TS, TS), (str(TS), TS), (" 2025-06-01T12:00:00Z ", 1748779200000), ("2025-06-01T12:00:00+00:00", 1748779200000),
    ("2025-06-01T12:00:00", 1748779200000), ("2025-06-01", 1748736000000),
])
def test_labelled_at_accepts_epoch_ms_and_iso_utc(value, expected):
    request, problems = validate_label({"transaction_id": "t-1", "label": "fraud", "source": "chargeback",
                                        "labelled_at": value}, now_ms=TS + 86_400_000)
    assert problems == [] and request.labelled_at == expected


@pytest.mark.parametrize("value, message", [
    (TS + 86_400_000 + 6 * 60_000, "must not be in the future"),
    ("2025-06-01T14:00:00+02:00", labels.LABELLED_AT_FORMAT), ("yesterday", labels.LABELLED_AT_FORMAT),
    (True, labels.LABELLED_AT_FORMAT), (1.5, labels.LABELLED_AT_FORMAT), (17487792, labels.LABELLED_AT_FORMAT),
])
def test_labelled_at_refusals_name_the_field(value, message):
    from decimal import Decimal
    value = Decimal(str(value)) if isinstance(value, float) else value
    _, problems = validate_label({"transaction_id": "t-1", "label": "fraud", "source": "chargeback",
                                  "labelled_at": value}, now_ms=TS + 86_400_000)
    assert problems == [FieldError("labelled_at", message)]


def test_labelled_at_within_the_clock_skew_is_taken_as_now_and_the_api_refuses_it():
    request, _ = validate_label({"transaction_id": "t-1", "label": "fraud", "source": "chargeback",
                                 "labelled_at": TS + 60_000}, now_ms=TS)
    assert request.labelled_at == TS
    _, problems = validate_label({"label": "fraud", "source": "chargeback", "labelled_at": TS}, transaction_id="t-1")
    assert problems == [FieldError("labelled_at", "is not a recognised field")]


def test_a_chargeback_date_is_the_label_time_of_the_item_the_card_and_the_merchant_day(aws, ctx):
    # GIVEN two transactions; chargebacks raised 7 days after the first, and one dated before the second
    store_transactions(aws, ctx, txns(2))
    raised = TS + 7 * 86_400_000
    outcomes = record_labels([LabelRequest("t-000", "fraud", "chargeback", labelled_at=raised),
                              LabelRequest("t-001", "fraud", "chargeback", labelled_at=TS)], now())
    # THEN the first is recorded at the chargeback's time, the second refused naming labelled_at
    assert [o.status for o in outcomes] == ["recorded", "invalid"]
    assert outcomes[0].labelled_at == raised
    assert outcomes[1].errors == [FieldError("labelled_at", "must not be before the transaction's timestamp")]
    items = {i["transaction_id"]: i for i in aws.transactions()}
    assert int(items["t-000"]["labelled_at"]) == raised and "label" not in items["t-001"]
    assert set().union(*card_frauds(aws).values()) == {f"{raised}#t-000"}
    assert {k: {a: v for a, v in item.items() if a.startswith("f_")} for k, item in features(aws).items()
            if k.startswith("merchant#")} == {"merchant#shop 0": {"f_20250608": 1}}
    # AND reversing it removes exactly that entry and that day's count
    (back,) = record_labels([LabelRequest("t-000", "genuine", "analyst")], now())
    assert back.status == "recorded" and back.labelled_at >= raised
    assert set().union(*card_frauds(aws).values()) == set() and merchant_frauds(aws) == {"merchant#shop 0": 0}
