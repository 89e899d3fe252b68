"""Reading a labelled transactions CSV for `train` and `run`.

`FILE` is CSV (gzip when it ends in `.gz`) with a header. Columns are the
API's transaction fields plus `is_fraud`; only `transaction_id`, `timestamp`
and `amount` are required, other columns are ignored:

* `timestamp`: epoch milliseconds, or ISO 8601 (`2026-01-05T10:00:00Z`,
  `2026-01-05 10:00:00`; no zone = UTC). Any past year is history, not an error.
* `amount`: a positive number (rounded to cents), at most 1,000,000.
* `is_fraud`: 1 / 0 (also true / false), empty = unknown.
* `card_number`: used only to key per-card features, as a one-way digest held
  in memory; never written anywhere. Without it, `customer_id` keys the card.

A bad row is reported with its line number and field, and skipped.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, TextIO

REQUIRED = ("transaction_id", "timestamp", "amount")
MAX_AMOUNT = Decimal(1000000)
CENT = Decimal("0.01")
_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}


@dataclass
class BadRow:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field} {self.message}"


@dataclass
class Dataset:
    """Transactions in time order (then id), with labels where known."""

    transactions: list[dict[str, Any]] = field(default_factory=list)
    labels: dict[str, bool] = field(default_factory=dict)  # transaction_id -> is_fraud (known only)
    bad_rows: list[BadRow] = field(default_factory=list)
    rows_read: int = 0


def open_text(path: str) -> TextIO:
    if path == "-":
        return sys.stdin
    if path.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def parse_timestamp(raw: str) -> int:
    """Epoch ms from epoch-ms digits or ISO 8601; ValueError when neither."""
    text = raw.strip()
    if not text:
        raise ValueError("is required")
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("must be epoch milliseconds or ISO 8601")
        return int(value)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError("must be epoch milliseconds or ISO 8601") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _flag(raw: str | None) -> bool | None:
    if raw is None:
        return None
    text = raw.strip().lower()
    if not text:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("must be 1/0 or true/false")


def _parse(row: dict[str, str | None], line: int, problems: list[BadRow]) -> tuple[dict[str, Any], bool | None] | None:
    def bad(name: str, message: str) -> None:
        problems.append(BadRow(line, name, message))

    tid = (row.get("transaction_id") or "").strip()
    if not tid:
        bad("transaction_id", "is required")
        return None
    if len(tid) > 128 or "#" in tid:
        bad("transaction_id", "must be at most 128 characters without '#'")
        return None
    try:
        ts = parse_timestamp(row.get("timestamp") or "")
    except ValueError as exc:
        bad("timestamp", str(exc))
        return None
    try:
        amount = Decimal((row.get("amount") or "").strip())
    except InvalidOperation:
        bad("amount", "must be a number")
        return None
    if not amount.is_finite() or amount <= 0 or amount > MAX_AMOUNT:
        bad("amount", "must be greater than 0 and at most 1000000")
        return None
    amount = amount.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if amount <= 0:
        bad("amount", "must be at least 0.01")
        return None
    txn: dict[str, Any] = {"transaction_id": tid, "timestamp": ts, "amount": amount}
    for name in ("currency", "merchant", "location", "customer_id"):
        value = (row.get(name) or "").strip()
        if value:
            txn[name] = value[:128]
    hour = (row.get("hour") or "").strip()
    if hour:
        if not hour.isdigit() or not 0 <= int(hour) <= 23:
            bad("hour", "must be an integer 0-23")
            return None
        txn["hour"] = int(hour)
    for name in ("location_mismatch", "velocity_flag"):
        try:
            flag = _flag(row.get(name))
        except ValueError as exc:
            bad(name, str(exc))
            return None
        if flag is not None:
            txn[name] = flag
    card = "".join(ch for ch in (row.get("card_number") or "") if ch.isdigit())
    if card:
        txn["card_token"] = hashlib.sha256(card.encode()).hexdigest()
    try:
        label = _flag(row.get("is_fraud"))
    except ValueError as exc:
        bad("is_fraud", str(exc))
        return None
    return txn, label


def read_transactions(path: str) -> Dataset:
    data = Dataset()
    seen: set[str] = set()
    with open_text(path) as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
        if missing:
            raise SystemExit(f"{path}: the header lacks required column(s) {', '.join(missing)}")
        for line, row in enumerate(reader, start=2):
            data.rows_read += 1
            parsed = _parse(row, line, data.bad_rows)
            if parsed is None:
                continue
            txn, label = parsed
            if txn["transaction_id"] in seen:
                data.bad_rows.append(BadRow(line, "transaction_id", "is a duplicate of an earlier row"))
                continue
            seen.add(txn["transaction_id"])
            data.transactions.append(txn)
            if label is not None:
                data.labels[txn["transaction_id"]] = label
    data.transactions.sort(key=lambda t: (t["timestamp"], t["transaction_id"]))
    return data


def day_start_ms(text: str) -> int:
    """Midnight UTC of YYYY-MM-DD, epoch ms."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise SystemExit(f"dates are YYYY-MM-DD, got {text!r}") from None
    return int(day.timestamp() * 1000)


def report_bad_rows(data: Dataset, out: TextIO | None = None, limit: int = 20) -> None:
    if not data.bad_rows:
        return
    out = out or sys.stderr
    print(f"{len(data.bad_rows)} of {data.rows_read} rows skipped:", file=out)
    for problem in data.bad_rows[:limit]:
        print(f"  {problem}", file=out)
    if len(data.bad_rows) > limit:
        print(f"  ... and {len(data.bad_rows) - limit} more", file=out)
