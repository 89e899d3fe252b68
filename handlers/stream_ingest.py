"""Kinesis ingest: base64 JSON records from producers -> transactions table.

Same field rules as the API, except that only `transaction_id` and `amount`
are required. When a record has no `timestamp`, its Kinesis arrival time is
used (stable across retries, so a retried record is recognised as the same).

Per batch:

* decode + validate every record (pure); tokenise card numbers;
* invalid records are *quarantined*: one JSON object per batch under
  `rejected/YYYY/MM/DD/<shard>/<first sequence number>.json` in the archive
  bucket, with each record's reasons and a redacted copy of what was sent
  (`card_number` removed, card-number-like digit runs masked). They are then
  done: never retried, so a poison record cannot block the shard;
* duplicates inside the batch are collapsed; one BatchGetItem per 100 ids finds
  transactions recorded before (replays are done, a different transaction
  under a known id is quarantined as a conflict);
* new transactions are written with their idempotency claims, 50 per
  TransactWriteItems call (see `transactions`).

Transient failures (a throttled write, the quarantine upload failing) are
reported as `batchItemFailures`, so Lambda retries from the first failed record.
"""

from __future__ import annotations

import base64
import binascii
import os
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import EventType
from botocore.exceptions import BotoCoreError, ClientError

from . import contract, transactions
from .bulk import BulkBatchProcessor
from .clients import client, env
from .jsonutil import InvalidJson, NonFinite, dumps, loads
from .observability import logger, mask_pans, metrics, tracer
from .tokenise import card_token
from .validation import API_FIELDS, FieldError, validate_transaction

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

MAX_RECORD_BYTES = contract.MAX_TRANSACTION_BYTES
MAX_QUARANTINED_TEXT = 4096
KNOWN_FIELDS = frozenset(API_FIELDS) | {"body", "data"}



class IngestFailed(RuntimeError):
    """The record was not stored this time; Lambda retries it."""


def _bulk(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    return ingest(records)   # looked up when called: `ingest` is defined below


processor = BulkBatchProcessor(EventType.KinesisDataStreams, _bulk, IngestFailed)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    records = event.get("Records") or []
    metrics.add_metric(name="RecordsReceived", unit="Count", value=len(records))
    return processor.respond(event, context)


# --------------------------------------------------------------------------- redaction for the quarantine
def redact(value: Any, key: str | None = None) -> Any:
    """A copy of a rejected payload that is safe to keep: no card number in any form we can recognise."""
    if key == "card_number":
        return "[REDACTED]"
    if isinstance(value, dict):
        return {mask_pans(k)[:128]: redact(v, k) for k, v in list(value.items())[:100]}
    if isinstance(value, list):
        return [redact(v) for v in value[:100]]
    if isinstance(value, str):
        return mask_pans(value)[:1024]
    if isinstance(value, NonFinite):
        return value.literal
    if isinstance(value, Decimal):
        return mask_pans(str(value))[:64]
    if isinstance(value, int) and not isinstance(value, bool):
        return value if key == "timestamp" or len(str(abs(value))) < 12 else "[REDACTED]"
    return value


def _text(data: bytes) -> str:
    return mask_pans(data[:MAX_QUARANTINED_TEXT].decode("utf-8", errors="replace"))


# --------------------------------------------------------------------------- the batch
@tracer.capture_method(capture_response=False)
def ingest(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    now_ms = int(time.time() * 1000)
    outcomes: dict[str, Exception | None] = {}
    rejected: list[tuple[dict[str, Any], list[FieldError], Any]] = []
    valid: list[tuple[str, dict[str, Any]]] = []

    for record in records:
        kinesis = record.get("kinesis") or {}
        seq = kinesis.get("sequenceNumber")
        if not seq:
            continue
        outcomes[seq] = None
        try:
            data = base64.b64decode(kinesis.get("data") or "", validate=True)
        except (binascii.Error, ValueError):
            rejected.append((record, [FieldError("data", "is not valid base64")], None))
            continue
        if len(data) > MAX_RECORD_BYTES:
            rejected.append((record, [FieldError("data", f"must be at most {MAX_RECORD_BYTES} bytes")], _text(data)))
            continue
        try:
            body = loads(data)
        except InvalidJson as exc:
            rejected.append((record, [FieldError(exc.field, exc.message)], _text(data)))
            continue
        arrival = kinesis.get("approximateArrivalTimestamp")
        arrival_ms = int(Decimal(str(arrival)) * 1000) if isinstance(arrival, (int, float)) else now_ms
        validated = validate_transaction(body, mode="stream", now_ms=now_ms, default_timestamp_ms=min(arrival_ms, now_ms))
        if not validated.ok:
            rejected.append((record, validated.errors, redact(body)))
            continue
        txn = dict(validated.transaction or {})
        if validated.card_number:
            txn["card_token"] = card_token(validated.card_number)
        valid.append((seq, transactions.build_item(txn, source="stream", now_ms=now_ms)))
        del validated, body, data

    _store(valid, outcomes, rejected, {r["kinesis"]["sequenceNumber"]: r for r in records
                                       if (r.get("kinesis") or {}).get("sequenceNumber")})
    if rejected:
        failed = _quarantine(rejected, now_ms)
        for seq in failed:
            outcomes[seq] = IngestFailed("quarantine upload failed")
    if valid:
        stored = sum(1 for seq, _ in valid if outcomes.get(seq) is None)
        metrics.add_metric(name="RecordsIngested", unit="Count", value=stored)
    return outcomes


def _store(valid: list[tuple[str, dict[str, Any]]], outcomes: dict[str, Exception | None],
           rejected: list[tuple[dict[str, Any], list[FieldError], Any]], raw: dict[str, dict[str, Any]]) -> None:
    if not valid:
        return
    table = env(contract.TABLE_NAME)
    by_seq = {seq: item for seq, item in valid}
    first: dict[str, str] = {}
    duplicates_in_batch: list[str] = []
    for seq, item in valid:
        tid = item["transaction_id"]
        if tid in first:
            duplicates_in_batch.append(seq)
        else:
            first[tid] = seq

    claims, unread = transactions.find_claims(table, list(first))
    to_write: list[str] = []
    duplicates = 0
    for tid, seq in first.items():
        if tid in unread:
            outcomes[seq] = IngestFailed("idempotency claim not readable")
        elif tid in claims:
            result = transactions.check_existing(claims[tid], by_seq[seq])
            _settle(seq, result, outcomes, rejected, by_seq, raw)
            duplicates += result.status == "duplicate"
        else:
            to_write.append(seq)

    if to_write:
        results = transactions.write_claimed(table, [by_seq[s] for s in to_write])
        for seq, result in zip(to_write, results):
            _settle(seq, result, outcomes, rejected, by_seq, raw)
            duplicates += result.status == "duplicate"

    # A second copy in the same batch: the same as the first if identical, a conflict otherwise.
    for seq in duplicates_in_batch:
        item = by_seq[seq]
        original = first[item["transaction_id"]]
        if transactions.fingerprint(item) != transactions.fingerprint(by_seq[original]):
            rejected.append((raw[seq], [FieldError("transaction_id", "was already used for a different transaction")],
                             redact(_public(item))))
        else:
            outcomes[seq] = outcomes.get(original)
            duplicates += 1
    if duplicates:
        metrics.add_metric(name="DuplicateRecords", unit="Count", value=duplicates)


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """The submitted fields of a stored item (card as last four digits only)."""
    keep = ("transaction_id", "timestamp", "amount", "currency", "merchant", "location", "customer_id",
            "hour", "location_mismatch", "velocity_flag", "card_last4")
    return {k: item[k] for k in keep if k in item}


def _settle(seq: str, result: transactions.WriteOutcome, outcomes: dict[str, Exception | None],
            rejected: list[tuple[dict[str, Any], list[FieldError], Any]], by_seq: dict[str, dict[str, Any]],
            raw: dict[str, dict[str, Any]]) -> None:
    if result.status in ("created", "duplicate"):
        outcomes[seq] = None
    elif result.status == "conflict":
        rejected.append((raw[seq], [FieldError("transaction_id", "was already used for a different transaction")],
                         redact(_public(by_seq[seq]))))
    else:
        logger.warning("record not stored; will be retried", extra={"sequence_number": seq, "detail": result.detail})
        outcomes[seq] = IngestFailed(result.detail or "not stored")


def _seq_order(record: dict[str, Any]) -> tuple[int, str]:
    seq = str((record.get("kinesis") or {}).get("sequenceNumber") or "")
    return (len(seq), seq)


def _quarantine(rejected: list[tuple[dict[str, Any], list[FieldError], Any]], now_ms: int) -> list[str]:
    """Upload the rejected records of this batch as one object; return the sequence numbers on failure."""
    seqs = [r.get("kinesis", {}).get("sequenceNumber", "") for r, _, _ in rejected]
    first = min((r for r, _, _ in rejected), key=_seq_order)
    shard = (first.get("eventID") or "unknown:").split(":", 1)[0] or "unknown"
    day = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
    key = f"{contract.ARCHIVE_REJECTED_PREFIX}{day:%Y/%m/%d}/{shard}/{first['kinesis']['sequenceNumber']}.json"
    document = {
        "rejected_at": now_ms,
        "environment": os.environ.get(contract.ENVIRONMENT, ""),
        "source": first.get("eventSourceARN"),
        "records": [{
            "sequence_number": r.get("kinesis", {}).get("sequenceNumber"),
            "partition_key": mask_pans(str(r.get("kinesis", {}).get("partitionKey", "")))[:256],
            "approximate_arrival_timestamp": r.get("kinesis", {}).get("approximateArrivalTimestamp"),
            "reasons": [e.as_dict() for e in errors],
            "record": payload,
        } for r, errors, payload in rejected],
    }
    try:
        client("s3").put_object(Bucket=env(contract.ARCHIVE_BUCKET), Key=key, Body=dumps(document).encode(),
                                ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        logger.warning("quarantine upload failed; records will be retried",
                       extra={"records": len(rejected), "error_type": type(exc).__name__})
        return seqs
    metrics.add_metric(name="RecordsQuarantined", unit="Count", value=len(rejected))
    logger.warning("records quarantined", extra={
        "records": len(rejected), "key": key,
        "fields": sorted({e.field for _, errors, _ in rejected for e in errors if e.field in KNOWN_FIELDS}),
    })
    return []
