"""Generated card traffic: ordinary purchases with labelled fraud scenarios and malformed requests mixed in.

Labels are the generator's truth (what an analyst would call fraud), not what
the rules are expected to catch: a velocity burst of ordinary amounts is fraud
the default rules alone approve, and the demo's recall says so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Iterator

ORDINARY_MERCHANTS = ["Corner Cafe", "City Grocer", "Metro Transit", "Book Nook", "Fuel Stop", "Pharma Plus",
                      "Cinema 8", "Hardware Hub", "Green Market", "Tech Outlet"]
ORDINARY_LOCATIONS = ["New York, USA", "Chicago, USA", "Austin, USA", "London, UK", "Toronto, Canada",
                      "Paris, France", "Berlin, Germany", "Seattle, USA"]
HIGH_RISK_LOCATIONS = ["Lagos, Nigeria", "Tehran, Iran", "Abuja, Nigeria"]

#: Scenario -> share of all valid transactions. The rest are ordinary purchases.
#: Bursts draw 6-10 transactions each, so their share of transactions is several times their share of draws;
#: in all, about 10 % of transactions are fraud.
SCENARIOS = {
    "card_testing_burst": 0.004,
    "velocity_burst": 0.004,
    "high_amount": 0.012,
    "blocked_merchant": 0.01,
    "high_risk_location": 0.012,
    "location_mismatch": 0.01,
    "odd_hour": 0.012,
}

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


def _card(rng: random.Random) -> str:
    """A 16-digit Luhn-valid test card number (so card-number detectors would see it as one)."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    return "".join(map(str, digits + [(10 - total % 10) % 10]))


def generate(count: int, seed: int = 7, malformed_share: float = 0.05) -> Traffic:
    rng = random.Random(seed)
    traffic = Traffic()
    n = 0

    def add(scenario: str, fraud: bool, card: str, **fields: Any) -> None:
        nonlocal n
        n += 1
        body = {"transaction_id": f"demo-{seed}-{n:05d}", "card_number": card,
                "merchant": rng.choice(ORDINARY_MERCHANTS), "location": rng.choice(ORDINARY_LOCATIONS),
                "amount": round(rng.uniform(4, 300), 2), "hour": rng.randint(8, 21), "currency": "USD", **fields}
        traffic.card_numbers.add(card)
        traffic.transactions.append(Transaction(body, scenario, fraud, "api" if n % 2 else "kinesis"))

    while len(traffic.transactions) < count:
        roll, acc = rng.random(), 0.0
        scenario = "ordinary"
        for name, share in SCENARIOS.items():
            acc += share
            if roll < acc:
                scenario = name
                break
        card = _card(rng)
        if scenario == "ordinary":
            add("ordinary", False, card)
        elif scenario == "card_testing_burst":
            for _ in range(rng.randint(6, 9)):
                add(scenario, True, card, amount=float(rng.randint(1, 9)), merchant="Online Gift Cards")
        elif scenario == "velocity_burst":
            for _ in range(rng.randint(7, 10)):
                add(scenario, True, card, amount=round(rng.uniform(40, 400), 2))
        elif scenario == "high_amount":
            add(scenario, True, card, amount=round(rng.uniform(10500, 60000), 2),
                **({"location": rng.choice(HIGH_RISK_LOCATIONS)} if rng.random() < 0.4 else {}))
        elif scenario == "blocked_merchant":
            add(scenario, True, card, merchant="Unknown Store", amount=round(rng.uniform(200, 3000), 2),
                **({"hour": rng.choice([0, 1, 2, 3])} if rng.random() < 0.5 else {}))
        elif scenario == "high_risk_location":
            add(scenario, True, card, location=rng.choice(HIGH_RISK_LOCATIONS), amount=round(rng.uniform(300, 4000), 2),
                hour=rng.choice([1, 2, 3, 14]))
        elif scenario == "location_mismatch":
            add(scenario, True, card, location_mismatch=True, amount=round(rng.uniform(5200, 9800), 2))
        elif scenario == "odd_hour":
            add(scenario, True, card, hour=rng.choice([0, 2, 3, 4, 23]), amount=round(rng.uniform(1500, 4800), 2),
                location_mismatch=rng.random() < 0.5)
    traffic.transactions = traffic.transactions[:count]
    for i in range(max(1, int(count * malformed_share))):
        reason, make = MALFORMED[i % len(MALFORMED)]
        payload = make()
        # Only what a card number can be (12-19 digits) is scanned for later; "4111" would match any digit run.
        if isinstance(payload, dict) and str(payload.get("card_number", "")).isdigit() and 12 <= len(payload["card_number"]) <= 19:
            traffic.card_numbers.add(payload["card_number"])
        traffic.malformed.append(Malformed(payload, reason, "kinesis" if i % 4 == 3 and reason != "oversized" else "api"))
    return traffic
