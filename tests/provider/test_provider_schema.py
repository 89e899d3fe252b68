"""The package schema the provider plugin serves: what every Pulumi language's SDK is generated from.

The provider runs as the Python language host runs it (tests/provider/conftest.py), and
`GetSchema` is asked over gRPC.
"""

import dataclasses
import inspect
import json
import subprocess
import sys

import pulumi
from provider_harness import PROVIDER_DIR, REGENERATE, REPO_ROOT, SCHEMA_FILE

from fraud_pipeline import FraudPipeline
from fraud_pipeline.settings import setting_fields, setting_kind

TOKEN = "fraud-pipeline:index:FraudPipeline"
REQUIRED = ["environment", "environmentSuffix", "region"]
# The outputs other programs read (README "Using the component from another Pulumi program").
OUTPUTS = [
    "apiEndpoint", "labelEndpoint", "apiKeyId", "apiKeyValue", "alertTopicArn", "opsTopicArn", "tableName",
    "featuresTableName", "streamName", "alertQueueUrl", "dlqUrl", "archiveBucket", "kmsKeyArn", "eventBusName",
    "stateMachineArn", "dashboardName", "defaultModelKey", "functionNames",
]
_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def input_name(f: dataclasses.Field) -> str:
    return f.metadata["key"].split(":")[-1]


def default(f: dataclasses.Field):
    value = f.default_factory() if f.default is dataclasses.MISSING else f.default
    return list(value) if isinstance(value, tuple) else value


def test_served_schema_is_the_committed_schema_json(served_schema):
    committed = json.loads(SCHEMA_FILE.read_text())
    assert served_schema == committed, (
        f"the provider serves another schema than {SCHEMA_FILE.relative_to(REPO_ROOT)}: "
        f"regenerate it with `{REGENERATE}` and review the diff")


def test_regenerate_command_agrees(served_schema):
    """`python provider/generate_schema.py --check` (the documented command) passes on the committed file."""
    done = subprocess.run([sys.executable, str(PROVIDER_DIR / "generate_schema.py"), "--check"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_package_and_type_token(served_schema):
    assert served_schema["name"] == "fraud-pipeline"
    assert list(served_schema["resources"]) == [TOKEN]
    assert served_schema["resources"][TOKEN]["isComponent"] is True


def test_every_setting_is_an_input_under_its_stack_file_name(component_schema):
    inputs = component_schema["inputProperties"]
    names = [input_name(f) for f in setting_fields()]
    assert names == list(inputs)[:len(names)], "settings, in declaration order, then the library's other args"
    assert list(inputs)[len(names):] == ["powertoolsLayerArn", "tags"]
    assert component_schema["requiredInputs"] == sorted(REQUIRED)
    for f in setting_fields():
        prop = inputs[input_name(f)]
        # Descriptions are the settings' own docs (read by the analyzer from the generated source).
        assert prop["description"].startswith(f.metadata["doc"]), input_name(f)
        if not f.metadata["required"]:
            assert f"Default: {json.dumps(default(f))}." in prop["description"], input_name(f)
        assert prop.get("plain") is True, f"{input_name(f)}: settings are validated at construct, so they are plain values"


def test_input_types(served_schema, component_schema):
    inputs = component_schema["inputProperties"]
    for f in setting_fields():
        prop, kind, choices = inputs[input_name(f)], setting_kind(f), f.metadata["choices"]
        if choices:
            ref = prop["$ref"]
            assert ref == f"#/types/fraud-pipeline:index:{input_name(f)[0].upper()}{input_name(f)[1:]}"
            enum = served_schema["types"][ref.removeprefix("#/types/")]
            assert enum["type"] == _SCALARS[type(choices[0])]
            assert [v["value"] for v in enum["enum"]] == list(choices)
        elif kind is tuple:
            assert prop["type"] == "array" and prop["items"]["type"] == "string", input_name(f)
        else:
            assert prop["type"] == _SCALARS[kind], input_name(f)
    # Spot checks of the facts consumers rely on.
    assert inputs["kinesisShardCount"]["type"] == "integer"
    assert inputs["errorRateThresholdPercent"]["type"] == "number"
    assert inputs["networkEnabled"]["type"] == "boolean"
    assert inputs["blockedMerchants"]["type"] == "array"
    assert inputs["blockedMerchants"]["items"]["type"] == "string"
    assert [v["value"] for v in served_schema["types"]["fraud-pipeline:index:DynamodbBillingMode"]["enum"]] == [
        "PROVISIONED", "PAY_PER_REQUEST"]
    assert served_schema["types"]["fraud-pipeline:index:LogRetentionDays"]["type"] == "integer"
    assert inputs["tags"]["type"] == "object" and inputs["tags"]["additionalProperties"]["type"] == "string"
    assert "settings" not in inputs and "handlersPath" not in inputs


def test_outputs_are_the_components_outputs(component_schema):
    outputs = component_schema["properties"]
    assert set(OUTPUTS) <= set(outputs)
    # Exactly the Output attributes FraudPipeline declares (plus its plain default_model_key and function_names).
    declared = {name for name in inspect.get_annotations(FraudPipeline) if not name.startswith("_")}
    camel = {n.split("_")[0] + "".join(w.title() for w in n.split("_")[1:]) for n in declared}
    assert set(outputs) == camel
    for name in OUTPUTS:
        if name == "functionNames":
            assert outputs[name]["type"] == "object" and outputs[name]["additionalProperties"]["type"] == "string"
        else:
            assert outputs[name]["type"] == "string", name
    assert sorted(component_schema["required"]) == sorted(outputs)
    # Real annotations (no `from __future__ import annotations` in pipeline.py): what the analyzer reads.
    assert inspect.get_annotations(FraudPipeline)["api_endpoint"] == pulumi.Output[str]
