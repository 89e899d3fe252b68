"""Behavioural features from bounded per-card and per-merchant state: pure code, no AWS.

The same classes hold the state in DynamoDB (the features table, read and
written by the detection function in bulk) and in memory (the backtest), so a
replay computes exactly what the function computes.

Card state (entity ``card#<card_token>``, or ``customer#<customer_id>`` for a
transaction without a card token):

* ``t_<period>`` string sets of ``"<ts_ms>#<transaction_id>#<amount_cents>#<merchant hash>"``
  (the merchant as 8 hex digits of its CRC-32, to tell a new merchant from a habit),
  one set per 15-day period, the current and the two before it kept (>= 30 days).
  Adding is a set union, so a retried batch never counts a transaction twice;
  old periods are REMOVEd (a different attribute than the ones ADDed, which one
  UpdateItem allows). A period stops taking entries at ``PERIOD_CAP``.
* ``frauds``: string set of ``"<label_ms>#<transaction_id>"`` -- confirmed fraud
  labels on the card, known from ``label_ms`` on.

Merchant state (entity ``merchant#<normalised name>``): ``n_YYYYMMDD`` (the
merchant's scored transactions on that UTC day) and ``f_YYYYMMDD`` (fraud labels
confirmed for the merchant on that UTC day). Counters are ADDed in the same
TransactWriteItems as the transaction's decision write-back, which is
conditional on the transaction not being scored yet: a count is applied exactly
once with the decision it belongs to.

Features a transaction sees are those of the transactions *before* it (by
timestamp, then id), so a retry -- whose own entry is already stored -- sees
the same card features.
"""

from __future__ import annotations

import math
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from itertools import repeat
from operator import mul
from types import MappingProxyType
from typing import Any

from .rules import normalise_name

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
PERIOD_DAYS = 15
PERIOD_MS = PERIOD_DAYS * DAY_MS
#: Periods kept on a card item: the current one and the two before it (so at least 30 days).
PERIODS_KEPT = 3
#: Most entries one period holds (a card with more in 15 days is a fleet card; its counts saturate).
PERIOD_CAP = 1500
CARD_WINDOWS_DAYS = (1, 7, 30)
MERCHANT_WINDOWS_DAYS = (1, 7, 30)
MERCHANT_DAYS_KEPT = 32
#: Feature items expire this long after their last transaction (DynamoDB TTL).
EXPIRY_DAYS = 45
#: Cap of "seconds since the card's previous transaction" (and its value without history).
SINCE_LAST_CAP_S = 30 * 86_400
#: Cap of "days since the card's latest known fraud label" (and its value without one).
SINCE_LABEL_CAP_DAYS = 365

CARD_FEATURES = (
    "card_velocity", "card_count_1h",
    "card_count_1d", "card_count_7d", "card_count_30d",
    "card_amount_sum_1d", "card_amount_sum_7d", "card_amount_sum_30d",
    "card_amount_mean_1d", "card_amount_mean_7d", "card_amount_mean_30d",
    "card_amount_vs_30d_mean", "card_amount_zscore_30d", "card_seconds_since_last",
    "card_merchant_count_30d", "card_known_compromised", "card_days_since_fraud_label",
    "card_amount_vs_median_30d", "card_amount_rank_30d", "card_unusual_amounts_7d",
    "card_hour_share_30d", "card_merchant_count_1h", "card_small_amounts_1h", "card_new_merchants_1d",
    "card_amount_vs_past_median", "card_new_merchant_spend_7d", "card_odd_new_7d",
)
MERCHANT_FEATURES = (
    "merchant_count_1d", "merchant_count_7d", "merchant_count_30d",
    "merchant_volume_vs_30d", "merchant_fraud_rate_7d", "merchant_fraud_rate_30d", "merchant_frauds_30d",
    "merchant_frauds_7d", "merchant_surge_7d", "merchant_surge_1d", "merchant_surge_z_7d", "merchant_surge_z_1d",
    "merchant_days_seen_30d",
)
TRANSACTION_FEATURES = ("amount", "hour", "location_mismatch", "velocity_flag", "high_risk_location",
                        "small_whole_amount")
#: Every feature name the scoring code computes (a model may use any subset).
FEATURE_NAMES = TRANSACTION_FEATURES + CARD_FEATURES + MERCHANT_FEATURES
#: "Unusual" amount on a card: more than this many times its 30-day median.
UNUSUAL_RATIO = 3
#: A "small" amount (card testing): below this many cents.
SMALL_CENTS = 1000
#: Time-of-day neighbourhood of `card_hour_share_30d`: this hour and this many either side (circular).
HOUR_SPREAD = 2


# --------------------------------------------------------------------------- keys
def card_entity(txn: Mapping[str, Any]) -> str | None:
    token = txn.get("card_token")
    if isinstance(token, str) and token:
        return f"card#{token}"
    customer = txn.get("customer_id")
    if isinstance(customer, str) and customer:
        return f"customer#{customer}"
    return None


def merchant_entity(txn: Mapping[str, Any]) -> str | None:
    merchant = txn.get("merchant")
    if isinstance(merchant, str):
        return _merchant_key(merchant)[0]
    return None


@lru_cache(maxsize=16384)
def _merchant_key(merchant: str) -> tuple[str | None, int]:
    """(entity key, CRC-32 of it) of a merchant name; (None, 0) for a blank one. Cached: names repeat."""
    if not merchant.strip():
        return None, 0
    entity = f"merchant#{normalise_name(merchant)}"
    return entity, zlib.crc32(entity.encode())


def cents(amount: Any) -> int:
    if type(amount) is Decimal:
        return int((amount * 100).to_integral_value())
    if type(amount) is int:
        return amount * 100
    return int((Decimal(str(amount)) * 100).to_integral_value())


@lru_cache(maxsize=4096)
def day_name(day: int) -> str:
    """``YYYYMMDD`` of a day index (epoch ms // DAY_MS)."""
    return datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y%m%d")


@lru_cache(maxsize=4096)
def day_of_name(name: str) -> int:
    return int(datetime.strptime(name, "%Y%m%d").replace(tzinfo=UTC).timestamp()) // 86_400


def merchant_hash(txn: Mapping[str, Any]) -> int:
    """The merchant as a 32-bit number (CRC-32 of its entity key; 0 without a merchant)."""
    merchant = txn.get("merchant")
    return _merchant_key(merchant)[1] if isinstance(merchant, str) else 0


def _entry(ts: int, transaction_id: str, amount_cents: int, merchant: int) -> str:
    return f"{ts}#{transaction_id}#{amount_cents}#{merchant:08x}"


# --------------------------------------------------------------------------- card
@dataclass
class CardState:
    """A card's recent transactions (sorted by timestamp, then id) and its fraud labels."""

    ts: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)  # cents
    merchants: list[int] = field(default_factory=list)  # merchant_hash
    hours: list[int] = field(default_factory=list)  # UTC hour of day of each entry (derived from ts)
    fraud_labels: dict[str, int] = field(default_factory=dict)  # transaction id -> label time (ms)
    #: Entries per period as stored (DynamoDB), to know what is new and what to prune.
    stored: dict[int, set[str]] = field(default_factory=dict)

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> CardState:
        state = cls()
        if not item:
            return state
        rows: list[tuple[int, str, int, int]] = []
        for name, values in item.items():
            if not name.startswith("t_"):
                continue
            try:
                period = int(name[2:])
            except ValueError:
                continue
            state.stored[period] = set(values or ())
            for raw in values or ():
                parts = str(raw).split("#")
                if len(parts) == 4 and parts[0].isdigit():
                    try:
                        rows.append((int(parts[0]), parts[1], int(parts[2]), int(parts[3], 16)))
                    except ValueError:
                        continue
        rows.sort()
        state.ts = [r[0] for r in rows]
        state.ids = [r[1] for r in rows]
        state.amounts = [r[2] for r in rows]
        state.merchants = [r[3] for r in rows]
        state.hours = [(r[0] // HOUR_MS) % 24 for r in rows]
        for raw in item.get("frauds") or ():
            label_ms, _, tid = str(raw).partition("#")
            if label_ms.isdigit() and tid:
                state.fraud_labels[tid] = int(label_ms)
        return state

    def _position(self, ts: int, transaction_id: str) -> int:
        """Index of the first entry not before (ts, transaction_id)."""
        j = bisect_left(self.ts, ts)
        n = len(self.ts)
        while j < n and self.ts[j] == ts and self.ids[j] < transaction_id:
            j += 1
        return j

    def contains(self, ts: int, transaction_id: str) -> bool:
        j = self._position(ts, transaction_id)
        return j < len(self.ts) and self.ts[j] == ts and self.ids[j] == transaction_id

    def add(self, ts: int, transaction_id: str, amount_cents: int, merchant: int) -> None:
        """Record a transaction (no-op when it is already there)."""
        j = self._position(ts, transaction_id)
        if j < len(self.ts) and self.ts[j] == ts and self.ids[j] == transaction_id:
            return
        self.ts.insert(j, ts)
        self.ids.insert(j, transaction_id)
        self.amounts.insert(j, amount_cents)
        self.merchants.insert(j, merchant)
        self.hours.insert(j, (ts // HOUR_MS) % 24)

    def record(self, txn: Mapping[str, Any]) -> tuple[int, str, int, int]:
        """Add a scored transaction; return its entry (for `update_action`)."""
        entry = (int(txn["timestamp"]), str(txn["transaction_id"]), cents(txn["amount"]), merchant_hash(txn))
        self.add(*entry)
        return entry

    def prune(self, now_ms: int) -> None:
        """Forget entries older than the longest window (memory bound for the backtest)."""
        cut = bisect_left(self.ts, now_ms - CARD_WINDOWS_DAYS[-1] * DAY_MS)
        if cut:
            del self.ts[:cut], self.ids[:cut], self.amounts[:cut], self.merchants[:cut], self.hours[:cut]

    def label(self, transaction_id: str, label_ms: int | None) -> None:
        """Set (label_ms) or clear (None) a confirmed fraud label."""
        if label_ms is None:
            self.fraud_labels.pop(transaction_id, None)
        else:
            self.fraud_labels[transaction_id] = label_ms

    def features(self, ts: int, transaction_id: str, amount_cents: int, merchant: int,
                 velocity_window_ms: int, out: dict[str, float] | None = None) -> dict[str, float]:
        """The card features of a transaction from the entries before it (by timestamp, then id).

        Windows are half-open on the left: an entry exactly `days` old is out of the `days` window.
        Amount features are in currency units; ratios are -1 without history.
        """
        if out is None:
            out = {}
        tss = self.ts
        j = self._position(ts, transaction_id) if tss else 0
        if not j:
            out.update(_NO_CARD_HISTORY)
            known = [at for at in self.fraud_labels.values() if at <= ts] if self.fraud_labels else None
            if known:
                out["card_known_compromised"] = 1
                out["card_days_since_fraud_label"] = min(SINCE_LABEL_CAP_DAYS, (ts - max(known)) / DAY_MS)
            return out
        amounts = self.amounts
        lo30 = bisect_right(tss, ts - 30 * DAY_MS, 0, j)
        lo7 = bisect_right(tss, ts - 7 * DAY_MS, lo30, j)
        lo1 = bisect_right(tss, ts - DAY_MS, lo7, j)
        lo1h = bisect_right(tss, ts - HOUR_MS, lo1, j)
        out["card_velocity"] = j - bisect_right(tss, ts - velocity_window_ms, 0, j) + 1  # this one included
        out["card_count_1h"] = j - lo1h
        n1, n7, n30 = j - lo1, j - lo7, j - lo30
        a30 = amounts[lo30:j]
        s30 = sum(a30) / 100
        s7 = sum(amounts[lo7:j]) / 100 if n7 else 0.0
        s1 = sum(amounts[lo1:j]) / 100 if n1 else 0.0
        out["card_count_1d"] = n1
        out["card_count_7d"] = n7
        out["card_count_30d"] = n30
        out["card_amount_sum_1d"] = s1
        out["card_amount_sum_7d"] = s7
        out["card_amount_sum_30d"] = s30
        out["card_amount_mean_1d"] = s1 / n1 if n1 else 0.0
        out["card_amount_mean_7d"] = s7 / n7 if n7 else 0.0
        amount = amount_cents / 100
        out["card_seconds_since_last"] = min(SINCE_LAST_CAP_S, (ts - tss[j - 1]) / 1000)
        if n30:
            mean30 = s30 / n30
            out["card_amount_mean_30d"] = mean30
            out["card_amount_vs_30d_mean"] = amount / mean30 if mean30 > 0 else 0.0
            var = max(0.0, sum(map(mul, a30, a30)) / n30 / 10_000 - mean30 * mean30)
            out["card_amount_zscore_30d"] = (amount - mean30) / max(math.sqrt(var), 0.25 * mean30, 1.0)
            ranked = sorted(a30)
            half = n30 // 2
            median = ranked[half] if n30 % 2 else (ranked[half - 1] + ranked[half]) / 2
            out["card_amount_vs_median_30d"] = amount_cents / median if median > 0 else 0.0
            out["card_amount_rank_30d"] = bisect_left(ranked, amount_cents) / n30
            if n7:
                recent = sorted(amounts[lo7:j])
                out["card_unusual_amounts_7d"] = n7 - bisect_right(recent, UNUSUAL_RATIO * median)
            else:
                out["card_unusual_amounts_7d"] = 0
            hours = self.hours[lo30:j]
            hour = (ts // HOUR_MS) % 24
            near = hours.count(hour)
            for k in range(1, HOUR_SPREAD + 1):
                near += hours.count((hour + k) % 24) + hours.count((hour - k) % 24)
            out["card_hour_share_30d"] = near / n30
            seen = self.merchants
            out["card_merchant_count_30d"] = seen[lo30:j].count(merchant) if merchant else 0
            out["card_merchant_count_1h"] = seen[lo1h:j].count(merchant) if merchant and lo1h < j else 0
            out["card_small_amounts_1h"] = sum(1 for a in amounts[lo1h:j] if a < SMALL_CENTS) if lo1h < j else 0
            if n1:
                older = set(seen[lo30:lo1])
                out["card_new_merchants_1d"] = len(set(seen[lo1:j]) - older)
            else:
                out["card_new_merchants_1d"] = 0
            # the card's habits before the last week (less diluted by an ongoing takeover) against the week
            if lo7 > lo30:
                past = sorted(amounts[lo30:lo7])
                m = len(past)
                past_median = past[m // 2] if m % 2 else (past[m // 2 - 1] + past[m // 2]) / 2
                out["card_amount_vs_past_median"] = amount_cents / past_median if past_median > 0 else 0.0
                if n7:
                    habits = set(seen[lo30:lo7])
                    odd_limit = UNUSUAL_RATIO * past_median
                    new_spend = 0
                    odd_new = 0
                    for k in range(lo7, j):
                        if seen[k] not in habits:
                            a = amounts[k]
                            new_spend += a
                            if a > odd_limit:
                                odd_new += 1
                    out["card_new_merchant_spend_7d"] = new_spend / (s7 * 100) if s7 > 0 else 0.0
                    out["card_odd_new_7d"] = odd_new
                else:
                    out["card_new_merchant_spend_7d"] = 0.0
                    out["card_odd_new_7d"] = 0
            else:
                out["card_amount_vs_past_median"] = -1.0
                out["card_new_merchant_spend_7d"] = -1.0
                out["card_odd_new_7d"] = 0
        else:  # history, but none in the last 30 days
            out.update(_NO_30D_HISTORY)
        if self.fraud_labels:
            known = [at for at in self.fraud_labels.values() if at <= ts]
        else:
            known = None
        if known:
            out["card_known_compromised"] = 1
            out["card_days_since_fraud_label"] = min(SINCE_LABEL_CAP_DAYS, (ts - max(known)) / DAY_MS)
        else:
            out["card_known_compromised"] = 0
            out["card_days_since_fraud_label"] = SINCE_LABEL_CAP_DAYS
        return out

    # -- DynamoDB ---------------------------------------------------------------
    def update_action(self, table: str, entity: str, new: list[tuple[int, str, int, int]]) -> dict[str, Any] | None:
        """One UpdateItem (low-level attribute values) adding `new` entries (set union) and removing periods out of the window."""
        by_period: dict[int, set[str]] = {}
        for ts, tid, amount_cents, merchant in new:
            period = ts // PERIOD_MS
            entry = _entry(ts, tid, amount_cents, merchant)
            have = self.stored.get(period, set())
            pending = by_period.setdefault(period, set())
            if entry in have or len(have) + len(pending) >= PERIOD_CAP:
                continue
            pending.add(entry)
        by_period = {p: e for p, e in by_period.items() if e}
        if not by_period:
            return None
        newest = max(by_period)
        stale = [f"t_{p}" for p in sorted(self.stored) if p <= newest - PERIODS_KEPT and p not in by_period]
        expires = (max(item[0] for item in new) + EXPIRY_DAYS * DAY_MS) // 1000
        return _add_update(table, entity, {f"t_{p}": {"SS": sorted(e)} for p, e in sorted(by_period.items())},
                           stale, expires)


#: Card features without any history in the last 30 days (`_NO_CARD_HISTORY`: without any at all).
_NO_30D_HISTORY: Mapping[str, float] = MappingProxyType({
    "card_amount_mean_30d": 0.0, "card_amount_vs_30d_mean": -1.0, "card_amount_zscore_30d": 0.0,
    "card_amount_vs_median_30d": -1.0, "card_amount_rank_30d": -1.0, "card_unusual_amounts_7d": 0,
    "card_hour_share_30d": -1.0, "card_merchant_count_30d": 0, "card_merchant_count_1h": 0,
    "card_small_amounts_1h": 0, "card_new_merchants_1d": 0,
    "card_amount_vs_past_median": -1.0, "card_new_merchant_spend_7d": -1.0, "card_odd_new_7d": 0,
})
_NO_CARD_HISTORY: Mapping[str, float] = MappingProxyType({
    "card_velocity": 1, "card_count_1h": 0, "card_count_1d": 0, "card_count_7d": 0, "card_count_30d": 0,
    "card_amount_sum_1d": 0.0, "card_amount_sum_7d": 0.0, "card_amount_sum_30d": 0.0,
    "card_amount_mean_1d": 0.0, "card_amount_mean_7d": 0.0, "card_seconds_since_last": SINCE_LAST_CAP_S,
    **_NO_30D_HISTORY, "card_known_compromised": 0, "card_days_since_fraud_label": SINCE_LABEL_CAP_DAYS,
})


# --------------------------------------------------------------------------- merchant
@dataclass
class MerchantState:
    """A merchant's daily transaction counts and daily confirmed-fraud counts."""

    n: dict[int, int] = field(default_factory=dict)  # day index -> transactions
    f: dict[int, int] = field(default_factory=dict)  # day index -> fraud labels confirmed that day

    @classmethod
    def from_item(cls, item: Mapping[str, Any] | None) -> MerchantState:
        state = cls()
        for name, value in (item or {}).items():
            if len(name) == 10 and name[1] == "_" and name[0] in "nf" and name[2:].isdigit():
                try:
                    (state.n if name[0] == "n" else state.f)[day_of_name(name[2:])] = int(value)
                except ValueError:
                    continue
        return state

    def record(self, txn: Mapping[str, Any]) -> int:
        """Count a scored transaction; return its day index (for `update_action`)."""
        ts = int(txn["timestamp"])
        self.add_transaction(ts)
        return ts // DAY_MS

    def add_transaction(self, ts: int) -> None:
        day = ts // DAY_MS
        self.n[day] = self.n.get(day, 0) + 1

    def add_fraud(self, label_ms: int, delta: int = 1) -> None:
        day = label_ms // DAY_MS
        self.f[day] = self.f.get(day, 0) + delta

    def prune(self, now_ms: int) -> None:
        oldest = now_ms // DAY_MS - MERCHANT_DAYS_KEPT
        for counter in (self.n, self.f):
            for day in [d for d in counter if d < oldest]:
                del counter[day]

    def features(self, ts: int, out: dict[str, float] | None = None) -> dict[str, float]:
        """Sliding windows from the daily buckets: whole days, the oldest one pro rata (no clock: `ts` is "now")."""
        if out is None:
            out = {}
        n = self.n
        if not n:
            out.update(_NO_MERCHANT_HISTORY)
            return out
        today = ts // DAY_MS
        keep = 1.0 - (ts - today * DAY_MS) / DAY_MS  # share of the oldest day still in the window
        get = n.get
        d0 = get(today, 0)
        c1 = d0 + get(today - 1, 0) * keep
        w7 = sum(map(get, range(today - 6, today + 1), _ZEROS))
        c7 = w7 + get(today - 7, 0) * keep
        w30 = w7 + sum(map(get, range(today - 29, today - 6), _ZEROS))
        c30 = w30 + get(today - 30, 0) * keep
        out["merchant_count_1d"] = c1
        out["merchant_count_7d"] = c7
        out["merchant_count_30d"] = c30
        out["merchant_volume_vs_30d"] = c1 / max(c30 / 30, 1.0)
        # the last week's daily rate against the 23 days before it (smoothed: small merchants are noisy)
        out["merchant_surge_7d"] = (c7 / 7 + 0.2) / ((c30 - c7) / 23 + 0.2)
        out["merchant_surge_1d"] = (c1 + 0.5) / ((c30 - c1) / 29 + 0.5)
        # the same as Poisson surprise: standard deviations above what the 23 days before predict
        prior = (c30 - c7) / 23
        out["merchant_surge_z_7d"] = (c7 - 7 * prior) / math.sqrt(7 * prior + 1)
        out["merchant_surge_z_1d"] = (c1 - prior) / math.sqrt(prior + 1)
        out["merchant_days_seen_30d"] = len(n.keys() & range(today - 29, today + 1))
        f = self.f
        if f:
            fget = f.get
            f7: float = sum(map(fget, range(today - 6, today + 1), _ZEROS))
            f30 = f7 + sum(map(fget, range(today - 29, today - 6), _ZEROS)) + fget(today - 30, 0) * keep
            f7 += fget(today - 7, 0) * keep
            out["merchant_frauds_7d"] = f7
            out["merchant_frauds_30d"] = f30
            out["merchant_fraud_rate_7d"] = f7 / max(c7, f7, 1.0)
            out["merchant_fraud_rate_30d"] = f30 / max(c30, f30, 1.0)
        else:
            out["merchant_frauds_7d"] = out["merchant_frauds_30d"] = 0.0
            out["merchant_fraud_rate_7d"] = out["merchant_fraud_rate_30d"] = 0.0
        return out

    def update_action(self, table: str, entity: str, counts: Mapping[int, int], now_ms: int) -> dict[str, Any] | None:
        """ADD the batch's per-day counts; REMOVE day counters out of the window."""
        counts = {d: c for d, c in counts.items() if c}
        if not counts:
            return None
        # Relative to the newest day counted, not the clock: a replay of old traffic keeps its window.
        oldest = max(counts.keys() | self.n.keys() | self.f.keys()) - MERCHANT_DAYS_KEPT
        adds = {f"n_{day_name(d)}": {"N": str(c)} for d, c in sorted(counts.items())}
        stale = sorted({f"{k}_{day_name(d)}" for k, counter in (("n", self.n), ("f", self.f))
                        for d in counter if d < oldest} - adds.keys())
        return _add_update(table, entity, adds, stale, now_ms // 1000 + EXPIRY_DAYS * 86_400)


_ZEROS = repeat(0)
_NO_MERCHANT_HISTORY: Mapping[str, float] = MappingProxyType({
    "merchant_count_1d": 0.0, "merchant_count_7d": 0.0, "merchant_count_30d": 0.0, "merchant_volume_vs_30d": 0.0,
    "merchant_surge_7d": 1.0, "merchant_surge_1d": 1.0, "merchant_surge_z_7d": 0.0,
    "merchant_surge_z_1d": 0.0, "merchant_days_seen_30d": 0, "merchant_frauds_7d": 0.0, "merchant_frauds_30d": 0.0,
    "merchant_fraud_rate_7d": 0.0, "merchant_fraud_rate_30d": 0.0,
})


def _add_update(table: str, entity: str, adds: Mapping[str, Any], removes: list[str],
                expires_at: int) -> dict[str, Any]:
    """A TransactWriteItems Update of one feature item: ADD `adds`, SET expires_at, REMOVE `removes`.

    (DynamoDB refuses a path used twice in one expression, so `removes` never names an added attribute.)
    """
    names: dict[str, str] = {"#x": "expires_at"}
    values: dict[str, Any] = {":x": {"N": str(expires_at)}}
    for i, (attribute, value) in enumerate(adds.items()):
        names[f"#a{i}"] = attribute
        values[f":a{i}"] = value
    expression = "ADD " + ", ".join(f"#a{i} :a{i}" for i in range(len(adds))) + " SET #x = :x"
    if removes:
        names.update({f"#r{i}": attribute for i, attribute in enumerate(removes)})
        expression += " REMOVE " + ", ".join(f"#r{i}" for i in range(len(removes)))
    return {"Update": {"TableName": table, "Key": {"entity": {"S": entity}}, "UpdateExpression": expression,
                       "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}}


# --------------------------------------------------------------------------- labels
def label_actions(table: str, txn_item: Mapping[str, Any], old_label: str | None, new_label: str,
                  old_labelled_at_ms: int | None, now_ms: int) -> list[dict[str, Any]]:
    """Feature-table updates for a label change on `txn_item` (TransactWriteItems actions, low-level).

    fraud added   -> the card's `frauds` gains "<now>#<id>", the merchant's f_<today> +1;
    fraud removed -> the entry labelled at `old_labelled_at_ms` is deleted, that day's f_ -1.
    Same label again -> no action.
    """
    if old_label == new_label or (old_label != "fraud" and new_label != "fraud"):
        return []
    tid = str(txn_item["transaction_id"])
    adding = new_label == "fraud"
    at = now_ms if adding else int(old_labelled_at_ms or now_ms)
    expiry = {":x": {"N": str(now_ms // 1000 + EXPIRY_DAYS * 86_400)}}
    actions: list[dict[str, Any]] = []
    card = card_entity(txn_item)
    if card:
        actions.append({"Update": {
            "TableName": table, "Key": {"entity": {"S": card}},
            "UpdateExpression": ("ADD" if adding else "DELETE") + " #fr :e SET #x = if_not_exists(#x, :x)",
            "ExpressionAttributeNames": {"#fr": "frauds", "#x": "expires_at"},
            "ExpressionAttributeValues": {":e": {"SS": [f"{at}#{tid}"]}, **expiry},
        }})
    merchant = merchant_entity(txn_item)
    if merchant:
        actions.append({"Update": {
            "TableName": table, "Key": {"entity": {"S": merchant}},
            "UpdateExpression": "ADD #f :d SET #x = if_not_exists(#x, :x)",
            "ExpressionAttributeNames": {"#f": f"f_{day_name(at // DAY_MS)}", "#x": "expires_at"},
            "ExpressionAttributeValues": {":d": {"N": "1" if adding else "-1"}, **expiry},
        }})
    return actions


def transaction_features(txn: Mapping[str, Any], amount_cents: int, high_risk_countries: frozenset[str],
                         out: dict[str, float] | None = None) -> dict[str, float]:
    if out is None:
        out = {}
    hour = txn.get("hour")
    if hour is None:
        hour = (int(txn["timestamp"]) // HOUR_MS) % 24
    country = txn.get("country")
    if not country:
        location = txn.get("location")
        if isinstance(location, str):
            country = location.rsplit(",", 1)[-1]
    out["amount"] = amount_cents / 100
    out["hour"] = int(hour)
    out["location_mismatch"] = 1 if txn.get("location_mismatch") is True else 0
    out["velocity_flag"] = 1 if txn.get("velocity_flag") is True else 0
    out["high_risk_location"] = 1 if isinstance(country, str) and normalise_name(country) in high_risk_countries else 0
    out["small_whole_amount"] = 1 if amount_cents < 5000 and amount_cents % 100 == 0 else 0
    return out
