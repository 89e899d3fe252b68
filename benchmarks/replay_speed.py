"""Speed of the detection scoring path (features + rules + model) and of the backtest replay and training.

Input: a labelled history from the generator (`fraud_pipeline.synthetic`, seed 11; 30 days x 10,000 a
day, 3 days x 1,000 with --quick), read with the backtest's own reader.

Timed in the same process on the same transactions:

* the replay (`fraud_pipeline.backtest.replay`: state in memory, every transaction's features, rules,
  model and the state updates) with the shipped model (`handlers/models/default.json`): transactions/s;
* one transaction's pure scoring -- `Scorer.features` from the state before it plus `Scorer.score` --
  against `json.loads` of the same transaction serialised as JSON (the baseline: the least any handler
  does with a record), best of N passes over a sample with the state of the end of the history;
* `train` on the whole history (one run; --quick: a tiny history), for the <= 5 minutes target
  at 90 days x 10,000 a day (scaled linearly from the measured days when the run is smaller).

Targets: replay >= 20,000 transactions/s; scoring <= 100 us per transaction.
Figures depend on the machine's load: measure on a quiet machine.
"""

from __future__ import annotations

import gc
import io
import json
import os
import tempfile
import time
from datetime import date
from typing import Any

from .common import Result, progress
from .common import main as cli_main

DAYS, PER_DAY, SEED = 30, 10_000, 11
SAMPLE = 20_000
REPEAT = 5
REPLAY_TARGET = 20_000
SCORING_TARGET_US = 100.0
TRAIN_TARGET_S = 300.0
TRAIN_DAYS_TARGET, TRAIN_PER_DAY_TARGET = 90, 10_000


def _history(days: int, per_day: int, seed: int) -> Any:
    from fraud_pipeline import synthetic
    from fraud_pipeline.backtest.data import read_transactions

    buffer = io.StringIO()
    synthetic.write_csv(synthetic.history(days, per_day, seed=seed, start=date(2026, 1, 5)), buffer)
    path = os.path.join(tempfile.gettempdir(), f"fraud-pipeline-replay-speed-{seed}-{days}-{per_day}.csv")
    with open(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(buffer.getvalue())
    return read_transactions(path), path


def run(quick: bool = False, days: int = DAYS, per_day: int = PER_DAY, repeat: int = REPEAT,
        train_days: int = 0) -> Result:
    from fraud_pipeline.backtest.__main__ import default_model_path
    from fraud_pipeline.backtest.replay import replay
    from fraud_pipeline.backtest.train import train
    from handlers.features import (
        DAY_MS,
        CardState,
        MerchantState,
        card_entity,
        merchant_entity,
    )
    from handlers.model import load_model
    from handlers.rules import Rules
    from handlers.scoring import Scorer

    if quick:
        days, per_day, repeat = 3, 1_000, 1
    result = Result("replay_speed", "Detection scoring and backtest replay speed vs json.loads")
    progress(f"replay_speed: generating {days} days x {per_day:,} transactions")
    data, path = _history(days, per_day, SEED)
    model = load_model(default_model_path().read_bytes())
    scorer = Scorer(Rules(), model)
    txns = data.transactions
    n = len(txns)

    progress("replay_speed: replay")
    gc.collect()
    best_replay = float("inf")
    for _ in range(max(1, repeat // 2)):
        started = time.perf_counter()
        count = sum(1 for _ in replay(txns, data.labels, scorer, label_delay_ms=7 * DAY_MS, until_ms=2 ** 62))
        best_replay = min(best_replay, time.perf_counter() - started)
    replay_rate = count / best_replay

    # the state at the end of the history, and a sample of its last transactions scored against it
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    cut = max(0, n - min(SAMPLE, n // 5))
    for txn in txns[:cut]:
        ck, mk = card_entity(txn), merchant_entity(txn)
        if ck:
            cards.setdefault(ck, CardState()).record(txn)
        if mk:
            merchants.setdefault(mk, MerchantState()).record(txn)
    sample = [(t, cards.get(card_entity(t) or ""), merchants.get(merchant_entity(t) or "")) for t in txns[cut:]]
    texts = [json.dumps({k: (str(v) if not isinstance(v, (int, bool, str)) else v) for k, v in t.items()})
             for t, _, _ in sample]
    loads = json.loads

    def parse() -> None:
        for text in texts:
            loads(text)

    def score() -> None:
        features, assess = scorer.features, scorer.score
        for txn, card, merchant in sample:
            assess(txn, features(txn, card, merchant))

    progress(f"replay_speed: scoring {len(sample):,} transactions, best of {repeat}")
    times = {"parse": float("inf"), "score": float("inf")}
    for _ in range(repeat):
        started = time.perf_counter()
        parse()
        times["parse"] = min(times["parse"], time.perf_counter() - started)
        started = time.perf_counter()
        score()
        times["score"] = min(times["score"], time.perf_counter() - started)
    m = len(sample)
    score_us = times["score"] * 1e6 / m

    progress("replay_speed: train")
    train_on = data
    train_path_days = days
    if train_days and not quick:
        train_on, _ = _history(train_days, per_day, SEED + 1)
        train_path_days = train_days
    started = time.perf_counter()
    last_day = min(t["timestamp"] for t in train_on.transactions) // DAY_MS + train_path_days
    try:
        train(train_on.transactions, train_on.labels, Scorer(Rules()), until_ms=last_day * DAY_MS,
              label_delay_days=7 if train_path_days >= 28 else 1, log=io.StringIO())
        train_seconds = time.perf_counter() - started
    except SystemExit as exc:  # too little history for a model (quick runs)
        train_seconds = float("nan")
        result.notes.append(f"train did not run: {exc}")
    scaled = train_seconds * (TRAIN_DAYS_TARGET * TRAIN_PER_DAY_TARGET) / (train_path_days * per_day)

    result.table(f"Per transaction ({m:,} transactions of the generated history, state of the history before them; "
                 f"best of {repeat})", ["operation", "us / transaction", "transactions / s", "x json.loads"], [
        ["json.loads of the transaction (baseline)", times["parse"] * 1e6 / m, m / times["parse"], 1.0],
        ["Scorer.features + Scorer.score (features, rules, model)", score_us, m / times["score"],
         times["score"] / times["parse"]],
    ])
    result.table("Backtest", ["operation", "transactions", "seconds", "transactions / s"], [
        ["replay (features, rules, model, state updates)", count, best_replay, replay_rate],
        [f"train on {train_path_days} days x {per_day:,}", sum(1 for _ in train_on.transactions), train_seconds,
         float("nan")],
    ])
    result.target("scoring one transaction", score_us, SCORING_TARGET_US, " us")
    result.target("replay: seconds per 20,000 transactions", 20_000 / replay_rate, 20_000 / REPLAY_TARGET, " s",
                  what=f"(>= {REPLAY_TARGET:,} transactions/s; measured {replay_rate:,.0f}/s)")
    if train_seconds == train_seconds:
        result.target(f"train, scaled to {TRAIN_DAYS_TARGET} days x {TRAIN_PER_DAY_TARGET:,}", scaled, TRAIN_TARGET_S,
                      " s", what="(linear in the number of transactions)")
    result.notes.append(f"model {model.version}: {len(model.terms)} binned features, "
                        f"{len(model.interactions)} pair tables")
    result.notes.append("Timings depend on the machine's load (other processes share the CPUs): measure when quiet.")
    if quick:
        result.notes.append("quick run: tiny input, figures are not measurements")
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0], lambda p: (
        p.add_argument("--days", type=int, default=DAYS),
        p.add_argument("--per-day", type=int, default=PER_DAY),
        p.add_argument("--repeat", type=int, default=REPEAT),
        p.add_argument("--train-days", type=int, default=0,
                       help="train on a separate history of this many days (default: the replayed one)")))


if __name__ == "__main__":
    raise SystemExit(main())
