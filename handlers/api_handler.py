"""POST /transactions (API Gateway REST proxy integration).

201 -- recorded: {"message", "transaction_id", "timestamp"}
200 -- the same transaction_id was recorded before (replay): same id and original timestamp, nothing written
400 -- invalid body: {"error", "details": [{"field", "message"}, ...]}, nothing written
409 -- the transaction_id was already used for a different transaction, nothing written
413 -- body over 64 KiB
405 -- any method but POST
503 -- the service could not record it right now (retry with the same transaction_id)

Client input never causes a 5xx: parsing and validation are total (see
`jsonutil`, `validation`); 5xx answers only mean the service itself failed.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract, transactions
from .clients import ConfigurationError, env
from .jsonutil import InvalidJson, dumps, loads
from .observability import logger, metrics, tracer
from .tokenise import card_token
from .validation import API_FIELDS, FieldError, validate_transaction

MAX_BODY_BYTES = contract.MAX_TRANSACTION_BYTES
_HEADERS = {
    "Content-Type": "application/json",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def _response(status: int, body: dict[str, Any], extra_headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {"statusCode": status, "headers": {**_HEADERS, **(extra_headers or {})}, "body": dumps(body)}


def _error(status: int, error: str, details: list[FieldError]) -> dict[str, Any]:
    return _response(status, {"error": error, "details": [d.as_dict() for d in details]})


def _body_bytes(event: dict[str, Any]) -> bytes | dict[str, Any]:
    """The raw body, or an error response."""
    body = event.get("body")
    if body is None or body == "":
        return _error(400, "Request body is required", [FieldError("body", "is required")])
    if not isinstance(body, str):
        return _error(400, "Invalid request body", [FieldError("body", "must be a JSON object")])
    if event.get("isBase64Encoded"):
        if len(body) > (MAX_BODY_BYTES * 4) // 3 + 4:
            return _error(413, "Request body too large", [FieldError("body", f"must be at most {MAX_BODY_BYTES} bytes")])
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return _error(400, "Invalid request body", [FieldError("body", "is not valid base64")])
    else:
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:
            return _error(400, "Invalid request body", [FieldError("body", "is not valid UTF-8")])
    if len(raw) > MAX_BODY_BYTES:
        return _error(413, "Request body too large", [FieldError("body", f"must be at most {MAX_BODY_BYTES} bytes")])
    return raw


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle(event if isinstance(event, dict) else {})
    except (ClientError, BotoCoreError, ConfigurationError) as exc:
        logger.exception("transaction not recorded: service dependency failed", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="IngestErrors", unit="Count", value=1)
        return _response(503, {"error": "Service temporarily unavailable; retry with the same transaction_id",
                               "details": []}, {"Retry-After": "1"})
    except Exception as exc:  # a defect: answer without leaking internals
        logger.exception("transaction not recorded: unexpected error", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="IngestErrors", unit="Count", value=1)
        return _response(500, {"error": "Internal error", "details": []})


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    method = (event.get("httpMethod") or event.get("requestContext", {}).get("httpMethod") or "POST").upper()
    if method != "POST":
        metrics.add_metric(name="TransactionsRejected", unit="Count", value=1)
        return _response(405, {"error": "Method not allowed", "details": [{"field": "method", "message": "must be POST"}]},
                         {"Allow": "POST"})
    raw = _body_bytes(event)
    if isinstance(raw, dict):
        _rejected(raw)
        return raw
    try:
        body = loads(raw)
    except InvalidJson as exc:
        response = _error(400, "Request body is not valid JSON", [FieldError(exc.field, exc.message)])
        _rejected(response)
        return response

    now_ms = int(time.time() * 1000)
    validated = validate_transaction(body, mode="api", now_ms=now_ms)
    if not validated.ok:
        metrics.add_metric(name="TransactionsRejected", unit="Count", value=1)
        logger.info("transaction rejected", extra={
            "status": 400,
            # field names only, and only the ones this API defines (never values, never arbitrary keys)
            "fields": sorted({e.field if e.field in API_FIELDS or e.field == "body" else "<unknown>" for e in validated.errors}),
        })
        return _error(400, "Invalid transaction", validated.errors)

    txn = dict(validated.transaction or {})
    txn["transaction_id"] = txn["transaction_id"] or transactions.new_transaction_id()
    txn["card_token"] = card_token(validated.card_number or "")
    item = transactions.build_item(txn, source="api", now_ms=now_ms)
    del validated, body, raw  # drop the card number as early as possible

    (outcome,) = transactions.write_claimed(env(contract.TABLE_NAME), [item])
    log = {"transaction_id": item["transaction_id"], "outcome": outcome.status}
    if outcome.status == "created":
        metrics.add_metric(name="TransactionsAccepted", unit="Count", value=1)
        logger.info("transaction recorded", extra=log)
        return _response(201, {"message": "Transaction recorded successfully",
                               "transaction_id": item["transaction_id"], "timestamp": outcome.timestamp})
    if outcome.status == "duplicate":
        metrics.add_metric(name="DuplicateTransactions", unit="Count", value=1)
        logger.info("transaction replay answered from the idempotency claim", extra=log)
        return _response(200, {"message": "Transaction already recorded",
                               "transaction_id": item["transaction_id"], "timestamp": outcome.timestamp})
    if outcome.status == "conflict":
        metrics.add_metric(name="TransactionsRejected", unit="Count", value=1)
        logger.warning("transaction_id reused for a different transaction", extra=log)
        return _error(409, "Conflict", [FieldError("transaction_id", "was already used for a different transaction")])
    logger.error("transaction not recorded", extra={**log, "detail": outcome.detail})
    metrics.add_metric(name="IngestErrors", unit="Count", value=1)
    return _response(503, {"error": "Service temporarily unavailable; retry with the same transaction_id",
                           "details": []}, {"Retry-After": "1"})


def _rejected(response: dict[str, Any]) -> None:
    metrics.add_metric(name="TransactionsRejected", unit="Count", value=1)
    logger.info("request rejected", extra={"status": response["statusCode"]})
