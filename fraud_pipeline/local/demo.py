"""`python -m fraud_pipeline.local demo`: generated traffic through the emulated pipeline, then the evidence.

Half the transactions go through the HTTP API, half through Kinesis
`put_records`, with malformed requests mixed in. The summary counts what
happened at each stage, scores detection against the generator's labels,
times accepted -> alert published, proves least privilege and card-data
hygiene on the same run, and exits non-zero when anything was lost.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from .emulator import Emulator
from .traffic import Traffic, Transaction, generate

KINESIS_BATCH = 25
#: Share of API transactions sent twice, to show a client retry answers 200 with the original timestamp.
REPLAY_SHARE = 0.02


@dataclass
class Outcome:
    accepted_at: dict[str, float] = field(default_factory=dict)      # transaction id -> when the client was answered
    rejected: Counter = field(default_factory=Counter)               # reason -> count
    api_statuses: Counter = field(default_factory=Counter)
    errors_5xx: int = 0
    sent: int = 0
    replays: int = 0
    replays_ok: int = 0


def _post(url: str, key: str, payload: Any) -> tuple[int, dict]:
    data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"x-api-key": key, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        body = err.read()
        try:
            return err.code, json.loads(body or b"{}")
        except ValueError:
            return err.code, {"error": body.decode(errors="replace")}


def _reason(status: int, body: dict) -> str:
    details = body.get("details") or []
    fields = sorted({d.get("field", "?") for d in details if isinstance(d, dict)})
    return f"{status} {body.get('error', '')}".strip() + (f" ({', '.join(fields)})" if fields else "")


def send(em: Emulator, url: str, traffic: Traffic, progress: bool = True) -> Outcome:
    out = Outcome()
    kinesis = em.client("kinesis")
    stream = em.topo.streams[0]["name"]
    buffer: list[tuple[str | None, bytes]] = []

    def flush() -> None:
        if not buffer:
            return
        response = kinesis.put_records(StreamName=stream, Records=[
            {"Data": data, "PartitionKey": tid or f"malformed-{n}"} for n, (tid, data) in enumerate(buffer)])
        now = time.time()
        for (tid, _), result in zip(buffer, response["Records"]):
            if tid and "SequenceNumber" in result:
                out.accepted_at[tid] = now
        buffer.clear()

    items = list(traffic.in_send_order())
    first_answers: dict[str, tuple[Transaction, int]] = {}
    for item in tqdm(items, desc="sending", unit="req", disable=not progress, file=sys.stderr):
        out.sent += 1
        if item.via == "kinesis":
            if isinstance(item, Transaction):
                buffer.append((item.transaction_id, json.dumps(item.body).encode()))
            else:
                payload = item.payload if isinstance(item.payload, str) else json.dumps(item.payload)
                buffer.append((None, payload.encode()))
            if len(buffer) >= KINESIS_BATCH:
                flush()
            continue
        payload = item.body if isinstance(item, Transaction) else item.payload
        status, body = _post(url, em.api.api_key, payload)
        out.api_statuses[status] += 1
        if status >= 500:
            out.errors_5xx += 1
        if status in (200, 201) and isinstance(item, Transaction):
            out.accepted_at[item.transaction_id] = time.time()
            first_answers[item.transaction_id] = (item, body.get("timestamp"))
        elif status >= 400:
            out.rejected[_reason(status, body)] += 1
    flush()
    # Client retries: the same transaction again must answer 200 with the original id and timestamp.
    for tid, (item, timestamp) in list(first_answers.items())[: max(1, int(len(first_answers) * REPLAY_SHARE))]:
        status, body = _post(url, em.api.api_key, item.body)
        out.replays += 1
        out.replays_ok += status == 200 and body.get("transaction_id") == tid and body.get("timestamp") == timestamp
    return out


def _scan(em: Emulator, table: str) -> list[dict]:
    ddb = em.client("dynamodb")
    items, start = [], None
    while True:
        page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items


def _objects(em: Emulator) -> dict[str, str]:
    s3 = em.client("s3")
    out = {}
    for bucket in em.topo.buckets:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                out[f"{bucket}/{obj['Key']}"] = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode(errors="replace")
    return out


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


@dataclass
class Report:
    lines: list[str]
    lost: list[str]
    violations: list[str]

    @property
    def exit_code(self) -> int:
        return 1 if self.lost or self.violations else 0


def evaluate_run(em: Emulator, traffic: Traffic, outcome: Outcome, started: float, finished: float) -> Report:
    by_id = {t.transaction_id: t for t in traffic.transactions}
    table = next(t.name for t in em.topo.tables if t.stream_view_type)
    items = [i for i in _scan(em, table) if i.get("record_type", {}).get("S") == "transaction"]
    stored = {i["transaction_id"]["S"]: i for i in items}
    scored = {tid: i for tid, i in stored.items() if "decision" in i}
    decision = {tid: i["decision"]["S"] for tid, i in scored.items()}
    reasons = Counter(r["S"] for i in scored.values() for r in i.get("reasons", {}).get("L", []))
    flagged = {tid for tid, d in decision.items() if d in ("review", "block")}

    alerts_topic = next(t["name"] for t in em.topo.topics if t["name"].startswith("fraud-alerts"))
    alert_count: Counter = Counter()
    alert_time: dict[str, float] = {}
    review_alerts = 0
    for alert in em.alerts:
        if alert.topic != alerts_topic:
            continue
        if alert.attributes.get("stage") == "review":
            review_alerts += 1
            continue
        tid = next((t for t in by_id if t in alert.message), None)
        if tid:
            alert_count[tid] += 1
            alert_time.setdefault(tid, alert.published_at)

    objects = _objects(em)
    for key, body in objects.items():
        if not key.split("/", 1)[1].startswith("rejected/"):
            continue
        for record in json.loads(body).get("records", []):
            fields = sorted({r.get("field", "?") for r in record.get("reasons", [])})
            outcome.rejected[f"Kinesis record quarantined under rejected/ ({', '.join(fields)})"] += 1

    lost = []
    lost += [f"{tid}: stored {n} times" for tid, n in Counter(i["transaction_id"]["S"] for i in items).items() if n > 1]
    for tid in by_id:
        if tid not in stored:
            lost.append(f"{tid}: valid transaction not stored")
        elif tid not in scored:
            lost.append(f"{tid}: stored but not scored")
    for tid in flagged:
        if alert_count[tid] != 1:
            lost.append(f"{tid}: flagged {decision[tid]} with {alert_count[tid]} alert(s), expected exactly one")
    if sum(outcome.rejected.values()) != len(traffic.malformed):
        lost.append(f"{len(traffic.malformed)} malformed inputs sent but {sum(outcome.rejected.values())} rejected or quarantined")
    if outcome.replays_ok != outcome.replays:
        lost.append(f"{outcome.replays - outcome.replays_ok} client retries not answered 200 with the original timestamp")
    if outcome.errors_5xx:
        lost.append(f"{outcome.errors_5xx} request(s) answered with a 5xx")

    positives = {tid for tid, t in by_id.items() if t.fraud}
    tp = len(flagged & positives)
    precision = tp / len(flagged) if flagged else float("nan")
    recall = tp / len(positives) if positives else float("nan")
    latencies = [alert_time[t] - outcome.accepted_at[t] for t in alert_time if t in outcome.accepted_at]
    per_scenario = Counter()
    caught = Counter()
    for tid, t in by_id.items():
        per_scenario[t.scenario] += 1
        caught[t.scenario] += tid in flagged

    dead = {}
    for q in em.topo.queues:
        if "dlq" in q.name or "failures" in q.name:
            dead[q.name] = em.queue_depth(q.arn)

    privilege = em.privilege_report()
    card_hits = _card_scan(em, traffic, items + _scan(em, next(t.name for t in em.topo.tables if not t.stream_view_type)), objects)
    violations = [f"denied by policy: {c.function} {c.action} on {c.resource}" for c in privilege.denied]
    violations += [f"card number found in {where}" for where in card_hits]

    elapsed = finished - started
    lines = [
        "", f"fraud-pipeline local demo: stack '{em.topo.stack}' ({em.topo.region}), {len(by_id)} transactions, seed {traffic_seed(traffic)}",
        "", "Traffic",
        f"  sent                 {outcome.sent} requests/records ({len(traffic.malformed)} malformed)",
        f"  accepted             {len(outcome.accepted_at)}  (API {sum(1 for t in outcome.accepted_at if by_id[t].via == 'api')}, Kinesis {sum(1 for t in outcome.accepted_at if by_id[t].via == 'kinesis')})",
        f"  rejected             {sum(outcome.rejected.values())}",
    ]
    replay_line = (f"  client retries       {outcome.replays} replayed, {outcome.replays_ok} answered 200 with the "
                   "original id and timestamp, nothing stored twice")
    lines += [f"    {n:4d}  {reason}" for reason, n in outcome.rejected.most_common()]
    lines += [replay_line]
    lines += [
        "", "Pipeline",
        f"  stored               {len(stored)}",
        f"  scored               {len(scored)}",
        "  decisions            " + ", ".join(f"{d} {n}" for d, n in sorted(Counter(decision.values()).items())),
        "  rule hits            " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()),
        f"  alerts published     {sum(alert_count.values())} (+{review_alerts} review-workflow notices)",
        f"  review executions    {len(em.reviews)} ({Counter(r.status for r in em.reviews).most_common()})",
        "  DLQ / on-failure     " + ", ".join(f"{k} {v}" for k, v in dead.items()),
        "", "Detection against the generator's labels",
        f"  precision            {precision:.3f}   recall {recall:.3f}   (flagged {len(flagged)}, fraud {len(positives)}, caught {tp})",
    ]
    lines += [f"    {s:20s} {caught[s]:4d} / {n:<4d} flagged" for s, n in sorted(per_scenario.items())]
    lines += [
        "", "Latency and throughput (this machine, in-process handlers on moto)",
        f"  accepted -> alert    p50 {_percentile(latencies, .5):.3f} s   p95 {_percentile(latencies, .95):.3f} s   p99 {_percentile(latencies, .99):.3f} s   (n={len(latencies)})",
        f"  throughput           {len(scored) / elapsed:.1f} transactions/s scored end to end ({elapsed:.1f} s)",
        "", "Least privilege (every AWS call of every handler against its generated policy)",
        f"  calls checked        {len(em.recorder.calls)} distinct (function, action, resource); denied {len(privilege.denied)}",
    ]
    for function, rows in sorted(privilege.unused.items()):
        key = em.topo.functions[function].key
        for action, resource, why in rows:
            lines.append(f"  unused {key:12s} {action:32s} {resource.split(':')[-1][:48]:48s} {why}")
    lines += ["", "Card-data hygiene",
              f"  {len(traffic.card_numbers)} card numbers sent; found in stored items, messages, events, objects, alerts or "
              f"{len(em.logs.lines)} log lines: {len(card_hits)}"]
    lines += ["", "RESULT: " + ("OK: nothing lost, no policy denial, no card number at rest or in transit"
                                if not lost and not violations else f"FAILED: {len(lost)} lost, {len(violations)} violation(s)")]
    lines += [f"  LOST {x}" for x in lost[:20]] + [f"  VIOLATION {x}" for x in violations[:20]]
    return Report(lines, lost, violations)


def traffic_seed(traffic: Traffic) -> str:
    return traffic.transactions[0].transaction_id.split("-")[1] if traffic.transactions else "?"


def find_card_numbers(card_numbers: set[str], sources: list[tuple[str, str]]) -> list[str]:
    """Where any of the card numbers appears (digits as sent), with the surrounding text, card masked."""
    hits = []
    for where, text in sources:
        for card in card_numbers:
            at = text.find(card)
            if at >= 0:
                context = text[max(0, at - 60):at + len(card) + 20].replace(card, f"<card ...{card[-4:]}>")
                hits.append(f"{where}: {context}")
                break
    return hits


def _card_scan(em: Emulator, traffic: Traffic, items: list[dict], objects: dict[str, str]) -> list[str]:
    sources: list[tuple[str, str]] = [("stored item", json.dumps(i)) for i in items]
    sources += [(f"object {k}", v) for k, v in objects.items()]
    sources += [("handler write", p) for p in em.recorder.payloads]
    sources += [("alert", a.subject + "\n" + a.message + json.dumps(a.attributes)) for a in em.alerts]
    sources += [("log line", line) for line in em.logs.lines]
    sqs = em.client("sqs")
    for q in em.topo.queues:
        for m in sqs.receive_message(QueueUrl=em.resources.queue_urls[q.arn], MaxNumberOfMessages=10,
                                     VisibilityTimeout=0).get("Messages", []):
            sources.append((f"queue {q.name}", m["Body"]))
    return find_card_numbers(traffic.card_numbers, sources)


def run(stack: str, transactions: int, seed: int, progress: bool = True) -> int:
    print(f"Evaluating the program for stack '{stack}' and materialising it on moto ...", file=sys.stderr)
    em = Emulator(stack)
    try:
        url = em.start_api()
        print(f"API {url}  (x-api-key {em.api.api_key})", file=sys.stderr)
        traffic = generate(transactions, seed)
        started = time.time()
        em.start()
        outcome = send(em, url, traffic, progress)
        em._stop.set()
        if em._thread:
            em._thread.join(timeout=10)
        settled = em.drain(idle_seconds=2.5, timeout=180)
        finished = time.time()
        report = evaluate_run(em, traffic, outcome, started, finished)
        if not settled:
            report.lost.append("the pipeline did not settle within 180 s")
        print("\n".join(report.lines))
        return report.exit_code
    finally:
        em.close()

