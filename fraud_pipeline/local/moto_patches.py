"""One fix to moto for a long-running emulation: `TransactWriteItems` without whole-table copies.

moto 5.2 deep-copies every table a transaction touches, once per item, to be
able to roll back; with a few thousand items that makes each call take
seconds. This version keeps the same semantics (all conditions checked first,
`TransactionCanceledException` with one reason per item, nothing written when
any fails) and snapshots only the items it writes, restoring them if a write
raises part-way.
"""

from __future__ import annotations

import copy
from typing import Any

_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType

    def key_of(backend: Any, op_type: str, op: dict) -> dict:
        if op_type != "Put":
            return op["Key"]
        table = backend.get_table(op["TableName"])
        key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
        if table.range_key_attr is not None:
            key[table.range_key_attr] = op["Item"][table.range_key_attr]
        return key

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen: set[tuple[str, str]] = set()
        plan: list[tuple[str, dict, dict]] = []
        errors: list[Any] = []
        for item in transact_items:
            if len(item) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            key = key_of(self, op_type, op)
            marker = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if marker in seen:
                raise MultipleTransactionsException()
            seen.add(marker)
            plan.append((op_type, op, key))
            current = self.get_item(op["TableName"], key)
            if op.get("ConditionExpression") is not None:
                condition = get_filter_expression(op["ConditionExpression"], op.get("ExpressionAttributeNames"),
                                                  op.get("ExpressionAttributeValues"))
                if not condition.expr(current):
                    old = (current.to_json()["Attributes"]
                           if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current else None)
                    errors.append(("ConditionalCheckFailed", "The conditional request failed", old))
                    continue
            errors.append((None, None, None))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)

        snapshots = []
        for op_type, op, key in plan:
            if op_type != "ConditionCheck":
                current = self.get_item(op["TableName"], key)
                snapshots.append((op["TableName"], key, copy.deepcopy(current)))
        try:
            for op_type, op, key in plan:
                names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
                if op_type == "Put":
                    self.put_item(op["TableName"], op["Item"], expression_attribute_names=names,
                                  expression_attribute_values=values)
                elif op_type == "Delete":
                    self.delete_item(op["TableName"], key, expression_attribute_names=names,
                                     expression_attribute_values=values)
                elif op_type == "Update":
                    self.update_item(op["TableName"], key, update_expression=op["UpdateExpression"],
                                     expression_attribute_names=names, expression_attribute_values=values)
        except Exception:
            for table_name, key, before in snapshots:
                table = self.get_table(table_name)
                if before is None:
                    try:
                        table.delete_item(DynamoType(key[table.hash_key_attr]),
                                          DynamoType(key[table.range_key_attr]) if table.range_key_attr else None)
                    except Exception:  # noqa: BLE001 best-effort rollback of a partial write
                        pass
                else:
                    table.put_item(before.to_json()["Attributes"])
            raise

    # deliberate monkeypatch of moto's backend method (the replacement has the same call signature)
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    _APPLIED = True
