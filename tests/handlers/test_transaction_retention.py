"""Transactions live as long as the stack's `transactionRetentionDays` says, through both write paths.

The TTL used to be a constant (90 days) in the handlers, shorter than card-scheme dispute
windows; it now comes from TRANSACTION_RETENTION_DAYS, which the component sets from the
stack setting, and 0 means the items never expire.
"""

from __future__ import annotations

import json
import time

import pytest

from handlers import api_handler, stream_ingest
from handlers.clients import ConfigurationError

BODY = {"amount": 42.0, "merchant": "Corner Bakery", "card_number": "4111-1111-1111-1111",
        "location": "New York, USA", "transaction_id": "keep-1"}
DAY = 86_400


def _by_type(aws):
    return {i["record_type"]: i for i in aws.items()}


@pytest.mark.parametrize("days", [540, 2557])
def test_api_writes_the_transaction_and_its_claim_with_the_stack_retention(aws, ctx, monkeypatch, days):
    # GIVEN a stack that keeps transactions `days` days
    monkeypatch.setenv("TRANSACTION_RETENTION_DAYS", str(days))
    before = int(time.time())
    # WHEN a transaction is posted
    assert api_handler.handler(aws.api_event(BODY), ctx)["statusCode"] == 201
    # THEN the item and its idempotency claim expire `days` days after ingestion
    items = _by_type(aws)
    for kind in ("transaction", "idempotency-claim"):
        expires = int(items[kind]["expires_at"])
        assert before + days * DAY <= expires <= int(time.time()) + days * DAY, kind


def test_zero_retention_writes_no_ttl_on_either_path(aws, ctx, monkeypatch):
    # GIVEN a stack that never expires transactions
    monkeypatch.setenv("TRANSACTION_RETENTION_DAYS", "0")
    # WHEN one arrives by the API and one by the stream
    assert api_handler.handler(aws.api_event(BODY), ctx)["statusCode"] == 201
    result = stream_ingest.handler(aws.kinesis_event([{**BODY, "transaction_id": "keep-2"}]), ctx)
    assert result == {"batchItemFailures": []}
    # THEN no item carries expires_at, so DynamoDB's TTL never removes them
    items = aws.items()
    assert len(items) == 4
    assert all("expires_at" not in i for i in items), [i for i in items if "expires_at" in i]


def test_stream_ingest_uses_the_stack_retention(aws, ctx, monkeypatch):
    monkeypatch.setenv("TRANSACTION_RETENTION_DAYS", "730")
    before = int(time.time())
    stream_ingest.handler(aws.kinesis_event([BODY]), ctx)
    (item,) = aws.transactions()
    assert int(item["expires_at"]) >= before + 730 * DAY


@pytest.mark.parametrize("raw", ["", "ninety", "-5", "1.5"])
def test_a_missing_or_malformed_retention_stores_nothing_and_says_why(aws, ctx, monkeypatch, log_lines, raw):
    # GIVEN a function deployed without a usable TRANSACTION_RETENTION_DAYS (a wiring bug)
    monkeypatch.setenv("TRANSACTION_RETENTION_DAYS", raw)
    # WHEN a transaction is posted
    response = api_handler.handler(aws.api_event(BODY), ctx)
    # THEN the client is told to retry (503, as for any dependency the function lacks), the log names
    # the variable, and nothing is stored with a made-up lifetime
    assert response["statusCode"] == 503
    assert "retry" in json.loads(response["body"])["error"]
    assert any("TRANSACTION_RETENTION_DAYS" in line for line in log_lines())
    assert aws.items() == []
    with pytest.raises(ConfigurationError, match="TRANSACTION_RETENTION_DAYS"):
        stream_ingest.handler(aws.kinesis_event([BODY]), ctx)
    assert aws.items() == []
