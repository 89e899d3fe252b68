"""The backtest replays exactly what the detection function decides.

One generated sequence goes through the deployed path (stream ingest on moto,
then the detection handler on the table's stream, state in the features table)
and through `python -m fraud_pipeline.backtest run` (state in memory): every
transaction gets the same decision, score, risk and reasons.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from datetime import date

from fraud_pipeline import synthetic
from fraud_pipeline.backtest.__main__ import main as backtest
from handlers import clients, fraud_detection, stream_ingest

#: A scorecard over card and merchant features, so state (not just the transaction) decides.
MODEL = {"format": "fraud-pipeline-scorecard", "format_version": 1, "version": "equivalence", "intercept": -4.0,
         "features": [
             {"name": "card_amount_vs_30d_mean", "edges": [1.5, 3.0], "weights": [0.0, 1.0, 3.0], "reference": 0.2},
             {"name": "card_count_1d", "edges": [2, 4], "weights": [0.0, 0.5, 1.5], "reference": 0.1},
             {"name": "merchant_count_7d", "edges": [3.5], "weights": [0.6, 0.0], "reference": 0.3},
             {"name": "card_merchant_count_30d", "edges": [0.5], "weights": [0.8, 0.0], "reference": 0.4},
             {"name": "card_velocity", "edges": [2.5], "weights": [0.0, 2.0], "reference": 0.0}],
         "thresholds": {"review": 0.15, "block": 0.5}, "card": {}}


def test_backtest_run_decides_exactly_as_the_detection_function(aws, ctx, tmp_path):
    # GIVEN three weeks of generated traffic (about 400 transactions, fraud scenarios included) and a model
    rows = synthetic.history(days=21, per_day=20, seed=5, start=date(2026, 9, 1))
    key = "models/equivalence.json"
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=json.dumps(MODEL).encode())
    aws.ssm.put_parameter(Name="/fraud-detection/test/model", Type="SecureString", Value=key, Overwrite=True)
    clients.reset_values()
    payloads = [{"transaction_id": r.transaction_id, "timestamp": r.timestamp, "amount": r.amount,
                 "currency": r.currency, "merchant": r.merchant, "card_number": r.card_number,
                 "location": r.location, "customer_id": r.customer_id, "hour": r.hour,
                 "location_mismatch": r.location_mismatch} for r in rows]

    # WHEN the sequence goes through ingest and detection in batches of 100, in time order
    for start in range(0, len(payloads), 100):
        assert stream_ingest.handler(aws.kinesis_event(payloads[start:start + 100]), ctx) == {"batchItemFailures": []}
        assert fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx) == {"batchItemFailures": []}
    deployed = {i["transaction_id"]: i for i in aws.transactions()}

    # AND the same sequence is replayed by the backtest CLI, without labels
    data = tmp_path / "seq.csv"
    synthetic.write_csv([dataclasses.replace(r, is_fraud=False) for r in rows], data)
    (tmp_path / "model.json").write_text(json.dumps(MODEL))
    scores = tmp_path / "scores.csv"
    assert backtest(["run", "--transactions", str(data), "--model", str(tmp_path / "model.json"),
                     "--from", "2026-09-01", "--until", "2026-09-21", "--scores", str(scores)]) == 0
    replayed = {r["transaction_id"]: r for r in csv.DictReader(scores.open())}

    # THEN every transaction has the same decision, score, risk and reasons on both paths
    assert len(deployed) == len(replayed) == len(rows)
    differences = []
    for tid, item in deployed.items():
        r = replayed[tid]
        same = (item["decision"] == r["decision"] and int(item["score"]) == int(r["score"])
                and abs(float(item["risk"]) - float(r["risk"])) < 1e-6
                and ";".join(item["reasons"]) == r["reasons"])
        if not same:
            differences.append((tid, item["decision"], int(item["score"]), item["reasons"], r))
    assert differences == []
    # AND the sequence was not trivial: state-driven model decisions and several outcomes occurred
    decisions = {i["decision"] for i in deployed.values()}
    assert {"approve", "review"} <= decisions
    assert sum(1 for i in deployed.values() if any(x.startswith("MODEL_RISK") for x in i["reasons"])) >= 5
