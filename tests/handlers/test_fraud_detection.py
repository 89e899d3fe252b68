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
    feature_items = aws.ddb.scan(TableName=aws.features_table)["Items"]
    decisions = {i["transaction_id"]: (i["decision"], i["score"], i["scored_at"]) for i in aws.transactions()}
    assert detect(aws, ctx, first) == {"batchItemFailures": []}
    # THEN the sixth and seventh transactions hit VELOCITY (more than five in the window), the others do not
    by_id = {i["transaction_id"]: i for i in aws.transactions()}
    assert [by_id[f"v-{i}"]["velocity_count"] for i in range(7)] == [1, 2, 3, 4, 5, 6, 7]
    assert [("VELOCITY" in by_id[f"v-{i}"]["reasons"]) for i in range(7)] == [False] * 5 + [True] * 2
    # AND the retry did not add anything to the card or merchant state, nor re-decide anything
    assert aws.ddb.scan(TableName=aws.features_table)["Items"] == feature_items
    card = next(i for i in feature_items if i["entity"]["S"].startswith("card#"))
    merchant = next(i for i in feature_items if i["entity"]["S"].startswith("merchant#"))
    assert sum(len(v["SS"]) for k, v in card.items() if k.startswith("t_")) == 7
    assert len(card["entity"]["S"]) == len("card#") + 64
    assert sum(int(v["N"]) for k, v in merchant.items() if k.startswith("n_")) == 7
    assert {i["transaction_id"]: (i["decision"], i["score"], i["scored_at"]) for i in aws.transactions()} == decisions


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
    aws.ddb.delete_table(TableName=aws.features_table)
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


# --------------------------------------------------------------------------- model, candidate, lists
def _scorecard(version: str, weight: float = 4.0) -> dict:
    """A tiny valid scorecard: risk jumps when the amount is far above the card's 30-day mean."""
    return {"format": "fraud-pipeline-scorecard", "format_version": 1, "version": version, "intercept": -5.0,
            "features": [{"name": "card_amount_vs_30d_mean", "edges": [3.0], "weights": [0.0, weight], "reference": 0.1},
                         {"name": "merchant_fraud_rate_7d", "edges": [0.2], "weights": [0.0, 3.0], "reference": 0.0}],
            "thresholds": {"review": 0.2, "block": 0.6}, "card": {}}


def _publish_model(aws, version: str, param: str = "/fraud-detection/test/model", **kwargs) -> str:
    key = f"models/{version}.json"
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=json.dumps(_scorecard(version, **kwargs)).encode())
    aws.ssm.put_parameter(Name=param, Type="SecureString", Value=key, Overwrite=True)
    return key


def _history_then_spike(aws, ctx, prefix: str) -> dict:
    """Ten ordinary purchases on one card over ten days, then one at twenty times the card's normal."""
    base = NOW_MS - 11 * 86_400_000
    payloads = [{"transaction_id": f"{prefix}-{i}", "amount": 40 + i, "card_number": "4000 0566 5566 5556",
                 "merchant": f"Shop {i % 3}", "location": "Leeds, UK", "timestamp": base + i * 86_400_000, "hour": 12}
                for i in range(10)]
    payloads.append({"transaction_id": f"{prefix}-spike", "amount": 900, "card_number": "4000 0566 5566 5556",
                     "merchant": "Shop 1", "location": "Leeds, UK", "timestamp": NOW_MS - 60_000, "hour": 12})
    ingest(aws, ctx, payloads)
    assert detect(aws, ctx, aws.new_stream_records()) == {"batchItemFailures": []}
    return {i["transaction_id"]: i for i in aws.transactions()}


def test_the_model_flags_what_the_rules_miss_and_explains_itself(aws, ctx):
    # GIVEN a model published to the archive bucket and named by the model parameter
    _publish_model(aws, "spike-v1")
    clients.reset_values()
    # WHEN a card's history is followed by a purchase at twenty times its 30-day mean
    by_id = _history_then_spike(aws, ctx, "m")
    spike = by_id["m-spike"]
    # THEN the rules alone approve it (no rule fires), the model flags it and says why
    assert spike["rules_score"] == 0
    assert spike["decision"] in ("review", "block") and spike["model_version"] == "spike-v1"
    assert "MODEL_RISK: card_amount_vs_30d_mean" in spike["reasons"]
    assert float(spike["features"]["card_count_30d"]) == 10 and float(spike["features"]["card_amount_vs_30d_mean"]) > 3
    # AND the ordinary ones stay approved, the alert carries the explanation
    assert all(by_id[f"m-{i}"]["decision"] == "approve" for i in range(10))
    (message,) = aws.alert_messages()
    alert = json.loads(message["Body"])
    assert alert["transaction_id"] == "m-spike" and any(r.startswith("MODEL_RISK") for r in alert["reasons"])
    events = {e["detail"]["transaction_id"]: e["detail"] for e in aws.decision_events()}
    assert events["m-spike"]["model_version"] == "spike-v1" and 0 < events["m-spike"]["risk"] <= 1


def test_a_bad_model_artifact_leaves_detection_on_the_rules(aws, ctx, capsys):
    # GIVEN the parameter names an object that is not a valid scorecard
    aws.s3.put_object(Bucket=aws.bucket, Key="models/broken.json", Body=b'{"format": "something else"}')
    aws.ssm.put_parameter(Name="/fraud-detection/test/model", Type="SecureString", Value="models/broken.json",
                          Overwrite=True)
    clients.reset_values()
    # WHEN transactions are scored
    by_id = _history_then_spike(aws, ctx, "b")
    # THEN nothing fails: the rules decide, and the failure is counted
    assert by_id["b-spike"]["decision"] == "approve" and "model_version" not in by_id["b-spike"]
    assert '"ModelLoadFailed":[1.0]' in capsys.readouterr().out.replace(" ", "")


def test_candidate_model_is_recorded_beside_the_live_decision_but_never_alerts(aws, ctx):
    # GIVEN no live model, and a candidate model in shadow
    _publish_model(aws, "candidate-v2", param="/fraud-detection/test/model-shadow")
    clients.reset_values()
    # WHEN the spike is scored
    by_id = _history_then_spike(aws, ctx, "s")
    spike = by_id["s-spike"]
    # THEN the live decision is the rules' (approve, no alert), the candidate's flag is on the item and the event
    assert spike["decision"] == "approve"
    assert spike["shadow"]["decision"] in ("review", "block") and spike["shadow"]["model_version"] == "candidate-v2"
    assert aws.alert_messages() == []
    events = {e["detail"]["transaction_id"]: e["detail"] for e in aws.decision_events()}
    assert events["s-spike"]["shadow"]["decision"] == spike["shadow"]["decision"]


def test_lists_change_at_run_time_without_a_deployment(aws, ctx):
    # GIVEN the lists parameter blocks "Kiosk 9" and allowlists one card's token
    from handlers.tokenise import card_token

    allowed_card = "4000000000000010"
    aws.ssm.put_parameter(Name="/fraud-detection/test/lists", Type="SecureString", Overwrite=True, Value=json.dumps({
        "blocked_merchants": ["Kiosk 9"], "high_risk_countries": [],
        "allowed_card_tokens": [card_token(allowed_card)]}))
    clients.reset_values()
    # WHEN a purchase at that merchant, one from Iran (no longer listed) and one by the allowlisted card arrive
    ingest(aws, ctx, [
        {"transaction_id": "l-1", "amount": 30, "merchant": "kiosk  9", "card_number": "4000000000000002", "hour": 12},
        {"transaction_id": "l-2", "amount": 30.5, "merchant": "Bazaar", "location": "Tehran, Iran", "hour": 12},
        {"transaction_id": "l-3", "amount": 20000, "merchant": "Kiosk 9", "card_number": allowed_card, "hour": 12},
    ])
    assert detect(aws, ctx, aws.new_stream_records()) == {"batchItemFailures": []}
    by_id = {i["transaction_id"]: i for i in aws.transactions()}
    # THEN the run-time lists decide, not the deployed RULES_JSON
    assert "BLOCKED_MERCHANT" in by_id["l-1"]["reasons"]
    assert "HIGH_RISK_LOCATION" not in by_id["l-2"]["reasons"]
    assert by_id["l-3"]["decision"] == "approve" and by_id["l-3"]["reasons"][0] == "ALLOWLISTED_CARD"


def test_merchant_counts_and_card_entries_are_exact_when_a_batch_is_partly_applied(aws, ctx):
    # GIVEN a batch of 60 purchases at one merchant whose second write chunk fails once
    payloads = [{"transaction_id": f"x-{i}", "amount": 10 + i, "card_number": f"4000000000{i:05d}",
                 "merchant": "Busy Bakery", "hour": 12, "timestamp": NOW_MS - (60 - i) * 1000} for i in range(60)]
    from handler_fixtures import luhn_complete

    for p in payloads:
        p["card_number"] = luhn_complete(p["card_number"])
    ingest(aws, ctx, payloads)
    records = aws.new_stream_records()
    calls = {"n": 0}

    def fail_second_transaction(params, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise ClientError({"Error": {"Code": "ValidationException", "Message": "injected"}}, "TransactWriteItems")

    clients.client("dynamodb").meta.events.register_first("before-call.dynamodb.TransactWriteItems", fail_second_transaction)
    # WHEN detection runs (part of the batch fails) and the batch is then retried
    with pytest.raises(ClientError):
        detect(aws, ctx, records)
    clients.reset()
    assert detect(aws, ctx, records) == {"batchItemFailures": []}
    # THEN every transaction is scored once and the merchant counted exactly 60
    items = aws.ddb.scan(TableName=aws.features_table)["Items"]
    merchant = next(i for i in items if i["entity"]["S"] == "merchant#busy bakery")
    assert sum(int(v["N"]) for k, v in merchant.items() if k.startswith("n_")) == 60
    assert len(aws.transactions()) == 60 and all("decision" in i for i in aws.transactions())
    assert sum(1 for i in items if i["entity"]["S"].startswith("card#")) == 60
