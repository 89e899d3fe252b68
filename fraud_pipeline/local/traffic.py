"""Demo traffic: `fraud_pipeline.synthetic` rows as API/Kinesis requests, with malformed requests mixed in.

The transactions are the synthetic generator's (customers with habits, merchants,
fraud scenarios, labels); this module only turns its `Labelled` rows into
request bodies, alternates them between the HTTP API and Kinesis, and adds
the malformed inputs. Labels are the generator's truth (what an analyst would
call fraud), not what the rules or the model are expected to catch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..synthetic import Labelled, history

#: Malformed inputs, each with what it breaks.
MALFORMED = [
    ("missing_fields", lambda: {"amount": 10.0}),
    ("negative_amount", lambda: {"amount": -5, "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA"}),
    ("amount_as_string", lambda: {"amount": "12.50", "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA"}),
    ("three_decimals", lambda: {"amount": 12.505, "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA"}),
    ("short_card", lambda: {"amount": 12.5, "merchant": "Corner Cafe", "card_number": "4111", "location": "Austin, USA"}),
    ("unknown_field", lambda: {"amount": 12.5, "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA", "cvv": "123"}),
    ("bad_hour", lambda: {"amount": 12.5, "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA", "hour": 25}),
    ("not_json", lambda: "{amount: 12"),
    ("oversized", lambda: {"amount": 12.5, "merchant": "Corner Cafe", "card_number": "4111111111111111", "location": "Austin, USA", "customer_id": "x" * 70000}),
]


@dataclass
class Transaction:
    body: dict[str, Any]
    scenario: str
    fraud: bool
    via: str = "api"            # "api" or "kinesis"
    timestamp: int = 0          # epoch ms (the generator's)

    @property
    def transaction_id(self) -> str:
        return self.body["transaction_id"]


@dataclass
class Malformed:
    payload: Any
    reason: str
    via: str = "api"


@dataclass
class Traffic:
    transactions: list[Transaction] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)
    card_numbers: set[str] = field(default_factory=set)

    def in_send_order(self) -> Iterator[Transaction | Malformed]:
        """Transactions in generation order (bursts stay together) with the malformed ones spread through."""
        step = max(1, len(self.transactions) // max(1, len(self.malformed)))
        bad = iter(self.malformed)
        for i, t in enumerate(self.transactions):
            yield t
            if i % step == step - 1:
                nxt = next(bad, None)
                if nxt is not None:
                    yield nxt
        yield from bad


def body(row: Labelled) -> dict[str, Any]:
    """The request a producer would send for a synthetic row (its time, hour and card; no label)."""
    return {"transaction_id": row.transaction_id, "timestamp": row.timestamp, "amount": row.amount,
            "currency": row.currency, "merchant": row.merchant, "card_number": row.card_number,
            "location": row.location, "customer_id": row.customer_id, "hour": row.hour,
            "location_mismatch": row.location_mismatch}


def wrap(rows: list[Labelled], malformed_share: float = 0.05, kinesis_share: float = 0.5) -> Traffic:
    """`rows` as traffic: every other one through the API (`kinesis_share` 0.5), malformed ones added."""
    traffic = Traffic()
    every = round(1 / kinesis_share) if 0 < kinesis_share < 1 else 0
    for n, row in enumerate(rows):
        via = "kinesis" if kinesis_share >= 1 or (every and n % every == every - 1) else "api"
        traffic.transactions.append(Transaction(body(row), row.scenario, row.is_fraud, via, row.timestamp))
        traffic.card_numbers.add(row.card_number)
    count = len(rows)
    for i in range(max(1, int(count * malformed_share)) if malformed_share and count else 0):
        reason, make = MALFORMED[i % len(MALFORMED)]
        payload = make()
        # Only what a card number can be (12-19 digits) is scanned for later; "4111" would match any digit run.
        if isinstance(payload, dict) and str(payload.get("card_number", "")).isdigit() and 12 <= len(payload["card_number"]) <= 19:
            traffic.card_numbers.add(payload["card_number"])
        traffic.malformed.append(Malformed(payload, reason, "kinesis" if i % 4 == 3 and reason != "oversized" else "api"))
    return traffic


def generate(count: int, seed: int = 7, malformed_share: float = 0.05) -> Traffic:
    """`count` synthetic transactions of the last days (a week at the default size), ending at the last UTC midnight."""
    per_day = max(20, -(-count // 7))
    days = -(-count // per_day)
    rows = history(days, per_day, seed=seed, start=dt.datetime.now(dt.UTC).date() - dt.timedelta(days=days))
    return wrap(rows[-count:], malformed_share)
