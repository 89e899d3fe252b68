"""Capacity model: each stage's figure against hand-computed values, the bottleneck, the preview check and the CLI."""

import math
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from fraud_pipeline import capacity
from fraud_pipeline.capacity import Assumptions, CapacityError, report
from fraud_pipeline.evaluation import evaluate, known_stacks, stack_config
from fraud_pipeline.plan import settings_of
from fraud_pipeline.settings import PipelineSettings, SettingsError

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def settings(**changes) -> PipelineSettings:
    return PipelineSettings(environment="t", environment_suffix="x1", region="us-east-1", **changes)


def capacity_of(stage: str, s: PipelineSettings, a: Assumptions | None = None) -> float:
    return report(s, a or Assumptions()).stage(stage).capacity


# --- the math of each stage ---------------------------------------------------------

def test_kinesis_is_bounded_by_records_then_by_bytes_per_shard():
    # GIVEN 3 shards WHEN records are small THEN 1,000 records/s per shard bound it
    assert capacity_of("Kinesis stream", settings(kinesis_shard_count=3)) == 3000
    # WHEN records are 2,000 bytes (+36 partition key) THEN 1 MiB/s per shard binds: 1,048,576 / 2,036 = 515.0 each
    assert capacity_of("Kinesis stream", settings(kinesis_shard_count=3, average_transaction_bytes=2000)) == \
        pytest.approx(3 * 1048576 / 2036)


def test_stream_ingest_is_batches_in_flight_times_batch_throughput():
    # GIVEN 4 shards x parallelization 2 = 8 batches, capped by reserved concurrency 5
    s = settings(kinesis_shard_count=4, stream_parallelization_factor=2, processing_reserved_concurrency=5)
    # THEN 5 batches x 100 records / 0.4 s = 1,250 tx/s
    assert capacity_of("stream-ingest function", s) == pytest.approx(1250)
    # WHEN the reserved concurrency is ample THEN shards x factor binds: 8 x 250 = 2,000
    assert capacity_of("stream-ingest function", s.replace(processing_reserved_concurrency=50)) == pytest.approx(2000)


@pytest.mark.parametrize("batch, expected", [(100, 250.0), (200, 250.0), (50, 125.0)])
def test_batch_time_scales_up_linearly_and_never_down(batch, expected):
    # 0.4 s per 100 records: 200 records take 0.8 s; 50 records still take 0.4 s
    assert capacity.batch_throughput(batch, 0.4, 100) == pytest.approx(expected)
    assert capacity_of("stream-ingest function", settings(stream_batch_size=batch)) == pytest.approx(expected)


def test_measured_batch_time_feeds_the_detection_stage():
    # GIVEN one stream shard and the default 0.5 s per batch THEN 200 tx/s
    s = settings()
    assert capacity_of("detection function", s) == pytest.approx(200)
    # WHEN a benchmark measured 0.125 s per batch THEN 800 tx/s, and the table prints the figure used
    measured = Assumptions(detection_batch_seconds=0.125)
    assert capacity_of("detection function", s, measured) == pytest.approx(800)
    assert "detection batch time: 0.125 s per 100 records" in capacity.render_table(report(s, measured))


def test_detection_parallelism_follows_the_tables_stream_shards():
    # 1 partition per 3,000 RCU + 1,000 WCU of the provisioned minimum; ~4 for a new on-demand table
    assert capacity.stream_shards(settings()) == 1
    assert capacity.stream_shards(settings(dynamodb_read_capacity=3000, dynamodb_write_capacity=1000,
                                           dynamodb_max_read_capacity=3000, dynamodb_max_write_capacity=1000)) == 2
    on_demand = settings(dynamodb_billing_mode="PAY_PER_REQUEST", processing_reserved_concurrency=50,
                         stream_parallelization_factor=2)
    assert capacity.stream_shards(on_demand) == 4
    assert capacity_of("detection function", on_demand) == pytest.approx(8 * 200)


def test_transaction_writes_count_every_write_a_transaction_causes():
    # GIVEN 512-byte transactions: item 712 B (1 KB), decided 1,712 B with the features map (2 KB), marked 1,862 B (2 KB)
    load = capacity.transaction_writes(settings(), Assumptions())
    # THEN claim 2 + item 2 + decision 4 (transactional, 2 WCU/KB) + 5% x 2 x 2 + 2% x 2 x 2 = 8.28 WCU
    assert dict(load.parts) == pytest.approx({
        "claim put (transactional)": 2, "transaction put (transactional)": 2, "decision update (transactional)": 4,
        "alert claim+mark x 5%": 0.2, "review store+mark x 2%": 0.08})
    assert load.units_per_transaction == pytest.approx(8.28)
    # GIVEN 1,000-byte transactions THEN item 2 KB, decided 3 KB, marked 3 KB: 2 + 4 + 6 + 0.3 + 0.12
    assert capacity.transaction_writes(settings(average_transaction_bytes=1000), Assumptions()).units_per_transaction \
        == pytest.approx(12.42)


def test_table_stage_uses_the_autoscaling_ceiling_and_reports_the_floor():
    s = settings(dynamodb_write_capacity=5, dynamodb_max_write_capacity=50)
    row = report(s).stage("transactions table writes")
    assert row.capacity == pytest.approx(50 / 8.28)
    assert row.floor == pytest.approx(5 / 8.28)
    assert "auto-scaling ceiling 50 WCU" in row.limit and "the provisioned 5 WCU carry 0.60 tx/s" in row.limit


def test_features_and_read_stages():
    s = settings(dynamodb_max_read_capacity=100, dynamodb_max_write_capacity=100)
    # card (4 KB) and merchant (1 KB) items updated in a TransactWriteItems: 2 x 4 + 2 x 1 = 10 WCU per transaction
    writes = capacity.features_writes(s, Assumptions())
    assert dict(writes.parts) == {"card update (transactional)": 8, "merchant update (transactional)": 2}
    assert capacity_of("features table writes", s) == pytest.approx(10)
    # both items read strongly consistent in one BatchGetItem: 1 RCU each (up to 4 KB)
    assert capacity_of("features table reads", s) == pytest.approx(50)
    # one claim read (stream ingest) + the transaction read by detection + 2% review reads
    assert capacity_of("transactions table reads", s) == pytest.approx(100 / 2.02)
    assert not any("velocity" in row.stage for row in report(s).rows)


def test_feature_item_sizes_drive_the_features_stages(monkeypatch):
    # GIVEN fleet cards with 12 KB items WHEN the model is computed THEN a card update costs 24 WCU and a read 3 RCU
    monkeypatch.setattr(capacity, "CARD_FEATURES_ITEM_BYTES", 12 * 1024)
    s = settings(dynamodb_max_read_capacity=100, dynamodb_max_write_capacity=100)
    assert capacity_of("features table writes", s) == pytest.approx(100 / 26)
    assert capacity_of("features table reads", s) == pytest.approx(100 / 4)


def test_on_demand_uses_the_per_table_quota():
    s = settings(dynamodb_billing_mode="PAY_PER_REQUEST")
    row = report(s).stage("transactions table writes")
    assert row.capacity == pytest.approx(40000 / 8.28)
    assert row.floor == pytest.approx(4000 / 8.28)
    assert "per-table default quota 40,000 WCU/s" in row.limit
    assert report(s).stage("features table writes").capacity == pytest.approx(40000 / 10)


def test_waf_stage_is_the_per_key_rate_limit_and_comes_first():
    # GIVEN an 800 req/s usage plan: the WAF's per-key rule allows 800 x 300 = 240,000 requests per 5 minutes
    s = settings(api_throttle_rate=800, waf_rate_limit=1200)
    r = report(s)
    row = r.stage("WAF (per API key)")
    # THEN one client (one key) carries 240,000 / 300 s = 800 tx/s, one request per transaction
    assert s.waf_api_key_rate_limit == 240000
    assert row.capacity == pytest.approx(800)
    assert "240,000 requests / 300 s" in row.limit and "1 request per tx" in row.limit
    # AND the unkeyed per-IP limit is named, in the stage and in the notes (1,200 / 300 s = 4 req/s)
    assert "without a key 1,200 / 300 s per IP (4.00 req/s)" in row.limit
    assert any("without an x-api-key are limited to 1,200 per 5 minutes per IP" in n for n in r.notes)
    # AND it is the first stage a REST transaction meets, before API Gateway
    assert [x.stage for x in r.rows][:2] == ["WAF (per API key)", "API Gateway"]
    # WHEN the key's budget changes with the plan THEN the stage follows
    assert capacity_of("WAF (per API key)", settings(api_throttle_rate=50)) == pytest.approx(50)


def test_api_stages():
    s = settings(api_throttle_rate=800, api_reserved_concurrency=20)
    assert capacity_of("API Gateway", s) == 800
    assert capacity_of("API function", s) == pytest.approx(20 / 0.1)


@pytest.mark.parametrize("region, sns, events, starts", [
    ("us-east-1", 30000, 10000, 300),
    ("us-west-2", 9000, 10000, 300),
    ("ap-south-1", 300, 400, 150),
])
def test_regional_quotas_of_the_fan_out(region, sns, events, starts):
    s = PipelineSettings(environment="t", environment_suffix="x1", region=region)
    assert capacity_of("SNS publish", s) == pytest.approx(sns / 0.07)
    assert capacity_of("EventBridge PutEvents", s) == events
    assert capacity_of("review workflow (Step Functions)", s) == pytest.approx(starts / 0.02)


def test_alert_path_scales_by_the_flagged_share():
    s = settings(support_reserved_concurrency=5)
    assert math.isinf(capacity_of("alert queue (SQS)", s))
    # 5 x 10 alerts / 0.5 s = 100 alerts/s; at 5% flagged = 2,000 tx/s; at 10% = 1,000
    assert capacity_of("notification function", s) == pytest.approx(2000)
    assert capacity_of("notification function", s, Assumptions(flagged_share=0.1)) == pytest.approx(1000)
    # review: 5 / (4 x 0.2 s) = 6.25 executions/s at 2% = 312.5 tx/s
    assert capacity_of("review function", s) == pytest.approx(312.5)


def test_headroom():
    assert capacity.headroom_percent(80, 60) == pytest.approx(25)
    assert capacity.headroom_percent(50, 100) == pytest.approx(-100)
    assert capacity.headroom_percent(math.inf, 1e6) == 100


def test_assumptions_are_validated():
    with pytest.raises(ValueError, match="detection_batch_seconds"):
        Assumptions(detection_batch_seconds=0)
    with pytest.raises(ValueError, match="flagged_share"):
        Assumptions(flagged_share=1.5)


# --- bottleneck --------------------------------------------------------------------

def test_bottleneck_is_the_smallest_stage():
    # GIVEN the defaults THEN the features table's writes give out first (50 WCU / 10), before the transactions table's
    r = report(settings())
    assert r.bottleneck.stage == "features table writes" and r.capacity == pytest.approx(5)
    assert r.stage("transactions table writes").capacity == pytest.approx(50 / 8.28)
    # GIVEN ample table capacity THEN the API function (10 executions / 0.1 s = 100 tx/s) is next
    big = settings(dynamodb_max_write_capacity=40000, dynamodb_max_read_capacity=40000)
    r = report(big)
    assert r.bottleneck.stage == "API function"
    assert r.capacity == pytest.approx(100)
    assert min(x.capacity for x in r.rows) == r.bottleneck.capacity


def test_every_stack_carries_its_peak():
    # GIVEN each stack file WHEN its model is computed THEN no stage is exceeded, and the peak is an explicit setting
    for stack in known_stacks():
        s = settings_of(stack)
        assert "fraud-pipeline:peakTransactionsPerSecond" in stack_config(stack), stack
        r = report(s, stack=stack)
        assert r.ok, capacity.render_table(r)
        assert r.bottleneck.headroom_percent >= 20, (stack, r.bottleneck)
    peaks = [settings_of(st).peak_transactions_per_second for st in ("dev", "staging", "prod")]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3


def test_new_settings_are_validated():
    with pytest.raises(SettingsError, match="peakTransactionsPerSecond = 0.0: out of range: must be 0.01 to 1000000"):
        PipelineSettings.from_config("dev", {"environmentSuffix": "t1", "aws:region": "us-east-1",
                                             "peakTransactionsPerSecond": "0"})
    with pytest.raises(SettingsError, match="capacityCheck = 'fail': out of range: must be one of error, warn"):
        PipelineSettings.from_config("dev", {"environmentSuffix": "t1", "aws:region": "us-east-1",
                                             "capacityCheck": "fail"})


# --- the preview check -----------------------------------------------------------------

@pytest.mark.parametrize("changes, stage", [
    ({"fraud-pipeline:peakTransactionsPerSecond": "500", "fraud-pipeline:dynamodbMaxWriteCapacity": "2000"},
     "features table writes"),
    ({"fraud-pipeline:peakTransactionsPerSecond": "500", "fraud-pipeline:dynamodbMaxWriteCapacity": "2000",
      "fraud-pipeline:averageTransactionBytes": "2000"}, "transactions table writes"),
    ({"fraud-pipeline:peakTransactionsPerSecond": "500"}, "detection function"),
    # a usage plan below the peak: the WAF's per-key limit (250 x 300 per 5 min) is met before API Gateway's throttle
    ({"fraud-pipeline:peakTransactionsPerSecond": "300", "fraud-pipeline:apiThrottleRate": "250"}, "WAF (per API key)"),
])
def test_peak_above_a_stage_fails_preview_before_any_resource(changes, stage):
    # GIVEN the prod stack file with a peak one of its stages cannot carry
    config = {**stack_config("prod"), **changes}
    monitors: list = []
    # WHEN the program is evaluated THEN it fails naming the stack, the stage, its capacity and the peak
    with pytest.raises(CapacityError) as caught:
        evaluate("prod", config, monitor_sink=monitors)
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.stack, error.stage) == ("prod", stage)
    assert error.peak == float(changes["fraud-pipeline:peakTransactionsPerSecond"]) > error.capacity
    assert f"stack 'prod': peakTransactionsPerSecond = {error.peak:g}" in str(error)
    assert f"stage '{stage}'" in str(error)
    # AND nothing was registered
    assert monitors[0].recorded == []


def test_warn_mode_passes_with_a_warning(monkeypatch):
    # GIVEN a peak above the dev stack's capacity and capacityCheck: warn
    warnings: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: warnings.append(msg))
    config = {**stack_config("dev"), "fraud-pipeline:peakTransactionsPerSecond": "10",
              "fraud-pipeline:capacityCheck": "warn"}
    # WHEN the program is evaluated THEN the stack is declared and one warning names the stage
    ev = evaluate("dev", config)
    assert ev.of_type("aws:dynamodb/table:Table")
    capacity_warnings = [w for w in warnings if "peakTransactionsPerSecond" in w]
    assert len(capacity_warnings) == 1
    assert "stage 'features table writes'" in capacity_warnings[0]


def test_component_check_from_settings_alone():
    assert capacity.check(settings(peak_transactions_per_second=1)) is None
    with pytest.raises(CapacityError):
        capacity.check(settings(peak_transactions_per_second=1000))
    message = capacity.check(settings(peak_transactions_per_second=1000, capacity_check="warn"))
    assert message and "stage 'features table writes'" in message


# --- CLI, chart and docs -------------------------------------------------------------------

def test_cli_prints_the_table_and_writes_a_png(tmp_path):
    chart = tmp_path / "charts" / "capacity.png"
    # WHEN the CLI runs for prod THEN it prints the per-stage table with headroom, bottleneck and assumptions
    done = subprocess.run([sys.executable, "-m", "fraud_pipeline.capacity", "--stack", "prod", "--chart", str(chart)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Capacity of stack 'prod' (region us-east-1); peak 300 tx/s" in out
    assert "headroom" in out and "Bottleneck: detection function at 400 tx/s (25% headroom" in out
    assert "Assumptions:" in out and "detection batch time: 0.5 s per 100 records" in out
    for stage in ("WAF (per API key)", "API Gateway", "Kinesis stream", "detection function", "SNS publish"):
        assert stage in out
    # AND writes a valid PNG
    data = chart.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 1000


def test_docs_tables_are_current():
    # GIVEN docs/capacity.md WHEN its stack tables are regenerated THEN nothing changes
    doc = (REPO / "docs" / "capacity.md").read_text()
    reports = [report(settings_of(st), stack=st) for st in known_stacks()]
    assert capacity.update_docs(doc, reports) == doc, "regenerate with: make capacity"
    for st in known_stacks():
        assert f"<!-- capacity:{st}:start -->\nRegion" in doc


def test_update_docs_replaces_only_marked_blocks():
    text = "intro\n<!-- capacity:dev:start -->\nold\n<!-- capacity:dev:end -->\noutro\n"
    new = capacity.update_docs(text, [report(settings_of("dev"), stack="dev")])
    assert new.startswith("intro\n<!-- capacity:dev:start -->\nRegion us-east-1") and new.endswith("<!-- capacity:dev:end -->\noutro\n")
    assert "old" not in new
