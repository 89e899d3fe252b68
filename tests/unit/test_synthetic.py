"""Synthetic labelled history: determinism, row invariants, the fraud scenarios' shapes, the CSV and the CLI."""

import csv
import gzip
import io
import re
import statistics
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fraud_pipeline import synthetic
from fraud_pipeline.synthetic import (
    CSV_COLUMNS,
    SCENARIOS,
    Labelled,
    history,
    read_csv,
    write_csv,
)

REPO = Path(__file__).resolve().parents[2]
DAYS, PER_DAY, START = 21, 2000, date(2026, 1, 5)
START_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp()) * 1000
DAY_MS = 86_400_000


def luhn_ok(number: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


@pytest.fixture(scope="module")
def rows() -> list[Labelled]:
    return history(DAYS, PER_DAY, seed=1, start=START)


# --- determinism ----------------------------------------------------------------------

def test_same_seed_same_history_other_seed_different():
    # GIVEN two runs with seed 7 and one with seed 8 WHEN generated THEN seed 7 repeats exactly and seed 8 differs
    a = history(5, 400, seed=7)
    assert a == history(5, 400, seed=7)
    b = history(5, 400, seed=8)
    assert [(r.timestamp, r.amount, r.card_number) for r in a] != [(r.timestamp, r.amount, r.card_number) for r in b]


# --- row invariants ---------------------------------------------------------------------

def test_exactly_per_day_rows_sorted_inside_the_range(rows):
    # GIVEN 21 days x 2,000 WHEN generated THEN 42,000 rows, sorted, every timestamp in [start, start + 21 days)
    assert len(rows) == DAYS * PER_DAY
    stamps = [r.timestamp for r in rows]
    assert stamps == sorted(stamps)
    assert START_MS <= stamps[0] and stamps[-1] < START_MS + DAYS * DAY_MS
    # AND each UTC day has exactly per_day rows, fraud included
    assert set(Counter((t - START_MS) // DAY_MS for t in stamps).values()) == {PER_DAY}


def test_hour_is_the_utc_hour_of_the_timestamp(rows):
    # GIVEN every row WHEN its hour is compared with its timestamp THEN they agree
    for r in rows:
        assert r.hour == datetime.fromtimestamp(r.timestamp / 1000, tz=UTC).hour
        assert isinstance(r.timestamp, int) and 0 <= r.hour <= 23


def test_transaction_ids_are_unique_safe_and_never_look_like_a_card_number(rows):
    # GIVEN every id WHEN checked THEN unique, the accepted alphabet, <= 64 chars and no run of 13+ digits
    ids = [r.transaction_id for r in rows]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,64}", i) for i in ids)
    assert not any(re.search(r"[0-9]{13}", i) for i in ids)
    # AND no other text field carries a card-like digit run either
    texts = {r.merchant for r in rows} | {r.location for r in rows} | {r.customer_id for r in rows}
    assert not any(re.search(r"[0-9]{13}", t) for t in texts)


def test_cards_are_luhn_valid_visa_numbers_one_per_customer(rows):
    # GIVEN every card number WHEN checked THEN 16 digits starting with 4 and Luhn-valid
    cards = {r.card_number for r in rows}
    assert all(re.fullmatch(r"4[0-9]{15}", c) and luhn_ok(c) for c in cards)
    # AND each customer has exactly one card and each card one customer
    pairs = {(r.customer_id, r.card_number) for r in rows}
    assert len(pairs) == len(cards) == len({r.customer_id for r in rows})
    assert all(re.fullmatch(r"cust-[a-z]+", r.customer_id) for r in rows[:100])


def test_field_formats(rows):
    # GIVEN every row THEN 2-decimal positive amounts, a "City, Country" location, a known currency,
    # velocity_flag never set, and fraud exactly on the scenario rows
    for r in rows:
        assert r.amount > 0 and round(r.amount, 2) == r.amount
        assert re.fullmatch(r"[^,]+, [^,]+", r.location)
        assert r.currency in {"USD", "GBP", "CAD", "EUR"}
        assert r.velocity_flag is False
        assert r.is_fraud == (r.scenario != "ordinary")
        if r.location.startswith("Online,"):
            assert r.location == "Online, USA" and not r.location_mismatch


# --- fraud ----------------------------------------------------------------------------

def test_every_scenario_appears_and_the_fraud_rate_is_realistic(rows):
    # GIVEN the history WHEN labels are counted THEN every scenario has fraud rows and fraud is a small minority
    per = Counter(r.scenario for r in rows if r.is_fraud)
    assert set(per) == set(SCENARIOS)
    rate = sum(per.values()) / len(rows)
    assert 0.003 <= rate <= 0.015


def test_compromised_merchants_are_mostly_fraud_during_their_window(rows):
    # GIVEN the merchants with compromised_merchant fraud WHEN their fraud share inside the window is measured
    windows = defaultdict(list)
    for r in rows:
        if r.scenario == "compromised_merchant":
            windows[r.merchant].append(r.timestamp)
    assert windows
    inside = Counter()
    for r in rows:
        if r.merchant in windows and min(windows[r.merchant]) <= r.timestamp <= max(windows[r.merchant]):
            inside[r.is_fraud] += 1
    share = inside[True] / (inside[True] + inside[False])
    # THEN the compromised share is far above ordinary merchants'
    ordinary = Counter(r.is_fraud for r in rows if r.merchant not in windows)
    ordinary_share = ordinary[True] / (ordinary[True] + ordinary[False])
    assert share >= 0.35
    assert ordinary_share < 0.02 and share > 10 * ordinary_share
    # AND the fraud is on cards of the merchant's own customers, at its city, at ordinary-looking amounts
    fraud = [r for r in rows if r.scenario == "compromised_merchant"]
    genuine_cards = defaultdict(set)
    for r in rows:
        if not r.is_fraud and r.merchant in windows:
            genuine_cards[r.merchant].add(r.card_number)
    shoppers = sum(r.card_number in genuine_cards[r.merchant] for r in fraud) / len(fraud)
    assert shoppers > 0.5          # small merchants: some regulars happen not to visit in 21 days
    assert all(not r.location.startswith("Online") and not r.location_mismatch for r in fraud)
    assert statistics.median(r.amount for r in fraud) < 150


def test_account_takeover_amounts_are_several_times_the_cards_normal(rows):
    # GIVEN each taken-over card WHEN its fraud amounts are compared with its own genuine amounts
    fraud, genuine = defaultdict(list), defaultdict(list)
    for r in rows:
        if r.scenario == "account_takeover":
            fraud[r.card_number].append(r.amount)
        elif not r.is_fraud:
            genuine[r.card_number].append(r.amount)
    ratios = [statistics.median(a) / statistics.median(genuine[c]) for c, a in fraud.items() if len(genuine[c]) >= 5]
    assert ratios
    # THEN the typical ratio is several times, and no card's fraud looks like its normal spending
    assert statistics.median(ratios) >= 3
    assert min(ratios) >= 1.5
    # AND some of it is abroad
    assert any(r.location_mismatch for r in rows if r.scenario == "account_takeover")


def test_card_testing_is_tiny_whole_dollar_tests_online_then_bigger_purchases(rows):
    # GIVEN card-testing rows grouped by card
    by_card = defaultdict(list)
    for r in rows:
        if r.scenario == "card_testing_burst":
            by_card[r.card_number].append(r)
    assert by_card
    for burst in by_card.values():
        tiny = [r for r in burst if r.amount < 10]
        # THEN at least 3 tiny whole-dollar amounts at online merchants; everything else is 100-900
        assert len(tiny) >= 3
        assert all(r.amount == int(r.amount) and 1 <= r.amount <= 9 for r in tiny)
        assert all(r.location == "Online, USA" for r in burst)
        assert all(100 <= r.amount <= 900 for r in burst if r.amount >= 10)


def test_velocity_bursts_are_six_or_more_in_half_an_hour(rows):
    # GIVEN velocity-burst rows grouped by card WHEN the densest 30-minute window is taken THEN it has >= 6
    by_card = defaultdict(list)
    for r in rows:
        if r.scenario == "velocity_burst":
            by_card[r.card_number].append(r.timestamp)
    assert by_card
    for stamps in by_card.values():
        stamps.sort()
        best = max(sum(1 for t in stamps if s <= t < s + 30 * 60_000) for s in stamps)
        assert best >= 6


def test_high_amount_high_risk_and_odd_hour_shapes(rows):
    # GIVEN the single-purchase scenarios THEN each has its defining trait
    genuine = defaultdict(list)
    for r in rows:
        if not r.is_fraud:
            genuine[r.card_number].append(r.amount)
    high = [r for r in rows if r.scenario == "high_amount"]
    assert all(2000 < r.amount <= 20000 for r in high)
    assert all(r.amount >= 5 * statistics.mean(genuine[r.card_number]) for r in high if genuine[r.card_number])
    risky = [r for r in rows if r.scenario == "high_risk_location"]
    assert all(r.location.split(", ")[1] in {"Nigeria", "Iran", "North Korea"} and r.location_mismatch for r in risky)
    # AND residents of those countries also shop there, genuinely
    assert any(not r.is_fraud and r.location.split(", ")[1] in {"Nigeria", "Iran"} for r in rows)
    odd = [r for r in rows if r.scenario == "odd_hour"]
    assert all(0 <= r.hour <= 5 for r in odd)
    # AND the odd-hour victims never shop at night otherwise
    night_cards = {r.card_number for r in rows if not r.is_fraud and r.hour <= 5}
    assert not night_cards & {r.card_number for r in odd}


def test_genuine_traffic_overlaps_the_fraud_signals(rows):
    # GIVEN genuine rows THEN some travel abroad, some shop at night, some make big purchases and pay whole dollars
    genuine = [r for r in rows if not r.is_fraud]
    assert 0.003 < sum(r.location_mismatch for r in genuine) / len(genuine) < 0.05
    assert sum(r.hour <= 5 for r in genuine) / len(genuine) > 0.01
    assert any(r.amount > 500 for r in genuine)
    assert sum(r.amount == int(r.amount) and r.amount < 10 for r in genuine) / len(genuine) > 0.02


# --- CSV and CLI ----------------------------------------------------------------------

def test_csv_gzip_round_trip_with_the_exact_header(tmp_path):
    # GIVEN a small history WHEN written to .csv.gz and read back
    data = history(3, 300, seed=3)
    path = tmp_path / "h.csv.gz"
    assert write_csv(data, path) == len(data)
    with gzip.open(path, "rt", newline="") as f:
        table = list(csv.reader(f))
    # THEN the header is exact, the literals are true/false and 1/0, and read_csv restores every row
    assert tuple(table[0]) == CSV_COLUMNS
    assert len(table) == len(data) + 1
    assert {row[9] for row in table[1:]} <= {"true", "false"} and {row[10] for row in table[1:]} == {"false"}
    assert {row[11] for row in table[1:]} <= {"0", "1"}
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{2}", row[2]) for row in table[1:])
    assert read_csv(path) == data


def test_write_csv_to_an_open_text_or_binary_file():
    # GIVEN an open text and an open binary buffer WHEN written THEN both hold the same CSV
    data = history(1, 200, seed=4)
    text, binary = io.StringIO(), io.BytesIO()
    write_csv(data, text)
    write_csv(data, binary)
    assert text.getvalue().encode() == binary.getvalue()
    assert text.getvalue().splitlines()[0] == ",".join(CSV_COLUMNS)


def test_cli_writes_a_gzip_file_and_stdout(tmp_path):
    # GIVEN the CLI with small sizes WHEN run with a .gz path THEN the file holds days x per-day rows
    out = tmp_path / "history.csv.gz"
    cmd = [sys.executable, "-m", "fraud_pipeline.synthetic", "--days", "2", "--per-day", "300", "--seed", "5",
           "--start", "2026-02-01"]
    done = subprocess.run([*cmd, "--out", str(out)], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "600 rows" in done.stderr
    rows = read_csv(out)
    assert len(rows) == 600
    first = int(datetime(2026, 2, 1, tzinfo=UTC).timestamp()) * 1000
    assert first <= rows[0].timestamp and rows[-1].timestamp < first + 2 * DAY_MS
    # AND with --out - the same CSV goes to stdout
    piped = subprocess.run([*cmd, "--out", "-", "--quiet"], check=False, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0 and piped.stderr == ""
    assert read_csv(io.StringIO(piped.stdout)) == rows


def test_scenarios_are_documented_in_the_module_docstring():
    # GIVEN the module docstring THEN it documents every scenario by name
    for name in SCENARIOS:
        assert f"``{name}``" in synthetic.__doc__


def test_bad_sizes_are_rejected():
    # GIVEN zero days WHEN asked for a history THEN ValueError
    with pytest.raises(ValueError):
        history(0, 100)
