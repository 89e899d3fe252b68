"""The scoring rules: the table, the RULES_JSON contract and the monotonicity property (pure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.rules import (
    REASON_CODES,
    Rules,
    RulesConfigError,
    assess,
    blend,
    decision_of,
    load_rules,
    rule_hits,
    score_of,
)

DEFAULT = Rules()
PLAIN = {"amount": Decimal("125.50"), "merchant": "Corner Bakery", "country": "USA", "hour": 12,
         "location_mismatch": False, "velocity_flag": False}


@pytest.mark.parametrize("change, velocity, expected", [
    ({"amount": Decimal("10000.01")}, 0, ("HIGH_AMOUNT",)),
    ({"amount": Decimal("10000")}, 0, ("ELEVATED_AMOUNT",)),
    ({"amount": Decimal("5000.01")}, 0, ("ELEVATED_AMOUNT",)),
    ({"amount": Decimal("5000")}, 0, ()),
    ({"merchant": "  UNKNOWN   store "}, 0, ("BLOCKED_MERCHANT",)),
    ({"country": "north korea"}, 0, ("HIGH_RISK_LOCATION",)),
    ({"amount": Decimal("49")}, 0, ("CARD_TESTING",)),
    ({"amount": Decimal("49.00")}, 0, ("CARD_TESTING",)),
    ({"amount": Decimal("49.99")}, 0, ()),
    ({"amount": Decimal("50")}, 0, ()),
    ({"hour": 0}, 0, ("ODD_HOUR",)),
    ({"hour": 5}, 0, ("ODD_HOUR",)),
    ({"hour": 6}, 0, ()),
    ({"hour": 22}, 0, ()),
    ({"hour": 23}, 0, ("ODD_HOUR",)),
    ({"location_mismatch": True}, 0, ("LOCATION_MISMATCH",)),
    ({"velocity_flag": True}, 0, ("VELOCITY",)),
    ({}, 6, ("VELOCITY",)),
    ({}, 5, ()),
])
def test_each_rule_fires_exactly_at_its_boundary(change, velocity, expected):
    # GIVEN an ordinary purchase WHEN one attribute crosses a rule's boundary THEN only that reason code fires
    assert rule_hits({**PLAIN, **change}, DEFAULT, velocity) == expected


def test_weights_and_decisions_follow_the_table():
    assert dict(DEFAULT.weights) == {"HIGH_AMOUNT": 50, "ELEVATED_AMOUNT": 25, "BLOCKED_MERCHANT": 60,
                                     "HIGH_RISK_LOCATION": 10, "CARD_TESTING": 5, "ODD_HOUR": 10,
                                     "LOCATION_MISMATCH": 25, "VELOCITY": 30}
    assert [decision_of(s, DEFAULT) for s in (0, 39, 40, 69, 70, 100)] == [
        "approve", "approve", "review", "review", "block", "block"]
    everything = assess({"amount": Decimal(20000), "merchant": "Unknown Store", "country": "Iran", "hour": 3,
                         "location_mismatch": True, "velocity_flag": True}, DEFAULT)
    assert everything.score == 100 and everything.decision == "block"  # capped


def test_readme_examples_score_as_documented():
    blocked = assess({"amount": Decimal("15000.00"), "merchant": "Unknown Store", "country": "Nigeria", "hour": 12}, DEFAULT)
    assert blocked.decision == "block" and {"HIGH_AMOUNT", "HIGH_RISK_LOCATION"} <= set(blocked.reasons)
    minimal = assess({"amount": Decimal(5500), "hour": 23, "location_mismatch": True, "velocity_flag": False}, DEFAULT)
    assert (minimal.score, minimal.decision) == (60, "review")
    assert assess(PLAIN, DEFAULT).decision == "approve"


STACK_RULES = {"high_amount": 10000.0, "elevated_amount": 5000.0, "review_score": 40, "block_score": 70,
               "velocity_max_transactions": 5, "velocity_window_minutes": 10, "blocked_merchants": ["Unknown Store"],
               "high_risk_countries": ["Nigeria", "North Korea", "Iran"]}


def test_the_stack_document_gives_the_defaults():
    assert load_rules(json.dumps(STACK_RULES)) == DEFAULT
    assert load_rules(None) == DEFAULT and load_rules("  ") == DEFAULT


def test_overrides_apply():
    rules = load_rules(json.dumps({"high_amount": 2000, "elevated_amount": 1000.5, "block_score": 90,
                                   "blocked_merchants": ["Casino Royale"], "high_risk_countries": [],
                                   "weights": {"ODD_HOUR": 40}}))
    txn = {"amount": Decimal(2500), "merchant": "casino royale", "country": "Nigeria", "hour": 2}
    result = assess(txn, rules)
    assert result.reasons == ("HIGH_AMOUNT", "BLOCKED_MERCHANT", "ODD_HOUR")
    assert result.score == 100 and rules.weights["HIGH_AMOUNT"] == 50


@pytest.mark.parametrize("document, message", [
    ({"high_amount_threshold": 1}, "RULES_JSON has unknown key(s) 'high_amount_threshold'"),
    ({"high_amount": "10000"}, "RULES_JSON.high_amount must be a number greater than 0 and at most 1000000"),
    ({"high_amount": True}, "RULES_JSON.high_amount must be a number greater than 0 and at most 1000000"),
    ({"review_score": 40.5}, "RULES_JSON.review_score must be an integer between 1 and 100"),
    ({"velocity_window_minutes": 0}, "RULES_JSON.velocity_window_minutes must be an integer between 1 and 1440"),
    ({"blocked_merchants": "Unknown Store"}, "RULES_JSON.blocked_merchants must be a list of non-empty strings"),
    ({"high_risk_countries": ["Iran", 7]}, "RULES_JSON.high_risk_countries must be a list of non-empty strings"),
    ({"weights": {"HIGH_AMOUNTS": 1}}, "RULES_JSON.weights has unknown reason code(s) 'HIGH_AMOUNTS'"),
    ({"weights": {"VELOCITY": -1}}, "RULES_JSON.weights.VELOCITY must be an integer between 0 and 100"),
    ({"weights": {"HIGH_AMOUNT": 10}}, "RULES_JSON.weights.HIGH_AMOUNT must not be below weights.ELEVATED_AMOUNT"),
    ({"elevated_amount": 20000}, "RULES_JSON.elevated_amount must be below high_amount"),
    ({"review_score": 80}, "RULES_JSON.review_score must be below block_score"),
])
def test_bad_documents_are_refused_with_the_key_named(document, message):
    with pytest.raises(RulesConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_rules(json.dumps(document))


def test_bad_rules_fail_the_cold_start():
    # GIVEN a RULES_JSON with an unknown key WHEN the detection module is imported (Lambda init) THEN it fails, naming the key
    env = {**os.environ, "RULES_JSON": json.dumps({"blocked_merchant": ["x"]})}
    result = subprocess.run([sys.executable, "-c", "import handlers.fraud_detection"], env=env,
                            cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "RulesConfigError: RULES_JSON has unknown key(s) 'blocked_merchant'" in result.stderr


# --------------------------------------------------------------------------- properties
weights_st = st.fixed_dictionaries({code: st.integers(0, 100) for code in REASON_CODES}).filter(
    lambda w: w["HIGH_AMOUNT"] >= w["ELEVATED_AMOUNT"])
hits_st = st.sets(st.sampled_from(REASON_CODES))


@settings(max_examples=300)
@given(weights=weights_st, hits=hits_st, extra=st.sampled_from(REASON_CODES))
def test_adding_a_rule_hit_never_lowers_the_score(weights, hits, extra):
    rules = load_rules(json.dumps({"weights": weights}))
    assert score_of(tuple(hits | {extra}), rules) >= score_of(tuple(hits), rules)


txn_st = st.fixed_dictionaries({
    "amount": st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1_000_000), places=2),
    "merchant": st.sampled_from(["Corner Bakery", "Unknown Store", "Fuel"]),
    "country": st.sampled_from(["USA", "Nigeria", "France", "Iran"]),
    "hour": st.integers(0, 23),
    "location_mismatch": st.booleans(),
    "velocity_flag": st.booleans(),
})
# Each change makes one more rule fire (or leaves it firing).
CHANGES = {
    "BLOCKED_MERCHANT": lambda t, v: ({**t, "merchant": "Unknown Store"}, v),
    "HIGH_RISK_LOCATION": lambda t, v: ({**t, "country": "Nigeria"}, v),
    "ODD_HOUR": lambda t, v: ({**t, "hour": 23}, v),
    "LOCATION_MISMATCH": lambda t, v: ({**t, "location_mismatch": True}, v),
    "VELOCITY": lambda t, v: (t, max(v, 6)),
}


@settings(max_examples=300)
@given(txn=txn_st, velocity=st.integers(0, 10), rule=st.sampled_from(sorted(CHANGES)),
       ml=st.none() | st.integers(0, 100), weights=weights_st)
def test_a_transaction_that_hits_one_more_rule_never_scores_lower(txn, velocity, rule, ml, weights):
    rules = load_rules(json.dumps({"weights": weights}))
    before = assess(txn, rules, velocity, ml)
    changed, changed_velocity = CHANGES[rule](txn, velocity)
    after = assess(changed, rules, changed_velocity, ml)
    assert rule in after.reasons
    assert set(before.reasons) <= set(after.reasons)
    assert after.score >= before.score
    assert ["approve", "review", "block"].index(after.decision) >= ["approve", "review", "block"].index(before.decision)


@given(rules_score=st.integers(0, 100), ml=st.integers(0, 100), more=st.integers(0, 100))
def test_ml_can_raise_but_never_lower_the_rules_score(rules_score, ml, more):
    assert rules_score <= blend(rules_score, ml) <= 100
    assert blend(max(rules_score, more), ml) >= blend(rules_score, ml)
    assert blend(rules_score, None) == rules_score
