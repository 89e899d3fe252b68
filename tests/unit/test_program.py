"""The program as a user meets it: bad stack files stop the preview; the component works without any stack file."""

import json
import runpy
from pathlib import Path

import pytest

from fraud_pipeline.evaluation import evaluate, stack_config
from fraud_pipeline.settings import SettingsError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "component_program" / "__main__.py"


@pytest.mark.parametrize("key, value, fragment", [
    ("fraud-pipeline:kinesisShardCount", "0", "kinesisShardCount = 0: out of range: must be 1 to 500"),
    ("fraud-pipeline:kinesisShards", "2", "kinesisShards = '2': unknown key"),
    ("fraud-pipeline:tracingEnabled", "maybe", "tracingEnabled = 'maybe': wrong type: expected true or false"),
])
def test_bad_stack_file_fails_preview_before_any_resource(key, value, fragment):
    # GIVEN the prod stack file with one bad value
    config = {**stack_config("prod"), key: value}
    monitors: list = []
    # WHEN the program is evaluated THEN it fails naming stack, key, value and rule, and created nothing
    with pytest.raises(SettingsError) as caught:
        evaluate("prod", config, monitor_sink=monitors)
    assert "stack 'prod' has invalid settings" in str(caught.value)
    assert any(fragment in p for p in caught.value.problems), caught.value.problems
    assert monitors[0].recorded == []


def test_missing_suffix_fails_preview():
    config = {k: v for k, v in stack_config("dev").items() if k != "fraud-pipeline:environmentSuffix"}
    with pytest.raises(SettingsError, match="environmentSuffix: missing key"):
        evaluate("dev", config)


def test_component_from_another_program_with_typed_args():
    # GIVEN a program that builds FraudPipeline from typed settings, with no stack file at all
    ev = evaluate("qa-program", {"aws:region": "eu-west-1"}, program=lambda: runpy.run_path(str(EXAMPLE)))
    # THEN its resources follow its own settings, names and region
    table = ev.one("aws:dynamodb/table:Table", "fraud-transactions")
    assert table.inputs["name"] == "fraud-transactions-qa-team1"
    assert ev.one("aws:kinesis/stream:Stream").inputs["shardCount"] == 2
    functions = ev.of_type("aws:lambda/function:Function")
    assert len(functions) == 7
    assert all(":eu-west-1:" in f.inputs["layers"][0] for f in functions)
    assert ev.of_type("aws:ec2/vpc:Vpc") == []
    assert ev.of_type("aws:apigateway/account:Account") == []
    assert table.inputs["tags"]["team"] == "payments" and table.inputs["tags"]["environment"] == "qa"
    detection = next(f for f in functions if f.inputs["name"].startswith("fraud-detection"))
    rules = json.loads(detection.inputs["environment"]["variables"]["RULES_JSON"])
    assert rules["blocked_merchants"] == ["Unknown Store", "Shady Shop"]
    assert ev.exports["fraudApiEndpoint"].endswith("/transactions")


def test_readme_shows_the_example_program_verbatim():
    readme = (REPO / "README.md").read_text()
    body = EXAMPLE.read_text().split('"""', 2)[2].strip()
    assert body in readme


def test_non_settings_argument_is_refused():
    import pulumi  # noqa: F401

    from fraud_pipeline import FraudPipeline

    def program():
        FraudPipeline("x", {"settings": {"environment": "dev"}})

    with pytest.raises(TypeError, match="must be a PipelineSettings"):
        evaluate("dev", program=program)


def test_the_private_config_api_is_still_there():
    # The program lists the stack's config keys through the SDK's private `pulumi.runtime.config`
    # (fraud_pipeline/evaluation.py configured_keys: there is no public way). If this fails, the SDK
    # changed under it: replace configured_keys, or unknown stack-file keys would go unnoticed.
    from pulumi.runtime import config as runtime_config

    assert hasattr(runtime_config, "CONFIG") and hasattr(runtime_config.CONFIG, "get"), "pulumi.runtime.config.CONFIG is gone"
    assert callable(getattr(runtime_config, "get_config_env", None)), "pulumi.runtime.config.get_config_env is gone"
    ev = evaluate("dev", {**stack_config("dev"), "fraud-pipeline:kinesisShardCount": "1"})
    assert ev.one("aws:kinesis/stream:Stream").inputs["shardCount"] == 1
