"""A naive detection handler: the same scoring, one AWS call per action per record.

The baseline for `benchmarks.aws_calls`. For every INSERT of a transaction in a
DynamoDB stream batch it makes its own calls, as a first implementation
written record by record would:

1. velocity: UpdateItem `ADD txns :entry` on the card's bucket in the
   velocity table, returning the set (ALL_NEW), and counting it;
2. decision: UpdateItem of the decision attributes on the transaction item
   (the same update the real handler batches);
3. flagged (review/block): SendMessage to the alert queue;
4. block: PutObject of the evidence document to the archive bucket;
5. every decision: PutEvents with one entry.

So ~3 calls per approved transaction and 4-5 per flagged one. It is only ever
run by the benchmark, against the emulated resources, with the detection
function's environment. (Counting one bucket only, it makes one call fewer
than a correct naive implementation, which would also read the previous
bucket: the comparison favours the baseline.)
"""

from __future__ import annotations

import os
import time
from typing import Any

from handlers import dynamo
from handlers.alerts import decision_record
from handlers.clients import client, env
from handlers.jsonutil import dumps
from handlers.rules import assess, load_rules

EVENT_SOURCE = "fraud-pipeline.detection"
EVENT_DETAIL_TYPE = "FraudDecision"


def _velocity(table: str, txn: dict[str, Any], window_ms: int) -> int:
    token = txn.get("card_token")
    if not token:
        return 0
    ts = int(txn["timestamp"])
    start = ts - ts % window_ms
    response = client("dynamodb").update_item(
        TableName=table,
        Key=dynamo.to_ddb({"card_token": token, "window": start}),
        UpdateExpression="ADD txns :e SET expires_at = :x",
        ExpressionAttributeValues=dynamo.to_ddb({":e": {f"{ts}#{txn['transaction_id']}"},
                                                 ":x": (start + 3 * window_ms) // 1000 + 3600}),
        ReturnValues="ALL_NEW",
    )
    entries = dynamo.from_ddb(response.get("Attributes") or {}).get("txns") or set()
    times = [int(e.split("#", 1)[0]) for e in entries]
    return sum(1 for x in times if ts - window_ms < x <= ts)


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
    now_ms = int(time.time() * 1000)
    table, velocity_table = env("TABLE_NAME"), env("VELOCITY_TABLE_NAME")
    decisions: dict[str, str] = {}
    for record in event.get("Records") or []:
        if record.get("eventName") != "INSERT":
            continue
        txn = dynamo.from_ddb((record.get("dynamodb") or {}).get("NewImage") or {})
        if txn.get("record_type") != "transaction":
            continue
        count = _velocity(velocity_table, txn, rules.velocity_window_ms)
        assessment = assess(txn, rules, count)
        _write_decision(table, txn, assessment, count, now_ms)
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
