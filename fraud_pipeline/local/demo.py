"""`python -m fraud_pipeline.local demo`: a synthetic card history through the emulated pipeline, then the evidence.

The traffic is `fraud_pipeline.synthetic`'s (customers with habits, merchants,
labelled fraud scenarios), ending at the last UTC midnight, so detection has
card and merchant history to work with:

1. the history weeks go in bulk through Kinesis `put_records`; the pipeline settles;
2. a chargeback file for the history's frauds lands under `labels/` -- each dated
   (`labelled_at`) a week after its transaction, as a bank would receive it, and
   only those raised before the final week starts -- plus two rows that must be
   quarantined; label-ingest applies it on the S3 event;
3. the final week (`--transactions N`) goes half through the HTTP API, half
   through Kinesis, with malformed requests and client retries mixed in, and a
   second chargeback file mid-week;
4. the summary counts what happened at each stage, scores detection on the final
   week against the generator's labels (per scenario), says which model scored,
   times accepted -> alert published, proves least privilege and card-data
   hygiene on the same run, and exits non-zero when anything was lost.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tqdm import tqdm

from .. import synthetic
from .emulator import Emulator
from .traffic import Traffic, Transaction, body, wrap

KINESIS_BATCH = 25
#: Records per `put_records` call when the history is loaded (the API's maximum is 500).
BULK_BATCH = 500
#: Share of API transactions sent twice, to show a client retry answers 200 with the original timestamp.
REPLAY_SHARE = 0.02
#: Days of history before the final week (sized so `make demo` takes about two minutes on 2 cores).
HISTORY_DAYS = 21
#: A chargeback reaches the bank this long after the transaction.
CHARGEBACK_DELAY_MS = 7 * synthetic.DAY_MS
#: Chargeback-file rows that must be quarantined (an unknown transaction, a date before the transaction).
BAD_LABEL_ROWS = 2
#: Alerts of the final week an analyst reviews and labels through the label API.
ANALYST_LABELS = 20


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


def send(em: Emulator, url: str, traffic: Traffic, progress: bool = True, out: Outcome | None = None) -> Outcome:
    out = out if out is not None else Outcome()
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
    first_answers: dict[str, tuple[Transaction, int | None]] = {}
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
        request = item.body if isinstance(item, Transaction) else item.payload
        status, body = _post(url, em.api_key, request)
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
        status, body = _post(url, em.api_key, item.body)
        out.replays += 1
        out.replays_ok += status == 200 and body.get("transaction_id") == tid and body.get("timestamp") == timestamp
    return out


def _scan(em: Emulator, table: str) -> list[dict]:
    return em.items(table)


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


@dataclass
class LabelDrop:
    """A chargeback file put under labels/: what it held and what should come of it."""

    key: str
    good: dict[str, int] = field(default_factory=dict)   # transaction id -> labelled_at
    bad: int = 0


@dataclass
class Run:
    """Everything the demo sent, for the report."""

    history: list[synthetic.Labelled]
    final: Traffic
    outcome: Outcome
    drops: list[LabelDrop]
    seed: int
    phases: list[tuple[str, float]] = field(default_factory=list)
    analyst: Counter = field(default_factory=Counter)          # label API status -> count
    analyst_labels: dict[str, str] = field(default_factory=dict)  # transaction id -> label sent


def load_history(em: Emulator, rows: list[synthetic.Labelled], progress: bool = True) -> int:
    """The history through Kinesis `put_records` (500 a call, partitioned by card); returns records accepted."""
    kinesis = em.client("kinesis")
    stream = em.topo.streams[0]["name"]
    accepted = 0
    for i in tqdm(range(0, len(rows), BULK_BATCH), desc="history", unit="batch", disable=not progress, file=sys.stderr):
        chunk = rows[i:i + BULK_BATCH]
        pending = [{"Data": json.dumps(body(r)).encode(), "PartitionKey": r.customer_id} for r in chunk]
        for _ in range(5):          # put_records is partial: send the failed entries again
            response = kinesis.put_records(StreamName=stream, Records=pending)
            retry = [rec for rec, res in zip(pending, response["Records"]) if "SequenceNumber" not in res]
            accepted += len(pending) - len(retry)
            pending = retry
            if not pending:
                break
    return accepted


def analyst_review(em: Emulator, run: Run, limit: int = ANALYST_LABELS) -> None:
    """An analyst works through the final week's first alerts: POST /transactions/{id}/label with the truth."""
    table = next(t.name for t in em.topo.tables if t.stream_view_type)
    truth = {t.transaction_id: t.fraud for t in run.final.transactions}
    flagged = sorted(i["transaction_id"]["S"] for i in _scan(em, table)
                     if i.get("decision", {}).get("S") in ("review", "block") and i["transaction_id"]["S"] in truth)
    label_fn = em.function("label").name
    for tid in flagged[:limit]:
        label = "fraud" if truth[tid] else "genuine"
        status, _ = _post(em.url(label_fn, transaction_id=tid), em.api_key,
                          {"label": label, "source": "analyst", "note": "reviewed alert"})
        run.analyst[status] += 1
        if status in (200, 201):
            run.analyst_labels[tid] = label
    # the same label again is idempotent: 200, nothing written
    if run.analyst_labels:
        tid, label = next(iter(run.analyst_labels.items()))
        status, _ = _post(em.url(label_fn, transaction_id=tid), em.api_key, {"label": label, "source": "analyst"})
        run.analyst[status] += 1


def drop_labels(em: Emulator, key: str, rows: list[synthetic.Labelled],
                victim: synthetic.Labelled | None = None) -> LabelDrop:
    """A chargeback CSV under labels/: one `fraud,chargeback` row per row, dated CHARGEBACK_DELAY_MS later.

    With a `victim` (a transaction not in `rows`), two rows the bank got wrong are added: an unknown
    transaction, and the victim dated before its purchase. label-ingest must quarantine exactly those.
    """
    drop = LabelDrop(key)
    lines = ["transaction_id,label,source,note,labelled_at"]
    for r in rows:
        drop.good[r.transaction_id] = r.timestamp + CHARGEBACK_DELAY_MS
        lines.append(f"{r.transaction_id},fraud,chargeback,chargeback feed,{r.timestamp + CHARGEBACK_DELAY_MS}")
    if victim is not None:
        lines.append(f"unknown-txn-1,fraud,chargeback,,{victim.timestamp}")
        lines.append(f"{victim.transaction_id},fraud,chargeback,,{victim.timestamp - synthetic.DAY_MS}")
        drop.bad = BAD_LABEL_ROWS
    em.client("s3").put_object(Bucket=em.archive_bucket, Key=key, Body=("\n".join(lines) + "\n").encode(),
                               ContentType="text/csv")
    return drop


_ID = re.compile(r"[A-Za-z0-9_-]+")


def evaluate_run(em: Emulator, run: Run, started: float, finished: float) -> Report:
    traffic, outcome = run.final, run.outcome
    by_id = {t.transaction_id: t for t in traffic.transactions}
    history_ids = {r.transaction_id for r in run.history}
    all_ids = history_ids | set(by_id)
    table = next(t.name for t in em.topo.tables if t.stream_view_type)
    items = [i for i in _scan(em, table) if i.get("record_type", {}).get("S") == "transaction"]
    stored = {i["transaction_id"]["S"]: i for i in items}
    scored = {tid: i for tid, i in stored.items() if "decision" in i}
    decision = {tid: i["decision"]["S"] for tid, i in scored.items()}
    flagged_all = {tid for tid, d in decision.items() if d in ("review", "block")}
    final_scored = {tid: i for tid, i in scored.items() if tid in by_id}
    flagged = flagged_all & set(by_id)
    reasons = Counter(r["S"] for i in final_scored.values() for r in i.get("reasons", {}).get("L", []))
    models = Counter(i.get("model_version", {}).get("S", "(none)") for i in final_scored.values())

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
        tid = next((t for t in _ID.findall(alert.subject + " " + alert.message) if t in all_ids), None)
        if tid:
            alert_count[tid] += 1
            alert_time.setdefault(tid, alert.published_at)

    objects = _objects(em)
    quarantined_labels: dict[str, int] = {}
    for key, text in objects.items():
        path = key.split("/", 1)[1]
        if path.startswith("rejected/labels/"):
            quarantined_labels[json.loads(text)["source_key"]] = len(json.loads(text).get("records", []))
            continue
        if not path.startswith("rejected/"):
            continue
        for record in json.loads(text).get("records", []):
            fields = sorted({r.get("field", "?") for r in record.get("reasons", [])})
            outcome.rejected[f"Kinesis record quarantined under rejected/ ({', '.join(fields)})"] += 1

    lost = []
    lost += [f"{tid}: stored {n} times" for tid, n in Counter(i["transaction_id"]["S"] for i in items).items() if n > 1]
    for tid in sorted(all_ids):
        if tid not in stored:
            lost.append(f"{tid}: valid transaction not stored")
        elif tid not in scored:
            lost.append(f"{tid}: stored but not scored")
    for tid in sorted(flagged_all):
        if alert_count[tid] != 1:
            lost.append(f"{tid}: flagged {decision[tid]} with {alert_count[tid]} alert(s), expected exactly one")
    if sum(outcome.rejected.values()) != len(traffic.malformed):
        lost.append(f"{len(traffic.malformed)} malformed inputs sent but {sum(outcome.rejected.values())} rejected or quarantined")
    if outcome.replays_ok != outcome.replays:
        lost.append(f"{outcome.replays - outcome.replays_ok} client retries not answered 200 with the original timestamp")
    if outcome.errors_5xx:
        lost.append(f"{outcome.errors_5xx} request(s) answered with a 5xx")

    # labels: every good row stored at its chargeback date, the bad ones quarantined, counters exact
    expected = {tid: at for d in run.drops for tid, at in d.good.items()}
    labelled = {tid: i for tid, i in stored.items() if "label" in i}
    wrong = [tid for tid, at in expected.items()
             if tid not in labelled or int(labelled[tid]["labelled_at"]["N"]) != at or labelled[tid]["label"]["S"] != "fraud"]
    lost += [f"{tid}: chargeback label not stored at its date" for tid in wrong[:20]]
    lost += [f"{tid}: analyst label not stored" for tid, label in run.analyst_labels.items()
             if labelled.get(tid, {}).get("label", {}).get("S") != label]
    if set(run.analyst) - {200, 201}:
        lost.append(f"label API answered {dict(run.analyst)}")
    for d in run.drops:
        if quarantined_labels.get(d.key, 0) != d.bad:
            lost.append(f"{d.key}: {quarantined_labels.get(d.key, 0)} rows quarantined, expected {d.bad}")
    feature_items = _scan(em, next(t.name for t in em.topo.tables if t.name.startswith("fraud-features")))
    merchant_frauds = sum(int(v["N"]) for i in feature_items if i["entity"]["S"].startswith("merchant#")
                          for a, v in i.items() if a.startswith("f_"))
    card_frauds = sum(len(i.get("frauds", {}).get("SS", [])) for i in feature_items)
    fraud_labels = sum(1 for i in labelled.values() if i["label"]["S"] == "fraud")
    if not merchant_frauds == card_frauds == fraud_labels:
        lost.append(f"feature counts disagree with the labels: merchant f_ {merchant_frauds}, card frauds "
                    f"{card_frauds}, fraud labels {fraud_labels}")
    ingest_fn = em.function("label-ingest").name
    label_failures = sum(em.queue_depth(q.arn) for q in em.topo.queues if q.name.startswith("fraud-label-ingest-failures"))

    positives = {tid for tid, t in by_id.items() if t.fraud}
    tp = len(flagged & positives)
    precision = tp / len(flagged) if flagged else float("nan")
    recall = tp / len(positives) if positives else float("nan")
    latencies = [alert_time[t] - outcome.accepted_at[t] for t in alert_time if t in outcome.accepted_at]
    per_scenario: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    for tid, t in by_id.items():
        per_scenario[t.scenario] += 1
        caught[t.scenario] += tid in flagged

    dead = {}
    for q in em.topo.queues:
        if "dlq" in q.name or "failures" in q.name:
            dead[q.name] = em.queue_depth(q.arn)

    privilege = em.privilege_report()
    card_numbers = traffic.card_numbers | {r.card_number for r in run.history}
    card_hits = _card_scan(em, card_numbers, items + _scan(em, next(t.name for t in em.topo.tables if not t.stream_view_type)),
                           objects)
    violations = [f"denied by policy: {c.function} {c.action} on {c.resource}" for c in privilege.denied]
    violations += [f"inert grant: {function} {action} on {resource}: {why}"
                   for function, rows in sorted(privilege.inert.items()) for action, resource, why in rows]
    violations += [f"card number found in {where}" for where in card_hits]

    history_fraud = sum(r.is_fraud for r in run.history)
    first_day = dt.datetime.fromtimestamp(min(r.timestamp for r in run.history) / 1000, dt.UTC) if run.history else None
    final_start = min(t.timestamp for t in traffic.transactions)
    final_end = max(t.timestamp for t in traffic.transactions)
    day = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")  # noqa: E731
    elapsed = finished - started
    lines = [
        "", f"fraud-pipeline local demo: stack '{em.topo.stack}' ({em.topo.region}), synthetic history seed {run.seed}: "
            f"{len(run.history)} history + {len(by_id)} final-week transactions",
        "", "History (Kinesis put_records, in bulk)",
        f"  transactions         {len(run.history)} from {first_day:%Y-%m-%d} ({history_fraud} fraud), "
        f"all stored {sum(t in stored for t in history_ids)}, scored {sum(t in scored for t in history_ids)}"
        if first_day else "  transactions         0",
        "", "Labels (chargeback files under labels/, applied by label-ingest on the S3 event)",
    ]
    for d in run.drops:
        lines.append(f"  {d.key:40s} {len(d.good) + d.bad:4d} rows: {sum(t in labelled for t in d.good):4d} stored at "
                     f"their chargeback date, {quarantined_labels.get(d.key, 0)} quarantined (expected {d.bad})")
    lines += [
        f"  analyst (label API)  {len(run.analyst_labels)} final-week alerts labelled "
        f"({Counter(run.analyst_labels.values()).most_common()}), answers {sorted(run.analyst.items())} "
        "(the last a repeat: 200, unchanged)",
        f"  label-ingest         {em.host.invocations[ingest_fn]} invocation(s), {em.host.errors[ingest_fn]} error(s); "
        f"failure queue {label_failures}",
        f"  feature counts       {fraud_labels} fraud labels = {card_frauds} card entries = {merchant_frauds} merchant f_ counts",
        "", f"Final week ({day(final_start)} to {day(final_end)} UTC: HTTP API and Kinesis)",
        f"  sent                 {outcome.sent} requests/records ({len(traffic.malformed)} malformed)",
        f"  accepted             {len(outcome.accepted_at)}  (API {sum(1 for t in outcome.accepted_at if by_id[t].via == 'api')}, Kinesis {sum(1 for t in outcome.accepted_at if by_id[t].via == 'kinesis')})",
        f"  rejected             {sum(outcome.rejected.values())}",
    ]
    lines += [f"    {n:4d}  {reason}" for reason, n in outcome.rejected.most_common()]
    lines += [f"  client retries       {outcome.replays} replayed, {outcome.replays_ok} answered 200 with the "
              "original id and timestamp, nothing stored twice"]
    lines += [
        "", "Pipeline (whole run)",
        f"  stored               {len(stored)}",
        f"  scored               {len(scored)}",
        "  decisions            " + ", ".join(f"{d} {n}" for d, n in sorted(Counter(decision.values()).items())),
        f"  alerts published     {sum(alert_count.values())} (+{review_alerts} review-workflow notices)",
        f"  review executions    {len(em.reviews)} ({Counter(r.status for r in em.reviews).most_common()})",
        "  DLQ / on-failure     " + ", ".join(f"{k} {v}" for k, v in dead.items()),
        "", "Detection on the final week against the generator's labels",
        "  model                " + ", ".join(f"{m} scored {n}" for m, n in models.most_common()),
        f"  precision            {precision:.3f}   recall {recall:.3f}   alert rate {len(flagged) / max(1, len(by_id)):.3f}"
        f"   (flagged {len(flagged)}, fraud {len(positives)}, caught {tp})",
        "  reasons              " + ", ".join(f"{r} {n}" for r, n in reasons.most_common()),
    ]
    lines += [f"    {s:22s} {caught[s]:4d} / {n:<4d} flagged" for s, n in sorted(per_scenario.items())]
    lines += [
        "", "Latency and throughput (this machine, in-process handlers on moto)",
        f"  accepted -> alert    p50 {_percentile(latencies, .5):.3f} s   p95 {_percentile(latencies, .95):.3f} s   p99 {_percentile(latencies, .99):.3f} s   (n={len(latencies)}, final week)",
        f"  throughput           {len(scored) / elapsed:.1f} transactions/s scored end to end ({elapsed:.1f} s)",
        "  phases               " + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in run.phases),
        "", "Least privilege (every AWS call of every handler against its generated policy)",
        f"  calls checked        {len(em.recorder.calls)} distinct (function, action, resource); denied {len(privilege.denied)}",
        f"  inert grants         {sum(len(r) for r in privilege.inert.values())} (an action granted on a resource type it "
        "does not apply to)",
    ]
    for function, rows in sorted(privilege.unused.items()):
        key = em.topo.functions[function].key
        for action, resource, why in rows:
            lines.append(f"  unused {key:12s} {action:32s} {resource.split(':')[-1][:48]:48s} {why}")
    lines += ["", "Card-data hygiene",
              f"  {len(card_numbers)} card numbers sent; found in stored items, messages, events, objects, alerts or "
              f"{len(em.logs.lines)} log lines: {len(card_hits)}"]
    lines += ["", "RESULT: " + ("OK: nothing lost, no policy denial, no card number at rest or in transit"
                                if not lost and not violations else f"FAILED: {len(lost)} lost, {len(violations)} violation(s)")]
    lines += [f"  LOST {x}" for x in lost[:20]] + [f"  VIOLATION {x}" for x in violations[:20]]
    return Report(lines, lost, violations)


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


def _card_scan(em: Emulator, card_numbers: set[str], items: list[dict], objects: dict[str, str]) -> list[str]:
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
    return find_card_numbers(card_numbers, sources)


def plan(transactions: int, seed: int, history_days: int = HISTORY_DAYS,
         today: dt.date | None = None) -> tuple[list[synthetic.Labelled], list[synthetic.Labelled]]:
    """(history, final week): a synthetic history whose last day ends at the last UTC midnight (never
    in the future); the final week is its last `transactions` rows, about seven days of them."""
    per_day = max(20, -(-transactions // 7))
    days = history_days + -(-transactions // per_day)
    today = today or dt.datetime.now(dt.UTC).date()
    rows = synthetic.history(days, per_day, seed=seed, start=today - dt.timedelta(days=days))
    return rows[:-transactions], rows[-transactions:]


def _settle(em: Emulator, timeout: float = 300) -> bool:
    return em.drain(idle_seconds=1.5, timeout=timeout)


def run(stack: str, transactions: int, seed: int, progress: bool = True, history_days: int = HISTORY_DAYS) -> int:
    print(f"Evaluating the program for stack '{stack}' and materialising it on moto ...", file=sys.stderr)
    began = time.time()
    em = Emulator(stack)
    try:
        url = em.start_api()
        print(f"API {url}  (x-api-key {em.api_key})", file=sys.stderr)
        history, final_rows = plan(transactions, seed, history_days)
        half = len(final_rows) // 2
        first, second = wrap(final_rows[:half]), wrap(final_rows[half:])
        final = Traffic(first.transactions + second.transactions, first.malformed + second.malformed,
                        first.card_numbers | second.card_numbers)
        final_start, mid = final_rows[0].timestamp, final_rows[half].timestamp if half < len(final_rows) else final_rows[-1].timestamp
        frauds = [r for r in history if r.is_fraud]
        record = Run(history, final, Outcome(), [], seed)
        started = time.time()
        record.phases.append(("setup", started - began))

        # 1. the history weeks, in bulk through Kinesis
        t = time.time()
        print(f"History: {len(history)} transactions through Kinesis ...", file=sys.stderr)
        load_history(em, history, progress)
        settled = _settle(em)
        record.phases.append((f"history {len(history)}", time.time() - t))

        # 2. the chargebacks the bank had received before the final week
        t = time.time()
        day = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")  # noqa: E731
        known = [r for r in frauds if r.timestamp + CHARGEBACK_DELAY_MS < final_start]
        victim = next((r for r in reversed(history) if not r.is_fraud), None)
        record.drops.append(drop_labels(em, f"labels/chargebacks-{day(final_start)}.csv", known, victim))
        settled &= _settle(em)
        record.phases.append(("labels", time.time() - t))

        # 3. the final week: API and Kinesis, a second chargeback file mid-week
        t = time.time()
        print(f"Final week: {len(final_rows)} transactions through the API and Kinesis ...", file=sys.stderr)
        em.start()
        send(em, url, first, progress, record.outcome)
        record.drops.append(drop_labels(em, f"labels/chargebacks-{day(mid)}.csv",
                                        [r for r in frauds if final_start <= r.timestamp + CHARGEBACK_DELAY_MS < mid]))
        send(em, url, second, progress, record.outcome)
        em._stop.set()
        if em._thread:
            em._thread.join(timeout=10)
        settled &= _settle(em, timeout=180)
        record.phases.append((f"final week {len(final_rows)}", time.time() - t))

        # 4. an analyst labels the first alerts through the label API
        t = time.time()
        analyst_review(em, record)
        settled &= _settle(em, timeout=60)
        record.phases.append(("analyst labels", time.time() - t))
        finished = time.time()
        report = evaluate_run(em, record, started, finished)
        if not settled:
            report.lost.append("the pipeline did not settle in time")
            report.lines.append("  LOST the pipeline did not settle in time")
        print("\n".join(report.lines))
        return report.exit_code
    finally:
        em.close()
