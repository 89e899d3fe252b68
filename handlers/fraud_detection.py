"""Score transactions from the transactions table's DynamoDB stream.

Per batch (collect first, then the I/O in bulk):

1. parse: skip every record that is not an INSERT of a `record_type =
   "transaction"` item; an image that fails validation is a poison record:
   logged, counted (`PoisonRecords`) and skipped, so it can never block the shard;
2. velocity: one BatchGetItem + one TransactWriteItems per 100 card buckets;
3. ML (when configured): one InvokeEndpoint per 100 transactions;
4. score (pure `rules`);
5. decision write-back: TransactWriteItems of UpdateItem actions (100 per call)
   that SET only detection's attributes (decision, score, rules_score, ml_score,
   reasons, velocity_count, scored_at) -- never other stages' attributes;
6. flagged (review/block): SendMessageBatch to the alert queue (10 per call);
7. block: PutObject `high-risk/YYYY/MM/DD/<transaction_id>.json` (date of the transaction, UTC);
8. every decision: PutEvents to the bus (10 entries per call).

Failures are mapped back to the stream records and reported as
`batchItemFailures` through the Powertools BatchProcessor; a record that failed a
step skips the later ones. Retries are safe: velocity entries are set members,
the write-back and archive are overwrites with the same values, and the alert
and review consumers de-duplicate on markers in the table.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType
from botocore.exceptions import BotoCoreError, ClientError

from . import dynamo, ml, velocity
from .alerts import decision_record
from .bulk import BulkOutcomes
from .clients import client, cold_start_cache, env
from .jsonutil import dumps
from .observability import logger, metrics, tracer
from .rules import Assessment, Rules, assess, load_rules
from .validation import validate_stored

EVENT_SOURCE = "fraud-pipeline.detection"
EVENT_DETAIL_TYPE = "FraudDecision"
SQS_BATCH = 10
EVENTS_BATCH = 10

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@cold_start_cache
def rules() -> Rules:
    """RULES_JSON, parsed once; a bad value fails the cold start with a message naming the key."""
    return load_rules(os.environ.get("RULES_JSON"))


rules()  # fail the init phase, not the first batch, on a bad RULES_JSON


class StepFailed(RuntimeError):
    """A record's processing step did not complete; the record is retried."""


#: Outcome per stream sequence number for the batch being handled (None = done).
batch_outcomes = BulkOutcomes(lambda record: record.dynamodb.sequence_number, StepFailed)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return batch_outcomes.respond(event, context, processor, process_batch(event.get("Records") or []))


def _parse(records: list[dict[str, Any]], now_ms: int) -> tuple[dict[str, Exception | None], dict[str, dict[str, Any]]]:
    outcomes: dict[str, Exception | None] = {}
    txns: dict[str, dict[str, Any]] = {}
    skipped = poison = 0
    for record in records:
        stream = record.get("dynamodb") or {}
        seq = stream.get("SequenceNumber")
        if not seq:
            continue
        outcomes[seq] = None
        if record.get("eventName") != "INSERT":
            skipped += 1
            continue
        try:
            item = dynamo.from_ddb(stream.get("NewImage") or {})
        except (TypeError, ValueError, KeyError, AttributeError):
            item = None
        if item is not None and item.get("record_type") != "transaction":
            skipped += 1
            continue
        errors = validate_stored(item, now_ms=now_ms) if item is not None else None
        if item is None or errors:
            poison += 1
            logger.error("poison stream record skipped", extra={
                "sequence_number": seq,
                "transaction_id": item.get("transaction_id") if item and isinstance(item.get("transaction_id"), str) else None,
                "fields": sorted({e.field for e in errors}) if errors else ["NewImage"],
            })
            continue
        txns[seq] = item
    if skipped:
        metrics.add_metric(name="RecordsSkipped", unit="Count", value=skipped)
    if poison:
        metrics.add_metric(name="PoisonRecords", unit="Count", value=poison)
    return outcomes, txns


@tracer.capture_method(capture_response=False)
def process_batch(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    """Score and act on a batch of stream records; return the outcome per sequence number."""
    now_ms = int(time.time() * 1000)
    outcomes, txns = _parse(records, now_ms)
    if not txns:
        return outcomes
    config = rules()

    def fail(seqs: Any, why: str) -> None:
        for seq in seqs:
            if seq in txns:
                outcomes[seq] = StepFailed(why)
                del txns[seq]

    # velocity -----------------------------------------------------------------
    counted = velocity.count_and_record(env("VELOCITY_TABLE_NAME"), txns, config.velocity_window_ms)
    if counted.failed:
        logger.warning("velocity not recorded; records will be retried", extra={"records": len(counted.failed)})
    fail(list(counted.failed), "velocity not recorded")

    # scoring ------------------------------------------------------------------
    seqs = list(txns)
    ml_scores = ml.score_batch([ml.features(txns[s], counted.counts.get(s, 0)) for s in seqs])
    assessments: dict[str, Assessment] = {
        s: assess(txns[s], config, counted.counts.get(s, 0), ml_score) for s, ml_score in zip(seqs, ml_scores)
    }

    # decision write-back --------------------------------------------------------
    table = env("TABLE_NAME")
    groups = [[_write_back(table, txns[s], assessments[s], counted.counts.get(s, 0), now_ms)] for s in seqs]
    for seq, outcome in zip(seqs, dynamo.transact(groups)):
        if dynamo.applied(outcome):
            continue
        if outcome[0] and outcome[0].code == "ConditionalCheckFailed":
            # The item is gone (expired or deleted): nothing to decide on; do not retry forever.
            logger.warning("transaction item missing at write-back; skipped",
                           extra={"transaction_id": txns[seq]["transaction_id"]})
            txns.pop(seq)
            continue
        fail([seq], "decision not written")

    records_out = {s: decision_record(txns[s], assessments[s], decided_at_ms=now_ms) for s in txns}

    # alerts, archive, events ------------------------------------------------------
    fail(_queue_alerts({s: r for s, r in records_out.items() if assessments[s].flagged}), "alert not queued")
    fail(_archive({s: (txns[s], records_out[s]) for s in txns if assessments[s].decision == "block"}), "not archived")
    fail(_publish_events({s: records_out[s] for s in txns}), "event not published")

    _count_metrics([assessments[s] for s in txns])
    logger.info("batch scored", extra={
        "records": len(records), "scored": len(txns),
        "failed": sum(1 for o in outcomes.values() if o is not None),
        "decisions": dict(Counter(assessments[s].decision for s in txns)),
    })
    return outcomes


def _write_back(table: str, txn: dict[str, Any], a: Assessment, velocity_count: int, now_ms: int) -> dict[str, Any]:
    names = {"#decision": "decision", "#score": "score", "#rules": "rules_score", "#reasons": "reasons",
             "#velocity": "velocity_count", "#at": "scored_at", "#rt": "record_type"}
    values: dict[str, Any] = {":decision": a.decision, ":score": a.score, ":rules": a.rules_score,
                              ":reasons": list(a.reasons), ":velocity": velocity_count, ":at": now_ms,
                              ":rt": "transaction"}
    expression = "SET #decision = :decision, #score = :score, #rules = :rules, #reasons = :reasons, #velocity = :velocity, #at = :at"
    if a.ml_score is not None:
        names["#ml"] = "ml_score"
        values[":ml"] = a.ml_score
        expression += ", #ml = :ml"
    return {"Update": {
        "TableName": table,
        "Key": dynamo.to_ddb({"transaction_id": txn["transaction_id"], "timestamp": int(txn["timestamp"])}),
        "UpdateExpression": expression,
        "ConditionExpression": "attribute_exists(transaction_id) AND #rt = :rt",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": dynamo.to_ddb(values),
    }}


def _queue_alerts(flagged: dict[str, dict[str, Any]]) -> list[str]:
    failed: list[str] = []
    items = list(flagged.items())
    for start in range(0, len(items), SQS_BATCH):
        chunk = items[start:start + SQS_BATCH]
        entries = [{
            "Id": str(i),
            "MessageBody": dumps(record),
            "MessageAttributes": {
                "decision": {"DataType": "String", "StringValue": record["decision"]},
                "severity": {"DataType": "String", "StringValue": record["severity"]},
            },
        } for i, (_, record) in enumerate(chunk)]
        try:
            response = client("sqs").send_message_batch(QueueUrl=env("ALERT_QUEUE_URL"), Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("alert batch not queued", extra={"error_type": type(exc).__name__, "entries": len(chunk)})
            failed.extend(seq for seq, _ in chunk)
            continue
        for failure in response.get("Failed") or []:
            failed.append(chunk[int(failure["Id"])][0])
    queued = len(items) - len(failed)
    if queued:
        metrics.add_metric(name="AlertsQueued", unit="Count", value=queued)
    return failed


def archive_key(record: dict[str, Any]) -> str:
    day = datetime.fromtimestamp(int(record["timestamp"]) / 1000, tz=timezone.utc)
    return f"high-risk/{day:%Y/%m/%d}/{record['transaction_id']}.json"


def _archive(blocked: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    failed: list[str] = []
    for seq, (txn, record) in blocked.items():
        document = {**record, "card_token": txn.get("card_token"), "customer_id": txn.get("customer_id"),
                    "hour": txn.get("hour"), "location_mismatch": txn.get("location_mismatch"),
                    "velocity_flag": txn.get("velocity_flag"), "source": txn.get("source")}
        try:
            client("s3").put_object(Bucket=env("ARCHIVE_BUCKET"), Key=archive_key(record),
                                    Body=dumps(document).encode(), ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            logger.warning("high-risk archive failed", extra={"error_type": type(exc).__name__,
                                                              "transaction_id": record["transaction_id"]})
            failed.append(seq)
    if len(blocked) - len(failed):
        metrics.add_metric(name="HighRiskArchived", unit="Count", value=len(blocked) - len(failed))
    return failed


def _publish_events(records: dict[str, dict[str, Any]]) -> list[str]:
    failed: list[str] = []
    items = list(records.items())
    bus = env("EVENT_BUS_NAME")
    for start in range(0, len(items), EVENTS_BATCH):
        chunk = items[start:start + EVENTS_BATCH]
        entries = [{"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE, "Detail": dumps(record),
                    "EventBusName": bus, "Resources": []} for _, record in chunk]
        try:
            response = client("events").put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("decision events not published", extra={"error_type": type(exc).__name__, "entries": len(chunk)})
            failed.extend(seq for seq, _ in chunk)
            continue
        for (seq, _), entry in zip(chunk, response.get("Entries") or []):
            if entry.get("ErrorCode"):
                failed.append(seq)
    return failed


def _count_metrics(assessments: list[Assessment]) -> None:
    if not assessments:
        return
    metrics.add_metric(name="TransactionsScored", unit="Count", value=len(assessments))
    for decision, n in Counter(a.decision for a in assessments).items():
        metrics.add_metric(name=f"Decision{decision.capitalize()}", unit="Count", value=n)
    for code, n in Counter(code for a in assessments for code in a.reasons).items():
        metrics.add_metric(name=f"RuleHit{''.join(p.capitalize() for p in code.split('_'))}", unit="Count", value=n)
