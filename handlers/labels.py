"""Fraud labels: validation and the batched write shared by the label API, the bulk file ingest and
the review workflow.

A label is `{"label": "fraud"|"genuine", "source": "analyst"|"chargeback"|"customer", "note"?}` on
one transaction; a bulk-file row also names the transaction and may carry `labelled_at`, the time
the label was established (a chargeback feed's chargeback date). `record_labels` applies a list of
them in bulk:

1. the idempotency claims (BatchGetItem, `transactions.find_claims`) give each transaction's
   timestamp, i.e. its item key;
2. the transaction items (BatchGetItem) give the current label;
3. one TransactWriteItems *group* per label that changes something: an Update of the transaction
   item (`label`, `label_source`, `label_note`, `labelled_at`, `label_previous`), conditional on the
   item being a transaction whose label, source and `labelled_at` are still what step 2 read
   (optimistic concurrency), plus `features.label_actions` (the card's `frauds` set and the
   merchant's `f_<YYYYMMDD>` counter) -- so a label and its feature counts move together, exactly
   once. Groups are packed up to 100 actions per call, never two touching the same item in one call;
4. PutEvents (Source `fraud-pipeline.labels`, DetailType `FraudLabel`, 10 per call) for every label
   recorded now *or found already recorded* -- a retry after a lost event publishes it again
   (at-least-once; the detail is the same each time: it is rebuilt from the stored item).

Outcomes per label: ``recorded`` (new or changed), ``unchanged`` (same label and source already
stored: nothing written), ``not_found``, ``failed`` (transient: the caller answers 503 or retries),
``conflict`` (another writer changed the label between read and write, twice in a row),
``invalid`` (a row's `labelled_at` is before the transaction's timestamp: `errors` says so).

The *label time* is the request's `labelled_at` when it has one (bulk rows), else `now_ms` (the API,
the review workflow). It is what a recorded label stores as `labelled_at`, what keys the card's
`frauds` entry (detection counts a fraud label only from that time on) and whose UTC day names the
merchant's `f_<YYYYMMDD>` counter -- so a chargeback raised a week after the purchase counts from
the day it was raised, not from the day a back-fill was loaded.

`labelled_at` is the label time of the current *label value*: changing only the source or the
note keeps it, because the card's `frauds` entry and the merchant's day counter are keyed by it
(a later reversal removes exactly the entry that was added). `label_previous` is the label before
the last change (absent for the first label).

Notes are free text up to 500 characters, refused when they contain a card number (the same rule
as every other text field); they are stored, never logged or published.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract, dynamo, features, transactions
from .clients import client, env
from .jsonutil import dumps, safe_field_name, to_plain
from .observability import logger, mask_pans, metrics
from .validation import (
    MAX_FUTURE_SKEW_MS,
    MIN_TIMESTAMP_MS,
    FieldError,
    check_text,
    check_transaction_id,
)

LABELS = ("fraud", "genuine")
SOURCES = ("analyst", "chargeback", "customer")
NOTE_MAX = 500
#: Fields of a label body (the API takes the transaction id from the path).
FIELDS = ("label", "source", "note")
#: Fields of a bulk-file row (`labelled_at` is bulk-only: an API label is timed by the API).
BULK_FIELDS = ("transaction_id",) + FIELDS + ("labelled_at",)
#: Fields a body must have (the API's `transaction_id` comes from the path).
REQUIRED = ("transaction_id", "label", "source")
LABELLED_AT_FORMAT = "must be epoch milliseconds or an ISO 8601 UTC date-time (e.g. 2026-01-05T10:00:00Z)"
LABELLED_AT_FUTURE = "must not be in the future"
LABELLED_AT_BEFORE = "must not be before the transaction's timestamp"
MAX_DETAILS = 25

EVENT_SOURCE = contract.LABEL_EVENT_SOURCE
EVENT_DETAIL_TYPE = contract.LABEL_EVENT_DETAIL_TYPE
EVENT_SCHEMA_VERSION = 1
EVENTS_PER_CALL = 10
EVENT_ATTEMPTS = 3

RECORDED, UNCHANGED, NOT_FOUND, FAILED, CONFLICT, INVALID = (
    "recorded", "unchanged", "not_found", "failed", "conflict", "invalid")


@dataclass(frozen=True)
class LabelRequest:
    """A validated label for one transaction."""

    transaction_id: str
    label: str
    source: str
    note: str | None = None
    #: When the label was established (epoch ms; bulk rows only); None: when it is recorded.
    labelled_at: int | None = None


@dataclass
class LabelOutcome:
    """What `record_labels` did with one request (the stored state for recorded/unchanged)."""

    request: LabelRequest
    status: str  # recorded | unchanged | not_found | failed | conflict | invalid
    timestamp: int | None = None
    labelled_at: int | None = None
    previous_label: str | None = None
    detail: str = ""
    #: Why an ``invalid`` request was refused (field errors, as validation reports them).
    errors: list[FieldError] = field(default_factory=list)

    @property
    def transaction_id(self) -> str:
        return self.request.transaction_id

    @property
    def applied(self) -> bool:
        return self.status in (RECORDED, UNCHANGED)


# --------------------------------------------------------------------------- validation
def _one_of(choices: Sequence[str]) -> str:
    return "must be one of: " + ", ".join(choices)


def check_labelled_at(value: Any, now_ms: int) -> tuple[int | None, str | None]:
    """A bulk row's `labelled_at`: epoch ms (an integer, or a string of digits as a CSV cell holds it)
    or an ISO 8601 date-time in UTC (`Z`, `+00:00` or no offset). Not in the future (5 minutes of
    clock skew are allowed and the time is then taken as now), not before 2000."""
    if isinstance(value, bool):
        return None, LABELLED_AT_FORMAT
    millis: int | None = None
    if isinstance(value, (int, Decimal)):
        if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()
                                           or abs(value) > Decimal(10) ** 15):
            return None, LABELLED_AT_FORMAT
        millis = int(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40 or not text.isascii():
            return None, LABELLED_AT_FORMAT
        if text.isdigit():
            if len(text) > 15:
                return None, LABELLED_AT_FORMAT
            millis = int(text)
        else:
            try:
                parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "zZ" else text)
            except ValueError:
                return None, LABELLED_AT_FORMAT
            if parsed.tzinfo is not None and parsed.utcoffset() != timedelta(0):
                return None, LABELLED_AT_FORMAT
            try:
                millis = int(parsed.replace(tzinfo=UTC).timestamp() * 1000)
            except (OverflowError, ValueError, OSError):
                return None, LABELLED_AT_FORMAT
    else:
        return None, LABELLED_AT_FORMAT
    if millis > now_ms + MAX_FUTURE_SKEW_MS:
        return None, LABELLED_AT_FUTURE
    if millis < MIN_TIMESTAMP_MS:
        return None, LABELLED_AT_FORMAT
    return min(millis, now_ms), None


def validate_label(body: Any, *, transaction_id: str | None = None,
                   now_ms: int | None = None) -> tuple[LabelRequest | None, list[FieldError]]:
    """Check a label body; collect every problem (messages never quote the submitted values).

    With `transaction_id` (the API's path parameter) the body holds label, source and note only;
    without it (a bulk-file row) the body must also hold `transaction_id` and may hold `labelled_at`
    (checked against `now_ms`, default the clock; that it is not before the transaction's own
    timestamp is checked by `record_labels`, which reads the transaction).
    """
    errors: list[FieldError] = []
    allowed = FIELDS if transaction_id is not None else BULK_FIELDS
    if transaction_id is not None:
        tid, error = check_transaction_id(transaction_id)
        if error:
            errors.append(FieldError("transaction_id", error))
    if not isinstance(body, dict):
        return None, errors + [FieldError("body", "must be a JSON object")]
    for name in body:
        if name not in allowed:
            # the name is echoed back: never a card number pasted as a key
            errors.append(FieldError(safe_field_name(mask_pans(name) if isinstance(name, str) else name),
                                     "is not a recognised field"))
    for name in allowed:
        if name in REQUIRED and name not in body:
            errors.append(FieldError(name, "is required"))
    if transaction_id is None and "transaction_id" in body:
        tid, error = check_transaction_id(body["transaction_id"])
        if error:
            errors.append(FieldError("transaction_id", error))
    label = body.get("label")
    if "label" in body and label not in LABELS:
        errors.append(FieldError("label", _one_of(LABELS)))
    source = body.get("source")
    if "source" in body and source not in SOURCES:
        errors.append(FieldError("source", _one_of(SOURCES)))
    note = None
    if "note" in body and body["note"] is not None:
        note, error = check_text(body["note"], max_len=NOTE_MAX)
        if error:
            errors.append(FieldError("note", error))
    labelled_at = None
    if transaction_id is None and body.get("labelled_at") is not None:
        labelled_at, error = check_labelled_at(body["labelled_at"],
                                               int(time.time() * 1000) if now_ms is None else now_ms)
        if error:
            errors.append(FieldError("labelled_at", error))
    if errors:
        rank = {name: i for i, name in enumerate(("body",) + BULK_FIELDS)}
        return None, sorted(errors, key=lambda e: rank.get(e.field, len(rank)))[:MAX_DETAILS]
    # no errors: label and source were given (REQUIRED) and are among LABELS and SOURCES
    assert isinstance(label, str) and isinstance(source, str)
    tid = transaction_id if transaction_id is not None else body["transaction_id"]
    return LabelRequest(transaction_id=tid, label=label, source=source, note=note, labelled_at=labelled_at), []


def count_rejected(n: int) -> None:
    """Metric for labels refused before `record_labels` (invalid input, unknown transaction)."""
    if n:
        metrics.add_metric(name="LabelsRejected", unit="Count", value=n)


# --------------------------------------------------------------------------- recording
@dataclass
class _Pending:
    index: int
    request: LabelRequest
    #: The transaction item's key (from its claim).
    key: dict[str, Any] = field(default_factory=dict)
    #: The transaction item as last seen (None: to be read).
    item: dict[str, Any] | None = None
    #: Writes tried so far.
    attempts: int = 0
    #: What the write stores (for the outcome and the event).
    labelled_at: int | None = None
    previous: str | None = None

    @property
    def timestamp(self) -> int | None:
        return int(self.key["timestamp"]) if self.key else None


def record_labels(requests: Sequence[LabelRequest], now_ms: int) -> list[LabelOutcome]:
    """Apply `requests` (see the module docstring); one outcome per request, in order.

    Requests for the same transaction are applied one after the other, in order (the last one
    wins). Transient trouble is a ``failed`` outcome; an exception means a defect, a missing
    environment variable or a non-retryable AWS error (callers treat it as a dependency failure).
    """
    outcomes: list[LabelOutcome | None] = [None] * len(requests)
    # rounds of distinct transaction ids (one TransactWriteItems call may touch an item only once):
    # the k-th request for an id goes in round k
    rounds: list[list[_Pending]] = []
    seen: dict[str, int] = {}
    for index, request in enumerate(requests):
        k = seen.get(request.transaction_id, 0)
        seen[request.transaction_id] = k + 1
        if k == len(rounds):
            rounds.append([])
        rounds[k].append(_Pending(index, request))
    for batch in rounds:
        for pending, outcome in _record_round(batch, now_ms):
            outcomes[pending.index] = outcome
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(requests)
    _publish([o for o in done if o.applied])
    _summarise(done)
    return done


def _record_round(batch: list[_Pending], now_ms: int) -> list[tuple[_Pending, LabelOutcome]]:
    table, features_table = env(contract.TABLE_NAME), env(contract.FEATURES_TABLE_NAME)
    results: list[tuple[_Pending, LabelOutcome]] = []

    claims, unread_claims = transactions.find_claims(table, [p.request.transaction_id for p in batch])
    to_read: list[_Pending] = []
    for p in batch:
        tid = p.request.transaction_id
        if tid in unread_claims:
            results.append((p, LabelOutcome(p.request, FAILED, detail="idempotency claim not readable")))
        elif tid not in claims:
            results.append((p, LabelOutcome(p.request, NOT_FOUND)))
        else:
            p.key = {"transaction_id": tid, "timestamp": int(claims[tid]["transaction_timestamp"])}
            to_read.append(p)

    while to_read:
        unreadable = _read_items(table, to_read)
        writes: list[tuple[_Pending, list[dict[str, Any]]]] = []
        for p in to_read:
            if id(p) in unreadable:
                results.append((p, LabelOutcome(p.request, FAILED, p.timestamp, detail="transaction not readable")))
            elif not p.item or p.item.get("record_type") != transactions.RECORD_TYPE:
                results.append((p, LabelOutcome(p.request, NOT_FOUND, p.timestamp)))
            elif (p.request.labelled_at is not None and p.timestamp is not None   # read items have their key
                  and p.request.labelled_at < p.timestamp):
                results.append((p, LabelOutcome(p.request, INVALID, p.timestamp, detail=LABELLED_AT_BEFORE,
                                                errors=[FieldError("labelled_at", LABELLED_AT_BEFORE)])))
            else:
                group = _group(p, table, features_table, now_ms)
                if group is None:
                    results.append((p, LabelOutcome(p.request, UNCHANGED, p.timestamp,
                                                    _int_or_none(p.item.get("labelled_at")),
                                                    _str_or_none(p.item.get("label_previous")))))
                else:
                    writes.append((p, group))
        to_read = []
        failures = _write([g for _, g in writes])
        for (p, _), failure in zip(writes, failures):
            p.attempts += 1
            if failure is None:
                results.append((p, LabelOutcome(p.request, RECORDED, p.timestamp, p.labelled_at, p.previous)))
            elif failure.code == "ConditionalCheckFailed" and p.attempts < 2:
                # another writer changed the label since it was read: look again, once
                p.item = failure.item  # ALL_OLD; None -> read it again
                to_read.append(p)
            elif failure.code == "ConditionalCheckFailed":
                results.append((p, LabelOutcome(p.request, CONFLICT, p.timestamp, detail="label changed concurrently")))
            else:
                results.append((p, LabelOutcome(p.request, FAILED, p.timestamp, detail=f"label not written: {failure.code}")))
    return results


def _int_or_none(value: Any) -> int | None:
    return int(value) if value is not None and not isinstance(value, bool) else None


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _read_items(table: str, pending: list[_Pending]) -> set[int]:
    """Read (strongly consistent) the items not known yet; return ids of the pending entries not read."""
    need = [p for p in pending if p.item is None]
    if not need:
        return set()
    found, missing = dynamo.batch_get(table, [p.key for p in need])
    by_key = {(i.get("transaction_id"), _int_or_none(i.get("timestamp"))): i for i in found}
    not_read = {(k.get("transaction_id"), _int_or_none(k.get("timestamp"))) for k in missing}
    unreadable: set[int] = set()
    for p in need:
        key = (p.key["transaction_id"], p.key["timestamp"])
        if key in not_read:
            unreadable.add(id(p))
        p.item = by_key.get(key, {})
    return unreadable


def _group(p: _Pending, table: str, features_table: str, now_ms: int) -> list[dict[str, Any]] | None:
    """The TransactWriteItems actions for one label, or None when it is already recorded."""
    item, request = p.item or {}, p.request
    old_label, old_source, old_at = item.get("label"), item.get("label_source"), item.get("labelled_at")
    if old_label == request.label and old_source == request.source:
        return None
    label_changed = old_label != request.label
    label_ms = request.labelled_at if request.labelled_at is not None else now_ms
    if label_changed or _int_or_none(old_at) is None:
        p.labelled_at, p.previous = label_ms, _str_or_none(old_label)
    else:  # only the source (or note) changes: the label value, its time and its predecessor stay
        p.labelled_at, p.previous = _int_or_none(old_at), _str_or_none(item.get("label_previous"))

    names = {"#l": "label", "#s": "label_source", "#a": "labelled_at", "#p": "label_previous",
             "#n": "label_note", "#rt": "record_type"}
    values: dict[str, Any] = {":l": request.label, ":s": request.source, ":a": p.labelled_at,
                              ":rt": transactions.RECORD_TYPE}
    sets = ["#l = :l", "#s = :s", "#a = :a"]
    removes = []
    if p.previous is not None:
        sets.append("#p = :p")
        values[":p"] = p.previous
    else:
        removes.append("#p")
    if request.note is not None:
        sets.append("#n = :n")
        values[":n"] = request.note
    else:
        removes.append("#n")
    expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
    conditions = ["attribute_exists(transaction_id)", "#rt = :rt"]
    for name, placeholder, old in (("#l", ":ol", old_label), ("#s", ":os", old_source), ("#a", ":oa", old_at)):
        if old is None:
            conditions.append(f"attribute_not_exists({name})")
        else:
            conditions.append(f"{name} = {placeholder}")
            values[placeholder] = old
    update = {"Update": {
        "TableName": table, "Key": dynamo.to_ddb(p.key), "UpdateExpression": expression,
        "ConditionExpression": " AND ".join(conditions),
        "ExpressionAttributeNames": names, "ExpressionAttributeValues": dynamo.to_ddb(values),
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }}
    old_at_ms = _int_or_none(old_at) if old_label == "fraud" else None
    return [update] + features.label_actions(features_table, item, _str_or_none(old_label), request.label,
                                             old_at_ms, label_ms)


def _targets(group: list[dict[str, Any]]) -> set[tuple[str, str]]:
    out = set()
    for action in group:
        for body in action.values():
            out.add((body["TableName"], dumps(body["Key"], sort_keys=True)))
    return out


def _write(groups: list[list[dict[str, Any]]]) -> list[dynamo.ActionFailure | None]:
    """Apply the groups; per group None (applied) or the failure that decides its outcome.

    Groups are packed into TransactWriteItems calls of at most 100 actions in which no item is
    touched twice (DynamoDB refuses that): labels on the same card or merchant go in different calls.
    """
    bins: list[tuple[list[int], set[tuple[str, str]], list[int]]] = []  # (group indexes, items, [actions])
    for index, group in enumerate(groups):
        targets = _targets(group)
        for members, items, used in bins:
            if used[0] + len(group) <= dynamo.MAX_TRANSACT_ACTIONS and not items & targets:
                members.append(index)
                items.update(targets)
                used[0] += len(group)
                break
        else:
            bins.append(([index], set(targets), [len(group)]))
    results: list[dynamo.ActionFailure | None] = [None] * len(groups)
    for members, _, _ in bins:
        for index, outcome in zip(members, dynamo.transact([groups[i] for i in members])):
            if dynamo.applied(outcome):
                continue
            first = outcome[0]
            if first is not None and first.code == "ConditionalCheckFailed":
                results[index] = first
            else:
                decisive = [f for f in outcome if f is not None and f.code != "None"]
                results[index] = decisive[0] if decisive else dynamo.ActionFailure("TransactionCanceled")
    return results


# --------------------------------------------------------------------------- events and reporting
def event_detail(outcome: LabelOutcome) -> dict[str, Any]:
    """The FraudLabel event detail (no card data, no note)."""
    return {
        "schema_version": EVENT_SCHEMA_VERSION,
        "transaction_id": outcome.transaction_id,
        "timestamp": outcome.timestamp,
        "label": outcome.request.label,
        "source": outcome.request.source,
        "labelled_at": outcome.labelled_at,
        "previous_label": outcome.previous_label,
    }


def _publish(applied: list[LabelOutcome]) -> None:
    """PutEvents for the applied labels, 10 per call; entries that fail for good turn their outcome `failed`."""
    if not applied:
        return
    bus = env(contract.EVENT_BUS_NAME)
    for chunk in dynamo.chunks(applied, EVENTS_PER_CALL):
        pending = list(chunk)
        for attempt in range(EVENT_ATTEMPTS):
            entries = [{"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE, "EventBusName": bus,
                        "Detail": dumps(to_plain(event_detail(o)))} for o in pending]
            try:
                response = client("events").put_events(Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                error = type(exc).__name__
                failed = pending
            else:
                results = response.get("Entries") or []
                error = "FailedEntry"
                failed = [o for o, r in zip(pending, results) if r.get("ErrorCode") or not r.get("EventId")]
                failed += pending[len(results):]
            pending = failed
            if not pending:
                break
            if attempt < EVENT_ATTEMPTS - 1:
                dynamo.backoff(attempt)
        for outcome in pending:
            outcome.status = FAILED
            outcome.detail = f"label stored, event not published ({error}): retry"


def _summarise(outcomes: Iterable[LabelOutcome]) -> None:
    counts: dict[str, int] = {}
    trouble: list[LabelOutcome] = []
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
        if outcome.status in (FAILED, CONFLICT):
            trouble.append(outcome)
    rejected = counts.get(NOT_FOUND, 0) + counts.get(INVALID, 0)
    for metric, n in (("LabelsRecorded", counts.get(RECORDED, 0)), ("LabelsUnchanged", counts.get(UNCHANGED, 0)),
                      ("LabelsRejected", rejected)):
        if n:
            metrics.add_metric(name=metric, unit="Count", value=n)
    if trouble:
        metrics.add_metric(name="LabelErrors", unit="Count", value=len(trouble))
        logger.warning("labels not recorded; to be retried", extra={
            "count": len(trouble),
            "transaction_ids": [o.transaction_id for o in trouble[:20]],
            "details": sorted({o.detail for o in trouble}),
        })
    logger.info("labels processed", extra={"outcomes": counts, "environment": os.environ.get(contract.ENVIRONMENT, "")})
