"""The offline plan a user runs before `pulumi up`."""

from fraud_pipeline.evaluation import evaluate, stack_config
from fraud_pipeline.plan import main


def test_plan_prints_the_resource_tree_grouped_by_component(capsys):
    # WHEN a user runs `make plan STACK=prod`
    assert main(["prod"]) == 0
    out = capsys.readouterr().out
    # THEN every component appears with its resources and the settings that matter
    assert out.startswith("Plan for stack 'prod' (region us-east-1):")
    for component in ("KmsKeys", "PrivateNetwork", "TransactionStore", "IngestStream", "AlertQueue", "ArchiveBucket",
                      "AlertTopics", "PipelineFunction", "ApiFront", "ReviewWorkflow", "Monitoring", "PipelineParameters"):
        assert f"  {component} " in out, component
    assert "Stream fraud-transactions-prod-f5g6h  [shardCount=4, retentionPeriod=168, encryptionType=KMS]" in out
    assert "Function fraud-detection-prod-f5g6h  [memorySize=2048" in out
    assert "Table fraud-transactions-prod-f5g6h  [billingMode=PROVISIONED, readCapacity=25, writeCapacity=25" in out


def test_plan_diff_shows_differing_settings_side_by_side(capsys):
    assert main(["--diff", "staging", "prod"]) == 0
    lines = capsys.readouterr().out.splitlines()
    shards = next(line for line in lines if line.startswith("kinesisShardCount"))
    assert shards.split()[:3] == ["kinesisShardCount", "2", "4"]
    assert not any(line.startswith("apiThrottleRate") for line in lines)  # equal settings are not listed


def test_plan_reports_a_bad_stack_as_an_error(capsys):
    assert main(["nosuchstack"]) == 1
    assert "no stack file Pulumi.nosuchstack.yaml" in capsys.readouterr().err


def test_on_demand_billing_drops_capacity_and_autoscaling():
    config = {**stack_config("dev"), "fraud-pipeline:dynamodbBillingMode": "PAY_PER_REQUEST"}
    ev = evaluate("dev", config)
    for table in ev.of_type("aws:dynamodb/table:Table"):
        assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
        assert "readCapacity" not in table.inputs and "writeCapacity" not in table.inputs
    assert ev.of_type("aws:appautoscaling/target:Target") == []


def test_a_stack_setting_change_reaches_the_resources():
    # GIVEN dev with more shards and memory WHEN evaluated THEN the stream and functions follow
    config = {**stack_config("dev"), "fraud-pipeline:kinesisShardCount": "3",
              "fraud-pipeline:processingMemoryMb": "1536", "fraud-pipeline:networkEnabled": "true"}
    ev = evaluate("dev", config)
    assert ev.one("aws:kinesis/stream:Stream").inputs["shardCount"] == 3
    detection = ev.one("aws:lambda/function:Function", "fraud-detection")
    assert detection.inputs["memorySize"] == 1536
    assert "vpcConfig" in detection.inputs and len(ev.of_type("aws:ec2/vpc:Vpc")) == 1
