"""Fraud scoring rules: pure functions, no AWS.

A transaction is scored by summing the weights of the rules it hits (capped at
100) and mapping the score to a decision. Thresholds, weights and lists come
from `RULES_JSON` (see `load_rules`); everything has a default, so an empty or
missing `RULES_JSON` gives the documented table:

| reason code          | fires when                                            | weight |
|----------------------|-------------------------------------------------------|--------|
| HIGH_AMOUNT          | amount > high_amount (10,000)                         | 50     |
| ELEVATED_AMOUNT      | elevated_amount (5,000) < amount <= high_amount       | 25     |
| BLOCKED_MERCHANT     | merchant in blocked_merchants (case-insensitive)      | 60     |
| HIGH_RISK_LOCATION   | country in high_risk_countries (case-insensitive)     | 10     |
| CARD_TESTING         | amount < 50 and a whole number                        | 5      |
| ODD_HOUR             | hour in 0-5 or 23                                     | 10     |
| LOCATION_MISMATCH    | location_mismatch is true                             | 25     |
| VELOCITY             | > velocity_max_transactions on the card within        | 30     |
|                      | velocity_window_minutes, or velocity_flag is true     |        |

Decision: `approve` below review_score (40), `review` from review_score, `block`
from block_score (70). `review` and `block` are flagged.

The weights are set so that no common *genuine* combination reaches review on
its own: a whole-dollar coffee abroad (CARD_TESTING + LOCATION_MISMATCH) or a
resident of a high-risk country travelling (HIGH_RISK_LOCATION +
LOCATION_MISMATCH) was a flood of false alerts at 15 / 30 (measured with
`python -m benchmarks.detection_quality`); those signals are left to the model,
which weighs them against the card's own history. An amount over high_amount,
a blocked merchant, or an elevated amount with a mismatch or a velocity burst
still alert by the rules alone.

An ML score (0-100) can only raise the rules score: final = max(rules,
round((1 - ML_WEIGHT) * rules + ML_WEIGHT * ml)). The rules are the floor a
model cannot talk down.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from types import MappingProxyType
from typing import Any

REASON_CODES = (
    "HIGH_AMOUNT", "ELEVATED_AMOUNT", "BLOCKED_MERCHANT", "HIGH_RISK_LOCATION",
    "CARD_TESTING", "ODD_HOUR", "LOCATION_MISMATCH", "VELOCITY",
)
DEFAULT_WEIGHTS: Mapping[str, int] = MappingProxyType({
    "HIGH_AMOUNT": 50, "ELEVATED_AMOUNT": 25, "BLOCKED_MERCHANT": 60, "HIGH_RISK_LOCATION": 10,
    "CARD_TESTING": 5, "ODD_HOUR": 10, "LOCATION_MISMATCH": 25, "VELOCITY": 30,
})
ODD_HOURS = frozenset({0, 1, 2, 3, 4, 5, 23})
CARD_TESTING_BELOW = Decimal(50)
ML_WEIGHT = 0.4
FLAGGED = frozenset({"review", "block"})


class RulesConfigError(ValueError):
    """`RULES_JSON` is not acceptable; the message names the key and the rule."""


@dataclass(frozen=True)
class Rules:
    high_amount: Decimal = Decimal("10000")
    elevated_amount: Decimal = Decimal("5000")
    review_score: int = 40
    block_score: int = 70
    velocity_max_transactions: int = 5
    velocity_window_minutes: int = 10
    blocked_merchants: frozenset[str] = frozenset({"unknown store"})
    high_risk_countries: frozenset[str] = frozenset({"nigeria", "north korea", "iran"})
    weights: Mapping[str, int] = field(default_factory=lambda: DEFAULT_WEIGHTS)

    @property
    def velocity_window_ms(self) -> int:
        return self.velocity_window_minutes * 60_000


@dataclass(frozen=True)
class Assessment:
    score: int
    decision: str
    reasons: tuple[str, ...]
    rules_score: int
    ml_score: int | None = None
    #: Fraud risk in [0, 1] for ranking (the model's, or the score's on the model's scale).
    risk: float | None = None
    #: The in-function model's score on the 0-100 scale, and which model gave it.
    model_score: int | None = None
    model_version: str | None = None

    @property
    def flagged(self) -> bool:
        return self.decision in FLAGGED

    @property
    def severity(self) -> str:
        return severity_of(self.decision)


def severity_of(decision: str) -> str:
    return {"block": "high", "review": "medium"}.get(decision, "low")


# --------------------------------------------------------------------------- configuration
_NUMBER_KEYS = ("high_amount", "elevated_amount")
_INT_KEYS = {
    "review_score": (1, 100),
    "block_score": (1, 100),
    "velocity_max_transactions": (1, 1000),
    "velocity_window_minutes": (1, 1440),
}
_LIST_KEYS = ("blocked_merchants", "high_risk_countries")
ALLOWED_KEYS = frozenset(_NUMBER_KEYS) | frozenset(_INT_KEYS) | frozenset(_LIST_KEYS) | {"weights", "shadow"}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_rules(raw: str | None) -> Rules:
    """Parse `RULES_JSON`; unset/empty means defaults. Raise `RulesConfigError` on anything unknown or mistyped.

    A `shadow` object is a candidate rule set (same keys, no nested shadow),
    read by `load_shadow_rules`; it is validated here too, so a bad candidate
    fails the cold start like a bad live rule set.
    """
    data = _rules_object(raw)
    if data is None:
        return Rules()
    if "shadow" in data:
        shadow = data["shadow"]
        if not isinstance(shadow, dict):
            raise RulesConfigError("RULES_JSON.shadow must be an object of the same keys as RULES_JSON (no nested shadow)")
        if "shadow" in shadow:
            raise RulesConfigError("RULES_JSON.shadow must not contain another shadow")
        try:
            rules_from(_shadow_object(data))
        except RulesConfigError as exc:
            raise RulesConfigError(str(exc).replace("RULES_JSON", "RULES_JSON.shadow", 1)) from None
    return rules_from({k: v for k, v in data.items() if k != "shadow"})


def load_shadow_rules(raw: str | None) -> Rules | None:
    """The candidate rule set of `RULES_JSON.shadow` (its keys over the live ones), or None."""
    data = _rules_object(raw)
    if data is None or not isinstance(data.get("shadow"), dict):
        return None
    return rules_from(_shadow_object(data))


def _shadow_object(data: dict[str, Any]) -> dict[str, Any]:
    live = {k: v for k, v in data.items() if k != "shadow"}
    shadow = data["shadow"]
    weights = {**(live.get("weights") or {}), **(shadow.get("weights") or {})} if isinstance(shadow.get("weights", {}), dict) else shadow["weights"]
    merged = {**live, **shadow}
    if weights:
        merged["weights"] = weights
    return merged


def _rules_object(raw: str | None) -> dict[str, Any] | None:
    if raw is None or not raw.strip():
        return None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RulesConfigError(f"RULES_JSON is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(data, dict):
        raise RulesConfigError("RULES_JSON must be a JSON object")
    return data


def rules_from(data: dict[str, Any]) -> Rules:
    """Rules from a decoded RULES_JSON object (defaults for what it leaves out)."""
    unknown = sorted(set(data) - ALLOWED_KEYS)
    if unknown:
        raise RulesConfigError(
            f"RULES_JSON has unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(ALLOWED_KEYS))}")
    kwargs: dict[str, Any] = {}
    for key in _NUMBER_KEYS:
        if key in data:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1_000_000:
                raise RulesConfigError(f"RULES_JSON.{key} must be a number greater than 0 and at most 1000000")
            kwargs[key] = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    for key, (low, high) in _INT_KEYS.items():
        if key in data:
            value = data[key]
            if not _is_int(value) or not low <= value <= high:
                raise RulesConfigError(f"RULES_JSON.{key} must be an integer between {low} and {high}")
            kwargs[key] = value
    for key in _LIST_KEYS:
        if key in data:
            value = data[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                raise RulesConfigError(f"RULES_JSON.{key} must be a list of non-empty strings")
            kwargs[key] = frozenset(normalise_name(v) for v in value)
    if "weights" in data:
        weights = data["weights"]
        if not isinstance(weights, dict):
            raise RulesConfigError("RULES_JSON.weights must be an object of reason code -> integer weight")
        bad = sorted(set(weights) - set(REASON_CODES))
        if bad:
            raise RulesConfigError(
                f"RULES_JSON.weights has unknown reason code(s) {', '.join(map(repr, bad))}; known: {', '.join(REASON_CODES)}")
        for code, weight in weights.items():
            if not _is_int(weight) or not 0 <= weight <= 100:
                raise RulesConfigError(f"RULES_JSON.weights.{code} must be an integer between 0 and 100")
        kwargs["weights"] = MappingProxyType({**DEFAULT_WEIGHTS, **weights})
    rules = Rules(**kwargs)
    if rules.elevated_amount >= rules.high_amount:
        raise RulesConfigError("RULES_JSON.elevated_amount must be below high_amount")
    if rules.review_score >= rules.block_score:
        raise RulesConfigError("RULES_JSON.review_score must be below block_score")
    if rules.weights["HIGH_AMOUNT"] < rules.weights["ELEVATED_AMOUNT"]:
        raise RulesConfigError("RULES_JSON.weights.HIGH_AMOUNT must not be below weights.ELEVATED_AMOUNT "
                               "(a higher amount must never score lower)")
    return rules


@lru_cache(maxsize=16384)
def normalise_name(name: str) -> str:
    """Case-insensitive, whitespace-normalised comparison key for merchants and countries (cached: names repeat)."""
    return " ".join(name.split()).casefold()


# --------------------------------------------------------------------------- scoring
def rule_hits(txn: Mapping[str, Any], rules: Rules, velocity_count: int = 0) -> tuple[str, ...]:
    """Reason codes `txn` triggers, in table order.

    `txn` needs `amount`; `merchant`, `country`, `hour`, `location_mismatch`
    and `velocity_flag` are optional. `velocity_count` is the number of
    transactions on the card in the window, this one included.
    """
    amount = Decimal(str(txn["amount"])) if not isinstance(txn["amount"], Decimal) else txn["amount"]
    hits: list[str] = []
    if amount > rules.high_amount:
        hits.append("HIGH_AMOUNT")
    elif amount > rules.elevated_amount:
        hits.append("ELEVATED_AMOUNT")
    merchant = txn.get("merchant")
    if isinstance(merchant, str) and normalise_name(merchant) in rules.blocked_merchants:
        hits.append("BLOCKED_MERCHANT")
    country = txn.get("country")
    if not country and isinstance(txn.get("location"), str):
        country = txn["location"].rsplit(",", 1)[-1]
    if isinstance(country, str) and normalise_name(country) in rules.high_risk_countries:
        hits.append("HIGH_RISK_LOCATION")
    if amount < CARD_TESTING_BELOW and amount == amount.to_integral_value():
        hits.append("CARD_TESTING")
    hour = txn.get("hour")
    if hour is not None and int(hour) in ODD_HOURS:
        hits.append("ODD_HOUR")
    if txn.get("location_mismatch") is True:
        hits.append("LOCATION_MISMATCH")
    if txn.get("velocity_flag") is True or velocity_count > rules.velocity_max_transactions:
        hits.append("VELOCITY")
    return tuple(hits)


def score_of(hits: tuple[str, ...] | list[str], rules: Rules) -> int:
    return min(100, sum(rules.weights[code] for code in set(hits)))


def decision_of(score: int, rules: Rules) -> str:
    if score >= rules.block_score:
        return "block"
    if score >= rules.review_score:
        return "review"
    return "approve"


def blend(rules_score: int, ml_score: int | None) -> int:
    """Blend an ML score into the rules score; the result is never below the rules score."""
    if ml_score is None:
        return rules_score
    blended = round((1 - ML_WEIGHT) * rules_score + ML_WEIGHT * ml_score)
    return min(100, max(rules_score, blended))


def assess(txn: Mapping[str, Any], rules: Rules, velocity_count: int = 0,
           ml_score: int | None = None, extra_hits: tuple[str, ...] = ()) -> Assessment:
    """Score one transaction. `extra_hits` adds reason codes decided elsewhere (e.g. a recorded VELOCITY)."""
    hits = rule_hits(txn, rules, velocity_count)
    if extra_hits:
        hits = tuple(code for code in REASON_CODES if code in set(hits) | set(extra_hits))
    rules_score = score_of(hits, rules)
    score = blend(rules_score, ml_score)
    return Assessment(score=score, decision=decision_of(score, rules), reasons=hits,
                      rules_score=rules_score, ml_score=ml_score)
