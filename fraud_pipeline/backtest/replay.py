"""The backtest replay: transactions in time order through `handlers.scoring`, state in memory.

This is the detection function's scoring with the DynamoDB state swapped for
dictionaries of the same `CardState` / `MerchantState` classes. Labels become
known `label_delay_ms` after their transaction (as chargebacks and analyst
reviews arrive late) and then update the card's known-compromised flag and the
merchant's confirmed-fraud counts, exactly as a recorded label does in the
features table.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from handlers.features import (
    DAY_MS,
    MERCHANT_DAYS_KEPT,
    CardState,
    MerchantState,
    card_entity,
    merchant_entity,
)
from handlers.rules import Assessment
from handlers.scoring import Scorer

PRUNE_EVERY = 64


@dataclass
class Scored:
    txn: dict[str, Any]
    features: dict[str, float]
    assessment: Assessment
    shadow: Assessment | None = None


def replay(transactions: Iterable[dict[str, Any]], labels: Mapping[str, bool], scorer: Scorer, *,
           label_delay_ms: int, until_ms: int, shadow: Scorer | None = None) -> Iterator[Scored]:
    """Score every transaction before `until_ms` (exclusive) with the state it would have had."""
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    # Known in time order: transactions come sorted and the delay is constant.
    pending: deque[tuple[int, str | None, str | None, str]] = deque()
    seen = 0
    for txn in transactions:
        ts = txn["timestamp"]
        if ts >= until_ms:
            break
        while pending and pending[0][0] <= ts:
            known, card_key, merchant_key, tid = pending.popleft()
            if card_key:
                cards.setdefault(card_key, CardState()).label(tid, known)
            if merchant_key:
                merchants.setdefault(merchant_key, MerchantState()).add_fraud(known)
        card_key = card_entity(txn)
        merchant_key = merchant_entity(txn)
        card = cards.get(card_key) if card_key else None
        merchant = merchants.get(merchant_key) if merchant_key else None
        features = scorer.features(txn, card, merchant)
        assessment = scorer.score(txn, features)
        yield Scored(txn, features, assessment, shadow.score(txn, features) if shadow else None)

        tid = txn["transaction_id"]
        if card_key:
            if card is None:
                card = cards[card_key] = CardState()
            card.record(txn)
            if card.ts[0] < ts - 31 * DAY_MS:
                card.prune(ts)
        if merchant_key:
            if merchant is None:
                merchant = merchants[merchant_key] = MerchantState()
            merchant.record(txn)
            if len(merchant.n) > MERCHANT_DAYS_KEPT + 8:
                merchant.prune(ts)
        if labels.get(tid) is True:
            pending.append((ts + label_delay_ms, card_key, merchant_key, tid))
        seen += 1
