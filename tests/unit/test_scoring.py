"""Scorer: features + rules + model -> a decision that is monotone in risk, with its reasons."""

import json
from decimal import Decimal

from handlers.model import parse_model
from handlers.rules import Rules
from handlers.scoring import ALLOWLISTED, MODEL_RISK, Scorer, reason_code

MODEL = parse_model({
    "format": "fraud-pipeline-scorecard", "format_version": 1, "version": "m-1", "intercept": -5.0,
    "features": [{"name": "card_amount_vs_median_30d", "edges": [2.0, 4.0, 8.0],
                  "weights": [0.0, 2.0, 4.0, 8.0], "reference": 0.1}],
    "thresholds": {"review": 0.2, "block": 0.7}, "card": {},
})
TXN = {"transaction_id": "t-1", "timestamp": 1_767_571_200_000 + 12 * 3_600_000, "amount": Decimal("25.40"),
       "merchant": "Corner Cafe 01", "card_token": "tok-a", "hour": 12}
ORDER = {"approve": 0, "review": 1, "block": 2}


def test_decisions_are_monotone_in_risk():
    scorer = Scorer(Rules(), MODEL)
    seen = []
    for ratio in [x / 4 for x in range(0, 60)]:
        a = scorer.score(TXN, {"card_amount_vs_median_30d": ratio})
        seen.append((a.risk, a.score, ORDER[a.decision]))
    assert sorted(seen) == sorted(seen, key=lambda s: (s[0], s[1], s[2]))
    risks = [s[0] for s in seen]
    assert risks == sorted(risks)
    assert [s[2] for s in seen] == sorted(s[2] for s in seen)
    assert {s[2] for s in seen} == {0, 1, 2}


def test_model_alerts_are_explained_and_rules_stay_the_floor():
    scorer = Scorer(Rules(), MODEL)
    a = scorer.score(TXN, {"card_amount_vs_median_30d": 10.0})
    assert a.decision == "block" and a.reasons == (f"{MODEL_RISK}: card_amount_vs_median_30d",)
    assert a.model_version == "m-1" and a.model_score is not None and a.model_score >= 70
    quiet = scorer.score(TXN, {"card_amount_vs_median_30d": 1.0})
    assert quiet.decision == "approve" and quiet.reasons == ()
    big = scorer.score({**TXN, "amount": Decimal("15000")}, {"card_amount_vs_median_30d": 1.0})
    assert big.decision == "review" and big.reasons == ("HIGH_AMOUNT",) and big.rules_score == 50
    assert [reason_code(r) for r in a.reasons] == [MODEL_RISK]


def test_without_a_model_the_rules_decide():
    a = Scorer(Rules()).score({**TXN, "amount": Decimal("15000")}, {"card_velocity": 1})
    assert (a.decision, a.score, a.risk, a.model_score) == ("review", 50, 0.5, None)


def test_allowlisted_card_is_approved_with_the_codes_kept():
    scorer = Scorer(Rules(), MODEL, frozenset({"tok-a"}))
    a = scorer.score({**TXN, "amount": Decimal("15000")}, {"card_amount_vs_median_30d": 10.0})
    assert a.decision == "approve" and a.score == 0 and a.reasons[0] == ALLOWLISTED and "HIGH_AMOUNT" in a.reasons


def test_ml_score_only_raises():
    scorer = Scorer(Rules(), MODEL)
    base = scorer.score(TXN, {"card_amount_vs_median_30d": 3.0})
    assert scorer.score(TXN, {"card_amount_vs_median_30d": 3.0}, ml_score=0).score == base.score
    assert scorer.score(TXN, {"card_amount_vs_median_30d": 3.0}, ml_score=100).score >= base.score


def test_features_then_score_on_empty_state():
    scorer = Scorer(Rules(), MODEL)
    f = scorer.features(TXN, None, None)
    assert f["card_amount_vs_median_30d"] == -1.0 and f["amount"] == 25.4
    assert scorer.score(TXN, f).decision == "approve"
    assert json.dumps(f)  # plain numbers (written to the transaction item)
