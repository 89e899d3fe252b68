"""Capacity model: the transactions per second each stage of a stack can sustain.

    python -m fraud_pipeline.capacity --stack prod            # one stack's table
    python -m fraud_pipeline.capacity                         # every stack, and docs/capacity.png
    python -m fraud_pipeline.capacity --chart out.png --update-docs docs/capacity.md

Pure arithmetic on `PipelineSettings` (no Pulumi, no AWS calls): each stage's
capacity is its published AWS limit, or the concurrency a stack gives it
divided by the time one unit of work takes, converted to transactions per
second. The smallest is the **bottleneck**. `FraudPipeline` calls `check()`
before it declares anything, so a stack whose `peakTransactionsPerSecond`
exceeds a stage fails the preview naming that stage (or logs a warning when
`capacityCheck: warn`).

Where a figure is not an AWS limit but the speed of our own handlers
(`INGEST_BATCH_SECONDS`, `DETECTION_BATCH_SECONDS`, ...), it is a named,
conservative default in `Assumptions`; a measured figure replaces it with
`Assumptions(detection_batch_seconds=measured)`, and every table prints the
figures it used. docs/capacity.md explains each formula and its source.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import defaults
from .settings import WAF_RATE_WINDOW_SECONDS, PipelineSettings

# --- handler speed (replace with measured figures: see `Assumptions`) ---------
#: Seconds the stream-ingest function takes for a batch of `REFERENCE_BATCH_RECORDS`
#: records: validate + tokenise, one BatchGetItem of the claims, two TransactWriteItems
#: (50 transactions each). A typical Lambda does such a batch in 0.25-0.5 s; we take the upper end but one.
INGEST_BATCH_SECONDS = 0.4
#: Seconds the detection function takes for a batch of `REFERENCE_BATCH_RECORDS` transactions:
#: BatchGetItem of the transaction and feature items, scoring, one TransactWriteItems of decisions
#: and feature updates, SendMessageBatch, PutObject per block and ten PutEvents calls. Upper end of 0.25-0.5 s.
DETECTION_BATCH_SECONDS = 0.5
#: Batch size the two figures above are quoted for.
REFERENCE_BATCH_RECORDS = 100
#: Seconds one `POST /transactions` occupies the API function (validation, one TransactWriteItems).
API_REQUEST_SECONDS = 0.1
#: Seconds the notification function takes for one SQS batch of `ALERT_BATCH_SIZE` alerts
#: (claim UpdateItem per alert, one PublishBatch, mark UpdateItem per alert).
NOTIFICATION_BATCH_SECONDS = 0.5
#: Seconds one review-workflow task invocation takes (4 tasks per execution).
REVIEW_TASK_SECONDS = 0.2
REVIEW_TASKS_PER_EXECUTION = 4

# --- traffic mix ---------------------------------------------------------------
#: Share of transactions decided `review` or `block` (the alert path).
FLAGGED_SHARE = 0.05
#: Share of transactions above the review-workflow amount (`elevatedAmountThreshold`).
REVIEW_SHARE = 0.02

# --- item sizes (bytes) beyond the submitted transaction -------------------------
#: Attributes the ingest handlers add to a stored transaction (record_type, source,
#: ingested_at, expires_at, schema_version, card_token, card_last4).
ITEM_METADATA_BYTES = 200
#: Attributes detection's write-back adds: decision, score, rules/ML scores, reasons, scored_at (~200 B), the
#: features map (26 name -> number entries, handlers/features.py FEATURE_NAMES: ~700 B), risk, model_version
#: and the shadow map (~100 B).
DECISION_BYTES = 1000
#: Alert and review markers (alert_claim, alert_claimed_at, alert_sent_at, review_*).
MARKER_BYTES = 150
#: An idempotency claim item (key, record_type, transaction_timestamp, fingerprint, source, created_at, expires_at).
CLAIM_ITEM_BYTES = 300
#: A card's feature item: entity, ~65 "<ts_ms>#<transaction_id>#<amount_cents>" entries (~56 B each) in the
#: 30-45 days its three 15-day periods keep (about 1.5 transactions a day), a few fraud labels, expires_at.
#: A busier card is larger (up to 1,500 entries per period): raise it for fleet-card traffic.
CARD_FEATURES_ITEM_BYTES = 4 * 1024
#: A merchant's feature item: entity, 32 days of n_YYYYMMDD / f_YYYYMMDD day counters (~15 B each), expires_at.
MERCHANT_FEATURES_ITEM_BYTES = 1000
#: Kinesis partition key (the transaction id) counts towards the shard's 1 MiB/s.
PARTITION_KEY_BYTES = 36

# --- AWS limits ------------------------------------------------------------------
KIB = 1024
MIB = 1024 * 1024
#: Kinesis Data Streams, provisioned mode: writes per shard (hard limits).
KINESIS_RECORDS_PER_SHARD = 1000
KINESIS_BYTES_PER_SHARD = MIB
#: API Gateway account-level throttle per region (soft; 2,500 in some newer regions).
API_GATEWAY_ACCOUNT_RPS = 10_000
#: DynamoDB: 1 WCU = one write/s of up to 1 KB; 1 RCU = one strongly consistent read/s of up to 4 KB.
#: Transactional writes (TransactWriteItems) cost 2 WCU per KB, transactional reads 2 RCU per 4 KB.
WCU_ITEM_BYTES = KIB
RCU_ITEM_BYTES = 4 * KIB
TRANSACTIONAL_FACTOR = 2
#: DynamoDB per-table throughput quota (on-demand maximum; also bounds provisioned capacity), soft.
DYNAMODB_TABLE_QUOTA = 40_000
#: What a new on-demand table serves at once, before it has seen a higher peak.
DYNAMODB_ON_DEMAND_INITIAL_WRITES = 4_000
DYNAMODB_ON_DEMAND_INITIAL_READS = 12_000
#: One partition serves up to 1,000 WCU and 3,000 RCU; a table's stream has one shard per partition.
PARTITION_WCU = 1_000
PARTITION_RCU = 3_000
#: A new on-demand table's partitions, inferred from its initial 4,000 writes/s at 1,000 WCU each.
ON_DEMAND_INITIAL_PARTITIONS = 4
#: SNS Publish (standard topics) per account and region, messages/s (soft); PublishBatch counts each message.
SNS_PUBLISH_PER_SECOND = {"us-east-1": 30_000, "us-west-2": 9_000, "eu-west-1": 9_000}
SNS_PUBLISH_OTHER_REGIONS = 300
#: EventBridge PutEvents per account and region (soft); each entry is counted as one.
EVENTBRIDGE_PUT_EVENTS_PER_SECOND = {"us-east-1": 10_000, "us-west-2": 10_000, "eu-west-1": 10_000}
EVENTBRIDGE_PUT_EVENTS_OTHER_REGIONS = 400
#: Step Functions standard workflows: StartExecution token-bucket refill rate per second (soft).
SFN_START_EXECUTION_PER_SECOND = {"us-east-1": 300, "us-west-2": 300, "eu-west-1": 300}
SFN_START_EXECUTION_OTHER_REGIONS = 150

UNLIMITED = math.inf


@dataclass(frozen=True)
class Assumptions:
    """Figures the model needs that are not AWS limits. Every field is printed with the table.

    Feed measured handler times in here, e.g. `Assumptions(detection_batch_seconds=0.21)`
    from the benchmarks; the defaults are deliberately conservative.
    """

    ingest_batch_seconds: float = INGEST_BATCH_SECONDS
    detection_batch_seconds: float = DETECTION_BATCH_SECONDS
    reference_batch_records: int = REFERENCE_BATCH_RECORDS
    api_request_seconds: float = API_REQUEST_SECONDS
    notification_batch_seconds: float = NOTIFICATION_BATCH_SECONDS
    review_task_seconds: float = REVIEW_TASK_SECONDS
    flagged_share: float = FLAGGED_SHARE
    review_share: float = REVIEW_SHARE

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"Assumptions.{f.name} = {value!r}: must be a positive number")
        for name in ("flagged_share", "review_share"):
            if getattr(self, name) > 1:
                raise ValueError(f"Assumptions.{name} = {getattr(self, name)!r}: must be a share between 0 and 1")

    def lines(self) -> list[str]:
        ref = self.reference_batch_records
        return [
            f"stream-ingest batch time: {self.ingest_batch_seconds:g} s per {ref} records "
            "(assumed, conservative; replace with the measured figure)",
            f"detection batch time: {self.detection_batch_seconds:g} s per {ref} records "
            "(assumed, conservative; replace with the measured figure)",
            "batch time scales linearly above that batch size and stays whole below it",
            f"API request time: {self.api_request_seconds:g} s per request (assumed)",
            f"notification batch time: {self.notification_batch_seconds:g} s per {defaults.ALERT_BATCH_SIZE} alerts (assumed)",
            f"review task time: {self.review_task_seconds:g} s x {REVIEW_TASKS_PER_EXECUTION} tasks per execution (assumed)",
            f"flagged share (review or block, alert path): {self.flagged_share:.0%}",
            f"review share (amount above the review threshold): {self.review_share:.0%}",
            "either ingest path (REST API or Kinesis) may carry the whole peak",
        ]


@dataclass(frozen=True)
class StageCapacity:
    """One stage: what it sustains in transactions per second, and why."""

    stage: str
    capacity: float
    limit: str
    floor: float | None = None
    """DynamoDB: what the provisioned minimum carries before auto-scaling has reacted."""

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.capacity)


@dataclass(frozen=True)
class StageRow:
    stage: str
    capacity: float
    peak: float
    headroom_percent: float
    limit: str
    floor: float | None = None

    @property
    def carried(self) -> bool:
        return self.capacity >= self.peak


def headroom_percent(capacity: float, peak: float) -> float:
    """Share of the stage's capacity left at the peak (negative: the peak exceeds it)."""
    if math.isinf(capacity):
        return 100.0
    return (capacity - peak) / capacity * 100.0


@dataclass(frozen=True)
class CapacityReport:
    stack: str
    region: str
    peak: float
    mode: str
    stages: tuple[StageCapacity, ...]
    assumptions: Assumptions
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> list[StageRow]:
        return [StageRow(s.stage, s.capacity, self.peak, headroom_percent(s.capacity, self.peak), s.limit, s.floor)
                for s in self.stages]

    @property
    def bottleneck(self) -> StageRow:
        """The stage with the least capacity (the first one listed on a tie)."""
        return min(self.rows, key=lambda r: r.capacity)

    @property
    def capacity(self) -> float:
        return self.bottleneck.capacity

    @property
    def failing(self) -> list[StageRow]:
        """Stages the peak exceeds, smallest capacity first."""
        return sorted((r for r in self.rows if not r.carried), key=lambda r: r.capacity)

    @property
    def ok(self) -> bool:
        return not self.failing

    def stage(self, name: str) -> StageRow:
        for r in self.rows:
            if r.stage == name:
                return r
        raise KeyError(name)


class CapacityError(ValueError):
    """A stack's peak exceeds what one of its stages can carry."""

    def __init__(self, report: CapacityReport):
        self.report = report
        worst = report.failing[0]
        self.stack = report.stack
        self.stage = worst.stage
        self.capacity = worst.capacity
        self.peak = report.peak
        super().__init__(failure_message(report))


def failure_message(report: CapacityReport) -> str:
    worst = report.failing[0]
    lines = [f"stack '{report.stack}': peakTransactionsPerSecond = {report.peak:g} exceeds the capacity of "
             f"stage '{worst.stage}' ({_num(worst.capacity)} tx/s):"]
    for r in report.failing:
        lines.append(f"  - {r.stage}: {_num(r.capacity)} tx/s < peak {_num(r.peak)} tx/s ({r.limit})")
    if report.mode == "warn":
        lines.append("  capacityCheck is warn, so the preview goes on; raise the named limits or lower "
                     "peakTransactionsPerSecond (see docs/capacity.md).")
    else:
        lines.append("  Raise the named limits in the stack file, lower peakTransactionsPerSecond, or set "
                     "capacityCheck: warn (see docs/capacity.md).")
    return "\n".join(lines)


# --- the model -------------------------------------------------------------------

def _kb_units(size_bytes: float, unit: int) -> int:
    return max(1, math.ceil(size_bytes / unit))


def _num(x: float) -> str:
    if math.isinf(x):
        return "unlimited"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def _regional(table: dict[str, int], other: int, region: str) -> tuple[int, str]:
    if region in table:
        return table[region], region
    return other, f"{region} (smallest regional default)"


def batch_throughput(batch_size: int, batch_seconds: float, reference_records: int) -> float:
    """Transactions/s one in-flight batch sustains.

    The per-batch time is quoted for `reference_records`; a larger batch takes
    proportionally longer (no amortisation assumed), a smaller one the whole
    time (fixed cost dominates). Both are conservative.
    """
    seconds = batch_seconds * max(1.0, batch_size / reference_records)
    return batch_size / seconds


def stream_shards(s: PipelineSettings) -> int:
    """Shards of the transactions table's stream: one per partition.

    DynamoDB does not publish a table's partition count; a partition serves up to
    1,000 WCU and 3,000 RCU, so the provisioned minimum needs
    ceil(RCU/3000 + WCU/1000) partitions (at least one). More data (10 GB per
    partition) or scaling up only adds partitions, so this is the conservative
    floor. A new on-demand table starts with about four.
    """
    if not s.provisioned:
        return ON_DEMAND_INITIAL_PARTITIONS
    return max(1, math.ceil(s.dynamodb_read_capacity / PARTITION_RCU + s.dynamodb_write_capacity / PARTITION_WCU))


@dataclass(frozen=True)
class TableLoad:
    """Capacity units one transaction costs a table, with the itemised writes."""

    units_per_transaction: float
    parts: tuple[tuple[str, float], ...]

    def describe(self) -> str:
        return " + ".join(f"{_units(u)} {what}" for what, u in self.parts)


def _units(u: float) -> str:
    return f"{u:g}" if u == int(u) else f"{u:.2f}".rstrip("0")


def transaction_writes(s: PipelineSettings, a: Assumptions) -> TableLoad:
    """WCU one transaction costs the transactions table.

    * ingest (API and Kinesis alike): one TransactWriteItems puts the idempotency claim
      and the transaction item -> 2 WCU per KB each (transactional);
    * detection write-back: an UpdateItem in a TransactWriteItems -> 2 WCU per KB of
      the larger of the item before and after (it grows by the decision attributes);
    * flagged share: notification's claim and mark UpdateItems (standard, 1 WCU per KB each);
    * review share: the workflow's store and notify-mark UpdateItems (standard, 1 WCU per KB each).
    TTL deletions are free; replays and conflicts (rare) are not counted.
    """
    item = s.average_transaction_bytes + ITEM_METADATA_BYTES
    decided = item + DECISION_BYTES
    marked = decided + MARKER_BYTES
    t = TRANSACTIONAL_FACTOR
    parts = (
        ("claim put (transactional)", t * _kb_units(CLAIM_ITEM_BYTES, WCU_ITEM_BYTES)),
        ("transaction put (transactional)", t * _kb_units(item, WCU_ITEM_BYTES)),
        ("decision update (transactional)", t * _kb_units(decided, WCU_ITEM_BYTES)),
        (f"alert claim+mark x {a.flagged_share:.0%}", a.flagged_share * 2 * _kb_units(marked, WCU_ITEM_BYTES)),
        (f"review store+mark x {a.review_share:.0%}", a.review_share * 2 * _kb_units(marked, WCU_ITEM_BYTES)),
    )
    return TableLoad(sum(u for _, u in parts), parts)


def transaction_reads(s: PipelineSettings, a: Assumptions) -> TableLoad:
    """RCU one transaction costs the transactions table (strongly consistent reads).

    Stream ingest reads each batch's claims (BatchGetItem, 1 RCU per item up to 4 KB,
    charged even when the claim does not exist yet); the API path reads nothing
    unless a write is refused. Detection reads its batch's transaction items
    (BatchGetItem) before it scores them. The review workflow's analyze step
    reads the item. The table's stream is read by Lambda at no capacity cost.
    """
    item = s.average_transaction_bytes + ITEM_METADATA_BYTES
    marked = item + DECISION_BYTES + MARKER_BYTES
    parts = (
        ("claim read (stream ingest)", float(_kb_units(CLAIM_ITEM_BYTES, RCU_ITEM_BYTES))),
        ("transaction read (detection)", float(_kb_units(item, RCU_ITEM_BYTES))),
        (f"review read x {a.review_share:.0%}", a.review_share * _kb_units(marked, RCU_ITEM_BYTES)),
    )
    return TableLoad(sum(u for _, u in parts), parts)


def _feature_items() -> tuple[tuple[str, int], ...]:
    return (("card", CARD_FEATURES_ITEM_BYTES), ("merchant", MERCHANT_FEATURES_ITEM_BYTES))


def features_writes(s: PipelineSettings, a: Assumptions) -> TableLoad:
    """WCU per transaction on the features table: the card and the merchant item updated in a TransactWriteItems.

    Transactional, so 2 WCU per KB of the larger of the item before and after. Transactions of one card
    or merchant in one batch share an update, so one of each per transaction is the worst case. Labels
    (API, bulk files, review outcomes) update the same items but are a small share and not counted.
    """
    parts = tuple((f"{what} update (transactional)", float(TRANSACTIONAL_FACTOR * _kb_units(size, WCU_ITEM_BYTES)))
                  for what, size in _feature_items())
    return TableLoad(sum(u for _, u in parts), parts)


def features_reads(s: PipelineSettings, a: Assumptions) -> TableLoad:
    """RCU per transaction on the features table: the card and the merchant item (BatchGetItem, strongly consistent)."""
    parts = tuple((f"{what} read", float(_kb_units(size, RCU_ITEM_BYTES))) for what, size in _feature_items())
    return TableLoad(sum(u for _, u in parts), parts)


def _table_stage(s: PipelineSettings, name: str, load: TableLoad, kind: str) -> StageCapacity:
    unit = "WCU" if kind == "write" else "RCU"
    if s.provisioned:
        ceiling = s.dynamodb_max_write_capacity if kind == "write" else s.dynamodb_max_read_capacity
        floor = s.dynamodb_write_capacity if kind == "write" else s.dynamodb_read_capacity
        ceiling_ = min(ceiling, DYNAMODB_TABLE_QUOTA)
        capacity = ceiling_ / load.units_per_transaction
        floor_tx = floor / load.units_per_transaction
        limit = (f"auto-scaling ceiling {ceiling_:,} {unit} / {_units(round(load.units_per_transaction, 2))} {unit} per tx "
                 f"({load.describe()}); the provisioned {floor:,} {unit} carry {_num(floor_tx)} tx/s until scaling reacts")
        return StageCapacity(name, capacity, limit, floor_tx)
    initial = DYNAMODB_ON_DEMAND_INITIAL_WRITES if kind == "write" else DYNAMODB_ON_DEMAND_INITIAL_READS
    capacity = DYNAMODB_TABLE_QUOTA / load.units_per_transaction
    floor_tx = initial / load.units_per_transaction
    limit = (f"on demand: per-table default quota {DYNAMODB_TABLE_QUOTA:,} {unit}/s (soft) / "
             f"{_units(round(load.units_per_transaction, 2))} {unit} per tx ({load.describe()}); a new table serves "
             f"{initial:,}/s ({_num(floor_tx)} tx/s) at once and doubles its previous peak within 30 min")
    return StageCapacity(name, capacity, limit, floor_tx)


def stages(s: PipelineSettings, a: Assumptions = Assumptions()) -> tuple[StageCapacity, ...]:
    """Every stage's capacity in transactions per second, in the order a transaction meets them."""
    out: list[StageCapacity] = []
    ref = a.reference_batch_records

    # REST ingest --------------------------------------------------------------
    # The web ACL sees every request first. One client is one API key (the REST path carries the whole peak on
    # one key in the worst case), and one transaction is one request.
    window = WAF_RATE_WINDOW_SECONDS
    out.append(StageCapacity(
        "WAF (per API key)", s.waf_api_key_rate_limit / window,
        f"rate-based rule per API key (x-api-key) {s.waf_api_key_rate_limit:,} requests / {window} s, the same "
        f"ceiling for keyed requests from one IP; requests without a key {s.waf_rate_limit:,} / {window} s per IP "
        f"({_num(s.waf_rate_limit / window)} req/s); 1 request per tx"))
    rate = min(s.api_throttle_rate, API_GATEWAY_ACCOUNT_RPS)
    out.append(StageCapacity(
        "API Gateway", float(rate),
        f"usage-plan rate (per API key) and stage throttle {s.api_throttle_rate:,} req/s, burst {s.api_throttle_burst:,}; "
        f"account limit {API_GATEWAY_ACCOUNT_RPS:,} req/s per region; 1 request per tx"))
    out.append(StageCapacity(
        "API function", s.api_reserved_concurrency / a.api_request_seconds,
        f"{s.api_reserved_concurrency} reserved concurrency / {a.api_request_seconds:g} s per request"))

    # Kinesis ingest -----------------------------------------------------------
    record = s.average_transaction_bytes + PARTITION_KEY_BYTES
    per_shard = min(KINESIS_RECORDS_PER_SHARD, KINESIS_BYTES_PER_SHARD / record)
    out.append(StageCapacity(
        "Kinesis stream", s.kinesis_shard_count * per_shard,
        f"{s.kinesis_shard_count} shard(s) x min({KINESIS_RECORDS_PER_SHARD:,} records/s, 1 MiB/s / {record} B) "
        f"= {_num(per_shard)} tx/s per shard"))
    in_flight = min(s.kinesis_shard_count * s.stream_parallelization_factor, s.processing_reserved_concurrency)
    per_batch = batch_throughput(s.stream_batch_size, a.ingest_batch_seconds, ref)
    out.append(StageCapacity(
        "stream-ingest function", in_flight * per_batch,
        f"min({s.kinesis_shard_count} shard(s) x parallelization {s.stream_parallelization_factor}, "
        f"reserved {s.processing_reserved_concurrency}) = {in_flight} batch(es) in flight x "
        f"{s.stream_batch_size} records / {a.ingest_batch_seconds:g} s per {ref}"))

    # the decision point ---------------------------------------------------------
    out.append(_table_stage(s, "transactions table writes", transaction_writes(s, a), "write"))
    out.append(_table_stage(s, "transactions table reads", transaction_reads(s, a), "read"))

    # detection -------------------------------------------------------------------
    shards = stream_shards(s)
    in_flight = min(shards * s.stream_parallelization_factor, s.processing_reserved_concurrency)
    per_batch = batch_throughput(s.stream_batch_size, a.detection_batch_seconds, ref)
    basis = ("~4 for a new on-demand table" if not s.provisioned else
             f"1 per partition, ceil({s.dynamodb_read_capacity}/{PARTITION_RCU:,} RCU + "
             f"{s.dynamodb_write_capacity}/{PARTITION_WCU:,} WCU)")
    out.append(StageCapacity(
        "detection function", in_flight * per_batch,
        f"min({shards} stream shard(s) [{basis}] x parallelization {s.stream_parallelization_factor}, "
        f"reserved {s.processing_reserved_concurrency}) = {in_flight} batch(es) in flight x "
        f"{s.stream_batch_size} records / {a.detection_batch_seconds:g} s per {ref}"))
    out.append(_table_stage(s, "features table writes", features_writes(s, a), "write"))
    out.append(_table_stage(s, "features table reads", features_reads(s, a), "read"))
    events, where = _regional(EVENTBRIDGE_PUT_EVENTS_PER_SECOND, EVENTBRIDGE_PUT_EVENTS_OTHER_REGIONS, s.region)
    out.append(StageCapacity(
        "EventBridge PutEvents", float(events),
        f"PutEvents quota {events:,} entries/s in {where} (soft, account-wide); 1 decision event per tx"))

    # alert path --------------------------------------------------------------------
    f = a.flagged_share
    out.append(StageCapacity(
        "alert queue (SQS)", UNLIMITED,
        f"standard queue: nearly unlimited API calls/s; carries the flagged {f:.0%}"))
    per_second = s.support_reserved_concurrency * defaults.ALERT_BATCH_SIZE / a.notification_batch_seconds
    out.append(StageCapacity(
        "notification function", per_second / f,
        f"{s.support_reserved_concurrency} reserved concurrency x {defaults.ALERT_BATCH_SIZE} alerts / "
        f"{a.notification_batch_seconds:g} s = {_num(per_second)} alerts/s, / flagged {f:.0%}"))
    sns, where = _regional(SNS_PUBLISH_PER_SECOND, SNS_PUBLISH_OTHER_REGIONS, s.region)
    published = f + a.review_share
    out.append(StageCapacity(
        "SNS publish", sns / published,
        f"Publish quota {sns:,} messages/s in {where} (soft, account-wide) / "
        f"(flagged {f:.0%} + review {a.review_share:.0%}) messages per tx"))

    # review workflow ----------------------------------------------------------------
    r = a.review_share
    starts, where = _regional(SFN_START_EXECUTION_PER_SECOND, SFN_START_EXECUTION_OTHER_REGIONS, s.region)
    out.append(StageCapacity(
        "review workflow (Step Functions)", starts / r,
        f"StartExecution refill {starts:,}/s in {where} (standard workflows, soft) / review {r:.0%}"))
    executions = s.support_reserved_concurrency / (REVIEW_TASKS_PER_EXECUTION * a.review_task_seconds)
    out.append(StageCapacity(
        "review function", executions / r,
        f"{s.support_reserved_concurrency} reserved concurrency / ({REVIEW_TASKS_PER_EXECUTION} tasks x "
        f"{a.review_task_seconds:g} s) = {_num(executions)} executions/s, / review {r:.0%}"))
    return tuple(out)


def report(s: PipelineSettings, a: Assumptions = Assumptions(), stack: str | None = None) -> CapacityReport:
    """The capacity of every stage of `s`, against its `peakTransactionsPerSecond`."""
    notes: list[str] = []
    period = {"DAY": 86_400, "WEEK": 7 * 86_400, "MONTH": 30 * 86_400}[s.api_quota_period]
    notes.append(f"API quota {s.api_quota_limit:,} requests per {s.api_quota_period} per key = "
                 f"{_num(s.api_quota_limit / period)} tx/s averaged over the period (a volume limit, not a rate)")
    if s.provisioned:
        notes.append(f"DynamoDB auto-scaling targets {s.dynamodb_target_utilization_percent}% utilisation and needs a few "
                     "minutes to react; burst capacity (up to 300 s of unused capacity) bridges short spikes")
    window = WAF_RATE_WINDOW_SECONDS
    notes.append(f"WAF: requests without an x-api-key are limited to {s.waf_rate_limit:,} per {window // 60} minutes "
                 f"per IP ({_num(s.waf_rate_limit / window)} req/s); keyed requests are limited per API key, not per "
                 f"IP, so a client sending from several addresses keeps its key's {_num(s.waf_api_key_rate_limit / window)} "
                 "req/s. A client that keeps sending above its usage-plan rate is throttled (429) by API Gateway and, "
                 "once the 5-minute count passes the WAF limit, blocked (403) until its rate falls back")
    return CapacityReport(stack=stack or s.environment, region=s.region, peak=s.peak_transactions_per_second,
                          mode=s.capacity_check, stages=stages(s, a), assumptions=a, notes=tuple(notes))


def check(s: PipelineSettings, a: Assumptions = Assumptions()) -> str | None:
    """Raise `CapacityError` if the peak exceeds a stage (mode `error`); return the warning text in mode `warn`."""
    r = report(s, a)
    if r.ok:
        return None
    if s.capacity_check == "error":
        raise CapacityError(r)
    return failure_message(r)


# --- rendering -------------------------------------------------------------------

def render_table(r: CapacityReport) -> str:
    rows = r.rows
    head = ("stage", "capacity tx/s", "peak", "headroom", "limit")
    cells = [(x.stage, _num(x.capacity), _num(x.peak), _headroom(x), x.limit) for x in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(head[:4])]
    line = lambda c: "  ".join([c[0].ljust(widths[0]), *(c[i].rjust(widths[i]) for i in (1, 2, 3)), c[4]])  # noqa: E731
    b = r.bottleneck
    out = [f"Capacity of stack '{r.stack}' (region {r.region}); peak {_num(r.peak)} tx/s; check mode: {r.mode}", "",
           line(head), line(tuple("-" * w for w in widths) + ("-----",))]
    out += [line(c) + ("   <- bottleneck" if x.stage == b.stage else "") for c, x in zip(cells, rows)]
    out += ["", f"Bottleneck: {b.stage} at {_num(b.capacity)} tx/s ({_headroom(b)} headroom at the peak)."]
    if r.failing:
        out.append("EXCEEDED: " + ", ".join(f"{x.stage} ({_num(x.capacity)} tx/s)" for x in r.failing))
    else:
        out.append("Every stage carries the peak.")
    out += ["", "Assumptions:"] + [f"  - {line_}" for line_ in r.assumptions.lines()]
    out += ["Notes:"] + [f"  - {n}" for n in r.notes]
    return "\n".join(out)


def _headroom(row: StageRow) -> str:
    return "n/a" if math.isinf(row.capacity) else f"{row.headroom_percent:.0f}%"


def render_markdown(r: CapacityReport) -> str:
    b = r.bottleneck
    out = [f"Region {r.region}, peak **{_num(r.peak)} tx/s**, bottleneck **{b.stage}** at "
           f"{_num(b.capacity)} tx/s ({_headroom(b)} headroom).", "",
           "| stage | capacity (tx/s) | peak | headroom | limit |", "|---|---:|---:|---:|---|"]
    for x in r.rows:
        name = f"**{x.stage}**" if x.stage == b.stage else x.stage
        out.append(f"| {name} | {_num(x.capacity)} | {_num(x.peak)} | {_headroom(x)} | {x.limit.replace('|', '/')} |")
    return "\n".join(out)


def write_chart(reports: Sequence[CapacityReport], path: Path) -> Path:
    """A PNG of every stage's capacity per stack (log scale), with each stack's peak."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [s.stage for s in reports[0].stages]
    finite = [x.capacity for r in reports for x in r.rows if not math.isinf(x.capacity)] + [r.peak for r in reports]
    top = 10 ** math.ceil(math.log10(max(finite) * 3))
    low = 10 ** math.floor(math.log10(min(finite) / 2))
    colours = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    height = 0.8 / len(reports)
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(names) + 2), dpi=110)
    for i, r in enumerate(reports):
        colour = colours[i % len(colours)]
        caps = {x.stage: x.capacity for x in r.rows}
        ys = [len(names) - 1 - j + (len(reports) - 1 - i - (len(reports) - 1) / 2) * height for j in range(len(names))]
        values = [top if math.isinf(caps[n]) else caps[n] for n in names]
        bars = ax.barh(ys, values, height=height, color=colour, label=f"{r.stack} (peak {_num(r.peak)} tx/s)")
        for bar, n in zip(bars, names):
            if math.isinf(caps[n]):
                bar.set_hatch("//")
                bar.set_alpha(0.35)
        ax.axvline(r.peak, color=colour, linestyle="--", linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlim(low, top)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(list(reversed(names)))
    ax.set_xlabel("sustainable transactions per second (log scale; hatched = no practical limit; dashed = stack peak)")
    ax.set_title("fraud-pipeline: capacity per stage and stack")
    ax.grid(axis="x", which="both", alpha=0.25)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


DOCS_BLOCK = re.compile(r"(<!-- capacity:(?P<stack>[a-z0-9]+):start -->\n).*?(<!-- capacity:(?P=stack):end -->)", re.S)


def update_docs(text: str, reports: Iterable[CapacityReport]) -> str:
    """Replace each `<!-- capacity:<stack>:start/end -->` block with that stack's current table."""
    by_stack = {r.stack: render_markdown(r) for r in reports}

    def sub(m: re.Match) -> str:
        table = by_stack.get(m.group("stack"))
        return m.group(0) if table is None else f"{m.group(1)}{table}\n{m.group(3)}"

    return DOCS_BLOCK.sub(sub, text)


def main(argv: list[str] | None = None) -> int:
    from .evaluation import REPO_ROOT, known_stacks
    from .plan import settings_of
    from .settings import SettingsError

    stacks = known_stacks()
    parser = argparse.ArgumentParser(prog="python -m fraud_pipeline.capacity", description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", action="append", choices=stacks,
                        help="stack whose table to print (repeatable; default: every stack)")
    parser.add_argument("--chart", type=Path, default=REPO_ROOT / "docs" / "capacity.png",
                        help="PNG of every stack's capacity per stage (default: docs/capacity.png)")
    parser.add_argument("--no-chart", action="store_true", help="do not write the chart")
    parser.add_argument("--update-docs", type=Path, metavar="MARKDOWN",
                        help="rewrite the <!-- capacity:<stack>:start/end --> tables in this file")
    args = parser.parse_args(argv)
    try:
        reports = {st: report(settings_of(st), stack=st) for st in stacks}
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for i, st in enumerate(args.stack or stacks):
        if i:
            print("\n")
        print(render_table(reports[st]))
    if not args.no_chart:
        path = write_chart(list(reports.values()), args.chart)
        print(f"\nChart of {', '.join(stacks)} written to {path}")
    if args.update_docs:
        text = args.update_docs.read_text()
        args.update_docs.write_text(update_docs(text, reports.values()))
        print(f"Tables in {args.update_docs} updated")
    failing = [st for st in (args.stack or stacks) if not reports[st].ok]
    return 2 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
