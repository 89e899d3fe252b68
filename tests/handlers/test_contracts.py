"""Contracts with the infrastructure: AWS actions within the IAM grants, cheap imports, log redaction."""

from __future__ import annotations

import fnmatch
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from handler_fixtures import CallCounter

from handlers import api_handler, clients, fraud_detection, notification_handler, review_workflow, stream_ingest
from handlers.observability import logger, mask_pans

ROOT = Path(__file__).resolve().parents[2]

TABLE = "table/fraud-transactions-test"
FEATURES = "table/fraud-features-test"
PARAMS = "parameter/fraud-detection/test/"
CARD_KEY = "parameter/fraud-detection/test/card-token-key"
ML = "parameter/fraud-detection/test/ml-endpoint"
TEMPLATES = "parameter/fraud-detection/test/alert-templates"
TOPIC = "arn:aws:sns:us-east-1:123456789012:fraud-alerts-test"
MODEL = "endpoint/fraud-test-*"


def grant(actions: str, resource: str) -> set[tuple[str, str]]:
    return {(a, resource) for a in actions.split()}


#: The IAM policy the component grants each function (action, resource pattern) -- the handlers must stay within it.
GRANTS = {
    "api": grant("dynamodb:PutItem dynamodb:GetItem dynamodb:ConditionCheckItem dynamodb:UpdateItem", TABLE)
    | grant("ssm:GetParameter", CARD_KEY),
    "stream_ingest": grant("dynamodb:PutItem dynamodb:GetItem dynamodb:ConditionCheckItem dynamodb:UpdateItem "
                           "dynamodb:BatchWriteItem dynamodb:BatchGetItem", TABLE)
    | grant("s3:PutObject", "fraud-archive-test/rejected/*") | grant("ssm:GetParameter", CARD_KEY),
    "fraud_detection": grant("dynamodb:UpdateItem dynamodb:BatchGetItem", TABLE)
    | grant("dynamodb:BatchGetItem dynamodb:UpdateItem", FEATURES)
    | grant("sqs:SendMessage", "fraud-alerts-test") | grant("s3:PutObject", "fraud-archive-test/high-risk/*")
    | grant("s3:GetObject s3:GetObjectVersion", "fraud-archive-test/models/*")
    | grant("events:PutEvents", "event-bus/fraud-events-test") | grant("ssm:GetParameter", ML)
    | grant("ssm:GetParameter", PARAMS + "model") | grant("ssm:GetParameter", PARAMS + "model-shadow")
    | grant("ssm:GetParameter", PARAMS + "lists") | grant("sagemaker:InvokeEndpoint", MODEL),
    "notification": grant("dynamodb:UpdateItem dynamodb:GetItem", TABLE) | grant("sns:Publish", TOPIC)
    | grant("ssm:GetParameter", TEMPLATES),
    "review_workflow": grant("dynamodb:GetItem dynamodb:BatchGetItem dynamodb:UpdateItem", TABLE)
    | grant("dynamodb:UpdateItem", FEATURES) | grant("events:PutEvents", "event-bus/fraud-events-test")
    | grant("sns:Publish", TOPIC)
    | grant("ssm:GetParameter", ML) | grant("ssm:GetParameter", TEMPLATES) | grant("sagemaker:InvokeEndpoint", MODEL),
}


def granted(function: str, action: str, resource: str) -> bool:
    return any(a == action and fnmatch.fnmatchcase(resource, pattern) for a, pattern in GRANTS[function])


def test_each_handler_calls_only_what_it_is_granted(aws, ctx):
    # GIVEN the ML endpoint switched on, and call recording on the handlers' clients, function by function
    from handler_fixtures import fake_endpoint

    aws.ssm.put_parameter(Name="/fraud-detection/test/ml-endpoint", Type="String", Value="fraud-test-model", Overwrite=True)
    used: dict[str, set] = {}

    def step(name, fn):
        clients.reset()
        counter = CallCounter()
        clients.reset()
        fake_endpoint(0.5)
        try:
            fn()
        finally:
            counter.close()
        used[name] = counter.authorised

    body = {"amount": 15000, "merchant": "Unknown Store", "card_number": "4000000000000077", "location": "Iran",
            "transaction_id": "iam-1"}
    step("api", lambda: api_handler.handler(aws.api_event(body), ctx))
    step("stream_ingest", lambda: stream_ingest.handler(aws.kinesis_event([{"transaction_id": "iam-2", "amount": 6000},
                                                                           {"amount": "bad"}]), ctx))
    step("fraud_detection", lambda: fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx))
    alerts = aws.alert_messages()
    step("notification", lambda: notification_handler.handler(aws.sqs_event(alerts), ctx))
    events = aws.decision_events()

    def review():
        for event in events:
            state = event
            for task in ("validate", "analyze", "store", "notify"):
                state = review_workflow.handler({"task": task, "input": state}, ctx)

    step("review_workflow", review)
    # THEN every (action, resource) used is granted -- TransactWriteItems counts as its entries' actions
    for name, authorised in used.items():
        print(name, sorted(authorised))
        assert authorised, name
        assert [(a, r) for a, r in sorted(authorised) if not granted(name, a, r)] == [], name
    # AND the pipeline really did exercise ML, the archive and the quarantine
    assert ("sagemaker:InvokeEndpoint", "endpoint/fraud-test-model") in used["fraud_detection"]
    assert any(a == "s3:PutObject" and r.startswith("fraud-archive-test/high-risk/") for a, r in used["fraud_detection"])
    assert any(a == "s3:PutObject" and r.startswith("fraud-archive-test/rejected/") for a, r in used["stream_ingest"])


@pytest.mark.parametrize("module", ["api_handler", "stream_ingest", "fraud_detection", "notification_handler",
                                    "review_workflow"])
def test_importing_a_handler_creates_no_clients_and_loads_no_tracer(module):
    # GIVEN a fresh interpreter WHEN the handler module is imported (a cold start's init phase)
    code = (f"import sys, handlers.{module}; from handlers import clients; "
            "print(len(clients._clients), 'aws_xray_sdk' in sys.modules)")
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_TRACE_DISABLED": "true"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout.split()
    # THEN no AWS client was created and the X-Ray SDK was not loaded: the init phase pays for imports only.
    # (Import time itself is measured, against `import boto3`, by `make bench`, not asserted here.)
    assert out == ["0", "False"]


def test_log_lines_never_carry_card_numbers(log_lines):
    logger.info("operator pasted 4111 1111 1111 1111 and 5500-0000-0000-0004", extra={"note": "4111111111111111"})
    (line,) = log_lines()
    record = json.loads(line)
    assert record["message"] == "operator pasted [REDACTED-PAN] and [REDACTED-PAN]" and record["note"] == "[REDACTED-PAN]"
    # epoch milliseconds and account ids stay readable
    assert mask_pans("1763000000123 arn:aws:sns:us-east-1:123456789012:x") == "1763000000123 arn:aws:sns:us-east-1:123456789012:x"


def test_tracer_is_created_at_the_first_traced_invocation(aws, ctx, monkeypatch):
    from handlers.observability import tracer

    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "false")
    monkeypatch.setattr(tracer, "_tracer", None)
    body = {"amount": 10.5, "merchant": "M", "card_number": "4000000000000077", "location": "Oslo, Norway"}
    assert api_handler.handler(aws.api_event(body), ctx)["statusCode"] == 201
    assert tracer._tracer is not None and type(tracer._tracer).__name__ == "Tracer"
