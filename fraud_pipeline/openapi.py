"""The API's published contract: an OpenAPI 3.0.3 document of the REST API the program declares.

    python -m fraud_pipeline.openapi                 # write docs/openapi.yaml
    python -m fraud_pipeline.openapi --check         # exit 1 when docs/openapi.yaml is not what the program declares

Integrators need one machine-readable description of the API (for client
generation, mocks, contract tests), and it is only worth having if it cannot
drift from what API Gateway enforces. So nothing the program states is
restated here: the routes, their path parameters, the request models (the very
JSON schemas API Gateway validates bodies with), the API-key requirement, the
stage and the gateway responses are read from the evaluated program
(`local.topology.ApiSpec`, the reading the local API serves too). What the
program cannot say, what each function answers, is stated once, per route, in
`FUNCTION_ANSWERS`; tests/unit/test_openapi.py holds it to the handler code,
so a status a handler can build and this document does not list fails the build.

OpenAPI 3.0 and not 3.1, because API Gateway models are JSON Schema draft-04
(`exclusiveMinimum: true` beside `minimum`, ...), which is what 3.0's schema
object speaks. Only what 3.0 cannot spell is converted (`openapi_schema`):
`$schema` is dropped and a type list becomes `anyOf`; a model keyword 3.0
does not have is an error here rather than a silently different contract.
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import api, defaults
from .evaluation import REPO_ROOT, evaluate
from .local.topology import ApiSpec, RouteSpec, topology

OPENAPI_VERSION = "3.0.3"
DEFAULT_OUTPUT = REPO_ROOT / "docs" / "openapi.yaml"
REGENERATE = "python -m fraud_pipeline.openapi"
SECURITY_SCHEME = "ApiKey"
ERROR = "Error"
FUNCTION = "The function"
HEADER = (f"# The API's contract, generated from the program by `{REGENERATE}`; do not edit.\n"
          f"# `{REGENERATE} --check` (and tests/unit/test_openapi.py) fail when it is not what the program declares.\n")


# --- request models: draft-04 as OpenAPI 3.0 schema objects ----------------------------------------

#: Draft-04 keywords with no OpenAPI 3.0 spelling: a model using one cannot be published faithfully.
UNSUPPORTED_KEYWORDS = ("id", "$ref", "definitions", "patternProperties", "dependencies", "additionalItems")


def openapi_schema(model: Mapping[str, Any]) -> dict[str, Any]:
    """A draft-04 schema as an OpenAPI 3.0 schema object: the same constraints, in 3.0's spelling."""
    unsupported = sorted(set(model) & set(UNSUPPORTED_KEYWORDS))
    if unsupported:
        raise ValueError(f"schema keyword(s) {unsupported} have no OpenAPI 3.0 equivalent")
    if isinstance(model.get("type"), list) and "anyOf" in model:
        raise ValueError("a type list beside `anyOf` has no single OpenAPI 3.0 spelling")
    out: dict[str, Any] = {}
    for key, value in model.items():
        if key == "$schema":
            continue
        if key == "type" and isinstance(value, list):
            out.update(_type_union(value))
        elif key in ("not", "additionalProperties", "items") and isinstance(value, Mapping):
            out[key] = openapi_schema(value)
        elif key == "items":
            raise ValueError("tuple `items` (a list of schemas) has no OpenAPI 3.0 equivalent")
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = [openapi_schema(v) for v in value]
        elif key == "properties":
            out[key] = {name: openapi_schema(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def _type_union(types: list[str]) -> dict[str, Any]:
    """`"type": [a, b]` in 3.0: `anyOf` one schema per type; `"null"` is `nullable`."""
    alternatives: list[dict[str, Any]] = [{"type": t} for t in types if t != "null"]
    if not alternatives:
        raise ValueError("a schema of type null only has no OpenAPI 3.0 equivalent")
    if "null" in types:
        alternatives[0]["nullable"] = True
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


# --- what the functions answer -----------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    """One status a route's function answers: when, the component of its body, its notable headers."""

    description: str
    schema: str
    headers: tuple[str, ...] = ()


#: Response headers worth documenting (the functions also send Content-Type, Cache-Control, X-Content-Type-Options).
HEADERS: dict[str, dict[str, Any]] = {
    "Retry-After": {"description": "Seconds to wait before sending the same request again.",
                    "schema": {"type": "integer"}},
    "Allow": {"description": "The methods the resource serves.", "schema": {"type": "string"}},
}


def _error_schema() -> dict[str, Any]:
    """The one error shape of the functions (`api_handler._error`), which the gateway responses copy."""
    detail = _object({"field": {"type": "string"}, "message": {"type": "string"}})
    return {"description": "`details` lists every problem as {field, message}; messages never quote what was sent.",
            **_object({"error": {"type": "string"}, "details": {"type": "array", "items": detail}})}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A closed object with every property required: what the functions and templates send, exactly."""
    return {"type": "object", "required": list(properties), "properties": properties, "additionalProperties": False}


def _transaction_recorded(route: RouteSpec) -> dict[str, Any]:
    return _object({
        "message": {"type": "string"},
        "transaction_id": {"type": "string", "description": "The client's idempotency key, or the id generated."},
        "timestamp": {"type": "integer", "description": "Epoch milliseconds; on a replay, the original's."},
    })


def _label_recorded(route: RouteSpec) -> dict[str, Any]:
    """The label answer; `label` and `source` are the request model's own."""
    model = openapi_schema(route.schema or {}).get("properties", {})
    return _object({
        "message": {"type": "string"},
        "transaction_id": {"type": "string"},
        "timestamp": {"type": "integer", "description": "The transaction's timestamp (epoch milliseconds)."},
        "label": model.get("label", {"type": "string"}),
        "source": model.get("source", {"type": "string"}),
        "labelled_at": {"type": "integer", "nullable": True,
                        "description": "When the stored label was established (epoch milliseconds)."},
        "previous_label": {"type": "string", "nullable": True,
                           "description": "The label the stored one replaced; null when it was the first."},
    })


_NOT_POST = ("Method not allowed: the function's answer to any method but POST (`Allow: POST`). "
             "Through API Gateway, which routes POST only, another method is answered 403 instead.")
#: The limits are the handlers' (`MAX_BODY_BYTES`), stated in the answer itself: importing a handler module
#: here, outside an invocation's environment, would fix its Powertools state (the metrics namespace) wrongly.
_TOO_LARGE = "The body is over the function's size limit, which `details[0].message` states in bytes."
_DEFECT = "The function failed unexpectedly (a defect; nothing about the request caused it)."


def _transaction_answers(route: RouteSpec) -> dict[int, Answer]:
    """`handlers/api_handler.py`."""
    return {
        201: Answer("Recorded.", "TransactionRecorded"),
        200: Answer("This `transaction_id` was recorded before (a replay): the same id and the original "
                    "timestamp; nothing written.", "TransactionRecorded"),
        400: Answer("Invalid input (the function's own rules, finer than the model's): every problem "
                    "listed; nothing written. Body-level problems name the field `body`.", ERROR),
        405: Answer(_NOT_POST, ERROR, ("Allow",)),
        409: Answer("This `transaction_id` was already used for a different transaction; nothing written.", ERROR),
        413: Answer(_TOO_LARGE, ERROR),
        500: Answer(_DEFECT, ERROR),
        503: Answer("The service could not record it now (e.g. DynamoDB throttling after retries); "
                    "retry with the same `transaction_id`.", ERROR, ("Retry-After",)),
    }


def _label_answers(route: RouteSpec) -> dict[int, Answer]:
    """`handlers/label_api.py`."""
    return {
        201: Answer("Label recorded (new, or a different label or source than stored).", "LabelRecorded"),
        200: Answer("The same label and source were already recorded; nothing written.", "LabelRecorded"),
        400: Answer("Invalid path id or body: every problem listed.", ERROR),
        404: Answer("No transaction with this id.", ERROR),
        405: Answer(_NOT_POST, ERROR, ("Allow",)),
        413: Answer(_TOO_LARGE, ERROR),
        500: Answer(_DEFECT, ERROR),
        503: Answer("The service could not record it now; sending the same request again is safe.",
                    ERROR, ("Retry-After",)),
    }


#: (method, resource path) -> what the route's function answers. A route without an entry is still
#: published (parameters, body, security, gateway responses); the handler test names what it lacks.
FUNCTION_ANSWERS: dict[tuple[str, str], Callable[[RouteSpec], dict[int, Answer]]] = {
    (api.HTTP_METHOD, f"/{api.RESOURCE_PATH}"): _transaction_answers,
    (api.HTTP_METHOD, f"/{api.LABEL_RESOURCE_PATH}"): _label_answers,
}

#: Component schemas of the function answers.
ANSWER_SCHEMAS: dict[str, Callable[[RouteSpec], dict[str, Any]]] = {
    ERROR: lambda route: _error_schema(),
    "TransactionRecorded": _transaction_recorded,
    "LabelRecorded": _label_recorded,
}


def function_answers(route: RouteSpec) -> dict[int, Answer]:
    """What the function behind `route` answers (empty for a route `FUNCTION_ANSWERS` does not know)."""
    answers = FUNCTION_ANSWERS.get((route.method, route.path))
    return answers(route) if answers else {}


# --- what API Gateway answers --------------------------------------------------------------------------

@dataclass(frozen=True)
class GatewayType:
    """API Gateway's facts about a gateway response type: when it answers, its default status, a sample
    `$context.error.messageString`, and whether it concerns every route or only some."""

    when: str
    status: str
    message: str
    applies: Callable[[RouteSpec], bool] = lambda route: True


#: `$context.error.messageString`: API Gateway's message, already a quoted JSON string.
MESSAGE_STRING = "$context.error.messageString"

GATEWAY_TYPES: dict[str, GatewayType] = {
    "BAD_REQUEST_BODY": GatewayType(
        "the body does not match the route's request model (request validation); the function is not invoked",
        "400", "Invalid request body", lambda route: route.validate_body and route.schema is not None),
    "INVALID_API_KEY": GatewayType(
        f"the `{defaults.API_KEY_HEADER}` header is missing or not a key of the usage plan", "403", "Forbidden",
        lambda route: route.api_key_required),
    "MISSING_AUTHENTICATION_TOKEN": GatewayType(
        "the request names no route of this API (another method or path, an empty path parameter): "
        "API Gateway answers it like a missing key", "403", "Missing Authentication Token"),
    "WAF_FILTERED": GatewayType("the web ACL blocked the request", "403", "Forbidden"),
    "THROTTLED": GatewayType("over the stage's or the key's rate or burst limit; retry with backoff",
                             "429", "Too Many Requests"),
    "QUOTA_EXCEEDED": GatewayType("the key's usage-plan quota for the period is used up", "429",
                                  "Limit Exceeded", lambda route: route.api_key_required),
    "REQUEST_TOO_LARGE": GatewayType("the request is over API Gateway's 10 MB payload limit", "413",
                                     "Request Too Long"),
    "DEFAULT_4XX": GatewayType("any other error API Gateway answers with a 4xx", "4XX", "Unsupported Media Type"),
    "DEFAULT_5XX": GatewayType("API Gateway got no usable answer from the function (502 when it failed or "
                               "answered malformed, 504 on a timeout) or another 5xx of its own",
                               "5XX", "Internal server error"),
}

#: API Gateway's body when a response type has no template of the program's.
BUILTIN_TEMPLATE = '{"message": ' + MESSAGE_STRING + "}"


@dataclass(frozen=True)
class GatewayAnswer:
    kind: str
    status: str          # "403", or a range: "4XX"
    when: str
    body: Any            # the template rendered with the type's sample message


def render_template(template: str, message: str) -> Any:
    """A gateway response body as API Gateway sends it when its error message is `message`."""
    text = template.replace(MESSAGE_STRING, json.dumps(message))
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"gateway response template is not JSON once {MESSAGE_STRING} is set: {template!r}") from None


def gateway_answers(spec: ApiSpec, route: RouteSpec) -> list[GatewayAnswer]:
    """The program's gateway responses that can answer a request to `route`."""
    out = []
    for kind, (status, template) in sorted(spec.responses.items()):  # the plan records them in no set order
        known = GATEWAY_TYPES.get(kind)
        if known is not None and not known.applies(route):
            continue
        if not status:
            if known is None:
                raise ValueError(f"gateway response {kind}: no status code, and API Gateway's default is unknown here")
            status = known.status
        out.append(GatewayAnswer(kind, status, known.when if known else f"API Gateway's {kind}",
                                 render_template(template or BUILTIN_TEMPLATE, known.message if known else kind)))
    return out


def shape(value: Any) -> dict[str, Any]:
    """The JSON schema of a value's shape (types, every key required, nothing else): a template's schema."""
    if isinstance(value, dict):
        return _object({k: shape(v) for k, v in value.items()})
    if isinstance(value, list):
        kinds = _unique([shape(v) for v in value])
        return {"type": "array", **({"items": kinds[0] if len(kinds) == 1 else {"anyOf": kinds}} if kinds else {})}
    if value is None:
        return {"nullable": True}
    type_names = {bool: "boolean", int: "integer", float: "number", str: "string"}
    return {"type": type_names[type(value)]}


def _unique(items: list[Any]) -> list[Any]:
    return [item for i, item in enumerate(items) if item not in items[:i]]


# --- the document ------------------------------------------------------------------------------------------

class Components:
    """`components.schemas`, filled as the operations refer to them; an equal shape is one component."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        existing = self.schemas.setdefault(name, schema)
        if existing != schema:
            raise ValueError(f"two different schemas named {name}")
        return {"$ref": f"#/components/schemas/{name}"}

    def ref_shape(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        """A reference to the component of this shape (descriptions aside), added under `name` if new."""
        for known, existing in self.schemas.items():
            if _undescribed(existing) == _undescribed(schema):
                return self.ref(known, existing)
        return self.ref(name, schema)


def _undescribed(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _undescribed(v) for k, v in schema.items() if k != "description" or not isinstance(v, str)}
    if isinstance(schema, list):
        return [_undescribed(v) for v in schema]
    return schema


def operation_id(route: RouteSpec) -> str:
    """`postTransactions`, `postTransactionsTransactionIdLabel`: method and path in camel case."""
    words = [route.method.lower()] + [w for part in route.path.split("/") for w in part.strip("{}").split("_") if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


def _request_schema_name(route: RouteSpec) -> str:
    """The model's title (API Gateway's model name), else one from the operation."""
    title = (route.schema or {}).get("title")
    if isinstance(title, str) and title.isalnum():
        return title
    name = operation_id(route)
    return f"{name[:1].upper()}{name[1:]}Request"


def _status_order(status: str) -> tuple[str, bool, str]:
    """200 .. 299, then 2XX; 400 .. 499, then 4XX; ..."""
    return status[0], status.endswith("XX"), status


def _responses(spec: ApiSpec, route: RouteSpec, components: Components) -> dict[str, Any]:
    by_status: dict[str, list[tuple[str, dict[str, str], Answer | GatewayAnswer]]] = {}
    for code, fn_answer in function_answers(route).items():
        ref = components.ref(fn_answer.schema, ANSWER_SCHEMAS[fn_answer.schema](route))
        by_status.setdefault(str(code), []).append((FUNCTION, ref, fn_answer))
    for gw_answer in gateway_answers(spec, route):
        name = "Gateway" + "".join(w.capitalize() for w in gw_answer.kind.split("_"))
        ref = components.ref_shape(name, shape(gw_answer.body))
        by_status.setdefault(gw_answer.status, []).append((f"API Gateway `{gw_answer.kind}`", ref, gw_answer))
    out: dict[str, Any] = {}
    for status in sorted(by_status, key=_status_order):
        sources = by_status[status]
        # An explicit status hides its range: API Gateway's default of that class can answer it too.
        if not status.endswith("XX"):
            known = [ref for _, ref, _ in sources]
            sources = sources + [s for s in by_status.get(f"{status[0]}XX", []) if s[1] not in known]
        refs = _unique([ref for _, ref, _ in sources])
        media: dict[str, Any] = {"schema": refs[0] if len(refs) == 1 else {"anyOf": refs}}
        examples = {a.kind: {"summary": a.when, "value": a.body}
                    for _, _, a in sources if isinstance(a, GatewayAnswer)}
        if examples:
            media["examples"] = examples
        response: dict[str, Any] = {"description": _describe(sources), "content": {api.JSON_CONTENT_TYPE: media}}
        headers = _unique([h for _, _, a in sources if isinstance(a, Answer) for h in a.headers])
        if headers:
            response["headers"] = {h: HEADERS[h] for h in headers}
        out[status] = response
    return out


def _describe(sources: list[tuple[str, Any, Answer | GatewayAnswer]]) -> str:
    """Who answers this status and when: one line, or one bullet per source."""
    lines = [(who, a.description if isinstance(a, Answer) else a.when[:1].upper() + a.when[1:] + ".")
             for who, _, a in sources]
    if len(lines) == 1 and lines[0][0] == FUNCTION:
        return lines[0][1]
    return "\n".join(f"- **{who}**: {text}" for who, text in lines)


def _operation(spec: ApiSpec, route: RouteSpec, components: Components) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id(route),
        "security": [{SECURITY_SCHEME: []}] if route.api_key_required else [],
    }
    if route.path_parameters:
        operation["parameters"] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1},
             "description": "Checked by the function (400 when it is not a valid id)."}
            for name in route.path_parameters]
    if route.schema is not None:
        schema = components.ref(_request_schema_name(route), openapi_schema(route.schema))
        operation["requestBody"] = {
            "required": True,
            "description": "Validated by API Gateway against this model" + (
                " (400 `BAD_REQUEST_BODY` when it does not match), " if route.validate_body else ", ")
            + "then by the function, whose rules are finer.",
            "content": {api.JSON_CONTENT_TYPE: {"schema": schema}},
        }
    operation["responses"] = _responses(spec, route, components)
    return operation


def openapi_document(spec: ApiSpec, server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.0.3 document of every route of `spec`; served at `server_url` (default: the stage path)."""
    components = Components()
    paths: dict[str, dict[str, Any]] = {}
    for route in spec.routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(spec, route, components)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Card-fraud pipeline API",
            "version": spec.stage,
            "description": (
                "Transactions and labels into the card-fraud pipeline. Generated from the Pulumi program: "
                "routes, request models (the JSON schemas API Gateway validates with), API key and gateway "
                "responses are the program's; each function re-validates every field with finer rules "
                "(docs/handlers.md, docs/labels.md). Client input never causes a 5xx."),
        },
        "servers": [{"url": server_url or f"/{spec.stage}",
                     "description": "The stage, on the API's host (the stack outputs `apiEndpoint` and "
                                    "`labelEndpoint` are full URLs)" if server_url is None else "This API"}],
        "paths": paths,
        "components": {
            "securitySchemes": {SECURITY_SCHEME: {"type": "apiKey", "in": "header", "name": defaults.API_KEY_HEADER}},
            "schemas": dict(sorted(components.schemas.items())),
        },
    }


# --- YAML, and the command -------------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Block style, multi-line text as `|` blocks, no anchors: a file that reads and diffs well."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _text)


def to_yaml(document: dict[str, Any]) -> str:
    """The document as YAML, keys in the order built (stable from run to run)."""
    return HEADER + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def document_for(stack: str = "dev") -> dict[str, Any]:
    """The document of the stack's API, the program evaluated offline."""
    spec = topology(evaluate(stack)).api
    if spec is None:
        raise ValueError(f"stack {stack!r} declares no API")
    return openapi_document(spec)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_pipeline.openapi", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="the file (default: docs/openapi.yaml)")
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 when the file differs")
    parser.add_argument("--stack", default="dev", help="the stack evaluated (default: dev)")
    args = parser.parse_args(argv)
    try:
        text = to_yaml(document_for(args.stack))
    except (FileNotFoundError, ValueError) as exc:  # a bad stack file (SettingsError), a model 3.0 cannot carry
        print(f"error: {exc}", file=sys.stderr)
        return 1
    command = REGENERATE + ("" if args.output == DEFAULT_OUTPUT else f" --output {args.output}")
    if not args.check:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
        print(f"wrote {args.output}")
        return 0
    if not args.output.exists():
        print(f"error: {args.output} is missing; generate it with: {command}", file=sys.stderr)
        return 1
    current = args.output.read_text()
    if current == text:
        print(f"{args.output} is the API the program declares")
        return 0
    diff = list(difflib.unified_diff(current.splitlines(), text.splitlines(), f"{args.output} (committed)",
                                     f"{args.output} (the program)", lineterm=""))
    print(f"error: {args.output} is not the API the program declares; regenerate with: {command}", file=sys.stderr)
    print("\n".join(diff[:60] + (["..."] if len(diff) > 60 else [])), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
