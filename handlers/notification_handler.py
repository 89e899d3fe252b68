"""Publish fraud alerts from the alert queue to the SNS topic, at most once per transaction.

Order per alert (why: "nothing lost, nothing duplicated"):

1. claim   -- conditional UpdateItem on the transaction item: SET alert_claim, alert_claimed_at
              only if no `alert_sent_at` and no live claim (a claim older than the
              5-minute lease is dead: its holder crashed);
2. publish -- SNS PublishBatch (10 entries per call) for the claimed alerts;
3. mark    -- conditional UpdateItem: SET alert_sent_at (only while we hold the claim).

* Already `alert_sent_at`: the alert went out before -> the message is done, nothing published.
* A live claim held by another consumer (SQS delivered a copy twice at once): this
  copy fails and comes back after the visibility timeout, finds `alert_sent_at`, and stops.
* Publish failed: the claim is released and the message fails -> retried, nothing lost.
* Marking failed after a successful publish: the message still counts as done
  (reporting failure would resend once the lease ends).

Mark-then-publish could lose an alert (crash after the mark); publish-then-mark
could send twice on any retry. Claim-publish-mark sends twice only if the
function dies between Publish and the mark (and then the copy arrives after the
lease), and never loses one. Poison messages (not JSON, not a valid decision
record, or for an unknown transaction) fail and reach the DLQ after the queue's
maxReceiveCount, where the DLQ alarm picks them up.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import EventType
from botocore.exceptions import BotoCoreError, ClientError

from . import contract, dynamo
from .alerts import alert_publication
from .bulk import BulkBatchProcessor
from .clients import client, env
from .jsonutil import InvalidJson, loads
from .observability import logger, metrics, tracer
from .rules import REASON_CODES
from .validation import InvalidInput, validate_decision_detail

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

CLAIM_LEASE_MS = 5 * 60 * 1000
PUBLISH_BATCH = 10
_REASONS = frozenset(REASON_CODES)



class AlertNotSent(RuntimeError):
    """The alert was not published this time; the message is retried (and finally dead-lettered)."""


#: A batch where every message failed is reported item by item too (no function error): each
#: message's receive count then decides when it moves to the DLQ.
def _bulk(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    return process_alerts(records)   # looked up when called: `process_alerts` is defined below


processor = BulkBatchProcessor(EventType.SQS, _bulk, AlertNotSent,
                               raise_on_entire_batch_failure=False)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    records = event.get("Records") or []
    metrics.add_metric(name="AlertMessagesReceived", unit="Count", value=len(records))
    return processor.respond(event, context)


def _key(alert: dict[str, Any]) -> dict[str, Any]:
    return dynamo.to_ddb({"transaction_id": alert["transaction_id"], "timestamp": alert["timestamp"]})


@tracer.capture_method(capture_response=False)
def process_alerts(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    now_ms = int(time.time() * 1000)
    table = env(contract.TABLE_NAME)
    outcomes: dict[str, Exception | None] = {}
    first_copy: dict[str, str] = {}
    copies: dict[str, str] = {}
    alerts: dict[str, dict[str, Any]] = {}
    for record in records:
        message_id = record.get("messageId") or ""
        try:
            alert = validate_decision_detail(loads(record.get("body") or ""), reason_codes=_REASONS, now_ms=now_ms)
        except (InvalidJson, InvalidInput) as exc:
            fields = [e.field for e in getattr(exc, "errors", [])] or ["body"]
            logger.error("poison alert message", extra={"message_id": message_id, "fields": fields})
            metrics.add_metric(name="PoisonAlerts", unit="Count", value=1)
            outcomes[message_id] = AlertNotSent("not a valid alert message")
            continue
        if alert["decision"] == "approve":
            logger.warning("approved transaction on the alert queue; nothing to send",
                           extra={"transaction_id": alert["transaction_id"]})
            outcomes[message_id] = None
            continue
        if alert["transaction_id"] in first_copy:  # the same alert twice in one batch
            copies[message_id] = first_copy[alert["transaction_id"]]
            continue
        first_copy[alert["transaction_id"]] = message_id
        alerts[message_id] = alert

    claimed: dict[str, str] = {}
    for message_id, alert in alerts.items():
        outcome, token = _claim(table, alert, now_ms)
        outcomes[message_id] = outcome
        if token:
            claimed[message_id] = token

    published = _publish({m: alerts[m] for m in claimed}, outcomes)
    for message_id, token in claimed.items():
        if message_id in published:
            _mark(table, alerts[message_id], token, published[message_id])
        else:
            _release(table, alerts[message_id], token)

    for message_id, original in copies.items():
        outcomes[message_id] = outcomes.get(original)
    if published:
        metrics.add_metric(name="AlertsPublished", unit="Count", value=len(published))
    return outcomes


def _claim(table: str, alert: dict[str, Any], now_ms: int) -> tuple[Exception | None, str | None]:
    token = uuid.uuid4().hex
    try:
        client("dynamodb").update_item(
            TableName=table, Key=_key(alert),
            UpdateExpression="SET alert_claim = :token, alert_claimed_at = :now",
            ConditionExpression=("attribute_exists(transaction_id) AND attribute_not_exists(alert_sent_at) AND "
                                 "(attribute_not_exists(alert_claimed_at) OR alert_claimed_at < :stale)"),
            ExpressionAttributeValues=dynamo.to_ddb({":token": token, ":now": now_ms, ":stale": now_ms - CLAIM_LEASE_MS}),
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
        return None, token
    except ClientError as exc:
        if dynamo.error_code(exc) != "ConditionalCheckFailedException":
            logger.warning("alert claim failed", extra={"transaction_id": alert["transaction_id"],
                                                        "error_code": dynamo.error_code(exc)})
            return AlertNotSent("claim failed"), None
        old = exc.response.get("Item")
        if old is None:  # not returned with the error: read it (strongly consistent)
            old = client("dynamodb").get_item(TableName=table, Key=_key(alert), ConsistentRead=True,
                                              ProjectionExpression="transaction_id, alert_sent_at").get("Item")
        if not old:
            logger.error("alert for a transaction that is not in the table",
                         extra={"transaction_id": alert["transaction_id"]})
            return AlertNotSent("transaction not found"), None
        if "alert_sent_at" in old:
            logger.info("alert already sent; duplicate message dropped", extra={"transaction_id": alert["transaction_id"]})
            metrics.add_metric(name="DuplicateAlertsSuppressed", unit="Count", value=1)
            return None, None
        logger.info("alert claimed by another consumer; retry later", extra={"transaction_id": alert["transaction_id"]})
        metrics.add_metric(name="AlertsDeferred", unit="Count", value=1)
        return AlertNotSent("alert in flight elsewhere"), None
    except BotoCoreError as exc:
        logger.warning("alert claim failed", extra={"transaction_id": alert["transaction_id"], "error_type": type(exc).__name__})
        return AlertNotSent("claim failed"), None


def _publish(alerts: dict[str, dict[str, Any]], outcomes: dict[str, Exception | None]) -> dict[str, str]:
    """PublishBatch; returns SNS message id per published SQS message id, sets failures in `outcomes`."""
    published: dict[str, str] = {}
    items = list(alerts.items())
    topic = env(contract.ALERT_TOPIC_ARN)
    for start in range(0, len(items), PUBLISH_BATCH):
        chunk = items[start:start + PUBLISH_BATCH]
        entries = [{"Id": str(i), **alert_publication(alert)} for i, (_, alert) in enumerate(chunk)]
        try:
            response = client("sns").publish_batch(TopicArn=topic, PublishBatchRequestEntries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("alert publish failed", extra={"error_type": type(exc).__name__, "entries": len(chunk)})
            for message_id, _ in chunk:
                outcomes[message_id] = AlertNotSent("publish failed")
            continue
        for entry in response.get("Successful") or []:
            published[chunk[int(entry["Id"])][0]] = entry.get("MessageId", "")
        for entry in response.get("Failed") or []:
            message_id = chunk[int(entry["Id"])][0]
            logger.warning("alert publish failed", extra={"transaction_id": chunk[int(entry["Id"])][1]["transaction_id"],
                                                          "error_code": entry.get("Code")})
            outcomes[message_id] = AlertNotSent("publish failed")
    return published


def _mark(table: str, alert: dict[str, Any], token: str, sns_message_id: str) -> None:
    try:
        client("dynamodb").update_item(
            TableName=table, Key=_key(alert),
            UpdateExpression="SET alert_sent_at = :now, alert_message_id = :mid",
            ConditionExpression="alert_claim = :token",
            ExpressionAttributeValues=dynamo.to_ddb({":now": int(time.time() * 1000), ":mid": sns_message_id,
                                                     ":token": token}),
        )
        logger.info("alert sent", extra={"transaction_id": alert["transaction_id"], "decision": alert["decision"]})
    except (ClientError, BotoCoreError) as exc:
        # Published already: do not fail the message (that would resend once the lease ends).
        logger.error("alert sent but not marked", extra={"transaction_id": alert["transaction_id"],
                                                         "error_type": type(exc).__name__})


def _release(table: str, alert: dict[str, Any], token: str) -> None:
    try:
        client("dynamodb").update_item(
            TableName=table, Key=_key(alert), UpdateExpression="REMOVE alert_claim, alert_claimed_at",
            ConditionExpression="alert_claim = :token",
            ExpressionAttributeValues=dynamo.to_ddb({":token": token}))
    except (ClientError, BotoCoreError):
        pass  # the lease expires on its own
