"""`python -m fraud_pipeline.backtest`: train then run end to end on a tiny generated history."""

import csv
import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from fraud_pipeline import synthetic
from fraud_pipeline.backtest.__main__ import main
from fraud_pipeline.backtest.data import parse_timestamp, read_transactions
from handlers.model import load_model

DAYS, PER_DAY = 24, 600


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bt") / "history.csv.gz"
    synthetic.write_csv(synthetic.history(DAYS, PER_DAY, seed=5, start=date(2026, 1, 5)), path)
    return path


@pytest.fixture(scope="module")
def model(history, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "model.json"
    assert main(["train", "--transactions", str(history), "--until", "2026-01-21", "--label-delay-days", "1",
                 "--out", str(out), "--reproduce", "make model"]) == 0
    return out


def test_train_writes_a_valid_model_with_its_card(model):
    loaded = load_model(model.read_bytes())
    assert loaded.card["reproduce"] == "make model"
    assert loaded.card["data_period"]["until"] == "2026-01-21"
    assert 0 < loaded.thresholds.review < loaded.thresholds.block < 1


def test_run_scores_the_period_with_the_trained_model(history, model, tmp_path, capsys):
    scores = tmp_path / "scores.csv"
    assert main(["run", "--transactions", str(history), "--model", str(model), "--from", "2026-01-26",
                 "--until", "2026-01-28", "--label-delay-days", "1", "--scores", str(scores),
                 "--report", str(tmp_path / "report")]) == 0
    with scores.open() as handle:
        assert handle.readline().strip() == "transaction_id,risk,score,decision,reasons"
        rows = list(csv.reader(handle))
    assert len(rows) == 3 * PER_DAY
    assert {r[3] for r in rows} <= {"approve", "review", "block"}
    assert all(0.0 <= float(r[1]) <= 1.0 and 0 <= int(r[2]) <= 100 for r in rows)
    err = capsys.readouterr().err
    assert "live (scorecard-2026-01-21)" in err and "transactions/s" in err
    assert (tmp_path / "report").is_dir()


def test_the_model_round_trips_train_to_run(history, model, tmp_path):
    # the same model scored twice gives identical scores (pure, deterministic)
    outs = []
    for name in ("a.csv", "b.csv"):
        out = tmp_path / name
        main(["run", "--transactions", str(history), "--model", str(model), "--from", "2026-01-27",
              "--until", "2026-01-27", "--scores", str(out)])
        outs.append(out.read_text())
    assert outs[0] == outs[1]


def test_rules_only_and_bad_rows_iso_and_epoch_timestamps(tmp_path, capfd):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "transaction_id,timestamp,amount,merchant,customer_id,is_fraud\n"
        "a-1,2026-01-05T10:00:00Z,12.50,Corner Cafe,cust-a,0\n"
        "a-2,1767609000000,15000,Gadget World,cust-a,1\n"
        "a-3,not-a-time,10,Corner Cafe,cust-a,0\n"
        "a-4,2026-01-05 11:00:00,-4,Corner Cafe,cust-a,0\n"
        "a-5,2026-01-05 12:00:00,9,Corner Cafe,cust-a,maybe\n")
    scores = tmp_path / "s.csv"
    assert main(["run", "--transactions", str(path), "--model", "none", "--from", "2026-01-05",
                 "--until", "2026-01-05", "--scores", str(scores)]) == 0
    err = capfd.readouterr().err
    assert "3 of 5 rows skipped" in err
    assert "line 4: timestamp must be epoch milliseconds or ISO 8601" in err
    assert "line 5: amount must be greater than 0" in err
    assert "line 6: is_fraud must be 1/0 or true/false" in err
    rows = list(csv.DictReader(scores.open()))
    assert [r["transaction_id"] for r in rows] == ["a-1", "a-2"]
    assert rows[1]["decision"] == "review" and rows[1]["reasons"] == "HIGH_AMOUNT"
    assert parse_timestamp("2026-01-05T10:00:00Z") == int(datetime(2026, 1, 5, 10, tzinfo=UTC).timestamp() * 1000)
    assert parse_timestamp("1767609000000") == 1767609000000


def test_gz_input_without_card_or_location_columns(tmp_path):
    path = tmp_path / "plain.csv.gz"
    with gzip.open(path, "wt", newline="") as handle:
        w = csv.writer(handle)
        w.writerow(["transaction_id", "timestamp", "amount", "merchant", "customer_id", "is_fraud"])
        for i in range(50):
            w.writerow([f"p-{i}", 1767571200000 + i * 60_000, "20.00", "Shop", f"cust-{i % 3}", 0])
    data = read_transactions(str(path))
    assert len(data.transactions) == 50 and not data.bad_rows
    assert "card_token" not in data.transactions[0]
    assert main(["run", "--transactions", str(path), "--from", "2026-01-05", "--until", "2026-01-05",
                 "--scores", str(tmp_path / "s.csv")]) == 0


def test_bad_arguments_exit_with_a_message(history, tmp_path):
    with pytest.raises(SystemExit, match="--model"):
        main(["run", "--transactions", str(history), "--model", str(tmp_path / "missing.json"), "--from", "2026-01-05",
              "--until", "2026-01-05", "--scores", str(tmp_path / "s.csv")])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "x"}))
    with pytest.raises(SystemExit, match="format must be"):
        main(["run", "--transactions", str(history), "--model", str(bad), "--from", "2026-01-05",
              "--until", "2026-01-05", "--scores", str(tmp_path / "s.csv")])
