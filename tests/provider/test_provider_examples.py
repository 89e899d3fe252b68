"""The consumer examples (examples/yaml, examples/typescript) against the provider's schema.

A renamed or removed input, output or enum value breaks these tests before it breaks a consumer.
The YAML example's properties are plain literals, so they are also constructed through the
provider: the example is a valid pipeline, not only well-typed.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from provider_harness import COMPONENT_TYPE, PROVIDER_DIR, REPO_ROOT

YAML_EXAMPLE = REPO_ROOT / "examples" / "yaml" / "Pulumi.yaml"
TS_EXAMPLE = REPO_ROOT / "examples" / "typescript"
_OUTPUT_REF = re.compile(r"\$\{([\w-]+)\.(\w+)\}")


def _project(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def _check_value(name: str, value, prop: dict, schema: dict) -> None:
    """`value`, as a program writes it, fits the input's schema type."""
    if "$ref" in prop:
        enum = schema["types"][prop["$ref"].removeprefix("#/types/")]
        assert value in [v["value"] for v in enum["enum"]], f"{name} = {value!r} is not a value of {prop['$ref']}"
    elif prop["type"] == "array":
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), name
    elif prop["type"] == "object":
        assert isinstance(value, dict) and all(isinstance(v, str) for v in value.values()), name
    else:
        expected = {"string": str, "boolean": bool, "integer": int, "number": (int, float)}[prop["type"]]
        assert isinstance(value, expected) and (prop["type"] == "boolean" or not isinstance(value, bool)), name


def test_yaml_example_uses_the_package_from_this_repository():
    project = _project(YAML_EXAMPLE)
    assert project["runtime"] == "yaml"
    assert (YAML_EXAMPLE.parent / project["packages"]["fraud-pipeline"]).resolve() == PROVIDER_DIR
    assert [r["type"] for r in project["resources"].values()] == [COMPONENT_TYPE]


def test_yaml_example_properties_are_schema_inputs(served_schema, component_schema):
    project = _project(YAML_EXAMPLE)
    inputs = component_schema["inputProperties"]
    for name, resource in project["resources"].items():
        properties = resource["properties"]
        unknown = sorted(set(properties) - set(inputs))
        assert not unknown, f"examples/yaml resource {name}: {unknown} are not inputs of {COMPONENT_TYPE}"
        missing = sorted(set(component_schema["requiredInputs"]) - set(properties))
        assert not missing, f"examples/yaml resource {name}: required inputs {missing} missing"
        for key, value in properties.items():
            _check_value(key, value, inputs[key], served_schema)
        # The component's region names ARNs and policies; the default AWS provider deploys to aws:region.
        assert properties["region"] == project["config"]["aws:region"]


def test_yaml_example_outputs_are_schema_outputs(component_schema):
    project = _project(YAML_EXAMPLE)
    refs = [_OUTPUT_REF.fullmatch(v).groups() for v in project["outputs"].values()]
    assert refs and all(resource in project["resources"] for resource, _ in refs)
    assert {output for _, output in refs} <= set(component_schema["properties"])


def test_yaml_example_constructs_through_the_provider(provider):
    project = _project(YAML_EXAMPLE)
    ((name, resource),) = project["resources"].items()
    outcome = provider.construct(resource["properties"], stack="qa", name=name,
                                 config={"aws:region": project["config"]["aws:region"]})
    assert outcome.error is None, outcome.error_text
    assert outcome.state["tableName"] == "fraud-transactions-qa-team1"
    table = next(r for r in outcome.resources if r.type == "aws:dynamodb/table:Table")
    assert table.inputs["billingMode"] == "PAY_PER_REQUEST"
    assert {"aws:ec2/vpc:Vpc"}.isdisjoint(r.type for r in outcome.resources), "networkEnabled: false"


def _ts_args() -> tuple[str, list[str]]:
    source = (TS_EXAMPLE / "index.ts").read_text()
    match = re.search(r"new fraudPipeline\.FraudPipeline\(\"([\w-]+)\", \{\n(.*?)\n\}\);", source, re.S)
    assert match, "index.ts creates one fraudPipeline.FraudPipeline with an object literal"
    keys = re.findall(r"^    (\w+):", match.group(2), re.M)
    return source, keys


def test_typescript_example_arguments_and_outputs_are_in_the_schema(component_schema):
    source, keys = _ts_args()
    inputs = component_schema["inputProperties"]
    assert keys and not sorted(set(keys) - set(inputs)), f"not inputs: {sorted(set(keys) - set(inputs))}"
    assert set(component_schema["requiredInputs"]) <= set(keys)
    outputs = re.findall(r"^export const \w+ = fraud\.(\w+);$", source, re.M)
    assert outputs and set(outputs) <= set(component_schema["properties"])
    # The same settings as the YAML example, so the two document one pipeline.
    assert keys == list(_project(YAML_EXAMPLE)["resources"]["payments-fraud"]["properties"])


def test_typescript_example_links_the_generated_sdk():
    package = json.loads((TS_EXAMPLE / "package.json").read_text())
    # What `pulumi package add` / `pulumi install` link for a package named fraud-pipeline (namespace pulumi).
    assert package["dependencies"]["@pulumi/fraud-pipeline"] == "file:sdks/fraud-pipeline"
    assert 'from "@pulumi/fraud-pipeline"' in (TS_EXAMPLE / "index.ts").read_text()
    project = _project(TS_EXAMPLE / "Pulumi.yaml")
    assert (TS_EXAMPLE / project["packages"]["fraud-pipeline"]).resolve() == PROVIDER_DIR
    assert json.loads((TS_EXAMPLE / "tsconfig.json").read_text())["files"] == ["index.ts"]


@pytest.mark.parametrize("example", [YAML_EXAMPLE, TS_EXAMPLE / "Pulumi.yaml"])
def test_examples_region_is_the_stack_region(example):
    assert _project(example)["config"]["aws:region"] == "eu-west-1"
