"""The local API fuzzed from the published contract: whatever a client sends, the answer is one the contract lists.

The contract (fraud_pipeline/openapi.py, docs/openapi.yaml) is only useful if the API keeps it, so
schemathesis generates requests from it, valid and invalid, against the emulation of the same program,
and every answer must be documented: no 5xx, no status the operation does not list (a range such as
`4XX` does not count: the emulation knows which answer it gives), a body of the documented shape, and
an invalid request refused. A few bodies no JSON generator writes (bytes that are not UTF-8, nesting
deeper than a parser's stack, padding past the limits) are sent as well.

Bounded and reproducible: a fixed number of examples per operation and mode, derandomized, no shrinking
(a failure is reported as generated, with the curl line that reproduces it). Every failure of the run
is collected and reported together, so one defect does not hide the others.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from fraud_pipeline import defaults
from fraud_pipeline.local.emulator import Emulator
from fraud_pipeline.openapi import openapi_document

EXAMPLES_PER_OPERATION = 25
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
SETTINGS = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def em():
    # The emulation is process-wide (moto's backends): one per module, closed before the next starts.
    emulator = Emulator("dev")
    emulator.start_api(port=0)
    yield emulator
    emulator.close()


@pytest.fixture(scope="module")
def base_url(em):
    host, port = em._http.server_address[:2]
    return f"http://{host}:{port}/{em.topo.api.stage}"


@pytest.fixture(scope="module")
def schema(em, base_url):
    return schemathesis.openapi.from_dict(openapi_document(em.topo.api, server_url=base_url))


@pytest.fixture(scope="module")
def operations(schema):
    return {op.label: op for op in (result.ok() for result in schema.get_all_operations())}


class Findings:
    """Failures by kind (operation, what failed, status), each with the first request that showed it."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.found: dict[tuple[str, str, int], str] = {}

    def add(self, operation: str, what: str, status: int, reproduce: str) -> None:
        self.found.setdefault((operation, what, status), reproduce.replace(self.api_key, "$API_KEY"))

    def report(self) -> str:
        lines = [f"{len(self.found)} kind(s) of answer the contract does not allow:"]
        for (operation, what, status), reproduce in sorted(self.found.items()):
            lines += [f"- {operation}: {what} (status {status})", f"    {reproduce}"]
        return "\n".join(lines)


def explicit_statuses(operation) -> set[int]:
    return {int(s) for s in operation.definition.raw["responses"] if s.isdigit()}


def judge(findings: Findings, case, response: Any, curl: str) -> None:
    """Record what the contract does not allow in `response`: schemathesis' checks, then explicit statuses only."""
    try:
        case.validate_response(response, checks=CHECKS, headers={defaults.API_KEY_HEADER: findings.api_key})
    except FailureGroup as group:
        for failure in group.exceptions:
            findings.add(case.operation.label, failure.title, response.status_code, curl)
    except Failure as failure:
        findings.add(case.operation.label, failure.title, response.status_code, curl)
    if response.status_code not in explicit_statuses(case.operation):
        findings.add(case.operation.label, "status only covered by a range", response.status_code, curl)


def fuzz(operation, mode, base_url: str, findings: Findings) -> int:
    sent = []

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        headers = {defaults.API_KEY_HEADER: findings.api_key}
        try:
            response = case.call(base_url=base_url, headers=headers, timeout=30)
        except requests.RequestException as exc:
            findings.add(operation.label, f"no answer ({type(exc).__name__})", 0,
                         case.as_curl_command(headers=headers, base_url=base_url))
            return
        sent.append(response.status_code)
        judge(findings, case, response, case.as_curl_command(headers=headers, base_url=base_url))

    run()
    return len(sent)


def test_every_generated_request_gets_a_documented_answer(em, operations, base_url):
    # GIVEN the contract of the dev stack's API and the emulation of the same program
    assert set(operations) == {f"{r.method} {r.path}" for r in em.topo.api.routes}
    findings = Findings(em.api.api_key)
    # WHEN schemathesis sends valid and invalid requests to every operation
    for label, operation in sorted(operations.items()):
        for mode in MODES:
            assert fuzz(operation, mode, base_url, findings) > 0, f"{label} {mode.value}: nothing sent"
    # THEN every answer is one the contract documents for that operation
    assert not findings.found, findings.report()


TRANSACTION = {"amount": 10.5, "merchant": "Corner Cafe", "card_number": "4111111111111111",
               "location": "Paris, France"}


# --- the answers generated bodies rarely reach ---------------------------------------------------------------

def test_a_client_conversation_gets_the_documented_answers(em, operations, base_url):
    # Generated bodies almost never pass the functions' finer rules (a card of 12-19 digits, a country after
    # the comma, two decimals), so the success, replay and conflict answers are reached on purpose here.
    transactions, label = operations["POST /transactions"], operations["POST /transactions/{transaction_id}/label"]
    key = {defaults.API_KEY_HEADER: em.api.api_key}
    steps = [
        (transactions, {"body": {**TRANSACTION, "transaction_id": "contract-1"}}, key, 201),
        (transactions, {"body": {**TRANSACTION, "transaction_id": "contract-1"}}, key, 200),
        (transactions, {"body": {**TRANSACTION, "transaction_id": "contract-1", "amount": 11}}, key, 409),
        (transactions, {"body": TRANSACTION}, {}, 403),
        (transactions, {"body": TRANSACTION}, {defaults.API_KEY_HEADER: "not-the-key"}, 403),
        (label, {"body": {"label": "fraud", "source": "analyst"}, "path_parameters": {"transaction_id": "contract-1"}},
         key, 201),
        (label, {"body": {"label": "fraud", "source": "analyst"}, "path_parameters": {"transaction_id": "contract-1"}},
         key, 200),
        (label, {"body": {"label": "genuine", "source": "customer"}, "path_parameters": {"transaction_id": "nope"}},
         key, 404),
    ]
    findings = Findings(em.api.api_key)
    for operation, data, headers, expected in steps:
        case = operation.Case(media_type="application/json", **data)
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        curl = case.as_curl_command(headers=headers, base_url=base_url)
        judge(findings, case, response, curl)
        if response.status_code != expected:
            findings.add(operation.label, f"answered {response.status_code}, expected {expected}",
                         response.status_code, curl)
    assert not findings.found, findings.report()


# --- bodies a JSON generator does not write -----------------------------------------------------------------

DEEP = 5000

#: (operation, label, raw body, the statuses that may answer it)
PROBES = [
    ("POST /transactions", "not UTF-8", json.dumps(TRANSACTION).replace("Cafe", "Caf\\u00e9").encode()
     .replace(b"\\u00e9", b"\xe9"), {400}),
    ("POST /transactions", f"nested {DEEP} deep", (b'{"amount": ' + b"[" * DEEP + b"]" * DEEP + b"}"), {400}),
    ("POST /transactions", "not JSON", b"amount=10.5&merchant=Cafe", {400}),
    ("POST /transactions", "empty", b"", {400}),
    ("POST /transactions", "a key twice", b'{"amount": 10.5, "amount": 99999, '
     + json.dumps(TRANSACTION).encode()[1:], {400}),
    ("POST /transactions", "valid, padded over the function's limit",
     json.dumps(TRANSACTION).encode() + b" " * (70 * 1024), {413}),
    ("POST /transactions", "over API Gateway's payload limit", b" " * (10 * 1024 * 1024 + 1), {413}),
    ("POST /transactions/{transaction_id}/label", "note not UTF-8",
     b'{"label": "fraud", "source": "analyst", "note": "caf\xe9"}', {400}),
    ("POST /transactions/{transaction_id}/label", f"nested {DEEP} deep",
     b'{"note": ' + b"[" * DEEP + b"]" * DEEP + b"}", {400}),
]


@pytest.mark.parametrize("label, what, body, allowed", PROBES, ids=[f"{p[0]}: {p[1]}" for p in PROBES])
def test_a_malformed_body_is_refused_with_a_documented_answer(em, operations, base_url, label, what, body, allowed):
    operation = operations[label]
    parameters = {name: "probe-1" for name in re.findall(r"{(\w+)}", operation.path)} or None
    url = base_url + operation.path.format(**(parameters or {}))
    headers = {defaults.API_KEY_HEADER: em.api.api_key, "Content-Type": "application/json"}
    curl = (f"curl -sS -X POST '{url}' -H 'x-api-key: $API_KEY' -H 'Content-Type: application/json' "
            f"--data-binary <{what}>")
    findings = Findings(em.api.api_key)
    try:
        response = requests.post(url, data=body, headers=headers, timeout=60)
    except requests.RequestException as exc:
        findings.add(label, f"{what}: no answer ({type(exc).__name__})", 0, curl)
    else:
        judge(findings, operation.Case(path_parameters=parameters, media_type="application/json"), response, curl)
        if response.status_code not in allowed:
            findings.add(label, f"{what}: answered {response.status_code}, expected {sorted(allowed)}",
                         response.status_code, curl)
    assert not findings.found, findings.report()
