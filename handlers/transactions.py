"""The transactions table: item shapes, idempotency claims and the claimed write.

Every accepted transaction is written together with an *idempotency claim* in
one TransactWriteItems call:

* claim  -- key (transaction_id, timestamp=0), `record_type = "idempotency-claim"`,
  holding the real timestamp and a fingerprint of the submission; put only if
  no claim exists (`attribute_not_exists(transaction_id)`);
* item   -- key (transaction_id, <epoch ms>), `record_type = "transaction"`.

Because the claim's key does not depend on the timestamp, a replay without a
timestamp (or with a different one) and two copies racing each other all hit
the same claim: exactly one write succeeds, the others see the claim (returned
with the cancellation, ALL_OLD) and answer with the original timestamp. Timestamps
are validated to be after 2000-01-01, so a real item never has sort key 0. The
detection stream's filter only passes `record_type = "transaction"`.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import Any

from . import dynamo
from .clients import ConfigurationError, client, env
from .jsonutil import dumps

#: Letters only: a generated id can never contain a digit run that looks like a card number
#: (a UUID can: "823000-9989-4184-8..." is a Luhn-valid 15-digit run about once in a few thousand).
_ID_ALPHABET = string.ascii_letters
_ID_LENGTH = 23   # 52^23 ~ 2^131 possibilities


def new_transaction_id() -> str:
    """The id given to a transaction the client sent without one."""
    return "txn-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(_ID_LENGTH))

RECORD_TYPE = "transaction"
CLAIM_RECORD_TYPE = "idempotency-claim"
CLAIM_SORT_KEY = 0
#: Days transactions and their claims live after ingestion before DynamoDB's TTL removes them;
#: the stack setting `transactionRetentionDays` (0 = never expire).
RETENTION_VARIABLE = "TRANSACTION_RETENTION_DAYS"
#: Submission fields the idempotency fingerprint covers (not the id, timestamp or derived hour).
FINGERPRINT_FIELDS = ("amount", "currency", "merchant", "location", "card_token", "customer_id",
                      "location_mismatch", "velocity_flag")


def fingerprint(txn: dict[str, Any]) -> str:
    """SHA-256 over the substance of a submission (card as token), to tell a replay from a conflict."""
    subset = {k: txn.get(k) for k in FINGERPRINT_FIELDS}
    return hashlib.sha256(dumps(subset, sort_keys=True).encode()).hexdigest()


def retention_days() -> int:
    """The stack's retention (TRANSACTION_RETENTION_DAYS): a whole number of days, 0 = never expire."""
    raw = env(RETENTION_VARIABLE)
    if not raw.isdigit():
        raise ConfigurationError(f"environment variable {RETENTION_VARIABLE} = {raw!r}: must be a whole number of "
                                 "days (0 = never expire)")
    return int(raw)


def build_item(txn: dict[str, Any], *, source: str, now_ms: int) -> dict[str, Any]:
    """The stored transaction: its fields, provenance, and an `expires_at` TTL unless retention is 0 (never)."""
    item = {k: v for k, v in txn.items() if v is not None}
    item.update(record_type=RECORD_TYPE, source=source, ingested_at=now_ms, schema_version=1)
    days = retention_days()
    if days:
        item["expires_at"] = now_ms // 1000 + days * 86_400
    return item


def build_claim(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "transaction_id": item["transaction_id"],
        "timestamp": CLAIM_SORT_KEY,
        "record_type": CLAIM_RECORD_TYPE,
        "transaction_timestamp": item["timestamp"],
        "fingerprint": fingerprint(item),
        "source": item["source"],
        "created_at": item["ingested_at"],
        # The claim lives exactly as long as its transaction (for ever when retention is 0).
        **({"expires_at": item["expires_at"]} if "expires_at" in item else {}),
    }


def claim_key(transaction_id: str) -> dict[str, Any]:
    return {"transaction_id": transaction_id, "timestamp": CLAIM_SORT_KEY}


@dataclass
class WriteOutcome:
    """What happened to one submission."""

    status: str  # "created" | "duplicate" | "conflict" | "failed"
    timestamp: int | None = None
    detail: str = ""


def _outcome_for_existing(claim: dict[str, Any] | None, item: dict[str, Any]) -> WriteOutcome:
    if claim is None or claim.get("record_type") != CLAIM_RECORD_TYPE:
        return WriteOutcome("failed", detail="claim exists but could not be read")
    original = int(claim["transaction_timestamp"])
    if claim.get("fingerprint") != fingerprint(item):
        return WriteOutcome("conflict", original, "transaction_id already used for a different transaction")
    return WriteOutcome("duplicate", original)


def write_claimed(table: str, items: list[dict[str, Any]]) -> list[WriteOutcome]:
    """Write each item with its claim (one TransactWriteItems per 50 items); one outcome per item.

    `items` must have distinct transaction ids (callers de-duplicate a batch first).
    """
    groups = []
    for item in items:
        claim = build_claim(item)
        groups.append([
            {"Put": {"TableName": table, "Item": dynamo.to_ddb(claim),
                     "ConditionExpression": "attribute_not_exists(transaction_id)",
                     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
            {"Put": {"TableName": table, "Item": dynamo.to_ddb(item),
                     "ConditionExpression": "attribute_not_exists(transaction_id)"}},
        ])
    results = dynamo.transact(groups)
    outcomes: list[WriteOutcome] = []
    for item, (claim_failure, item_failure) in zip(items, results):
        if claim_failure is None and item_failure is None:
            outcomes.append(WriteOutcome("created", item["timestamp"]))
        elif claim_failure is not None and claim_failure.code == "ConditionalCheckFailed":
            existing = claim_failure.item
            if existing is None:  # not returned: read it (strongly consistent)
                existing = client("dynamodb").get_item(
                    TableName=table, Key=dynamo.to_ddb(claim_key(item["transaction_id"])),
                    ConsistentRead=True).get("Item")
                existing = dynamo.from_ddb(existing) if existing else None
            outcomes.append(_outcome_for_existing(existing, item))
        elif item_failure is not None and item_failure.code == "ConditionalCheckFailed":
            # An item with this exact key but no claim: written outside this pipeline. Never overwrite it.
            outcomes.append(WriteOutcome("conflict", item["timestamp"], "transaction already exists"))
        else:
            codes = sorted({f.code for f in (claim_failure, item_failure) if f})
            outcomes.append(WriteOutcome("failed", detail="write not applied: " + ",".join(codes)))
    return outcomes


def find_claims(table: str, transaction_ids: list[str]) -> tuple[dict[str, dict[str, Any]], set[str]]:
    """Existing claims by transaction id (BatchGetItem), and the ids that could not be read."""
    found, missing = dynamo.batch_get(table, [claim_key(t) for t in transaction_ids])
    claims = {c["transaction_id"]: c for c in found if c.get("record_type") == CLAIM_RECORD_TYPE}
    return claims, {k["transaction_id"] for k in missing}


def check_existing(claim: dict[str, Any], item: dict[str, Any]) -> WriteOutcome:
    return _outcome_for_existing(claim, item)
