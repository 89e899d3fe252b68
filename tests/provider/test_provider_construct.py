"""`Construct` through the provider plugin, offline: what another language's program gets.

The provider process (started as the language host starts it) is sent `ConstructRequest`s over
gRPC, as the engine sends them for a program that creates a `fraud-pipeline:index:FraudPipeline`;
its child registrations and invokes go to a fake resource monitor that records them with the
repository's own `RecordingMonitor(AwsMocks)`, the recorder behind `evaluate(stack)`. So a
construct from the dev stack file's settings can be compared, resource by resource, with the dev
stack's program.
"""

import re

import pytest
from provider_harness import COMPONENT_TYPE, stack_inputs
from pulumi.runtime import rpc

# Exports of the repository's __main__.py -> the component output each one is.
EXPORT_OF_OUTPUT = {
    "apiEndpoint": "apiEndpoint", "labelEndpoint": "labelEndpoint", "apiKeyId": "apiKeyId",
    "tableName": "transactionsTable", "featuresTableName": "featuresTable", "streamName": "kinesisStream",
    "alertQueueUrl": "alertQueueUrl", "dlqUrl": "dlqUrl", "alertTopicArn": "alertTopicArn",
    "archiveBucket": "archiveBucket", "defaultModelKey": "defaultModelKey", "kmsKeyArn": "kmsKeyArn",
    "stateMachineArn": "stateMachineArn", "dashboardName": "dashboardName",
}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _comparable(resource) -> dict:
    """A recorded resource as plain data: assets by their contents' description, the random card-token key masked."""
    import pulumi

    def plain(value):
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        if isinstance(value, (pulumi.Asset, pulumi.Archive)):
            return [type(value).__name__, plain(dict(vars(value)))]
        return value

    inputs = plain(resource.inputs)
    if resource.type == "aws:ssm/parameter:Parameter" and resource.name.endswith("-card-token-key"):
        # params.py draws this key at random for every evaluation (no two environments share tokens).
        assert _HEX64.match(inputs["value"]), "the card-token key is 64 hex characters"
        inputs["value"] = "<random 64 hex>"
    return {"type": resource.type, "custom": resource.custom, "parent": resource.parent, "inputs": inputs,
            "depends_on": sorted(resource.depends_on), "ignore_changes": resource.ignore_changes,
            "replace_on_changes": resource.replace_on_changes}


def test_construct_registers_the_stacks_pipeline(constructed, stack):
    """For each stack file, the provider's FraudPipeline is resource for resource the stack program's."""
    outcome = constructed(stack.stack)
    assert outcome.error is None, outcome.error_text
    by_urn = {r.urn: r for r in outcome.resources}
    program = {r.urn: r for r in stack.resources}
    custom = sorted(r.type for r in outcome.resources if r.custom)
    assert custom == sorted(r.type for r in stack.custom_resources())
    assert len(custom) > 100
    assert set(by_urn) == set(program), "same resources, same URNs (names, parents, types)"
    different = [urn for urn in program if _comparable(by_urn[urn]) != _comparable(program[urn])]
    assert not different, f"{len(different)} resource(s) differ from the {stack.stack} program's, e.g. {different[:3]}"


def test_dev_construct_is_the_same_component_type_python_programs_create(dev_construct, dev):
    assert dev_construct.urn.endswith(f"::pulumi:pulumi:Stack${COMPONENT_TYPE}::fraud")
    (component,) = [r for r in dev.resources if r.type == COMPONENT_TYPE]
    assert component.urn == dev_construct.urn


def test_dev_construct_outputs(dev_construct, dev, component_schema):
    state = dev_construct.state
    assert set(state) == set(component_schema["properties"])
    for output, export in EXPORT_OF_OUTPUT.items():
        assert state[output] == dev.exports[export], output
    assert state["apiEndpoint"].startswith("https://") and state["apiEndpoint"].endswith("/v1/transactions")
    assert set(state["functionNames"]) == {"api", "ingest", "detection", "notification", "review", "label",
                                           "label-ingest"}
    assert state["eventBusName"].startswith("fraud-") and state["opsTopicArn"].startswith("arn:aws:sns:")


def test_bad_setting_fails_construct_naming_the_input_and_the_rule(provider):
    outcome = provider.construct({**stack_inputs("dev"), "kinesisShardCount": 0, "reviewScore": 80, "blockScore": 70})
    assert outcome.error is not None, "a bad setting must fail the construct"
    text = outcome.error_text
    # PipelineSettings' own messages, every problem at once, naming the input (its stack-file key).
    assert "kinesisShardCount = 0: out of range: must be 1 to 500" in text, text
    assert "reviewScore = 80: must be below blockScore (70)" in text, text
    assert outcome.resources == [], "validation happens before anything is registered"


@pytest.mark.parametrize("change, message", [
    ({"alertEmailSubscribers": ["ops@example.com", "not-an-email"]},
     "alertEmailSubscribers = ['ops@example.com', 'not-an-email']: invalid item(s) ['not-an-email']: must be e-mail addresses"),
    ({"kinesisShardCount": 2.5}, "kinesisShardCount = 2.5: wrong type: expected a whole number"),
    ({"environmentSuffix": "Team_1"}, "environmentSuffix = 'Team_1': invalid: must be 1-8 lowercase letters and digits"),
])
def test_bad_item_type_or_pattern_fail_with_the_settings_messages(provider, change, message):
    outcome = provider.construct({**stack_inputs("dev"), **change})
    assert message in outcome.error_text, outcome.error_text
    assert outcome.resources == []


@pytest.mark.parametrize("missing", ["environment", "environmentSuffix", "region"])
def test_required_input_missing(provider, missing):
    inputs = {k: v for k, v in stack_inputs("dev").items() if k != missing}
    outcome = provider.construct(inputs, config={})
    assert f"Missing required input '{missing}' on 'FraudPipeline'" in outcome.error_text
    assert outcome.resources == []


def test_value_outside_an_enum_is_refused_naming_the_input(provider):
    # Enum inputs are checked by the SDK against the schema's values before the settings see them.
    outcome = provider.construct({**stack_inputs("dev"), "logRetentionDays": 8})
    assert "logRetentionDays: Invalid value 8.0" in outcome.error_text, outcome.error_text
    assert "LogRetentionDays" in outcome.error_text
    assert outcome.resources == []


def test_region_must_be_the_stacks_aws_region(provider):
    outcome = provider.construct({**stack_inputs("dev"), "region": "eu-west-1"}, config={"aws:region": "us-east-1"})
    assert ("region = 'eu-west-1': must be the stack's aws:region ('us-east-1')" in outcome.error_text), outcome.error_text
    assert outcome.resources == []


def test_settings_from_other_resources_outputs_are_refused(provider):
    """A setting that depends on another resource (the engine sends its dependencies) or is unknown at preview.

    (Integer inputs never get here: the SDK's own int conversion fails first on an Output. The
    schema marks every setting plain, so generated SDKs only send plain values.)
    """
    upstream = "urn:pulumi:dev::fraud-pipeline::aws:ssm/parameter:Parameter::suffix"
    outcome = provider.construct({**stack_inputs("dev"), "environmentSuffix": "b2c3d", "networkEnabled": rpc.UNKNOWN},
                                 dependencies={"environmentSuffix": [upstream]}, dry_run=True)
    for name in ("environmentSuffix", "networkEnabled"):
        assert f"{name}: must be a plain value, known at preview" in outcome.error_text, outcome.error_text
    assert outcome.resources == []


def test_minimal_inputs_take_the_settings_defaults(provider):
    """Only the three required inputs: every other setting is PipelineSettings' default."""
    outcome = provider.construct({"environment": "qa", "environmentSuffix": "team1", "region": "eu-west-1"},
                                 stack="qa", name="payments-fraud")
    assert outcome.error is None, outcome.error_text
    types = [r.type for r in outcome.resources]
    stream = next(r for r in outcome.resources if r.type == "aws:kinesis/stream:Stream")
    assert stream.inputs["shardCount"] == 1  # kinesisShardCount's default
    assert "aws:ec2/vpc:Vpc" in types  # networkEnabled defaults to true
    assert outcome.state["tableName"].endswith("-qa-team1")
