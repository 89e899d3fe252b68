"""Score transactions from the transactions table's DynamoDB stream.

Per batch (collect first, then the I/O in bulk):

1. parse: skip every record that is not an INSERT of a `record_type =
   "transaction"` item; an image that fails validation is a poison record:
   logged, counted (`PoisonRecords`) and skipped, so it can never block the shard;
2. prior decisions: one BatchGetItem of the batch's transaction items (100 per
   call). A transaction already scored (a retried batch) keeps its recorded
   decision and is not counted again; a missing item (expired or deleted) is skipped;
3. state: one BatchGetItem per 100 feature items -- the card and the merchant of
   every new transaction (`features.py`);
4. score in time order (`scoring.Scorer`, the code the backtest replays):
   features from the state *before* each transaction, rules, the in-function
   model (MODEL_PARAM), the optional SageMaker blend (one InvokeEndpoint per 100),
   and the candidate model / rule set (MODEL_SHADOW_PARAM, RULES_JSON.shadow)
   beside them -- the candidate's decision is recorded, never acted on;
5. write: TransactWriteItems chunks (<= 100 actions) of each transaction's
   decision write-back -- conditional on the transaction not being scored yet --
   together with the card (set union of entries) and merchant (day counters)
   updates of the same transactions: a count is applied exactly once, with the
   decision it belongs to;
6. flagged (review/block): SendMessageBatch to the alert queue (10 per call);
7. block: PutObject `high-risk/YYYY/MM/DD/<transaction_id>.json` (date of the transaction, UTC);
8. every decision: PutEvents to the bus (10 entries per call), the candidate's
   decision in `shadow`.

Failures are mapped back to the stream records and reported as
`batchItemFailures` through the Powertools BatchProcessor; a record that failed a
step skips the later ones. Retries are safe: step 2 finds the decisions already
written, the archive is an overwrite with the same values, and the alert and
review consumers de-duplicate on markers in the table.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import EventType
from botocore.exceptions import BotoCoreError, ClientError

from . import contract, dynamo, ml, model_store
from .alerts import decision_record
from .bulk import BulkBatchProcessor
from .clients import client, cold_start_cache, env
from .features import CardState, MerchantState, card_entity, merchant_entity
from .jsonutil import dumps
from .observability import logger, metrics, tracer
from .rules import Assessment, Rules, load_rules, load_shadow_rules
from .scoring import Scorer, reason_code, with_lists
from .validation import validate_stored

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

EVENT_SOURCE = contract.DECISION_EVENT_SOURCE
EVENT_DETAIL_TYPE = contract.DECISION_EVENT_DETAIL_TYPE
SQS_BATCH = 10
EVENTS_BATCH = 10
#: Attributes of a recorded decision, read back when a retried batch meets a scored transaction.
DECISION_ATTRIBUTES = ("scored_at", "decision", "score", "reasons", "rules_score", "ml_score", "risk",
                       "model_score", "model_version", "velocity_count", "shadow", "record_type")



@cold_start_cache
def rules() -> Rules:
    """RULES_JSON, parsed once; a bad value fails the cold start with a message naming the key."""
    return load_rules(os.environ.get(contract.RULES_JSON))


@cold_start_cache
def shadow_rules() -> Rules | None:
    return load_shadow_rules(os.environ.get(contract.RULES_JSON))


rules()  # fail the init phase, not the first batch, on a bad RULES_JSON


def scorers() -> tuple[Scorer, Scorer | None]:
    """The live scorer and the candidate (None when neither a candidate model nor rule set is set)."""
    lists = model_store.lists()
    allowed = lists.allowed_card_tokens if lists else frozenset()
    live = Scorer(with_lists(rules(), lists), model_store.live_model(), allowed)
    candidate_rules, candidate_model = shadow_rules(), model_store.shadow_model()
    if candidate_rules is None and candidate_model is None:
        return live, None
    return live, Scorer(with_lists(candidate_rules or rules(), lists), candidate_model or live.model, allowed)


class StepFailed(RuntimeError):
    """A record's processing step did not complete; the record is retried."""


def _bulk(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    return process_batch(records)   # looked up when called: `process_batch` is defined below


processor = BulkBatchProcessor(EventType.DynamoDBStreams, _bulk, StepFailed)


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    return processor.respond(event, context)


def _parse(records: list[dict[str, Any]], now_ms: int) -> tuple[dict[str, Exception | None], dict[str, dict[str, Any]]]:
    outcomes: dict[str, Exception | None] = {}
    txns: dict[str, dict[str, Any]] = {}
    skipped = poison = 0
    for record in records:
        stream = record.get("dynamodb") or {}
        seq = stream.get("SequenceNumber")
        if not seq:
            continue
        outcomes[seq] = None
        if record.get("eventName") != "INSERT":
            skipped += 1
            continue
        try:
            item = dynamo.from_ddb(stream.get("NewImage") or {})
        except (TypeError, ValueError, KeyError, AttributeError):
            item = None
        if item is not None and item.get("record_type") != "transaction":
            skipped += 1
            continue
        errors = validate_stored(item, now_ms=now_ms) if item is not None else None
        if item is None or errors:
            poison += 1
            logger.error("poison stream record skipped", extra={
                "sequence_number": seq,
                "transaction_id": item.get("transaction_id") if item and isinstance(item.get("transaction_id"), str) else None,
                "fields": sorted({e.field for e in errors}) if errors else ["NewImage"],
            })
            continue
        txns[seq] = item
    if skipped:
        metrics.add_metric(name="RecordsSkipped", unit="Count", value=skipped)
    if poison:
        metrics.add_metric(name="PoisonRecords", unit="Count", value=poison)
    return outcomes, txns


def _key(txn: dict[str, Any]) -> dict[str, Any]:
    return {"transaction_id": txn["transaction_id"], "timestamp": int(txn["timestamp"])}


def _recorded(item: dict[str, Any]) -> tuple[Assessment, dict[str, Any] | None]:
    """The decision a previous attempt wrote (read back by a retry)."""
    def number(name: str) -> int | None:
        value = item.get(name)
        return int(value) if isinstance(value, (int, Decimal)) else None

    risk = item.get("risk")
    assessment = Assessment(
        score=int(item["score"]), decision=str(item["decision"]), reasons=tuple(item.get("reasons") or ()),
        rules_score=number("rules_score") or 0, ml_score=number("ml_score"),
        risk=float(risk) if isinstance(risk, (int, float, Decimal)) else None, model_score=number("model_score"),
        model_version=item.get("model_version") if isinstance(item.get("model_version"), str) else None)
    shadow = item.get("shadow") if isinstance(item.get("shadow"), dict) else None
    return assessment, shadow


def _shadow_summary(a: Assessment | None) -> dict[str, Any] | None:
    if a is None:
        return None
    return {"decision": a.decision, "score": a.score, "risk": a.risk, "reasons": list(a.reasons),
            "model_version": a.model_version}


@tracer.capture_method(capture_response=False)
def process_batch(records: list[dict[str, Any]]) -> dict[str, Exception | None]:
    """Score and act on a batch of stream records; return the outcome per sequence number."""
    now_ms = int(time.time() * 1000)
    outcomes, txns = _parse(records, now_ms)
    if not txns:
        return outcomes
    live, candidate = scorers()
    table, features_table = env(contract.TABLE_NAME), env(contract.FEATURES_TABLE_NAME)

    def fail(seqs: Any, why: str) -> None:
        for seq in list(seqs):
            if seq in txns:
                outcomes[seq] = StepFailed(why)
                del txns[seq]

    # prior decisions (a retried batch) ----------------------------------------------
    by_key = {(t["transaction_id"], int(t["timestamp"])): seq for seq, t in txns.items()}
    names = {f"#p{i}": n for i, n in enumerate(DECISION_ATTRIBUTES)}
    found, unread = dynamo.batch_get(table, [_key(t) for t in txns.values()],
                                     projection="transaction_id, #ts, " + ", ".join(names),
                                     names={"#ts": "timestamp", **names})
    fail([by_key[(k["transaction_id"], int(k["timestamp"]))] for k in unread], "transaction not read")
    present = {(i["transaction_id"], int(i["timestamp"])): i for i in found}
    assessments: dict[str, Assessment] = {}
    shadows: dict[str, dict[str, Any] | None] = {}
    for key, seq in list(by_key.items()):
        if seq not in txns:
            continue
        item = present.get(key)
        if item is None or item.get("record_type") != "transaction":
            logger.warning("transaction item missing; skipped", extra={"transaction_id": key[0]})
            del txns[seq]
        elif "scored_at" in item and "decision" in item and "score" in item:
            assessments[seq], shadows[seq] = _recorded(item)
    fresh = sorted((s for s in txns if s not in assessments),
                   key=lambda s: (int(txns[s]["timestamp"]), txns[s]["transaction_id"]))
    if len(txns) - len(fresh):
        metrics.add_metric(name="DecisionsReplayed", unit="Count", value=len(txns) - len(fresh))

    # feature state ------------------------------------------------------------------
    entities = {s: (card_entity(txns[s]), merchant_entity(txns[s])) for s in fresh}
    wanted = sorted({e for pair in entities.values() for e in pair if e})
    state_items, state_unread = dynamo.batch_get(features_table, [{"entity": e} for e in wanted]) if wanted else ([], [])
    missing_state = {k["entity"] for k in state_unread}
    if missing_state:
        failed = [s for s in fresh if set(entities[s]) & missing_state]
        fail(failed, "features not read")
        fresh = [s for s in fresh if s not in set(failed)]
    stored = {i["entity"]: i for i in state_items}
    cards: dict[str, CardState] = {}
    merchants: dict[str, MerchantState] = {}
    features: dict[str, dict[str, float]] = {}
    entries: dict[str, tuple[int, str, int, int]] = {}
    days: dict[str, int] = {}
    for seq in fresh:
        card_key, merchant_key = entities[seq]
        card = cards.setdefault(card_key, CardState.from_item(stored.get(card_key))) if card_key else None
        merchant = (merchants.setdefault(merchant_key, MerchantState.from_item(stored.get(merchant_key)))
                    if merchant_key else None)
        features[seq] = live.features(txns[seq], card, merchant)
        if card is not None:
            entries[seq] = card.record(txns[seq])
        if merchant is not None:
            days[seq] = merchant.record(txns[seq])

    # scoring ------------------------------------------------------------------------
    ml_scores = ml.score_batch([ml.features(txns[s], int(features[s]["card_velocity"])) for s in fresh])
    for seq, ml_score in zip(fresh, ml_scores):
        assessments[seq] = live.score(txns[seq], features[seq], ml_score)
        shadows[seq] = _shadow_summary(candidate.score(txns[seq], features[seq]) if candidate else None)

    # decision write-back with the feature updates, exactly once ----------------------------
    for chunk, outcome in _write(table, features_table, fresh, txns, entities, entries, days, cards, merchants,
                                 assessments, shadows, features, now_ms):
        if not dynamo.applied(outcome):
            codes = sorted({f.code for f in outcome if f})
            logger.warning("decisions not written; records will be retried",
                           extra={"records": len(chunk), "codes": codes})
            fail(chunk, "decision not written")

    records_out = {s: decision_record(txns[s], assessments[s], decided_at_ms=now_ms, shadow=shadows.get(s))
                   for s in txns}

    # alerts, archive, events ------------------------------------------------------
    fail(_queue_alerts({s: r for s, r in records_out.items() if assessments[s].flagged}), "alert not queued")
    fail(_archive({s: (txns[s], records_out[s]) for s in txns if assessments[s].decision == "block"}), "not archived")
    fail(_publish_events({s: records_out[s] for s in txns}), "event not published")

    scored_now = [s for s in fresh if s in txns]
    _count_metrics([assessments[s] for s in scored_now], [shadows.get(s) for s in scored_now])
    logger.info("batch scored", extra={
        "records": len(records), "scored": len(txns), "replayed": len(txns) - len(scored_now),
        "failed": sum(1 for o in outcomes.values() if o is not None),
        "decisions": dict(Counter(assessments[s].decision for s in txns)),
        "model_version": live.model.version if live.model else "none",
    })
    return outcomes


def _write(table: str, features_table: str, fresh: list[str], txns: dict[str, dict[str, Any]],
           entities: dict[str, tuple[str | None, str | None]], entries: dict[str, tuple[int, str, int, int]],
           days: dict[str, int], cards: dict[str, CardState], merchants: dict[str, MerchantState],
           assessments: dict[str, Assessment], shadows: dict[str, dict[str, Any] | None],
           features: dict[str, dict[str, float]], now_ms: int) -> list[tuple[list[str], list[Any]]]:
    """Chunks of <= 100 actions: the chunk's write-backs plus its cards' and merchants' updates (one group each)."""
    chunks: list[list[str]] = []
    current: list[str] = []
    touched: set[str] = set()
    for seq in fresh:
        extra = {e for e in entities[seq] if e} - touched
        if current and len(current) + len(touched) + len(extra) + 1 > dynamo.MAX_TRANSACT_ACTIONS:
            chunks.append(current)
            current, touched = [], set()
            extra = {e for e in entities[seq] if e}
        current.append(seq)
        touched |= extra
    if current:
        chunks.append(current)
    groups = []
    for chunk in chunks:
        actions = [_write_back(table, txns[s], assessments[s], shadows.get(s), features[s], now_ms) for s in chunk]
        card_entries: dict[str, list[tuple[int, str, int, int]]] = {}
        merchant_days: dict[str, Counter] = {}
        for s in chunk:
            card_key, merchant_key = entities[s]
            if card_key and s in entries:
                card_entries.setdefault(card_key, []).append(entries[s])
            if merchant_key and s in days:
                merchant_days.setdefault(merchant_key, Counter())[days[s]] += 1
        for entity, new in sorted(card_entries.items()):
            action = cards[entity].update_action(features_table, entity, new)
            if action:
                actions.append(action)
        for entity, counts in sorted(merchant_days.items()):
            action = merchants[entity].update_action(features_table, entity, counts, now_ms)
            if action:
                actions.append(action)
        groups.append(actions)
    return list(zip(chunks, dynamo.transact(groups) if groups else []))


def _decimal(value: float) -> Decimal:
    return Decimal(repr(round(float(value), 6)))


def _write_back(table: str, txn: dict[str, Any], a: Assessment, shadow: dict[str, Any] | None,
                features: dict[str, float], now_ms: int) -> dict[str, Any]:
    names = {"#decision": "decision", "#score": "score", "#rules": "rules_score", "#reasons": "reasons",
             "#velocity": "velocity_count", "#at": "scored_at", "#rt": "record_type", "#features": "features"}
    values: dict[str, Any] = {":decision": a.decision, ":score": a.score, ":rules": a.rules_score,
                              ":reasons": list(a.reasons), ":velocity": int(features.get("card_velocity", 1)),
                              ":at": now_ms, ":rt": "transaction",
                              ":features": {k: _decimal(v) for k, v in features.items()}}
    sets = ["#decision = :decision", "#score = :score", "#rules = :rules", "#reasons = :reasons",
            "#velocity = :velocity", "#at = :at", "#features = :features"]
    optional: dict[str, object] = {"ml_score": a.ml_score, "risk": None if a.risk is None else _decimal(a.risk),
                                   "model_score": a.model_score, "model_version": a.model_version}
    if shadow is not None:
        optional["shadow"] = {k: (_decimal(v) if isinstance(v, float) else v) for k, v in shadow.items() if v is not None}
    for name, value in optional.items():
        if value is not None:
            names[f"#{name}"] = name
            values[f":{name}"] = value
            sets.append(f"#{name} = :{name}")
    return {"Update": {
        "TableName": table,
        "Key": dynamo.to_ddb(_key(txn)),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ConditionExpression": "attribute_exists(transaction_id) AND #rt = :rt AND attribute_not_exists(#at)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": dynamo.to_ddb(values),
    }}


def _queue_alerts(flagged: dict[str, dict[str, Any]]) -> list[str]:
    failed: list[str] = []
    items = list(flagged.items())
    for start in range(0, len(items), SQS_BATCH):
        chunk = items[start:start + SQS_BATCH]
        entries = [{
            "Id": str(i),
            "MessageBody": dumps(record),
            "MessageAttributes": {
                "decision": {"DataType": "String", "StringValue": record["decision"]},
                "severity": {"DataType": "String", "StringValue": record["severity"]},
            },
        } for i, (_, record) in enumerate(chunk)]
        try:
            response = client("sqs").send_message_batch(QueueUrl=env(contract.ALERT_QUEUE_URL), Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("alert batch not queued", extra={"error_type": type(exc).__name__, "entries": len(chunk)})
            failed.extend(seq for seq, _ in chunk)
            continue
        for failure in response.get("Failed") or []:
            failed.append(chunk[int(failure["Id"])][0])
    queued = len(items) - len(failed)
    if queued:
        metrics.add_metric(name="AlertsQueued", unit="Count", value=queued)
    return failed


def archive_key(record: dict[str, Any]) -> str:
    day = datetime.fromtimestamp(int(record["timestamp"]) / 1000, tz=UTC)
    return f"{contract.ARCHIVE_HIGH_RISK_PREFIX}{day:%Y/%m/%d}/{record['transaction_id']}.json"


def _archive(blocked: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> list[str]:
    failed: list[str] = []
    for seq, (txn, record) in blocked.items():
        document = {**record, "card_token": txn.get("card_token"), "customer_id": txn.get("customer_id"),
                    "hour": txn.get("hour"), "location_mismatch": txn.get("location_mismatch"),
                    "velocity_flag": txn.get("velocity_flag"), "source": txn.get("source")}
        try:
            client("s3").put_object(Bucket=env(contract.ARCHIVE_BUCKET), Key=archive_key(record),
                                    Body=dumps(document).encode(), ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            logger.warning("high-risk archive failed", extra={"error_type": type(exc).__name__,
                                                              "transaction_id": record["transaction_id"]})
            failed.append(seq)
    if len(blocked) - len(failed):
        metrics.add_metric(name="HighRiskArchived", unit="Count", value=len(blocked) - len(failed))
    return failed


def _publish_events(records: dict[str, dict[str, Any]]) -> list[str]:
    failed: list[str] = []
    items = list(records.items())
    bus = env(contract.EVENT_BUS_NAME)
    for start in range(0, len(items), EVENTS_BATCH):
        chunk = items[start:start + EVENTS_BATCH]
        entries = [{"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE, "Detail": dumps(record),
                    "EventBusName": bus, "Resources": []} for _, record in chunk]
        try:
            response = client("events").put_events(Entries=entries)
        except (ClientError, BotoCoreError) as exc:
            logger.warning("decision events not published", extra={"error_type": type(exc).__name__, "entries": len(chunk)})
            failed.extend(seq for seq, _ in chunk)
            continue
        for (seq, _), entry in zip(chunk, response.get("Entries") or []):
            if entry.get("ErrorCode"):
                failed.append(seq)
    return failed


def _count_metrics(assessments: list[Assessment], shadows: list[dict[str, Any] | None]) -> None:
    if not assessments:
        return
    metrics.add_metric(name="TransactionsScored", unit="Count", value=len(assessments))
    for decision, n in Counter(a.decision for a in assessments).items():
        metrics.add_metric(name=f"Decision{decision.capitalize()}", unit="Count", value=n)
    for code, n in Counter(reason_code(r) for a in assessments for r in a.reasons).items():
        metrics.add_metric(name=f"RuleHit{''.join(p.capitalize() for p in code.split('_'))}", unit="Count", value=n)
    compared = [(a, s) for a, s in zip(assessments, shadows) if s is not None]
    if compared:
        for decision, n in Counter(s["decision"] for _, s in compared).items():
            metrics.add_metric(name=f"ShadowDecision{str(decision).capitalize()}", unit="Count", value=n)
        metrics.add_metric(name="ShadowDisagreements", unit="Count",
                           value=sum(1 for a, s in compared if a.decision != s["decision"]))
