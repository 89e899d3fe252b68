"""Review-workflow tasks: input checks the state machine can Catch, and the approve path."""

from __future__ import annotations

import json

import pytest

from handlers import api_handler, fraud_detection, review_workflow
from handlers.review_workflow import InvalidWorkflowInput, TransactionNotFound


def decision_event(aws, ctx, body):
    assert api_handler.handler(aws.api_event(body), ctx)["statusCode"] == 201
    assert fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx) == {"batchItemFailures": []}
    (event,) = aws.decision_events()
    return event


def run(task, state, ctx):
    return review_workflow.handler({"task": task, "input": state}, ctx)


BIG = {"amount": 6000, "merchant": "Electronics", "card_number": "4000000000000077", "location": "Austin, USA",
       "transaction_id": "rv-1", "timestamp": "2025-06-01T12:00:00Z"}


def test_approved_review_is_stored_but_not_notified(aws, ctx):
    # GIVEN a 6,000 purchase at noon (ELEVATED_AMOUNT only: approve) that the amount rule sends to review
    event = decision_event(aws, ctx, BIG)
    assert event["detail"]["decision"] == "approve" and event["detail"]["amount"] == 6000
    # WHEN the four tasks run
    state = event
    for task in ("validate", "analyze", "store", "notify"):
        state = run(task, state, ctx)
    # THEN the outcome is stored and no alert is sent for an approval
    assert state["analysis"]["decision"] == "approve" and state["analysis"]["escalated"] is False
    assert state["notified"] == {"sent": False, "why": "review outcome is approve"}
    (item,) = aws.transactions()
    assert item["review_decision"] == "approve" and item["review_reasons"] == ["ELEVATED_AMOUNT"]
    assert aws.sns_notifications() == []


@pytest.mark.parametrize("event, message", [
    ({"task": "approve"}, 'event must be {"task": "validate"|"analyze"|"store"|"notify"'),
    ({"task": "validate", "input": []}, "input must be the FraudDecision EventBridge event"),
    ({"task": "validate", "input": {"source": "evil", "detail": {}}}, "source: must be fraud-pipeline.detection"),
    ({"task": "validate", "input": {"detail": "x"}}, "detail: must be a JSON object"),
    ({"task": "analyze", "input": {"transaction": None}}, "input must be an object with a 'transaction' object"),
])
def test_invalid_input_raises_a_clear_error(aws, ctx, event, message):
    with pytest.raises(InvalidWorkflowInput) as info:
        review_workflow.handler(event, ctx)
    assert message in str(info.value)


def test_invalid_detail_names_every_field(aws, ctx):
    event = decision_event(aws, ctx, BIG)
    event["detail"].update(amount="6000", score=101, decision="maybe", reasons=["HIGH_AMOUNT", "MADE_UP"])
    with pytest.raises(InvalidWorkflowInput) as info:
        run("validate", event, ctx)
    assert str(info.value) == ("invalid decision event: amount: must be a JSON number; score: must be an integer "
                               "between 0 and 100; decision: must be one of approve, review, block; reasons: must be "
                               "a list of known reason codes")


def test_missing_transaction_and_missing_stages(aws, ctx):
    event = decision_event(aws, ctx, BIG)
    state = run("validate", event, ctx)
    ghost = {**state, "transaction": {**state["transaction"], "transaction_id": "ghost"}}
    with pytest.raises(TransactionNotFound):
        run("analyze", ghost, ctx)
    with pytest.raises(InvalidWorkflowInput, match="'analysis' produced by analyze"):
        run("store", state, ctx)
    with pytest.raises(InvalidWorkflowInput, match="'analysis' and 'stored'"):
        run("notify", run("analyze", state, ctx), ctx)
    analyzed = run("analyze", ghost | {"transaction": state["transaction"]}, ctx)
    with pytest.raises(TransactionNotFound):
        run("store", {**analyzed, "transaction": ghost["transaction"]}, ctx)
    json.dumps(analyzed)


# --------------------------------------------------------------------------- the analyst's label
def label_capture(aws):
    from handler_fixtures import LabelEventCapture

    return LabelEventCapture(aws)


def decision_for(aws, ctx, body):
    """The FraudDecision event for a transaction recorded through the API (as detection would publish it)."""
    response = api_handler.handler(aws.api_event(body), ctx)
    assert response["statusCode"] == 201
    ts = json.loads(response["body"])["timestamp"]
    return {"version": "0", "source": "fraud-pipeline.detection", "detail-type": "FraudDecision",
            "detail": {"schema_version": 1, "transaction_id": body["transaction_id"], "timestamp": ts,
                       "amount": body["amount"], "currency": "USD", "merchant": body["merchant"],
                       "location": body["location"], "country": body["location"].rsplit(",", 1)[-1].strip(),
                       "card_last4": body["card_number"][-4:], "score": 25, "decision": "approve",
                       "reasons": ["ELEVATED_AMOUNT"]}}


def test_an_analyst_label_passed_into_the_execution_is_recorded_by_store(aws, ctx):
    # GIVEN a review execution started with the analyst's decision beside the event
    capture = label_capture(aws)
    state = {**decision_for(aws, ctx, BIG), "label": {"label": "fraud", "source": "analyst", "note": "card stolen"}}
    # WHEN validate, analyze and store run
    for task in ("validate", "analyze", "store"):
        state = run(task, state, ctx)
    # THEN the label is on the item, the features moved and a FraudLabel event was published
    stored = state["stored"]["label"]
    assert stored["status"] == "recorded" and stored["label"] == "fraud" and stored["source"] == "analyst"
    (item,) = aws.transactions()
    assert (item["label"], item["label_source"], item["label_note"]) == ("fraud", "analyst", "card stolen")
    assert item["review_decision"] == "approve"  # the review outcome itself is unchanged
    entities = {i["entity"]["S"]: i for i in aws.ddb.scan(TableName=aws.features_table)["Items"]}
    (card,) = [v for k, v in entities.items() if k.startswith("card#")]
    assert card["frauds"]["SS"] == [f"{stored['labelled_at']}#rv-1"]
    (event,) = capture.events()
    assert event["detail"]["label"] == "fraud" and event["detail"]["transaction_id"] == "rv-1"
    # AND a retried store finds it unchanged (nothing counted twice)
    again = run("store", {k: v for k, v in state.items() if k != "stored"}, ctx)
    assert again["stored"]["label"]["status"] == "unchanged"
    assert again["stored"]["already_reviewed"] is True
    (card2,) = [i for i in aws.ddb.scan(TableName=aws.features_table)["Items"] if i["entity"]["S"].startswith("card#")]
    assert card2 == card


def test_without_an_analyst_label_no_label_is_invented(aws, ctx):
    capture = label_capture(aws)
    state = decision_for(aws, ctx, {**BIG, "amount": 15000, "location": "Lagos, Nigeria", "merchant": "Unknown Store"})
    for task in ("validate", "analyze", "store"):
        state = run(task, state, ctx)
    assert state["analysis"]["decision"] == "block" and "label" not in state["stored"]
    assert "label" not in aws.transactions()[0] and capture.events() == []


def test_an_invalid_analyst_label_is_refused_at_validate(aws, ctx):
    state = {**decision_for(aws, ctx, BIG), "label": {"label": "probably", "source": "analyst", "extra": 1}}
    with pytest.raises(InvalidWorkflowInput) as info:
        run("validate", state, ctx)
    assert str(info.value) == ("invalid label: label.label: must be one of: fraud, genuine; "
                               "label.extra: is not a recognised field")
