"""A naive detection handler: the same scoring, one AWS call per action per record.

The baseline for `benchmarks.aws_calls`. For every INSERT of a transaction in a
DynamoDB stream batch it makes its own calls, as a first implementation
written record by record would:

1. state: GetItem of the card's and of the merchant's feature item;
2. state update: UpdateItem of each (set union of the card's entry, ADD of the
   merchant's day counter);
3. decision: UpdateItem of the decision attributes on the transaction item;
4. flagged (review/block): SendMessage to the alert queue;
5. block: PutObject of the evidence document to the archive bucket;
6. every decision: PutEvents with one entry.

So ~6 calls per approved transaction and 7-8 per flagged one. It is only ever
run by the benchmark, against the emulated resources, with the detection
function's environment. (It skips the retry check the real handler makes --
a read of the transaction item -- so the comparison favours the baseline.)
"""

from __future__ import annotations

import os
import time
from typing import Any

from handlers import dynamo, model_store
from handlers.alerts import decision_record
from handlers.clients import client, env
from handlers.features import CardState, MerchantState, card_entity, merchant_entity
from handlers.jsonutil import dumps
from handlers.rules import load_rules
from handlers.scoring import Scorer

EVENT_SOURCE = "fraud-pipeline.detection"
EVENT_DETAIL_TYPE = "FraudDecision"


def _state(table: str, entity: str | None) -> dict[str, Any] | None:
    if not entity:
        return None
    item = client("dynamodb").get_item(TableName=table, Key={"entity": {"S": entity}}, ConsistentRead=True).get("Item")
    return dynamo.from_ddb(item) if item else None


def _write_decision(table: str, txn: dict[str, Any], a: Any, count: int, now_ms: int) -> None:
    values = {":decision": a.decision, ":score": a.score, ":rules": a.rules_score, ":reasons": list(a.reasons),
              ":velocity": count, ":at": now_ms, ":rt": "transaction"}
    client("dynamodb").update_item(
        TableName=table,
        Key=dynamo.to_ddb({"transaction_id": txn["transaction_id"], "timestamp": int(txn["timestamp"])}),
        UpdateExpression="SET #decision = :decision, #score = :score, #rules = :rules, #reasons = :reasons, "
                         "#velocity = :velocity, #at = :at",
        ConditionExpression="attribute_exists(transaction_id) AND #rt = :rt",
        ExpressionAttributeNames={"#decision": "decision", "#score": "score", "#rules": "rules_score",
                                  "#reasons": "reasons", "#velocity": "velocity_count", "#at": "scored_at",
                                  "#rt": "record_type"},
        ExpressionAttributeValues=dynamo.to_ddb(values),
    )


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    rules = load_rules(os.environ.get("RULES_JSON"))
    scorer = Scorer(rules, model_store.live_model())
    now_ms = int(time.time() * 1000)
    table, features_table = env("TABLE_NAME"), env("FEATURES_TABLE_NAME")
    decisions: dict[str, str] = {}
    for record in event.get("Records") or []:
        if record.get("eventName") != "INSERT":
            continue
        txn = dynamo.from_ddb((record.get("dynamodb") or {}).get("NewImage") or {})
        if txn.get("record_type") != "transaction":
            continue
        card_key, merchant_key = card_entity(txn), merchant_entity(txn)
        card = CardState.from_item(_state(features_table, card_key)) if card_key else None
        merchant = MerchantState.from_item(_state(features_table, merchant_key)) if merchant_key else None
        features = scorer.features(txn, card, merchant)
        assessment = scorer.score(txn, features)
        if card is not None and card_key:
            # (from an empty state: the entry is added even when the real handler stored it already)
            action = CardState().update_action(features_table, card_key, [card.record(txn)])
            if action:
                client("dynamodb").update_item(**action["Update"])
        if merchant is not None and merchant_key:
            action = merchant.update_action(features_table, merchant_key, {merchant.record(txn): 1}, now_ms)
            if action:
                client("dynamodb").update_item(**action["Update"])
        _write_decision(table, txn, assessment, int(features["card_velocity"]), now_ms)
        body = decision_record(txn, assessment, decided_at_ms=now_ms)
        if assessment.flagged:
            client("sqs").send_message(QueueUrl=env("ALERT_QUEUE_URL"), MessageBody=dumps(body), MessageAttributes={
                "decision": {"DataType": "String", "StringValue": body["decision"]},
                "severity": {"DataType": "String", "StringValue": body["severity"]}})
        if assessment.decision == "block":
            day = time.strftime("%Y/%m/%d", time.gmtime(int(txn["timestamp"]) / 1000))
            client("s3").put_object(Bucket=env("ARCHIVE_BUCKET"), Key=f"high-risk/{day}/{txn['transaction_id']}.json",
                                    Body=dumps({**body, "card_token": txn.get("card_token")}).encode(),
                                    ContentType="application/json")
        client("events").put_events(Entries=[{"Source": EVENT_SOURCE, "DetailType": EVENT_DETAIL_TYPE,
                                              "Detail": dumps(body), "EventBusName": env("EVENT_BUS_NAME")}])
        decisions[txn["transaction_id"]] = assessment.decision
    return {"batchItemFailures": [], "decisions": decisions}
