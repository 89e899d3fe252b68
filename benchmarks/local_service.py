"""The local API under load: `serve` driven by a bounded load generator at concurrency 1, 8 and 32.

`serve` runs as a child process, as `make run` starts it. At each concurrency level the
generator sends a fixed number of transactions (about 40 % fraud: a blocked merchant in a
high-risk country, a small amount, so exactly one alert each), then waits until every
flagged one has been published. Measured in the same run:

* requests/s and round-trip p50/p99 of `POST /transactions` (201s);
* the baseline: the same requests with a wrong API key, refused by the local API Gateway
  before any function runs (403), at the same concurrency: the HTTP server's own cost;
* accepted -> alert published p50/p99 (the client's 201 to the SNS message's timestamp,
  seen by a subscriber of our own on the alert topic);
* lost and duplicated alerts, on the topic and in serve's live output (target 0 / 0);
* the machine (cores, load average before and after).

Figures of this machine running every function in one process on moto, not of AWS.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from .common import Result, percentile, progress
from .common import main as cli_main

LEVELS = ((1, 60), (8, 160), (32, 320))   # (concurrency, transactions)


def _post(url: str, key: str, body: dict) -> tuple[int, float, float]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"x-api-key": key, "Content-Type": "application/json"})
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as err:
        err.read()
        status = err.code
    return status, time.perf_counter() - started, time.time()


def _body(level: int, i: int) -> dict:
    if i % 5 < 2:
        return {"transaction_id": f"bench-{level}-{i}", "amount": 100.0 + i % 50, "merchant": "Unknown Store",
                "card_number": "4111 1111 1111 1111", "location": "Nigeria"}
    return {"transaction_id": f"bench-{level}-{i}", "amount": 12.5 + i % 7, "merchant": "Corner Cafe",
            "card_number": "5500 0000 0000 0004", "location": "Austin, USA", "hour": 12}


def _load(concurrency: int, bodies: list[dict], url: str, key: str) -> tuple[list[tuple[int, float, float]], float]:
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        answers = list(pool.map(lambda b: _post(url, key, b), bodies))
    return answers, time.perf_counter() - started


def run(quick: bool = False) -> Result:
    from fraud_pipeline.local.process import ServeProcess

    levels = ((8, 8),) if quick else LEVELS
    result = Result("local_service", "The local API under load (serve, concurrency 1, 8 and 32)")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        progress("local_service: starting serve")
        serve = ServeProcess(Path(tmp))
        try:
            info = serve.info
            sqs, sns = serve.aws("sqs"), serve.aws("sns")
            queue = sqs.create_queue(QueueName="bench-alert-subscriber")["QueueUrl"]
            arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            sns.subscribe(TopicArn=info["alert_topic_arn"], Protocol="sqs", Endpoint=arn)
            rows, alert_rows, loss_rows = [], [], []
            for concurrency, count in levels:
                bodies = [_body(concurrency, i) for i in range(count)]
                progress(f"local_service: concurrency {concurrency}, {count} transactions (+ {count} refused, the baseline)")
                refused, refused_s = _load(concurrency, bodies, info["transactions_url"], "not-the-key")
                answers, seconds = _load(concurrency, bodies, info["transactions_url"], info["api_key"])
                ok = [a for a in answers if a[0] == 201]
                statuses = sorted({a[0] for a in answers})
                rows.append([concurrency, count, len(refused) / refused_s, percentile([a[1] for a in refused], .5) * 1000,
                             percentile([a[1] for a in refused], .99) * 1000, len(answers) / seconds,
                             percentile([a[1] for a in ok], .5) * 1000, percentile([a[1] for a in ok], .99) * 1000,
                             ", ".join(map(str, statuses))])
                accepted_at = {b["transaction_id"]: a[2] for b, a in zip(bodies, answers) if a[0] == 201}
                flagged = {b["transaction_id"] for b in bodies if b["merchant"] == "Unknown Store"}
                seen: dict[str, list[float]] = {}
                deadline = time.monotonic() + 300
                while time.monotonic() < deadline and not flagged <= set(seen):
                    for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
                        envelope = json.loads(m["Body"])
                        tid = next(iter(re.findall(r"bench-\d+-\d+", envelope["Message"])), None)
                        published = datetime.fromisoformat(envelope["Timestamp"].replace("Z", "+00:00")).timestamp()
                        if tid:
                            seen.setdefault(tid, []).append(published)
                        sqs.delete_message(QueueUrl=queue, ReceiptHandle=m["ReceiptHandle"])
                time.sleep(2)  # a duplicate would be here by now
                for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
                    tid = next(iter(re.findall(r"bench-\d+-\d+", json.loads(m["Body"])["Message"])), None)
                    if tid:
                        seen.setdefault(tid, []).append(0.0)
                lags = [seen[t][0] - accepted_at[t] for t in flagged if t in seen and t in accepted_at]
                alert_rows.append([concurrency, len(lags), percentile(lags, .5) * 1000, percentile(lags, .99) * 1000])
                blocks = serve.output().split("\n[fraud-alerts-")[1:]
                printed = [m.group(0) for b in blocks if (m := re.search(rf"bench-{concurrency}-\d+", b))]
                loss_rows.append([concurrency, len(flagged), len(flagged - set(seen)),
                                  sum(len(v) - 1 for t, v in seen.items() if t in flagged),
                                  len(flagged - set(printed)), len(printed) - len(set(printed))])
        finally:
            stopped = serve.stop()
    load_after = os.getloadavg()
    result.table("Requests (refused = wrong API key: the local API Gateway answers 403 before any function runs)",
                 ["concurrency", "transactions", "refused req/s", "refused p50 ms", "refused p99 ms",
                  "accepted req/s", "accepted p50 ms", "accepted p99 ms", "statuses"], rows)
    result.table("Accepted -> alert published (SNS timestamp, our own subscriber)",
                 ["concurrency", "alerts", "p50 ms", "p99 ms"], alert_rows)
    result.table("Lost and duplicated alerts (target 0 / 0)",
                 ["concurrency", "flagged", "lost on topic", "duplicated on topic", "lost in live output",
                  "duplicated in live output"], loss_rows)
    result.table("Machine", ["figure", "value"], [
        ["cores", os.cpu_count()], ["load average before (1/5/15 min)", " / ".join(f"{x:.2f}" for x in load_before)],
        ["load average after", " / ".join(f"{x:.2f}" for x in load_after)], ["SIGTERM -> exited, s", stopped]])
    lost = sum(r[2] + r[4] for r in loss_rows)
    duplicated = sum(r[3] + r[5] for r in loss_rows)
    result.target("lost alerts (topic + live output)", lost, 0)
    result.target("duplicated alerts (topic + live output)", duplicated, 0)
    result.notes.append("One function invocation at a time (the emulation's host lock) and moto one request at a "
                        "time: accepted requests do not get faster with concurrency (they take turns with each other and "
                        "with the pump's ingest, detection and notification batches), so latency grows with the queue. "
                        "What the levels show is that nothing is lost, duplicated or refused as load rises.")
    if quick:
        result.notes.append("quick run: tiny input, figures are not measurements")
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0])


if __name__ == "__main__":
    raise SystemExit(main())
