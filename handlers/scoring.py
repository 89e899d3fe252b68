"""One scoring path: features + rules + model -> an explained decision. Pure: no AWS, no clock.

The detection function and `python -m fraud_pipeline.backtest run` both call
`Scorer.score` with features from the same `features` classes (the function
reads the state from DynamoDB, the backtest keeps it in memory), so a replay
decides exactly as the deployed function does.

How the parts combine:

* rules: reason codes and a 0-100 score (`rules.py`), the floor a model cannot
  talk down;
* model (optional): a risk in [0, 1], mapped onto the same 0-100 scale so its
  own thresholds (chosen when it was trained) land on the rules' review and
  block scores (`model.model_score`); score = max(rules score, model score);
* the SageMaker endpoint blend (optional, `rules.blend`) can only raise it;
* decision from the score with the rules' thresholds; `risk` ranks
  transactions on the model's scale;
* reasons: the rule codes, plus ``MODEL_RISK: <top features>`` when the model
  alone would flag the transaction; an allowlisted card is approved with
  ``ALLOWLISTED_CARD`` first (the codes that fired stay listed for audit).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .features import (
    CardState,
    MerchantState,
    cents,
    merchant_hash,
    transaction_features,
)
from .model import Scorecard, model_score, risk_of_score
from .rules import (
    Assessment,
    Rules,
    blend,
    decision_of,
    normalise_name,
    rule_hits,
    score_of,
)

ALLOWLISTED = "ALLOWLISTED_CARD"
MODEL_RISK = "MODEL_RISK"
LIST_KEYS = ("blocked_merchants", "high_risk_countries", "allowed_card_tokens")
MAX_LIST_ITEMS = 10_000


class ListsError(ValueError):
    """The run-time lists document is not acceptable; the message names the key and the rule."""


@dataclass(frozen=True)
class Lists:
    """Run-time lists (the `lists` parameter): edits take effect without a deployment."""

    blocked_merchants: frozenset[str]
    high_risk_countries: frozenset[str]
    allowed_card_tokens: frozenset[str] = frozenset()


def parse_lists(raw: str) -> Lists:
    """Validate the lists document: an object of the three keys, each a list of non-empty strings."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise ListsError("the lists parameter is not valid JSON") from None
    if not isinstance(data, dict):
        raise ListsError("the lists parameter must be a JSON object")
    unknown = sorted(set(data) - set(LIST_KEYS))
    if unknown:
        raise ListsError(f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(LIST_KEYS)}")
    values: dict[str, frozenset[str]] = {}
    for key in LIST_KEYS:
        items = data.get(key, [])
        if not isinstance(items, list) or len(items) > MAX_LIST_ITEMS or not all(
                isinstance(v, str) and v.strip() and len(v) <= 128 for v in items):
            raise ListsError(f"{key} must be a list of at most {MAX_LIST_ITEMS} strings of 1-128 characters")
        values[key] = frozenset(v.strip().lower() if key == "allowed_card_tokens" else normalise_name(v) for v in items)
    return Lists(values["blocked_merchants"], values["high_risk_countries"], values["allowed_card_tokens"])


def with_lists(rules: Rules, lists: Lists | None) -> Rules:
    if lists is None:
        return rules
    return dataclasses.replace(rules, blocked_merchants=lists.blocked_merchants,
                               high_risk_countries=lists.high_risk_countries)


@dataclass(frozen=True)
class Scorer:
    """A rule set, an optional model and the allowlist: everything one decision needs."""

    rules: Rules
    model: Scorecard | None = None
    allowed_card_tokens: frozenset[str] = frozenset()

    def features(self, txn: Mapping[str, Any], card: CardState | None, merchant: MerchantState | None) -> dict[str, float]:
        """Every feature of `txn` from the state *before* it (see `features`)."""
        ts = int(txn["timestamp"])
        amount_cents = cents(txn["amount"])
        out = transaction_features(txn, amount_cents, self.rules.high_risk_countries)
        (card or _EMPTY_CARD).features(ts, str(txn["transaction_id"]), amount_cents, merchant_hash(txn),
                                       self.rules.velocity_window_ms, out)
        (merchant or _EMPTY_MERCHANT).features(ts, out)
        return out

    def score(self, txn: Mapping[str, Any], features: Mapping[str, float], ml_score: int | None = None) -> Assessment:
        rules = self.rules
        hits = rule_hits(txn, rules, int(features.get("card_velocity", 0)))
        rules_score = score_of(hits, rules)
        model = self.model
        model_risk: float | None = None
        mscore: int | None = None
        top: tuple[str, ...] = ()
        if model is not None:
            model_risk = model.risk(features)
            mscore = model_score(model_risk, model.thresholds, rules.review_score, rules.block_score)
            if mscore >= rules.review_score:  # explained only when it alerts (the explanation costs)
                top = model.explain(features)
        score = blend(max(rules_score, mscore or 0), ml_score)
        reasons = hits
        if mscore is not None and mscore >= rules.review_score and top:
            reasons = hits + (f"{MODEL_RISK}: {', '.join(top)}",)
        if model is not None and model_risk is not None:
            risk = max(model_risk, risk_of_score(score, model.thresholds, rules.review_score, rules.block_score))
        else:
            risk = score / 100
        token = txn.get("card_token")
        if isinstance(token, str) and token in self.allowed_card_tokens:
            return Assessment(score=0, decision="approve", reasons=(ALLOWLISTED,) + reasons, rules_score=rules_score,
                              ml_score=ml_score, risk=0.0, model_score=mscore,
                              model_version=model.version if model else None)
        return Assessment(score=score, decision=decision_of(score, rules), reasons=reasons, rules_score=rules_score,
                          ml_score=ml_score, risk=round(risk, 6), model_score=mscore,
                          model_version=model.version if model else None)


_EMPTY_CARD = CardState()
_EMPTY_MERCHANT = MerchantState()


def reason_code(reason: str) -> str:
    """The code of a reason (``MODEL_RISK: a, b`` -> ``MODEL_RISK``)."""
    return reason.split(":", 1)[0]
