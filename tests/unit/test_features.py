"""Per-card and per-merchant features: exact, bounded, from the state before the transaction, labels only once known."""

from decimal import Decimal

import pytest

from handlers.features import (
    DAY_MS,
    FEATURE_NAMES,
    HOUR_MS,
    CardState,
    MerchantState,
    card_entity,
    cents,
    merchant_entity,
    merchant_hash,
)
from handlers.rules import Rules
from handlers.scoring import Scorer

T0 = 1_767_571_200_000  # 2026-01-05T00:00:00Z
SCORER = Scorer(Rules())


def txn(i: int, ts: int, amount: str = "20.00", merchant: str = "Corner Cafe 01", card: str = "tok-a") -> dict:
    return {"transaction_id": f"t-{i:05d}", "timestamp": ts, "amount": Decimal(amount), "merchant": merchant,
            "card_token": card, "customer_id": "cust-a"}


def replay(txns: list[dict]) -> tuple[CardState, MerchantState, list[dict]]:
    card, merchant, out = CardState(), MerchantState(), []
    for t in txns:
        out.append(SCORER.features(t, card, merchant))
        card.record(t)
        merchant.record(t)
    return card, merchant, out


def test_every_feature_is_computed_for_empty_and_full_state():
    history = [txn(i, T0 + i * HOUR_MS, f"{10 + i}.00") for i in range(40)]
    card, merchant, _ = replay(history)
    for state in ((None, None), (card, merchant)):
        f = SCORER.features(txn(99, T0 + 41 * HOUR_MS), *state)
        assert set(f) == set(FEATURE_NAMES)
        assert all(isinstance(v, (int, float)) for v in f.values())


def test_a_transaction_never_sees_itself_and_a_retry_sees_the_same():
    history = [txn(i, T0 + i * 60_000) for i in range(5)]
    card, merchant, before = replay(history)
    last = history[-1]
    # the stored card already holds `last` (a retried batch): its card features are unchanged
    again = SCORER.features(last, card, MerchantState())
    first = before[-1]
    card_names = [n for n in FEATURE_NAMES if n.startswith("card_")]
    assert {n: again[n] for n in card_names} == {n: first[n] for n in card_names}
    assert first["card_count_1d"] == 4 and first["card_velocity"] == 5  # velocity counts this one, as the rule


def test_recording_twice_is_idempotent():
    card = CardState()
    t = txn(1, T0)
    card.record(t)
    card.record(t)
    assert len(card.ts) == 1 and card.contains(T0, "t-00001")


@pytest.mark.parametrize("age_ms, inside", [(DAY_MS - 1, True), (DAY_MS, False)])
def test_windows_are_half_open_at_their_boundary(age_ms, inside):
    card = CardState()
    card.record(txn(1, T0))
    f = SCORER.features(txn(2, T0 + age_ms), card, None)
    assert f["card_count_1d"] == (1 if inside else 0)
    assert f["card_count_30d"] == 1


def test_thirty_day_window_boundary_and_no_history_markers():
    card = CardState()
    card.record(txn(1, T0))
    f = SCORER.features(txn(2, T0 + 30 * DAY_MS), card, None)
    assert f["card_count_30d"] == 0 and f["card_amount_vs_median_30d"] == -1.0
    f = SCORER.features(txn(2, T0 + 30 * DAY_MS - 1), card, None)
    assert f["card_count_30d"] == 1 and f["card_amount_vs_median_30d"] == pytest.approx(1.0)


def test_amount_features_against_the_cards_own_habits():
    history = [txn(i, T0 + i * DAY_MS // 4, "10.00") for i in range(20)]
    card, _, _ = replay(history)
    f = SCORER.features(txn(50, T0 + 6 * DAY_MS, "55.00", merchant="Gadget World 9"), card, None)
    assert f["card_amount_vs_median_30d"] == pytest.approx(5.5)
    assert f["card_amount_rank_30d"] == 1.0
    assert f["card_merchant_count_30d"] == 0
    same = SCORER.features(txn(51, T0 + 6 * DAY_MS, "10.00"), card, None)
    assert same["card_merchant_count_30d"] == 20


def test_labels_count_only_from_when_they_are_known():
    card = CardState()
    card.record(txn(1, T0))
    card.label("t-00001", T0 + 7 * DAY_MS)
    assert SCORER.features(txn(2, T0 + 7 * DAY_MS - 1), card, None)["card_days_since_fraud_label"] == 365
    assert SCORER.features(txn(3, T0 + 8 * DAY_MS), card, None)["card_days_since_fraud_label"] == pytest.approx(1.0)
    merchant = MerchantState()
    for i in range(10):
        merchant.add_transaction(T0 + i * HOUR_MS)
    merchant.add_fraud(T0 + 2 * DAY_MS)
    assert merchant.features(T0 + 2 * DAY_MS - 1)["merchant_frauds_7d"] == 0
    later = merchant.features(T0 + 2 * DAY_MS + HOUR_MS)
    assert later["merchant_frauds_7d"] == 1 and later["merchant_fraud_rate_7d"] == pytest.approx(0.1)
    card.label("t-00001", None)
    assert SCORER.features(txn(4, T0 + 9 * DAY_MS), card, None)["card_known_compromised"] == 0


def test_merchant_surge_sees_a_week_far_above_the_weeks_before():
    merchant = MerchantState()
    for d in range(30):
        for k in range(2 if d < 23 else 8):
            merchant.add_transaction(T0 + d * DAY_MS + k * HOUR_MS)
    f = merchant.features(T0 + 30 * DAY_MS)
    assert f["merchant_surge_7d"] > 3 and f["merchant_surge_z_7d"] > 5
    assert f["merchant_days_seen_30d"] == 29  # days 1..30 of the window: day 0 is out


def test_state_round_trips_through_the_item_and_stays_bounded():
    card = CardState()
    entries = [card.record(txn(i, T0 + i * 3_600_000)) for i in range(24 * 40)]
    action = CardState().update_action("features", "card#tok-a", entries)
    update = action["Update"]
    # a valid expression: every attribute path appears once
    paths = list(update["ExpressionAttributeNames"].values())
    assert len(paths) == len(set(paths))
    item = {name: set(update["ExpressionAttributeValues"][key.replace("#", ":")]["SS"])
            for key, name in update["ExpressionAttributeNames"].items() if key.startswith("#a")}
    restored = CardState.from_item(item)
    assert restored.ts == sorted(card.ts) and restored.amounts == card.amounts and restored.hours == card.hours
    assert len(str(item)) < 400_000
    now = txn(99999, T0 + 24 * 40 * 3_600_000)
    assert SCORER.features(now, restored, None) == SCORER.features(now, card, None)


def test_merchant_state_round_trips_through_its_item():
    merchant = MerchantState()
    for d in range(5):
        merchant.add_transaction(T0 + d * DAY_MS)
    merchant.add_fraud(T0 + 3 * DAY_MS)
    item = {"n_20260105": 1, "n_20260106": 1, "n_20260107": 1, "n_20260108": 1, "n_20260109": 1, "f_20260108": 1}
    assert MerchantState.from_item(item) == merchant


def test_keys_and_cents():
    assert card_entity({"card_token": "x"}) == "card#x"
    assert card_entity({"customer_id": "cust-a"}) == "customer#cust-a"
    assert card_entity({}) is None
    assert merchant_entity({"merchant": "  Corner   CAFE 01 "}) == "merchant#corner cafe 01"
    assert merchant_entity({"merchant": "  "}) is None and merchant_hash({}) == 0
    assert merchant_hash({"merchant": "Corner Cafe 01"}) == merchant_hash({"merchant": "corner  cafe 01"})
    assert cents(Decimal("12.34")) == 1234 and cents("0.10") == 10 and cents(7) == 700 and cents(1.1) == 110
