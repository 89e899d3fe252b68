"""The decision record (alert-queue body and EventBridge detail) and alert formatting.

`decision_record` is the one JSON shape detection emits for a scored
transaction: it is the alert-queue message body and the EventBridge `detail`.
It carries `card_last4` only (never the token or the card number).

Alert text comes from templates: the SSM parameter named by TEMPLATES_PARAM
holds `{"subject": "...", "body": "...", "sms": "..."}` (`sms` optional). Placeholders
are `{name}` for the names in `PLACEHOLDERS`; substitution is a single pass (a
value containing braces is never expanded again) and never evaluates
attributes or indexes, unlike `str.format`. A missing parameter, invalid JSON,
unknown keys or an unknown placeholder make the handler log a warning and use
the built-in templates. The parameter is re-read every 5 minutes.
"""

from __future__ import annotations

import json
import os
import re
import unicodedata
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract
from .clients import client, ttl_cache
from .jsonutil import dumps
from .observability import logger
from .rules import Assessment, severity_of

SCHEMA_VERSION = 1
SUBJECT_MAX = 100
PLACEHOLDERS = (
    "transaction_id", "timestamp", "amount", "currency", "merchant", "location", "card", "card_last4",
    "score", "decision", "severity", "reasons", "environment",
)
DEFAULT_TEMPLATES: Mapping[str, str] = {
    "subject": "Fraud alert: {decision} {amount} {currency} at {merchant}",
    "body": (
        "Card transaction {transaction_id} was flagged: {decision} (severity {severity}).\n"
        "\n"
        "Card:        {card}\n"
        "Amount:      {amount} {currency}\n"
        "Merchant:    {merchant}\n"
        "Location:    {location}\n"
        "Time (UTC):  {timestamp}\n"
        "Score:       {score}/100\n"
        "Reasons:     {reasons}\n"
        "Environment: {environment}\n"
    ),
    "sms": "Fraud {decision}: {amount} {currency} at {merchant}, card {card}, score {score}. Ref {transaction_id}",
}
_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z0-9_]*)\}")
#: Anything in braces, to refuse str.format-style expressions such as {amount.__class__} or {0}.
_BRACED_RE = re.compile(r"\{([^{}]*)\}")


def decision_record(txn: Mapping[str, Any], assessment: Assessment, *, decided_at_ms: int,
                    shadow: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Alert-queue body / EventBridge detail for a scored transaction.

    `risk` (0-1) ranks it on the model's scale; `model_version` names the model
    that scored it (absent: rules only); `shadow` is the candidate model / rule
    set's decision, recorded for comparison and never acted on.
    """
    record = {
        "schema_version": SCHEMA_VERSION,
        "transaction_id": txn["transaction_id"],
        "timestamp": int(txn["timestamp"]),
        "amount": Decimal(txn["amount"]),
        "currency": txn.get("currency", "USD"),
        "merchant": txn.get("merchant"),
        "location": txn.get("location"),
        "country": txn.get("country"),
        "card_last4": txn.get("card_last4"),
        "score": assessment.score,
        "decision": assessment.decision,
        "severity": assessment.severity,
        "reasons": list(assessment.reasons),
        "rules_score": assessment.rules_score,
        "ml_score": assessment.ml_score,
        "risk": assessment.risk,
        "model_score": assessment.model_score,
        "model_version": assessment.model_version,
        "decided_at": decided_at_ms,
        "environment": os.environ.get(contract.ENVIRONMENT, ""),
    }
    if shadow is not None:
        record["shadow"] = dict(shadow)
    return record


# --------------------------------------------------------------------------- templates
class TemplateError(ValueError):
    pass


def parse_templates(raw: str) -> dict[str, str]:
    """Validate a templates document; raise `TemplateError` naming the problem."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise TemplateError("not valid JSON") from None
    if not isinstance(data, dict):
        raise TemplateError("must be a JSON object")
    unknown = sorted(set(data) - {"subject", "body", "sms"})
    if unknown:
        raise TemplateError(f"unknown key(s): {', '.join(unknown)}")
    for key in ("subject", "body"):
        if not isinstance(data.get(key), str) or not data[key].strip():
            raise TemplateError(f"'{key}' must be a non-empty string")
    if "sms" in data and (not isinstance(data["sms"], str) or not data["sms"].strip()):
        raise TemplateError("'sms' must be a non-empty string")
    for key, text in data.items():
        for name in _BRACED_RE.findall(text):
            if name not in PLACEHOLDERS:
                raise TemplateError(f"'{key}' uses unknown placeholder {{{name}}}")
    return {**DEFAULT_TEMPLATES, **data}


@ttl_cache(300)
def templates() -> Mapping[str, str]:
    param = os.environ.get(contract.TEMPLATES_PARAM, "").strip()
    if not param:
        return DEFAULT_TEMPLATES
    try:
        raw = client("ssm").get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"]
        return parse_templates(raw)
    except TemplateError as exc:
        logger.warning("alert templates invalid; using the built-in templates", extra={"parameter": param, "problem": str(exc)})
    except (ClientError, BotoCoreError) as exc:
        logger.warning("alert templates unreadable; using the built-in templates",
                       extra={"parameter": param, "error_type": type(exc).__name__})
    return DEFAULT_TEMPLATES


def render(template: str, values: Mapping[str, str]) -> str:
    """Single-pass `{name}` substitution; unknown names are left as written."""
    return _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def placeholder_values(record: Mapping[str, Any]) -> dict[str, str]:
    amount = Decimal(str(record["amount"]))
    last4 = record.get("card_last4")
    return {
        "transaction_id": str(record["transaction_id"]),
        "timestamp": datetime.fromtimestamp(int(record["timestamp"]) / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "amount": f"{amount:,.2f}",
        "currency": str(record.get("currency") or "USD"),
        "merchant": str(record.get("merchant") or "unknown merchant"),
        "location": str(record.get("location") or "unknown"),
        "card": f"**** {last4}" if last4 else "unknown card",
        "card_last4": str(last4 or "----"),
        "score": str(record["score"]),
        "decision": str(record["decision"]).upper(),
        "severity": severity_of(str(record["decision"])),
        "reasons": ", ".join(record.get("reasons") or []) or "none",
        "environment": os.environ.get(contract.ENVIRONMENT, ""),
    }


def sns_subject(text: str) -> str:
    """SNS subject rules: ASCII, no control characters or line breaks, at most 100 characters."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    clean = " ".join("".join(ch if 32 <= ord(ch) < 127 else " " for ch in ascii_text).split())
    if len(clean) > SUBJECT_MAX:
        clean = clean[: SUBJECT_MAX - 3].rstrip() + "..."
    return clean or "Fraud alert"


def alert_publication(record: Mapping[str, Any]) -> dict[str, Any]:
    """Subject, message (per-protocol JSON) and attributes for SNS Publish / PublishBatch."""
    values = placeholder_values(record)
    chosen = templates()
    body = render(chosen["body"], values)
    sms = render(chosen.get("sms", DEFAULT_TEMPLATES["sms"]), values)
    return {
        "Subject": sns_subject(render(chosen["subject"], values)),
        "Message": dumps({"default": body, "email": body, "sms": sms}),
        "MessageStructure": "json",
        "MessageAttributes": {
            "decision": {"DataType": "String", "StringValue": str(record["decision"])},
            "severity": {"DataType": "String", "StringValue": severity_of(str(record["decision"]))},
        },
    }
