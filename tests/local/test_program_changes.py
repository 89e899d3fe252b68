"""The emulation follows the program: change a stack setting, and the emulated resources change with it.

Kept in its own module: moto's backends are process-wide, so this emulation
runs after the shared one of test_emulation.py is closed.
"""

import json
import time

import moto.sqs.models

from fraud_pipeline.evaluation import REPO_ROOT, stack_config
from fraud_pipeline.local import demo
from fraud_pipeline.local.emulator import Emulator


def test_a_stack_setting_change_is_followed_without_edits():
    # GIVEN dev with three shards and a longer alert visibility timeout
    config = {**stack_config("dev"), "fraud-pipeline:kinesisShardCount": "3",
              "fraud-pipeline:alertVisibilityTimeoutSeconds": "420"}
    emulator = Emulator("dev", config=config)
    try:
        # THEN the emulated stream and queue have them
        kinesis = emulator.client("kinesis")
        summary = kinesis.describe_stream_summary(StreamName=emulator.topo.streams[0]["name"])["StreamDescriptionSummary"]
        assert summary["OpenShardCount"] == 3
        alerts = next(q for q in emulator.topo.queues if q.name.startswith("fraud-alerts-dev"))
        attrs = emulator.sqs.get_queue_attributes(QueueUrl=emulator.resources.queue_urls[alerts.arn],
                                                  AttributeNames=["VisibilityTimeout"])["Attributes"]
        assert attrs["VisibilityTimeout"] == "420"
    finally:
        emulator.close()


def test_demo_loses_nothing_and_leaks_no_card_number(capsys):
    # GIVEN a small synthetic run: a week of history, chargebacks, a final week of 100
    # WHEN the demo runs THEN it exits 0 and prints the evidence
    assert demo.run("dev", transactions=100, seed=3, progress=False, history_days=7) == 0
    out = capsys.readouterr().out
    for heading in ("History (Kinesis put_records", "Labels (chargeback files", "Final week (", "Pipeline",
                    "Detection on the final week against the generator's labels", "Latency and throughput",
                    "Least privilege", "Card-data hygiene"):
        assert heading in out
    assert "RESULT: OK" in out and "denied 0" in out
    assert "quarantined (expected 2)" in out and "analyst (label API)" in out
    model = json.loads((REPO_ROOT / "handlers" / "models" / "default.json").read_text())["version"]
    assert f"model                {model} scored 100" in out


def test_the_demo_history_ends_before_now_and_the_final_week_is_its_last_rows():
    history, final = demo.plan(1000, seed=7)
    assert len(final) == 1000 and history and history[-1].timestamp <= final[0].timestamp
    assert final[-1].timestamp <= time.time() * 1000
    assert (final[-1].timestamp - final[0].timestamp) / 86_400_000 > 6
    assert (final[0].timestamp - history[0].timestamp) / 86_400_000 >= 20


def test_a_poison_alert_is_redriven_to_the_dlq_after_its_visibility_timeout(monkeypatch):
    # GIVEN dev with a short notification timeout, so the alert queue's visibility timeout can be 18 s,
    # and one receive before the DLQ; moto's SQS clock is moved on instead of waiting for it
    config = {**stack_config("dev"), "fraud-pipeline:supportTimeoutSeconds": "3",
              "fraud-pipeline:alertVisibilityTimeoutSeconds": "18", "fraud-pipeline:alertMaxReceiveCount": "1"}
    clock = moto.sqs.models.unix_time_millis
    elapsed_ms = 0

    def later(seconds: int) -> None:
        nonlocal elapsed_ms
        elapsed_ms = seconds * 1000

    monkeypatch.setattr(moto.sqs.models, "unix_time_millis", lambda: clock() + elapsed_ms)
    emulator = Emulator("dev", config=config)
    try:
        alerts = next(q for q in emulator.topo.queues if q.name.startswith("fraud-alerts-dev"))
        url = emulator.resources.queue_urls[alerts.arn]
        # WHEN a message the notification handler cannot process lands on the alert queue
        emulator.sqs.send_message(QueueUrl=url, MessageBody='{"not": "a decision"}')
        emulator.pump()
        notification = next(p for p in emulator.pollers if p.mapping.kind == "sqs")
        assert notification.stats.partial_failures == 1 and emulator.alerts == []
        # THEN it stays invisible for the whole visibility timeout (17 s later it is still not received)
        assert emulator.queue_depth(alerts.arn) == 1 and emulator.queue_depth(alerts.dead_letter_arn) == 0
        later(17)
        emulator.pump()
        assert notification.stats.partial_failures == 1
        assert emulator.queue_depth(alerts.arn) == 1 and emulator.queue_depth(alerts.dead_letter_arn) == 0
        # AND once it has passed, its next receive moves it to the DLQ
        later(19)
        emulator.pump()
        assert emulator.queue_depth(alerts.arn) == 0
        assert emulator.queue_depth(alerts.dead_letter_arn) == 1
        assert emulator.alerts == []
    finally:
        emulator.close()
