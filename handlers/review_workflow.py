"""Tasks of the review state machine (amount > 5,000): validate -> analyze -> store -> notify.

One Lambda; the state machine invokes it with `{"task": <name>, "input": <state>}`
and passes each task's return value to the next task as its `input`. The
initial input is the EventBridge FraudDecision event. Invalid input raises
`InvalidWorkflowInput` (a ValueError; the state machine's Catch handles it);
a transaction that is not in the table raises `TransactionNotFound`.

* validate -- checks source/detail-type and the decision detail with the shared
  validation rules; returns {"transaction": <normalised detail>, "validated_at"}.
* analyze  -- reads the stored transaction (GetItem), re-scores it with the
  current rules (the velocity count detection recorded is reused) and the ML
  endpoint when configured; adds {"analysis": {...}}.
* store    -- records the outcome on the transaction item (UpdateItem of
  review_* attributes only, once: a second execution for the same transaction
  finds `reviewed_at` and does not overwrite it); adds {"stored": {...}}.
  When the state carries an analyst's decision, `"label": {"label": "fraud"|"genuine",
  "source": "analyst"|"chargeback"|"customer", "note"?}` (passed into the execution beside the
  event, or added by a human-review step before store), store also records it with
  `labels.record_labels` -- the same write as the label API: the transaction's label attributes,
  the card/merchant feature items and a FraudLabel event -- and adds {"stored": {"label": {...}}}.
  Without one, no label is recorded: the automatic re-score is not a confirmed outcome. Recording
  is idempotent (a retried store finds the label unchanged); a transient failure raises
  `LabelNotRecorded` so the state machine can retry the task.
* notify   -- publishes the review outcome to the alert topic (same templates as
  the alerts) unless the outcome is approve or a previous execution already
  notified; marks `review_notified_at`; adds {"notified": {...}}.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from . import contract, dynamo, labels, ml
from .alerts import alert_publication
from .clients import client, cold_start_cache, env
from .jsonutil import to_plain
from .observability import logger, metrics, tracer
from .rules import REASON_CODES, Rules, assess, load_rules
from .validation import FieldError, InvalidInput, validate_decision_detail

EVENT_SOURCE = contract.DECISION_EVENT_SOURCE
EVENT_DETAIL_TYPE = contract.DECISION_EVENT_DETAIL_TYPE
_REASONS = frozenset(REASON_CODES)


class InvalidWorkflowInput(ValueError):
    """The task's input is not what the state machine should pass; the message says what is wrong."""


class TransactionNotFound(LookupError):
    """The transaction the review is about is not in the table."""


class LabelNotRecorded(RuntimeError):
    """The analyst's label could not be recorded this time (transient); retry the task."""


@cold_start_cache
def rules() -> Rules:
    return load_rules(os.environ.get(contract.RULES_JSON))


rules()


def _transaction(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict) or not isinstance(state.get("transaction"), dict):
        raise InvalidWorkflowInput("input must be an object with a 'transaction' object (the output of validate)")
    try:
        return validate_decision_detail(state["transaction"], reason_codes=_REASONS, now_ms=_now())
    except InvalidInput as exc:
        raise InvalidWorkflowInput(str(exc)) from None


def _now() -> int:
    return int(time.time() * 1000)


def _key(txn: dict[str, Any]) -> dict[str, Any]:
    return dynamo.to_ddb({"transaction_id": txn["transaction_id"], "timestamp": txn["timestamp"]})


def validate(state: Any) -> dict[str, Any]:
    if not isinstance(state, dict):
        raise InvalidWorkflowInput("input must be the FraudDecision EventBridge event (an object)")
    problems = []
    if state.get("source", EVENT_SOURCE) != EVENT_SOURCE:
        problems.append(FieldError("source", f"must be {EVENT_SOURCE}"))
    if state.get("detail-type", EVENT_DETAIL_TYPE) != EVENT_DETAIL_TYPE:
        problems.append(FieldError("detail-type", f"must be {EVENT_DETAIL_TYPE}"))
    if problems:
        raise InvalidWorkflowInput(str(InvalidInput(problems, "decision event")))
    try:
        detail = validate_decision_detail(state.get("detail"), reason_codes=_REASONS, now_ms=_now())
    except InvalidInput as exc:
        raise InvalidWorkflowInput(str(exc)) from None
    logger.info("review started", extra={"transaction_id": detail["transaction_id"], "decision": detail["decision"]})
    out: dict[str, Any] = {"transaction": detail, "validated_at": _now()}
    if state.get("label") is not None:
        _label_request(state, detail)  # refuse a bad analyst label before the review runs
        out["label"] = state["label"]
    return to_plain(out)


def _label_request(state: dict[str, Any], txn: dict[str, Any]) -> labels.LabelRequest | None:
    """The analyst's label the state carries, validated (None when there is none)."""
    if state.get("label") is None:
        return None
    request, problems = labels.validate_label(state["label"], transaction_id=txn["transaction_id"])
    if request is None:
        raise InvalidWorkflowInput(str(InvalidInput([FieldError(f"label.{p.field}", p.message) for p in problems],
                                                    "label")))
    return request


def _record_label(request: labels.LabelRequest, txn: dict[str, Any]) -> dict[str, Any]:
    (outcome,) = labels.record_labels([request], _now())
    if outcome.status == labels.NOT_FOUND:
        raise TransactionNotFound(f"transaction {txn['transaction_id']} is not in the table")
    if not outcome.applied:
        raise LabelNotRecorded(f"label not recorded ({outcome.status}): {outcome.detail}")
    if outcome.timestamp != txn["timestamp"]:
        logger.warning("label recorded on the transaction's stored timestamp, not the event's",
                       extra={"transaction_id": txn["transaction_id"]})
    logger.info("analyst label recorded", extra={"transaction_id": txn["transaction_id"], "outcome": outcome.status,
                                                 "label": request.label, "source": request.source})
    detail = labels.event_detail(outcome)
    return {"status": outcome.status, "label": detail["label"], "source": detail["source"],
            "labelled_at": detail["labelled_at"], "previous_label": detail["previous_label"]}


def analyze(state: Any) -> dict[str, Any]:
    txn = _transaction(state)
    found = client("dynamodb").get_item(TableName=env(contract.TABLE_NAME), Key=_key(txn), ConsistentRead=True).get("Item")
    if not found:
        raise TransactionNotFound(f"transaction {txn['transaction_id']} at {txn['timestamp']} is not in the table")
    item = dynamo.from_ddb(found)
    if item.get("record_type") != "transaction":
        raise InvalidWorkflowInput("the key does not name a transaction")
    velocity_count = int(item.get("velocity_count") or 0)
    (ml_score,) = ml.score_batch([ml.features(item, velocity_count)])
    extra = ("VELOCITY",) if "VELOCITY" in txn["reasons"] and not item.get("velocity_count") else ()
    result = assess(item, rules(), velocity_count, ml_score, extra_hits=extra)
    severity = {"approve": 0, "review": 1, "block": 2}
    analysis = {
        "score": result.score, "decision": result.decision, "reasons": list(result.reasons),
        "rules_score": result.rules_score, "ml_score": result.ml_score,
        "detection_decision": txn["decision"],
        "escalated": severity[result.decision] > severity[txn["decision"]],
        "analyzed_at": _now(),
    }
    metrics.add_metric(name=f"Review{result.decision.capitalize()}", unit="Count", value=1)
    return to_plain({**state, "transaction": txn, "analysis": analysis})


def store(state: Any) -> dict[str, Any]:
    txn = _transaction(state)
    analysis = state.get("analysis")
    if not isinstance(analysis, dict) or analysis.get("decision") not in ("approve", "review", "block") \
            or not isinstance(analysis.get("score"), int) or not isinstance(analysis.get("reasons"), list):
        raise InvalidWorkflowInput("input must carry the 'analysis' produced by analyze")
    label_request = _label_request(state, txn)
    values = {":decision": analysis["decision"], ":score": analysis["score"],
              ":reasons": [r for r in analysis["reasons"] if r in _REASONS], ":at": _now(), ":status": "reviewed",
              ":escalated": bool(analysis.get("escalated"))}
    expression = ("SET review_status = :status, review_decision = :decision, review_score = :score, "
                  "review_reasons = :reasons, review_escalated = :escalated, reviewed_at = :at")
    if isinstance(analysis.get("ml_score"), int):
        values[":ml"] = analysis["ml_score"]
        expression += ", review_ml_score = :ml"
    stored: dict[str, Any]
    try:
        client("dynamodb").update_item(
            TableName=env(contract.TABLE_NAME), Key=_key(txn), UpdateExpression=expression,
            ConditionExpression="attribute_exists(transaction_id) AND attribute_not_exists(reviewed_at)",
            ExpressionAttributeValues=dynamo.to_ddb(values), ReturnValuesOnConditionCheckFailure="ALL_OLD")
        stored = {"already_reviewed": False, "already_notified": False, "reviewed_at": values[":at"]}
    except ClientError as exc:
        if dynamo.error_code(exc) != "ConditionalCheckFailedException":
            raise
        old = exc.response.get("Item")
        if old is None:  # not returned with the error: read it (strongly consistent)
            old = client("dynamodb").get_item(TableName=env(contract.TABLE_NAME), Key=_key(txn), ConsistentRead=True).get("Item")
        if not old:
            raise TransactionNotFound(f"transaction {txn['transaction_id']} at {txn['timestamp']} is not in the table") from None
        old_item = dynamo.from_ddb(old)
        logger.info("transaction already reviewed; outcome kept", extra={"transaction_id": txn["transaction_id"]})
        stored = {"already_reviewed": True, "already_notified": "review_notified_at" in old_item,
                  "reviewed_at": int(old_item.get("reviewed_at") or 0)}
    if label_request is not None:
        stored["label"] = _record_label(label_request, txn)
    return to_plain({**state, "transaction": txn, "stored": stored})


def notify(state: Any) -> dict[str, Any]:
    txn = _transaction(state)
    analysis, stored = state.get("analysis"), state.get("stored")
    if not isinstance(analysis, dict) or not isinstance(stored, dict):
        raise InvalidWorkflowInput("input must carry 'analysis' and 'stored' (the outputs of analyze and store)")
    if stored.get("already_notified"):
        return to_plain({**state, "notified": {"sent": False, "why": "already notified"}})
    if analysis.get("decision") not in ("review", "block"):
        return to_plain({**state, "notified": {"sent": False, "why": "review outcome is approve"}})
    record = {**txn, "score": analysis["score"], "decision": analysis["decision"], "reasons": analysis["reasons"]}
    publication = alert_publication(record)
    publication["Subject"] = publication["Subject"].replace("Fraud alert", "Fraud review", 1)
    publication["MessageAttributes"]["stage"] = {"DataType": "String", "StringValue": "review"}
    response = client("sns").publish(TopicArn=env(contract.ALERT_TOPIC_ARN), **publication)
    try:
        client("dynamodb").update_item(
            TableName=env(contract.TABLE_NAME), Key=_key(txn), UpdateExpression="SET review_notified_at = :at",
            ConditionExpression="attribute_exists(transaction_id) AND attribute_not_exists(review_notified_at)",
            ExpressionAttributeValues=dynamo.to_ddb({":at": _now()}))
    except ClientError as exc:
        if dynamo.error_code(exc) != "ConditionalCheckFailedException":
            logger.error("review notified but not marked", extra={"transaction_id": txn["transaction_id"]})
    logger.info("review notification sent", extra={"transaction_id": txn["transaction_id"], "decision": analysis["decision"]})
    return to_plain({**state, "notified": {"sent": True, "message_id": response.get("MessageId", "")}})


TASKS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "validate": validate, "analyze": analyze, "store": store, "notify": notify,
}


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or event.get("task") not in TASKS:
        raise InvalidWorkflowInput("event must be {\"task\": \"validate\"|\"analyze\"|\"store\"|\"notify\", \"input\": {...}}")
    logger.append_keys(task=event["task"])
    metrics.add_metric(name="ReviewTasksRun", unit="Count", value=1)
    return TASKS[event["task"]](event.get("input"))
