"""End-to-end latency (p50/p99) and throughput of the local demo.

The demo's own pieces (fraud_pipeline.local.demo): the stack emulated on moto,
generated traffic (half through the HTTP API, half through Kinesis
put_records, malformed requests mixed in) sent while the pipeline pumps in
the background, then drained and checked by `evaluate_run` (nothing lost, no
policy denial, no card number at rest). Measured on the same run:

* API request round trip (client -> local API Gateway -> api handler -> table);
* accepted -> scored, for every transaction (the client's acceptance time to
  the `scored_at` the detection handler wrote);
* accepted -> alert published, for the flagged ones (the demo's own figure);
* throughput: transactions scored per second, first request to settled.

These are figures of this machine running every function in one process on
moto, not of AWS; they are for comparing runs.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from .common import Result, percentile, progress
from .common import main as cli_main

TRANSACTIONS = 1_000


def _latency_rows(label: str, values: list[float]) -> list[Any]:
    return [label, len(values), percentile(values, 0.5) * 1000, percentile(values, 0.95) * 1000,
            percentile(values, 0.99) * 1000, (max(values) if values else float("nan")) * 1000]


def run(quick: bool = False, transactions: int = TRANSACTIONS, stack: str = "dev", seed: int = 7) -> Result:
    from fraud_pipeline.local import demo
    from fraud_pipeline.local.emulator import Emulator
    from fraud_pipeline.local.traffic import generate

    if quick:
        transactions = 30
    result = Result("demo_latency", "End-to-end latency and throughput of the local demo")
    progress(f"demo_latency: starting the local emulation of '{stack}'")
    em = Emulator(stack)
    post = demo._post
    api_times: list[float] = []

    def timed_post(url: str, key: str, payload: Any) -> tuple[int, dict]:
        started = time.perf_counter()
        try:
            return post(url, key, payload)
        finally:
            api_times.append(time.perf_counter() - started)

    demo._post = timed_post  # the demo's sender, timed per request
    try:
        url = em.start_api()
        traffic = generate(transactions, seed)
        progress(f"demo_latency: sending {transactions:,} transactions (+{len(traffic.malformed)} malformed), API and Kinesis")
        started = time.time()
        em.start()
        outcome = demo.send(em, url, traffic, progress=False)
        sent = time.time()
        em._stop.set()
        if em._thread:
            em._thread.join(timeout=10)
        settled = em.drain(idle_seconds=2.5, timeout=300)
        finished = time.time()
        report = demo.evaluate_run(em, demo.Run(history=[], final=traffic, outcome=outcome, drops=[], seed=seed),
                                   started, finished)

        table = next(t.name for t in em.topo.tables if t.stream_view_type)
        scored_at: dict[str, float] = {}
        for item in demo._scan(em, table):
            if item.get("record_type", {}).get("S") == "transaction" and "scored_at" in item:
                scored_at[item["transaction_id"]["S"]] = int(item["scored_at"]["N"]) / 1000
        to_scored = [scored_at[t] - at for t, at in outcome.accepted_at.items() if t in scored_at]

        ids = [t.transaction_id for t in traffic.transactions]
        alerts_topic = next(t["name"] for t in em.topo.topics if t["name"].startswith("fraud-alerts"))
        first_alert: dict[str, float] = {}
        for alert in em.alerts:
            if alert.topic != alerts_topic or alert.attributes.get("stage") == "review":
                continue
            tid = next((t for t in ids if t in alert.message), None)
            if tid:
                first_alert.setdefault(tid, alert.published_at)
        to_alert = [at - outcome.accepted_at[t] for t, at in first_alert.items() if t in outcome.accepted_at]
        via = Counter(t.via for t in traffic.transactions if t.transaction_id in outcome.accepted_at)

        elapsed = finished - started
        result.table(f"Latency, stack '{stack}', {transactions:,} transactions ({via['api']:,} via the API, "
                     f"{via['kinesis']:,} via Kinesis) + {len(traffic.malformed)} malformed",
                     ["path", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], [
                         _latency_rows("API request round trip (all requests)", api_times),
                         _latency_rows("accepted -> scored (every transaction)", to_scored),
                         _latency_rows("accepted -> alert published (flagged)", to_alert),
                     ])
        result.table("Throughput", ["figure", "value"], [
            ["transactions scored", len(scored_at)],
            ["first request -> settled, s", elapsed],
            ["transactions scored / s, end to end", len(scored_at) / elapsed if elapsed else float("nan")],
            ["send phase, s (requests and put_records, pipeline pumping alongside)", sent - started],
            ["requests + records sent / s, send phase", outcome.sent / (sent - started) if sent > started else float("nan")],
            ["drain after sending, s (mapping windows of 1 s and an idle wait of 2.5 s included)", finished - sent],
        ])
        result.notes.append("demo " + next((line.strip() for line in report.lines if line.startswith("RESULT")), "RESULT ?"))
        result.notes += [f"demo {x}" for x in (report.lost[:5] + report.violations[:5])]
        result.notes.append("The API's tail (p95/p99) is the emulation's: the host runs one invocation at a time, so a "
                            "request waits while the background pump runs an ingest or detection batch.")
        result.notes.append("p99 of the alert latency is over few samples (n above); the accepted -> scored figures "
                            "include the stream mappings' 1 s batching window.")
        if not settled:
            result.notes.append("WARNING: the pipeline did not settle within 300 s")
        if quick:
            result.notes.append("quick run: tiny input, figures are not measurements")
    finally:
        demo._post = post
        em.close()
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0], lambda p: (
        p.add_argument("--transactions", type=int, default=TRANSACTIONS),
        p.add_argument("--stack", default="dev"),
        p.add_argument("--seed", type=int, default=7)))


if __name__ == "__main__":
    raise SystemExit(main())
