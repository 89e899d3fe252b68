"""POST /transactions/{transaction_id}/label (API Gateway REST proxy integration).

Body: {"label": "fraud"|"genuine", "source": "analyst"|"chargeback"|"customer", "note"?: string <= 500}.

201 -- label recorded (new, or a different label/source than stored):
       {"message", "transaction_id", "timestamp", "label", "source", "labelled_at", "previous_label"}
200 -- the same label and source were already recorded: same shape, nothing written
400 -- invalid path id or body: {"error", "details": [{"field", "message"}, ...]}
404 -- no transaction with this id
405 -- any method but POST
413 -- body over 16 KiB
503 -- the service could not record it right now (Retry-After: 1); sending the same request again is safe

Responses, headers and the error shape are the ones of POST /transactions (`api_handler`).
Client input never causes a 5xx; the note is never logged.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract, labels
from .api_handler import _error as error
from .api_handler import _response as response
from .clients import ConfigurationError
from .jsonutil import InvalidJson, loads
from .observability import logger, metrics, tracer
from .validation import FieldError

MAX_BODY_BYTES = contract.MAX_LABEL_BODY_BYTES
_TOO_LARGE = FieldError("body", f"must be at most {MAX_BODY_BYTES} bytes")


def _unavailable() -> dict[str, Any]:
    return response(503, {"error": "Service temporarily unavailable; retry the same request", "details": []},
                    {"Retry-After": "1"})


@logger.inject_lambda_context(log_event=False, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        return _handle(event if isinstance(event, dict) else {})
    except (ClientError, BotoCoreError, ConfigurationError) as exc:
        logger.exception("label not recorded: service dependency failed", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="LabelErrors", unit="Count", value=1)
        return _unavailable()
    except Exception as exc:  # noqa: BLE001 -- a defect: answer without leaking internals
        logger.exception("label not recorded: unexpected error", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="LabelErrors", unit="Count", value=1)
        return response(500, {"error": "Internal error", "details": []})


def _body_bytes(event: dict[str, Any]) -> bytes | dict[str, Any]:
    """The raw body, or an error response (as `api_handler`, with this API's 16 KiB limit)."""
    body = event.get("body")
    if body is None or body == "":
        return error(400, "Request body is required", [FieldError("body", "is required")])
    if not isinstance(body, str):
        return error(400, "Invalid request body", [FieldError("body", "must be a JSON object")])
    if event.get("isBase64Encoded"):
        if len(body) > (MAX_BODY_BYTES * 4) // 3 + 4:
            return error(413, "Request body too large", [_TOO_LARGE])
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return error(400, "Invalid request body", [FieldError("body", "is not valid base64")])
    else:
        if len(body) > MAX_BODY_BYTES:  # every character is at least one byte
            return error(413, "Request body too large", [_TOO_LARGE])
        try:
            raw = body.encode("utf-8")
        except UnicodeEncodeError:
            return error(400, "Invalid request body", [FieldError("body", "is not valid UTF-8")])
    if len(raw) > MAX_BODY_BYTES:
        return error(413, "Request body too large", [_TOO_LARGE])
    return raw


def _rejected(answer: dict[str, Any], fields: list[str] | None = None) -> dict[str, Any]:
    labels.count_rejected(1)
    extra: dict[str, Any] = {"status": answer["statusCode"]}
    if fields is not None:
        extra["fields"] = fields
    logger.info("label rejected", extra=extra)
    return answer


def _handle(event: dict[str, Any]) -> dict[str, Any]:
    method = (event.get("httpMethod") or event.get("requestContext", {}).get("httpMethod") or "POST").upper()
    if method != "POST":
        return _rejected(response(405, {"error": "Method not allowed",
                                        "details": [{"field": "method", "message": "must be POST"}]},
                                  {"Allow": "POST"}))
    path = event.get("pathParameters") or {}
    transaction_id = path.get("transaction_id") if isinstance(path, dict) else None
    if not isinstance(transaction_id, str) or not transaction_id:
        return _rejected(error(400, "Invalid label", [FieldError("transaction_id", "is required (in the path)")]))

    raw = _body_bytes(event)
    if isinstance(raw, dict):
        return _rejected(raw)
    try:
        body = loads(raw)
    except InvalidJson as exc:
        return _rejected(error(400, "Request body is not valid JSON", [FieldError(exc.field, exc.message)]))

    request, problems = labels.validate_label(body, transaction_id=transaction_id)
    if request is None:
        known = set(labels.BULK_FIELDS) | {"body"}
        return _rejected(error(400, "Invalid label", problems),
                         sorted({p.field if p.field in known else "<unknown>" for p in problems}))
    del body, raw  # the note is not kept longer than needed

    (outcome,) = labels.record_labels([request], int(time.time() * 1000))
    log = {"transaction_id": request.transaction_id, "outcome": outcome.status,
           "label": request.label, "source": request.source}
    if outcome.status == labels.NOT_FOUND:
        logger.info("label for an unknown transaction", extra=log)
        return error(404, "Transaction not found", [FieldError("transaction_id", "is not a known transaction")])
    if outcome.status in (labels.RECORDED, labels.UNCHANGED):
        logger.info("label recorded" if outcome.status == labels.RECORDED else "label already recorded", extra=log)
        return response(201 if outcome.status == labels.RECORDED else 200, _public(outcome))
    logger.error("label not recorded", extra={**log, "detail": outcome.detail})
    return _unavailable()


def _public(outcome: labels.LabelOutcome) -> dict[str, Any]:
    detail = labels.event_detail(outcome)
    detail.pop("schema_version")
    message = "Label recorded" if outcome.status == labels.RECORDED else "Label already recorded"
    return {"message": message, **detail}
