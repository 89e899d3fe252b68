"""Per-card velocity counting in the velocity table.

Items: key (card_token, window) where `window` is the start (epoch ms) of a
time bucket as long as the velocity window. Each item holds a string set
`txns` of "<timestamp>#<transaction_id>" entries and an `expires_at` (two
windows after the bucket ends).

A transaction at time t counts the entries with timestamps in (t - W, t]
across its bucket and the previous one, its own entry included. Adding is
`ADD txns :entry` -- a set union, so a retried batch never counts a
transaction twice, and concurrent writers commute. Counting by the
transaction's own timestamp makes a retry see the same count.

Per batch: one strongly consistent BatchGetItem per 100 buckets, and one
TransactWriteItems per 100 updated buckets (one Update per bucket, all
entries of the batch for that bucket in it). A bucket stops taking new
entries at `BUCKET_CAP` (VELOCITY has long fired by then; the item stays far
below DynamoDB's 400 KB limit).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from . import dynamo

BUCKET_CAP = 1000
EXPIRY_MARGIN_S = 3600


@dataclass
class VelocityResult:
    counts: dict[str, int] = field(default_factory=dict)  # transaction key -> count
    failed: set[str] = field(default_factory=set)  # transaction keys whose card could not be read or written


def _entry(ts: int, transaction_id: str) -> str:
    return f"{ts}#{transaction_id}"


def _entry_ts(entry: str) -> int:
    try:
        return int(entry.split("#", 1)[0])
    except ValueError:
        return -1


def count_and_record(table: str, txns: dict[str, dict[str, Any]], window_ms: int) -> VelocityResult:
    """Count each transaction's card velocity and record the transactions.

    `txns` maps a record key to its transaction (with `card_token`,
    `timestamp`, `transaction_id`); transactions without a card token are
    not counted (count 0).
    """
    result = VelocityResult()
    by_card: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    for key, txn in txns.items():
        token = txn.get("card_token")
        if token:
            by_card[token].append((key, int(txn["timestamp"]), txn["transaction_id"]))
        else:
            result.counts[key] = 0
    if not by_card:
        return result

    buckets: set[tuple[str, int]] = set()
    for token, entries in by_card.items():
        for _, ts, _ in entries:
            start = ts - ts % window_ms
            buckets.update({(token, start), (token, start - window_ms)})
    keys = [{"card_token": t, "window": w} for t, w in sorted(buckets)]
    items, unread = dynamo.batch_get(table, keys, projection="card_token, #w, txns", names={"#w": "window"})
    stored: dict[tuple[str, int], set[str]] = {(i["card_token"], int(i["window"])): set(i.get("txns") or ()) for i in items}
    unread_cards = {k["card_token"] for k in unread}

    updates: dict[tuple[str, int], set[str]] = defaultdict(set)
    for token, entries in by_card.items():
        if token in unread_cards:
            result.failed.update(key for key, _, _ in entries)
            continue
        known: set[str] = set()
        for (t, _), values in stored.items():
            if t == token:
                known |= values
        known |= {_entry(ts, tid) for _, ts, tid in entries}
        times = [_entry_ts(e) for e in known]
        for key, ts, tid in entries:
            result.counts[key] = sum(1 for x in times if ts - window_ms < x <= ts)
            bucket = (token, ts - ts % window_ms)
            entry = _entry(ts, tid)
            if entry not in stored.get(bucket, set()) and len(stored.get(bucket, ())) + len(updates[bucket]) < BUCKET_CAP:
                updates[bucket].add(entry)

    ordered = [(bucket, entries) for bucket, entries in sorted(updates.items()) if entries]
    groups = [[{"Update": {
        "TableName": table,
        "Key": dynamo.to_ddb({"card_token": token, "window": start}),
        "UpdateExpression": "ADD txns :e SET expires_at = :x",
        "ExpressionAttributeValues": dynamo.to_ddb({
            ":e": entries, ":x": (start + 3 * window_ms) // 1000 + EXPIRY_MARGIN_S}),
    }}] for (token, start), entries in ordered]
    outcomes = dynamo.transact(groups) if groups else []
    for ((token, _), _), outcome in zip(ordered, outcomes):
        if not dynamo.applied(outcome):
            result.failed.update(key for key, _, _ in by_card[token])
    return result
