"""docs/openapi.yaml: the published contract is the program's API, and every answer the API can give is in it.

A contract is only worth publishing if it cannot drift: the committed file must be what the program
generates now, its request schemas must be the API Gateway models themselves, and every status a
handler can build must be documented (a handler that learns a new status fails here first).
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import OpenAPIV30SpecValidator, validate

from fraud_pipeline import openapi
from fraud_pipeline.evaluation import REPO_ROOT
from fraud_pipeline.local.topology import topology

API_REFERENCE = REPO_ROOT / "docs" / "handlers.md"
JSON = "application/json"


@pytest.fixture
def topo(dev):
    return topology(dev)


@pytest.fixture
def document(topo):
    return openapi.openapi_document(topo.api)


@pytest.fixture
def committed():
    return yaml.safe_load(openapi.DEFAULT_OUTPUT.read_text())


def deref(schema, document):
    """`schema` with every `#/components/...` reference replaced by what it names (the contract has no cycles)."""
    if isinstance(schema, dict):
        if set(schema) == {"$ref"}:
            target = document
            for part in schema["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return deref(target, document)
        return {k: deref(v, document) for k, v in schema.items()}
    if isinstance(schema, list):
        return [deref(v, document) for v in schema]
    return schema


def operation(document, method, path):
    return document["paths"][path][method.lower()]


def response_schema(document, method, path, status):
    return deref(operation(document, method, path)["responses"][str(status)]["content"][JSON]["schema"], document)


def request_schema(document, method, path):
    return deref(operation(document, method, path)["requestBody"]["content"][JSON]["schema"], document)


# --- the committed file ----------------------------------------------------------------------------------

def test_committed_document_is_what_the_program_generates(document):
    # GIVEN the dev stack evaluated WHEN its API is rendered THEN it is docs/openapi.yaml, byte for byte
    assert openapi.DEFAULT_OUTPUT.read_text() == openapi.to_yaml(document), (
        f"docs/openapi.yaml is not the API the program declares: regenerate with `{openapi.REGENERATE}`")


def test_every_stack_publishes_the_same_contract(stack, document):
    # One file documents every stack: nothing in it may depend on a stack's settings.
    assert openapi.openapi_document(topology(stack).api) == document


def test_check_passes_on_the_committed_file_and_names_the_fix_otherwise(document, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(openapi, "document_for", lambda stack="dev": document)
    assert openapi.main(["--check"]) == 0
    stale = tmp_path / "openapi.yaml"
    stale.write_text(openapi.to_yaml(document).replace("minLength: 12", "minLength: 13"))
    assert openapi.main(["--check", "--output", str(stale)]) == 1
    err = capsys.readouterr().err
    assert f"regenerate with: {openapi.REGENERATE} --output {stale}" in err and "-          minLength: 13" in err
    assert openapi.main(["--output", str(stale)]) == 0 and openapi.main(["--check", "--output", str(stale)]) == 0


# --- a valid OpenAPI 3.0 document ---------------------------------------------------------------------------

def test_document_is_valid_openapi_3_0(committed):
    assert committed["openapi"].startswith("3.0.")
    validate(copy.deepcopy(committed), cls=OpenAPIV30SpecValidator)


def test_every_route_of_the_program_is_documented_with_its_key_and_parameters(topo, document):
    scheme = document["components"]["securitySchemes"][openapi.SECURITY_SCHEME]
    assert scheme == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    assert document["servers"][0]["url"] == f"/{topo.api.stage}"
    assert {(m, p) for p, ops in document["paths"].items() for m in ops} == {
        (r.method.lower(), r.path) for r in topo.api.routes}
    for route in topo.api.routes:
        op = operation(document, route.method, route.path)
        assert op["security"] == ([{openapi.SECURITY_SCHEME: []}] if route.api_key_required else [])
        assert [(p["name"], p["in"], p["required"]) for p in op.get("parameters", [])] == [
            (name, "path", True) for name in route.path_parameters]
        assert op["requestBody"]["required"] is True


def test_a_server_url_replaces_the_stage_path(topo):
    url = "http://127.0.0.1:8080/v1"
    assert openapi.openapi_document(topo.api, url)["servers"][0]["url"] == url


# --- the request schemas are the API Gateway models ---------------------------------------------------------

def as_draft04(schema):
    """An OpenAPI 3.0 schema back in draft-04, written independently of `openapi.openapi_schema`."""
    if isinstance(schema, list):
        return [as_draft04(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "anyOf" and all(set(v) == {"type"} for v in value):
            out["type"] = [v["type"] for v in value]
        elif key == "properties":
            out[key] = {name: as_draft04(v) for name, v in value.items()}
        else:
            out[key] = as_draft04(value)
    return out


def resource_path(dev, resource_id):
    resources = {r.outputs["id"]: r.inputs for r in dev.of_type("aws:apigateway/resource:Resource")}
    parts = []
    while resource_id in resources:
        parts.insert(0, resources[resource_id]["pathPart"])
        resource_id = resources[resource_id]["parentId"]
    return "/" + "/".join(parts)


def test_each_request_schema_is_the_api_gateway_model_of_its_route(dev, document):
    # GIVEN every method of the plan and the Model resource it validates with
    models = {m.inputs["name"]: json.loads(m.inputs["schema"]) for m in dev.of_type("aws:apigateway/model:Model")}
    methods = dev.of_type("aws:apigateway/method:Method")
    assert len(methods) == len(document["paths"])
    for method in methods:
        name = method.inputs["requestModels"][JSON]
        path = resource_path(dev, method.inputs["resourceId"])
        body = operation(document, method.inputs["httpMethod"], path)["requestBody"]["content"][JSON]["schema"]
        # THEN the documented schema is that model, named as API Gateway names it, with only `$schema` dropped
        assert body == {"$ref": f"#/components/schemas/{name}"}
        documented = document["components"]["schemas"][name]
        assert "$schema" not in documented
        assert as_draft04(documented) == {k: v for k, v in models[name].items() if k != "$schema"}


@pytest.mark.parametrize("timestamp, valid", [(1763719200000, True), ("2025-11-21T12:00:00Z", True),
                                              (True, False), (None, False), ([1], False)])
def test_the_converted_type_union_accepts_what_the_model_accepts(topo, document, timestamp, valid):
    model = topo.api.routes[0].schema
    body = {"amount": 1.5, "merchant": "m", "card_number": "4111111111111111", "location": "Paris, France",
            "timestamp": timestamp}
    documented = request_schema(document, "POST", topo.api.routes[0].path)
    assert jsonschema.Draft4Validator(model).is_valid(body) is valid
    assert OAS30Validator(documented).is_valid(body) is valid


def test_conversion_spells_only_what_3_0_lacks_and_refuses_what_it_cannot_carry():
    assert openapi.openapi_schema({"$schema": "x", "type": ["string", "null"], "maxLength": 3}) == {
        "type": "string", "nullable": True, "maxLength": 3}
    assert openapi.openapi_schema({"properties": {"a": {"type": ["integer", "string"]}}}) == {
        "properties": {"a": {"anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    with pytest.raises(ValueError, match="patternProperties"):
        openapi.openapi_schema({"properties": {"a": {"patternProperties": {}}}})


# --- every status a handler builds is documented ---------------------------------------------------------------

def _status_literals(node):
    """Status codes an expression can evaluate to: an int literal 100-599, or either branch of `a if c else b`."""
    if isinstance(node, ast.IfExp):
        return _status_literals(node.body) | _status_literals(node.orelse)
    if isinstance(node, ast.Constant) and type(node.value) is int and 100 <= node.value <= 599:
        return {node.value}
    return set()


def statuses_built(source: str) -> set[int]:
    """Every status a handler module can answer: the first argument of each call (its response builders take
    the status first: `_response(201, ...)`, `error(400, ...)`, `response(201 if ... else 200, ...)`) and
    every `"statusCode": N` it writes."""
    found: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args:
            found |= _status_literals(node.args[0])
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "statusCode":
                    found |= _status_literals(value)
    return found


def handler_source(topo, route) -> tuple[str, str]:
    """The module behind the route's function, read, not imported: a handler imported outside an invocation's
    environment keeps a Powertools metrics namespace of None, and every later invocation in this process fails."""
    module = topo.functions[route.function].handler.rsplit(".", 1)[0]
    return module, Path(importlib.util.find_spec(module).origin).read_text()


def test_the_scan_finds_each_kind_of_status_a_handler_writes():
    source = 'a = _response(503, {}); b = error(201 if x else 200, []); c = {"statusCode": 404}; d = int(t * 1000)'
    assert statuses_built(source) == {200, 201, 404, 503}


def test_every_status_a_handler_builds_is_documented_and_nothing_else(topo, document):
    # GIVEN the function behind each route, as the program wires it
    for route in topo.api.routes:
        module, source = handler_source(topo, route)
        built = statuses_built(source)
        documented = set(openapi.function_answers(route))
        # THEN the contract lists exactly the statuses the handler's code can answer
        assert built - documented == set(), (
            f"{module} (behind {route.method} {route.path}) can answer {sorted(built - documented)}, which "
            f"fraud_pipeline/openapi.py does not document: add them to FUNCTION_ANSWERS, then `{openapi.REGENERATE}`")
        assert documented - built == set(), f"{module} never answers {sorted(documented - built)}: remove them"
        assert {str(s) for s in built} <= set(operation(document, route.method, route.path)["responses"])


def test_every_gateway_response_of_the_program_is_documented_with_its_body(topo, document):
    # GIVEN the program's gateway responses WHEN looking for each in the document THEN it is under its status,
    # with its rendered template as an example that the documented schema accepts
    for kind, (status, template) in topo.api.responses.items():
        key = status or openapi.GATEWAY_TYPES[kind].status
        found = []
        for route in topo.api.routes:
            responses = operation(document, route.method, route.path)["responses"]
            media = responses.get(key, {}).get("content", {}).get(JSON, {})
            if kind in media.get("examples", {}):
                example = media["examples"][kind]["value"]
                assert example == openapi.render_template(template, openapi.GATEWAY_TYPES[kind].message)
                OAS30Validator(deref(media["schema"], document)).validate(example)
                found.append(route.path)
        assert found, f"gateway response {kind} ({key}) is in no operation"


def test_gateway_responses_are_only_documented_where_they_can_happen(topo, document):
    for route in topo.api.routes:
        responses = operation(document, route.method, route.path)["responses"]
        examples = {k for r in responses.values() for k in r["content"][JSON].get("examples", {})}
        assert ("BAD_REQUEST_BODY" in examples) is (route.validate_body and route.schema is not None)
        assert ("INVALID_API_KEY" in examples) is route.api_key_required


def test_no_documented_response_can_carry_a_card_number(document):
    def properties(schema):
        if isinstance(schema, dict):
            yield from schema.get("properties", {})
            for value in schema.values():
                yield from properties(value)
        elif isinstance(schema, list):
            for value in schema:
                yield from properties(value)

    responses = [r for ops in document["paths"].values() for op in ops.values() for r in op["responses"].values()]
    assert "card_number" not in set(properties(deref(responses, document)))


# --- the API reference's examples (docs/handlers.md) against the contract ----------------------------------------

def api_reference_section() -> str:
    text = API_REFERENCE.read_text()
    return text[text.index("## The API: `POST /transactions`"):text.index("## The stream: Kinesis records")]


def api_reference_requests() -> list[tuple[str, dict]]:
    """(the comment above it, body) of each curl example of the API reference's API section."""
    section = api_reference_section()
    out = []
    for match in re.finditer(r"-d '(\{.*?\})'", section, re.DOTALL):
        before = section[:match.start()]
        comment = before[:before.rindex("curl ")].rstrip("\n").rsplit("\n", 1)[-1]
        out.append((comment, json.loads(match.group(1))))
    return out


def api_reference_responses() -> list[tuple[int, dict]]:
    """(status, body) of each JSON response of the API reference's "Responses"."""
    section = api_reference_section()
    # a bold status, then (before the next bold status) its first ```json block
    blocks = r"^\*\*(\d{3})\*\*(?:(?!^\*\*\d{3}\*\*).)*?```json\n(.*?)```"
    return [(int(m.group(1)), json.loads(m.group(2))) for m in re.finditer(blocks, section, re.MULTILINE | re.DOTALL)]


def test_the_documented_transactions_are_accepted_by_the_documented_model_and_the_invalid_one_refused(document):
    schema = request_schema(document, "POST", "/transactions")
    examples = api_reference_requests()
    assert len(examples) >= 3
    for comment, body in examples:
        assert OAS30Validator(schema).is_valid(body) is ("invalid" not in comment), (comment, body)


def test_the_documented_responses_conform_to_the_documented_schemas(document):
    examples = api_reference_responses()
    assert {status for status, _ in examples} >= {201, 200, 400}
    for status, body in examples:
        OAS30Validator(response_schema(document, "POST", "/transactions", status)).validate(body)


def test_a_recorded_answer_conforms_to_the_documented_201_and_nothing_else_does(document):
    schema = response_schema(document, "POST", "/transactions", 201)
    recorded = {"message": "Transaction recorded successfully", "transaction_id": "txn-ABCDEFGHIJKLMNOPQRSTUVW",
                "timestamp": 1763719200000}
    OAS30Validator(schema).validate(recorded)
    assert not OAS30Validator(schema).is_valid({**recorded, "card_number": "4111111111111111"})
    assert not OAS30Validator(schema).is_valid({**recorded, "timestamp": "1763719200000"})
