"""Bulk labels: S3 ObjectCreated under `labels/` in the archive bucket -> `labels.record_labels`.

Formats, chosen by the key's suffix (`.gz` allowed on either, gzip):

* `.jsonl`, `.ndjson`, `.json` -- one JSON object per line,
  `{"transaction_id", "label", "source", "note"?, "labelled_at"?}`; blank lines are skipped;
* `.csv` -- a header naming the columns `transaction_id,label,source` and optionally `note` and
  `labelled_at` (any order, case-insensitive), then one row per label; an empty `note` or
  `labelled_at` cell means none.

`labelled_at` (epoch ms or ISO 8601 UTC; not in the future, not before the transaction's timestamp)
is when the label was established -- a chargeback's date -- and becomes the label time
(`labels.record_labels`); without it the label time is when the file is processed.

Every row is validated with the API's rules (`labels.validate_label`). Valid rows are applied 100 at a
time; when a file labels the same transaction more than once, its last row is the one applied. Rows
that are invalid, and rows naming an unknown transaction, are *quarantined*: one JSON document per
file at `rejected/labels/<key without the labels/ prefix>.json` (same bucket):

    {"source_key": "labels/…", "records": [{"line": 7, "reasons": [{"field": "label", "message": "…"}]}]}

It lists line numbers and reasons only -- never row content, which could hold a card number. A
problem with the whole object (unsupported suffix, over 50 MB, compressed or not, bad gzip, bad CSV
header) is one record with `"line": 0` (or the header's line) and field `object` / `header`.

Re-processing the same file is idempotent: applied rows are found unchanged (their events are
published again: at-least-once), the quarantine document is rewritten with the same content. The
handler raises -- so Lambda retries the event -- only when some rows failed transiently (throttling,
an event not published, the quarantine upload failing); everything else is done for good.
"""

from __future__ import annotations

import csv
import gzip
import io
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from . import contract, labels
from .clients import ConfigurationError, client, env
from .dynamo import error_code
from .jsonutil import InvalidJson, dumps, loads
from .observability import logger, mask_pans, metrics, tracer
from .validation import FieldError

LABELS_PREFIX = contract.ARCHIVE_LABELS_PREFIX
QUARANTINE_PREFIX = contract.ARCHIVE_REJECTED_LABELS_PREFIX
MAX_OBJECT_BYTES = 50 * 1024 * 1024
MAX_LINE_BYTES = contract.MAX_LABEL_LINE_BYTES
CHUNK_ROWS = 100
#: Most rejected rows one quarantine document lists (the rest are counted).
MAX_QUARANTINED_RECORDS = 10_000
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv",)
CSV_REQUIRED = ("transaction_id", "label", "source")
CSV_OPTIONAL = ("note", "labelled_at")
NOT_FOUND = FieldError("transaction_id", "is not a known transaction")


class LabelIngestFailed(RuntimeError):
    """Some rows of a file were not applied this time; Lambda retries the event."""


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    records = (event.get("Records") if isinstance(event, dict) else None) or []
    files: list[dict[str, Any]] = []
    failed: list[str] = []
    for record in records:
        s3 = (record or {}).get("s3") or {}
        name = str(record.get("eventName") or "ObjectCreated:")
        bucket = (s3.get("bucket") or {}).get("name")
        raw_key = (s3.get("object") or {}).get("key")
        if not name.startswith("ObjectCreated") or not isinstance(bucket, str) or not isinstance(raw_key, str):
            continue
        key = unquote_plus(raw_key)
        if not key.startswith(LABELS_PREFIX):
            logger.info("object ignored: not under labels/", extra={"key": mask_pans(key)[:256]})
            continue
        if bucket != env(contract.ARCHIVE_BUCKET):
            logger.warning("object ignored: not in the archive bucket", extra={"bucket": bucket})
            continue
        try:
            files.append(ingest_object(bucket, key, (s3.get("object") or {}).get("size")))
        except (ClientError, BotoCoreError, ConfigurationError, LabelIngestFailed) as exc:
            logger.warning("label file not fully applied; the event will be retried",
                           extra={"key": mask_pans(key)[:256], "error_type": type(exc).__name__, "error": str(exc)[:512]})
            failed.append(key)
    if failed:
        raise LabelIngestFailed(f"{len(failed)} label file(s) not fully applied; retry the event")
    return {"files": files}


def quarantine_key(key: str) -> str:
    return QUARANTINE_PREFIX + key[len(LABELS_PREFIX):] + ".json"


def _format(key: str) -> tuple[str, bool] | None:
    lower = key.lower()
    compressed = lower.endswith(".gz")
    if compressed:
        lower = lower[:-3]
    if lower.endswith(JSON_SUFFIXES):
        return "json", compressed
    if lower.endswith(CSV_SUFFIXES):
        return "csv", compressed
    return None


def _record(line: int, errors: list[FieldError]) -> dict[str, Any]:
    return {"line": line, "reasons": [e.as_dict() for e in errors]}


# --------------------------------------------------------------------------- one object
@tracer.capture_method(capture_response=False)
def ingest_object(bucket: str, key: str, size: Any = None) -> dict[str, Any]:
    """Apply one label file; return its counts. Raises `LabelIngestFailed` when some rows must be retried."""
    now_ms = int(time.time() * 1000)
    rejected: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"key": key, "rows": 0, "recorded": 0, "unchanged": 0, "rejected": 0, "failed": 0}
    too_large = FieldError("object", f"must be at most {MAX_OBJECT_BYTES} bytes")

    fmt = _format(key)
    stream: io.BufferedIOBase | None = None
    if fmt is None:
        rejected.append(_record(0, [FieldError("object", "key must end in .jsonl, .ndjson, .json or .csv, "
                                                         "optionally followed by .gz")]))
    elif isinstance(size, int) and size > MAX_OBJECT_BYTES:
        rejected.append(_record(0, [too_large]))
    else:
        try:
            obj = client("s3").get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if error_code(exc) not in ("NoSuchKey", "404"):
                raise
            logger.warning("label file gone before it was read; nothing to do", extra={"key": mask_pans(key)[:256]})
            return summary
        body = obj["Body"]
        try:
            data = b"" if int(obj.get("ContentLength") or 0) > MAX_OBJECT_BYTES else body.read(MAX_OBJECT_BYTES + 1)
        finally:
            body.close()
        if not data and int(obj.get("ContentLength") or 0) > 0 or len(data) > MAX_OBJECT_BYTES:
            rejected.append(_record(0, [too_large]))
        elif fmt[1]:
            problem = _check_gzip(data)
            if problem:
                rejected.append(_record(0, [problem]))
            else:
                stream = gzip.GzipFile(fileobj=io.BytesIO(data))
        else:
            stream = io.BytesIO(data)
    if rejected:
        logger.error("label file refused", extra={"key": mask_pans(key)[:256],
                                                  "reason": rejected[0]["reasons"][0]["message"]})

    # parse and validate every row (the last row for a transaction wins)
    valid: dict[str, tuple[int, labels.LabelRequest]] = {}
    invalid = 0
    if stream is not None and fmt is not None:
        rows = _csv_rows(stream, rejected) if fmt[0] == "csv" else _json_rows(stream, rejected)
        for line, row in rows:
            summary["rows"] += 1
            if row is None:  # already quarantined by the parser
                invalid += 1
                continue
            request, problems = labels.validate_label(row, now_ms=now_ms)
            if request is None:
                invalid += 1
                rejected.append(_record(line, [FieldError("row", p.message) if p.field == "body" else p
                                               for p in problems]))
            else:
                valid.pop(request.transaction_id, None)
                valid[request.transaction_id] = (line, request)
    labels.count_rejected(invalid)

    # apply, 100 at a time
    pending = list(valid.values())
    for start in range(0, len(pending), CHUNK_ROWS):
        chunk = pending[start:start + CHUNK_ROWS]
        for (line, _), outcome in zip(chunk, labels.record_labels([r for _, r in chunk], now_ms)):
            if outcome.status == labels.NOT_FOUND:
                rejected.append(_record(line, [NOT_FOUND]))
            elif outcome.status == labels.INVALID:
                rejected.append(_record(line, outcome.errors))
            elif outcome.status in (labels.RECORDED, labels.UNCHANGED):
                summary[outcome.status] += 1
            else:
                summary["failed"] += 1

    summary["rejected"] = len(rejected)
    if rejected:
        _quarantine(bucket, key, rejected)
    metrics.add_metric(name="LabelFilesProcessed", unit="Count", value=1)
    logger.info("label file processed", extra={**summary, "key": mask_pans(key)[:256]})
    if summary["failed"]:
        raise LabelIngestFailed(f"{summary['failed']} label(s) not applied this time")
    return summary


def _check_gzip(data: bytes) -> FieldError | None:
    """None when `data` is a complete gzip stream of at most MAX_OBJECT_BYTES decompressed."""
    total = 0
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as f:
            while True:
                block = f.read(1024 * 1024)
                if not block:
                    return None
                total += len(block)
                if total > MAX_OBJECT_BYTES:
                    return FieldError("object", f"must be at most {MAX_OBJECT_BYTES} bytes decompressed")
    except (OSError, EOFError, zlib.error):
        return FieldError("object", "is not a valid gzip file")


def _lines(stream: io.BufferedIOBase) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, 1):
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        yield number, line


def _json_rows(stream: io.BufferedIOBase, rejected: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
    """(line, parsed object) per non-blank line; (line, None) for a line quarantined here."""
    for number, line in _lines(stream):
        text = line.strip()
        if not text:
            continue
        if len(text) > MAX_LINE_BYTES:
            rejected.append(_record(number, [FieldError("row", f"must be at most {MAX_LINE_BYTES} bytes")]))
            yield number, None
            continue
        try:
            yield number, loads(text)
        except InvalidJson as exc:
            field = "row" if exc.field == "body" else exc.field
            rejected.append(_record(number, [FieldError(field, exc.message)]))
            yield number, None


def _csv_rows(stream: io.BufferedIOBase, rejected: list[dict[str, Any]]) -> Iterator[tuple[int, Any]]:
    """(line, row as a dict of the header's columns) per data row; (line, None) for a row quarantined here."""
    # undecodable bytes become lone surrogates, which validation refuses with a message naming the field
    text = (line.decode("utf-8", errors="surrogateescape") for _, line in _lines(stream))
    reader = csv.reader(text, strict=True)
    header: list[str] | None = None
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error:
            if header is None:
                rejected.append(_record(start, [FieldError("header", "is not valid CSV")]))
                return
            rejected.append(_record(start, [FieldError("row", "is not valid CSV")]))
            yield start, None
            continue
        if not any(cell.strip() for cell in row):
            continue  # blank line
        if header is None:
            names = [cell.strip().lower() for cell in row]
            if (len(set(names)) != len(names) or not set(CSV_REQUIRED) <= set(names)
                    or not set(names) <= set(CSV_REQUIRED + CSV_OPTIONAL)):
                rejected.append(_record(start, [FieldError(
                    "header", "must name the columns transaction_id, label, source and optionally note "
                              "and labelled_at")]))
                return
            header = names
            continue
        if len(row) != len(header):
            rejected.append(_record(start, [FieldError("row", f"must have {len(header)} columns, as the header")]))
            yield start, None
            continue
        values: dict[str, Any] = {}
        for name, cell in zip(header, row):
            if name == "note":
                if cell.strip():
                    values[name] = cell
            elif cell.strip():
                values[name] = cell.strip()
        yield start, values


def _quarantine(bucket: str, key: str, rejected: list[dict[str, Any]]) -> None:
    rejected.sort(key=lambda r: r["line"])
    document: dict[str, Any] = {"source_key": key, "records": rejected[:MAX_QUARANTINED_RECORDS]}
    if len(rejected) > MAX_QUARANTINED_RECORDS:
        document["records_not_listed"] = len(rejected) - MAX_QUARANTINED_RECORDS
    target = quarantine_key(key)
    try:
        client("s3").put_object(Bucket=bucket, Key=target, Body=dumps(document).encode(),
                                ContentType="application/json")
    except (ClientError, BotoCoreError) as exc:
        raise LabelIngestFailed(f"quarantine upload failed ({type(exc).__name__})") from exc
    logger.warning("label rows quarantined", extra={
        "rows": len(rejected), "quarantine_key": mask_pans(target)[:300],
        "fields": sorted({r["field"] for rec in rejected for r in rec["reasons"]
                          if r["field"] in labels.BULK_FIELDS + ("row", "header", "object")}),
    })
