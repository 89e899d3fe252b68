"""The emulation follows the program: change a stack setting, and the emulated resources change with it.

Kept in its own module: moto's backends are process-wide, so this emulation
runs after the shared one of test_emulation.py is closed.
"""

from fraud_pipeline.evaluation import stack_config
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
    # GIVEN a small generated run WHEN the demo runs THEN it exits 0 and prints the evidence
    assert demo.run("dev", transactions=60, seed=3, progress=False) == 0
    out = capsys.readouterr().out
    for heading in ("Traffic", "Pipeline", "Detection against the generator's labels", "Latency and throughput",
                    "Least privilege", "Card-data hygiene"):
        assert heading in out
    assert "RESULT: OK" in out and "denied 0" in out
