"""Detection on real stream records: skipping, poison, velocity, partial failures, ML, and the call budget."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from handler_fixtures import fake_endpoint, realistic_traffic
from handlers import api_handler, clients, fraud_detection, stream_ingest

NOW_MS = int(time.time() * 1000)


def ingest(aws, ctx, payloads):
    for start in range(0, len(payloads), 100):
        assert stream_ingest.handler(aws.kinesis_event(payloads[start:start + 100]), ctx) == {"batchItemFailures": []}


def detect(aws, ctx, records):
    return fraud_detection.handler(aws.stream_event(records), ctx)


def test_only_inserted_transactions_are_scored(aws, ctx):
    # GIVEN the unfiltered stream of a table holding a scored transaction: claim INSERTs, the
    # transaction INSERT, and the MODIFY that the first scoring wrote (a local run has no ESM filter)
    api_handler.handler(aws.api_event({"amount": 20000, "merchant": "Gold", "card_number": "4000000000000002",
                                       "location": "Oslo, Norway", "transaction_id": "only-1"}), ctx)
    detect(aws, ctx, aws.new_stream_records())
    aws.alert_messages(), aws.decision_events()
    api_handler.handler(aws.api_event({"amount": 12, "merchant": "Kiosk", "card_number": "4000000000000010",
                                       "location": "Oslo, Norway", "transaction_id": "only-2"}), ctx)
    records = aws.new_stream_records(filtered=False)
    assert sorted(r["eventName"] for r in records) == ["INSERT", "INSERT", "MODIFY"]
    # WHEN the handler gets all of them
    assert detect(aws, ctx, records) == {"batchItemFailures": []}
    # THEN only the new transaction was scored and published
    assert [e["detail"]["transaction_id"] for e in aws.decision_events()] == ["only-2"]
    removal = {**records[0], "eventName": "REMOVE", "dynamodb": {**records[0]["dynamodb"], "SequenceNumber": "999"}}
    assert detect(aws, ctx, [removal]) == {"batchItemFailures": []}
    assert aws.decision_events() == []


def test_poison_record_cannot_block_the_shard(aws, ctx, log_lines):
    # GIVEN a batch where one INSERT image is not a valid transaction (amount is text) between two good ones
    ingest(aws, ctx, [{"transaction_id": "p-1", "amount": 100}, {"transaction_id": "p-2", "amount": 200}])
    good = aws.new_stream_records()
    poison = json.loads(json.dumps(good[0]))
    poison["dynamodb"]["NewImage"]["amount"] = {"S": "lots"}
    poison["dynamodb"]["NewImage"]["transaction_id"] = {"S": "p-poison"}
    poison["dynamodb"]["SequenceNumber"] = "1" + poison["dynamodb"]["SequenceNumber"]
    garbage = {"eventName": "INSERT", "dynamodb": {"SequenceNumber": "2" + good[0]["dynamodb"]["SequenceNumber"],
                                                   "NewImage": {"record_type": {"S": "transaction"}, "x": {"Q": 1}}}}
    # WHEN the batch is processed
    result = detect(aws, ctx, [good[0], poison, garbage, good[1]])
    # THEN no failure is reported (the shard moves on), the good ones are scored, the poison is logged
    assert result == {"batchItemFailures": []}
    assert sorted(e["detail"]["transaction_id"] for e in aws.decision_events()) == ["p-1", "p-2"]
    errors = [json.loads(line) for line in log_lines() if "poison stream record skipped" in line]
    assert [e.get("transaction_id") for e in errors] == ["p-poison", None]
    assert errors[0]["fields"] == ["amount"]


def test_write_back_keeps_other_stages_attributes(aws, ctx):
    ingest(aws, ctx, [{"transaction_id": "keep-1", "amount": 7000, "hour": 2, "location_mismatch": True}])
    records = aws.new_stream_records()
    (item,) = aws.transactions()
    aws.ddb.update_item(TableName=aws.table, Key={"transaction_id": {"S": "keep-1"}, "timestamp": {"N": str(item["timestamp"])}},
                        UpdateExpression="SET alert_sent_at = :a, review_decision = :r",
                        ExpressionAttributeValues={":a": {"N": "1"}, ":r": {"S": "block"}})
    assert detect(aws, ctx, records) == {"batchItemFailures": []}
    (item,) = aws.transactions()
    assert item["alert_sent_at"] == 1 and item["review_decision"] == "block"
    assert item["decision"] == "review" and item["reasons"] == ["ELEVATED_AMOUNT", "ODD_HOUR", "LOCATION_MISMATCH"] and item["hour"] == 2


def test_velocity_counts_each_transaction_once_even_when_retried(aws, ctx):
    # GIVEN seven purchases on one card within ten minutes, in two batches
    base = NOW_MS - 9 * 60_000
    payloads = [{"transaction_id": f"v-{i}", "amount": 60 + i, "card_number": "4000 0566 5566 5556",
                 "merchant": "Shop", "location": "Leeds, UK", "timestamp": base + i * 60_000, "hour": 12} for i in range(7)]
    ingest(aws, ctx, payloads[:4])
    first = aws.new_stream_records()
    ingest(aws, ctx, payloads[4:])
    second = aws.new_stream_records()
    # WHEN detection runs, and the first batch is delivered again (a retry)
    assert detect(aws, ctx, first) == {"batchItemFailures": []}
    assert detect(aws, ctx, second) == {"batchItemFailures": []}
    velocity_items = aws.ddb.scan(TableName=aws.velocity_table)["Items"]
    assert detect(aws, ctx, first) == {"batchItemFailures": []}
    # THEN the sixth and seventh transactions hit VELOCITY (more than five in the window), the others do not
    by_id = {i["transaction_id"]: i for i in aws.transactions()}
    assert [by_id[f"v-{i}"]["velocity_count"] for i in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert [("VELOCITY" in by_id[f"v-{i}"]["reasons"]) for i in range(7)] == [False] * 5 + [True] * 2
    # AND the retry did not add anything to the counts
    assert aws.ddb.scan(TableName=aws.velocity_table)["Items"] == velocity_items
    assert sum(len(i["txns"]["SS"]) for i in velocity_items) == 7
    assert all(len(i["card_token"]["S"]) == 64 for i in velocity_items)


def test_transactions_older_than_the_window_do_not_count(aws, ctx):
    base = NOW_MS - 60 * 60_000
    payloads = [{"transaction_id": f"o-{i}", "amount": 70, "card_number": "4000 0566 5566 5556",
                 "timestamp": base + i * 3 * 60_000} for i in range(8)]  # one every 3 minutes
    ingest(aws, ctx, payloads)
    detect(aws, ctx, aws.new_stream_records())
    counts = {i["transaction_id"]: i["velocity_count"] for i in aws.transactions()}
    assert [counts[f"o-{i}"] for i in range(8)] == [1, 2, 3, 4, 4, 4, 4, 4]  # (t-10min, t] holds at most 4


def test_partial_failures_map_to_their_records(aws, ctx):
    # GIVEN three flagged transactions, and SQS refuses the second alert while EventBridge refuses the third event
    ingest(aws, ctx, [{"transaction_id": f"f-{i}", "amount": 7000, "hour": 1, "location_mismatch": True} for i in range(3)])
    records = aws.new_stream_records()
    seq = {r["dynamodb"]["NewImage"]["transaction_id"]["S"]: r["dynamodb"]["SequenceNumber"] for r in records}

    def fail_second_alert(http_response, parsed, model, **kwargs):
        if model.name == "SendMessageBatch":
            ok = [e for e in parsed["Successful"] if e["Id"] != "1"]
            parsed["Successful"], parsed["Failed"] = ok, [{"Id": "1", "SenderFault": False, "Code": "InternalError"}]
        if model.name == "PutEvents":
            parsed["Entries"][-1] = {"ErrorCode": "InternalException", "ErrorMessage": "try again"}
            parsed["FailedEntryCount"] = 1

    for service in ("sqs", "events"):
        clients.client(service).meta.events.register("after-call", fail_second_alert)
    order = [r["dynamodb"]["NewImage"]["transaction_id"]["S"] for r in records]
    # WHEN detection runs
    result = detect(aws, ctx, records)
    # THEN exactly those two records are reported; the rest succeeded
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted([seq[order[1]], seq[order[2]]])
    # AND every decision was written back (a retry rewrites the same values)
    assert {i["decision"] for i in aws.transactions()} == {"review"}


def test_block_archive_failure_is_retried(aws, ctx):
    ingest(aws, ctx, [{"transaction_id": "b-1", "amount": 50000, "merchant": "Unknown Store"},
                      {"transaction_id": "b-2", "amount": 100}])
    records = aws.new_stream_records()
    blocked = [r for r in records if r["dynamodb"]["NewImage"]["transaction_id"]["S"] == "b-1"][0]
    aws.s3.delete_bucket(Bucket=aws.bucket)
    result = detect(aws, ctx, records)
    assert result == {"batchItemFailures": [{"itemIdentifier": blocked["dynamodb"]["SequenceNumber"]}]}
    # a record that failed a step skips the later ones: only the approved one reached the bus
    assert [e["detail"]["transaction_id"] for e in aws.decision_events()] == ["b-2"]


def test_whole_batch_failure_raises_for_a_full_retry(aws, ctx):
    ingest(aws, ctx, [{"transaction_id": "w-1", "amount": 10, "card_number": "4000000000000002"}])
    records = aws.new_stream_records()
    aws.ddb.delete_table(TableName=aws.velocity_table)
    with pytest.raises(ClientError, match="ResourceNotFoundException"):  # the invocation fails: Lambda retries the batch
        detect(aws, ctx, records)


@pytest.mark.parametrize("endpoint, ml, expected", [
    ("fraud-test-model", 0.9, ("block", 72, 90)),       # 60 rules, blended up
    ("fraud-test-model", 0.1, ("review", 60, 10)),      # ML never lowers the rules score
    ("fraud-test-model", ClientError({"Error": {"Code": "ModelError", "Message": "x"}}, "InvokeEndpoint"), ("review", 60, None)),
    ("fraud-test-model", "not a number", ("review", 60, None)),
    ("fraud-prod-model", 0.9, ("review", 60, None)),    # another environment's endpoint is refused
    ("none", 0.9, ("review", 60, None)),
])
def test_ml_score_is_blended_with_fallback(aws, ctx, endpoint, ml, expected):
    aws.ssm.put_parameter(Name="/fraud-detection/test/ml-endpoint", Type="String", Value=endpoint, Overwrite=True)
    seen = fake_endpoint(ml)
    ingest(aws, ctx, [{"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": True}])
    assert detect(aws, ctx, aws.new_stream_records()) == {"batchItemFailures": []}
    (item,) = aws.transactions()
    assert (item["decision"], item["score"], item.get("ml_score")) == expected
    assert item["rules_score"] == 60
    calls_expected = 1 if endpoint == "fraud-test-model" else 0
    assert len(seen) == calls_expected
    if seen:
        assert seen[0]["instances"][0]["amount"] == 5500.0 and "card_token" not in seen[0]["instances"][0]


# --------------------------------------------------------------------------- realistic traffic and the call budget
def test_detection_averages_at_most_half_an_aws_call_per_transaction(aws, ctx, calls):
    # GIVEN 300 realistic transactions ingested through Kinesis, delivered to detection in batches of 100
    ingest(aws, ctx, realistic_traffic(300))
    records = aws.new_stream_records()
    assert len(records) == 300
    calls.reset()
    # WHEN detection processes them
    for start in range(0, 300, 100):
        assert detect(aws, ctx, records[start:start + 100]) == {"batchItemFailures": []}
    # THEN every transaction was scored, a few percent flagged, and the calls stay within budget
    decisions = [i["decision"] for i in aws.transactions()]
    flagged = sum(d != "approve" for d in decisions)
    assert len(decisions) == 300 and 3 <= flagged <= 30, flagged
    assert {"approve", "review", "block"} <= set(decisions)
    per_transaction = len(calls.calls) / 300
    print(f"detection: {len(calls.calls)} AWS calls for 300 transactions = {per_transaction:.3f} per transaction; "
          f"{flagged} flagged; by action: {sorted(set((c, calls.calls.count(c)) for c in calls.calls))}")
    assert per_transaction <= 0.5
    assert len(aws.alert_messages()) == flagged and len(aws.decision_events()) == 300


def test_metrics_count_scores_decisions_and_rule_hits(aws, ctx, capsys):
    ingest(aws, ctx, [{"transaction_id": "m-1", "amount": 20000, "merchant": "Unknown Store", "hour": 12},
                      {"transaction_id": "m-2", "amount": 10, "hour": 3}])
    capsys.readouterr()
    detect(aws, ctx, aws.new_stream_records())
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    (blob,) = emf
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "FraudPipeline"
    values = {k: v for k, v in blob.items() if k not in ("_aws", "service")}
    assert values["TransactionsScored"] == [2.0]
    assert values["DecisionBlock"] == [1.0] and values["DecisionApprove"] == [1.0]
    assert values["RuleHitHighAmount"] == [1.0] and values["RuleHitBlockedMerchant"] == [1.0]
    assert values["RuleHitCardTesting"] == [1.0] and values["RuleHitOddHour"] == [1.0]
    assert values["AlertsQueued"] == [1.0] and values["HighRiskArchived"] == [1.0]
