"""Small DynamoDB helpers on the low-level client: (de)serialisation, bulk reads
with unprocessed-key retries, and TransactWriteItems with per-action outcomes.

Bulk writes go through TransactWriteItems (up to 100 actions per call) because
it is the only batch write that supports conditions and UpdateItem, so the
pipeline can batch without overwriting attributes other stages wrote.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from .clients import client

T = TypeVar("T")

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

MAX_TRANSACT_ACTIONS = 100
MAX_BATCH_GET_KEYS = 100
#: Cancellation reasons worth another attempt (the action itself was fine).
RETRYABLE_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "None"})
RETRYABLE_ERRORS = frozenset({
    "TransactionConflictException", "TransactionInProgressException", "ThrottlingException",
    "ProvisionedThroughputExceededException", "RequestLimitExceeded", "InternalServerError",
})
ATTEMPTS = 3


def to_ddb(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in item.items() if v is not None}


def from_ddb(image: dict[str, Any]) -> dict[str, Any]:
    return {k: _deserializer.deserialize(v) for k, v in image.items()}


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def backoff(attempt: int) -> None:
    """Full-jitter exponential backoff, at most ~0.4 s."""
    time.sleep(random.uniform(0, min(0.4, 0.05 * 2 ** attempt)))


def error_code(exc: BaseException) -> str:
    return exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""


class TransientError(RuntimeError):
    """A write or read that did not complete; the record should be retried."""


@dataclass
class ActionFailure:
    """Why one transaction action did not apply."""

    code: str
    #: The item as it was, when the action asked for ALL_OLD on condition failure.
    item: dict[str, Any] | None = None


def batch_get(table: str, keys: list[dict[str, Any]], projection: str | None = None,
              names: dict[str, str] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Strongly consistent BatchGetItem of `keys` (python values).

    Returns (items, keys_not_read): keys still unprocessed after the retries are
    returned so the caller can fail just the records that need them.
    """
    found: list[dict[str, Any]] = []
    missing: list[dict[str, Any]] = []
    for chunk in chunks(keys, MAX_BATCH_GET_KEYS):
        request: dict[str, Any] = {"Keys": [to_ddb(k) for k in chunk], "ConsistentRead": True}
        if projection:
            request["ProjectionExpression"] = projection
            if names:
                request["ExpressionAttributeNames"] = names
        pending: dict[str, Any] = {table: request}
        for attempt in range(ATTEMPTS):
            try:
                response = client("dynamodb").batch_get_item(RequestItems=pending)
            except ClientError as exc:
                if error_code(exc) not in RETRYABLE_ERRORS or attempt == ATTEMPTS - 1:
                    raise
                backoff(attempt)
                continue
            found.extend(from_ddb(i) for i in response.get("Responses", {}).get(table, []))
            pending = response.get("UnprocessedKeys") or {}
            if not pending:
                break
            backoff(attempt)
        if pending:
            missing.extend(from_ddb(k) for k in pending[table]["Keys"])
    return found, missing


def transact(groups: list[list[dict[str, Any]]]) -> list[list[ActionFailure | None]]:
    """Apply groups of TransactWriteItems actions, up to 100 actions per call.

    A group is the set of actions for one record: they are sent in the same
    call and succeed or fail together. When a call is cancelled, groups whose
    actions failed for good (e.g. ConditionalCheckFailed) are dropped and the
    rest are sent again; transient failures are retried with backoff.

    Returns, per group, one entry per action: None when applied, else an
    `ActionFailure` (with the old item when the action asked for ALL_OLD).
    A group is applied exactly when all its entries are None.
    """
    outcomes: list[list[ActionFailure | None]] = [[None] * len(g) for g in groups]
    chunk: list[int] = []
    used = 0
    for index, group in enumerate(groups):
        if len(group) > MAX_TRANSACT_ACTIONS:
            raise ValueError("a group cannot exceed 100 actions")
        if chunk and used + len(group) > MAX_TRANSACT_ACTIONS:
            _transact_chunk(groups, chunk, outcomes)
            chunk, used = [], 0
        chunk.append(index)
        used += len(group)
    if chunk:
        _transact_chunk(groups, chunk, outcomes)
    return outcomes


def _transact_chunk(groups: list[list[dict[str, Any]]], pending: list[int],
                    outcomes: list[list[ActionFailure | None]]) -> None:
    for attempt in range(ATTEMPTS + 1):
        if not pending:
            return
        try:
            client("dynamodb").transact_write_items(TransactItems=[a for g in pending for a in groups[g]])
            for g in pending:
                outcomes[g] = [None] * len(groups[g])
            return
        except ClientError as exc:
            code = error_code(exc)
            if code == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons") or []
                if len(reasons) != sum(len(groups[g]) for g in pending):
                    for g in pending:
                        outcomes[g] = [ActionFailure("TransactionCanceled")] * len(groups[g])
                    backoff(attempt)
                    continue
                retry: list[int] = []
                contended = False
                position = 0
                for g in pending:
                    failures: list[ActionFailure | None] = []
                    for reason in reasons[position:position + len(groups[g])]:
                        reason_code = reason.get("Code") or "None"
                        item = reason.get("Item")
                        failures.append(ActionFailure(reason_code, from_ddb(item) if item else None))
                    position += len(groups[g])
                    outcomes[g] = failures
                    codes = {f.code for f in failures if f}
                    if codes <= RETRYABLE_REASONS:
                        retry.append(g)
                        contended = contended or bool(codes - {"None"})
                if contended:
                    backoff(attempt)
                pending = retry
            elif code in RETRYABLE_ERRORS:
                for g in pending:
                    outcomes[g] = [ActionFailure(code)] * len(groups[g])
                backoff(attempt)
            else:
                raise
    # retries exhausted: whatever is still pending keeps its transient failure codes


def applied(outcome: list[ActionFailure | None]) -> bool:
    return all(o is None for o in outcome)
