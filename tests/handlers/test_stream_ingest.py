"""Kinesis ingest: minimal records, quarantine of invalid ones, replays, partial failures."""

from __future__ import annotations

import base64
import json

from botocore.exceptions import ClientError

from handlers import clients, stream_ingest

MINIMAL = {"transaction_id": "test-123", "amount": 5500, "hour": 23, "location_mismatch": True, "velocity_flag": False}


def seqs(event):
    return [r["kinesis"]["sequenceNumber"] for r in event["Records"]]


def test_minimal_record_is_stored_with_its_arrival_time(aws, ctx):
    # GIVEN the minimal record a producer sends with put_record
    event = aws.kinesis_event([MINIMAL], arrival=1_763_000_000.123)
    # WHEN it is ingested
    assert stream_ingest.handler(event, ctx) == {"batchItemFailures": []}
    # THEN it is stored as a transaction; with no timestamp, its Kinesis arrival time is used
    (item,) = aws.transactions()
    assert item["transaction_id"] == "test-123" and item["timestamp"] == 1_763_000_000_123
    assert item["hour"] == 23 and item["location_mismatch"] is True and item["currency"] == "USD"
    assert item["source"] == "stream" and "card_token" not in item


def test_invalid_and_poison_records_are_quarantined_without_the_card_and_never_retried(aws, ctx, log_lines):
    # GIVEN a batch mixing good records, an invalid one carrying a card number, and undecodable ones
    event = aws.kinesis_event([
        {"transaction_id": "good-1", "amount": 20, "card_number": "5500 0000 0000 0004", "merchant": "Fuel"},
        {"transaction_id": "bad-1", "amount": "lots", "card_number": "4111 1111 1111 1111", "note": "4111111111111111"},
        {"amount": 10},
        [1, 2, 3],
    ])
    event["Records"] += aws.kinesis_event([b"\xff not json"], raw=True)["Records"]
    event["Records"] += aws.kinesis_event(["%%% not base64 %%%"], raw=True)["Records"]
    # WHEN the batch is ingested
    result = stream_ingest.handler(event, ctx)
    # THEN nothing is reported for retry: the good record is stored, the rest are quarantined in one object
    assert result == {"batchItemFailures": []}
    assert [i["transaction_id"] for i in aws.transactions()] == ["good-1"]
    (key, document), = aws.objects("rejected/").items()
    assert key.startswith("rejected/") and key.endswith(f"/shardId-000000000000/{seqs(event)[1]}.json")
    reasons = {r["sequence_number"]: r["reasons"] for r in document["records"]}
    assert reasons == {
        seqs(event)[1]: [{"field": "amount", "message": "must be a JSON number"},
                         {"field": "note", "message": "is not a recognised field"}],
        seqs(event)[2]: [{"field": "transaction_id", "message": "is required"}],
        seqs(event)[3]: [{"field": "body", "message": "must be a JSON object"}],
        seqs(event)[4]: [{"field": "body", "message": "is not valid UTF-8"}],
        seqs(event)[5]: [{"field": "data", "message": "is not valid base64"}],
    }
    bad = document["records"][0]["record"]
    assert bad["card_number"] == "[REDACTED]" and bad["note"] == "[REDACTED-PAN]" and bad["amount"] == "lots"
    # AND the card numbers are nowhere at rest or in the logs
    dump = aws.raw_dump() + "\n".join(log_lines())
    assert "4111111111111111" not in dump and "4111 1111 1111 1111" not in dump and "5500 0000 0000 0004" not in dump


def test_replayed_batch_and_in_batch_duplicates_write_nothing_new(aws, ctx):
    # GIVEN a batch where the producer retried one record inside the batch
    records = [MINIMAL, {"transaction_id": "t-2", "amount": 12.5}, MINIMAL]
    assert stream_ingest.handler(aws.kinesis_event(records, arrival=1_763_000_000), ctx) == {"batchItemFailures": []}
    first = aws.items()
    assert sorted(i["transaction_id"] for i in aws.transactions()) == ["t-2", "test-123"]
    # WHEN Lambda delivers the whole batch again, later
    assert stream_ingest.handler(aws.kinesis_event(records, arrival=1_763_000_999), ctx) == {"batchItemFailures": []}
    # THEN nothing was written
    assert aws.items() == first
    assert aws.objects("rejected/") == {}


def test_same_id_with_different_content_is_quarantined_as_a_conflict(aws, ctx):
    stream_ingest.handler(aws.kinesis_event([MINIMAL]), ctx)
    event = aws.kinesis_event([{**MINIMAL, "amount": 9999}, {"transaction_id": "x-1", "amount": 1},
                               {"transaction_id": "x-1", "amount": 2}])
    assert stream_ingest.handler(event, ctx) == {"batchItemFailures": []}
    (document,) = aws.objects("rejected/").values()
    assert [(r["sequence_number"], r["reasons"]) for r in document["records"]] == [
        (seqs(event)[0], [{"field": "transaction_id", "message": "was already used for a different transaction"}]),
        (seqs(event)[2], [{"field": "transaction_id", "message": "was already used for a different transaction"}]),
    ]
    assert {i["transaction_id"]: str(i["amount"]) for i in aws.transactions()} == {"test-123": "5500.00", "x-1": "1.00"}


def test_throttled_writes_are_reported_per_record(aws, ctx, calls):
    # GIVEN 60 valid records (two TransactWriteItems calls) and the second call keeps being throttled
    payloads = [{"transaction_id": f"t-{i:03d}", "amount": 10 + i} for i in range(60)]
    event = aws.kinesis_event(payloads)
    ddb = clients.client("dynamodb")
    writes = []

    def throttle_second_chunk(params, **kwargs):
        writes.append(len(params["TransactItems"]))
        if params["TransactItems"][0]["Put"]["Item"]["transaction_id"]["S"] == "t-050":
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "slow down"}},
                              "TransactWriteItems")

    ddb.meta.events.register_first("before-parameter-build.dynamodb.TransactWriteItems", throttle_second_chunk)
    # WHEN ingested
    result = stream_ingest.handler(event, ctx)
    # THEN exactly the ten records of the throttled chunk are reported for retry; the first fifty are stored
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == sorted(seqs(event)[50:])
    assert len(aws.transactions()) == 50
    assert writes[0] == 100 and set(writes[1:]) == {20}
    # AND one BatchGetItem covered all sixty claims
    assert calls.calls.count(("dynamodb", "BatchGetItem")) == 1


def test_quarantine_upload_failure_retries_only_the_rejected_records(aws, ctx):
    aws.s3.delete_bucket(Bucket=aws.bucket)
    event = aws.kinesis_event([MINIMAL, {"amount": 1}])
    result = stream_ingest.handler(event, ctx)
    assert result == {"batchItemFailures": [{"itemIdentifier": seqs(event)[1]}]}
    assert [i["transaction_id"] for i in aws.transactions()] == ["test-123"]


def test_calls_per_record_on_a_full_batch(aws, ctx, calls):
    payloads = [{"transaction_id": f"p-{i}", "amount": 100 + i, "card_number": f"4000{i:012d}",
                 "merchant": "Shop", "location": "Austin, USA"} for i in range(100)]
    assert stream_ingest.handler(aws.kinesis_event(payloads), ctx) == {"batchItemFailures": []}
    assert sorted(set(calls.calls)) == [("dynamodb", "BatchGetItem"), ("dynamodb", "TransactWriteItems"),
                                        ("ssm", "GetParameter")]
    assert len(calls.calls) == 4  # key once, claims read once, two transactional writes of 50
    assert len(aws.transactions()) == 100


def test_producer_example_in_the_docs(aws, ctx):
    # The documented producer: kinesis.put_record(Data=json.dumps(record).encode(), PartitionKey=card or id)
    data = json.dumps({"transaction_id": "doc-1", "amount": 42.0, "merchant": "Coffee", "card_number": "4242424242424242",
                       "location": "Austin, USA", "timestamp": "2025-11-21T10:15:00Z"}).encode()
    event = aws.kinesis_event([base64.b64decode(base64.b64encode(data))], raw=True)
    assert stream_ingest.handler(event, ctx) == {"batchItemFailures": []}
    (item,) = aws.transactions()
    assert item["card_last4"] == "4242" and item["timestamp"] == 1763720100000


def test_copy_written_by_another_shard_between_read_and_write_is_a_duplicate(aws, ctx):
    # GIVEN the same record in two shards' batches: the other invocation stores it after this one
    # found no claim (BatchGetItem) but before this one writes (TransactWriteItems)
    event = aws.kinesis_event([MINIMAL, {"transaction_id": "other", "amount": 3}], arrival=1_763_000_000)
    ddb = clients.client("dynamodb")
    raced = []

    def other_shard_first(params, **kwargs):
        if not raced:
            raced.append("running")  # the other invocation's own write must not trigger this again
            raced[0] = stream_ingest.handler(aws.kinesis_event([MINIMAL], arrival=1_763_000_000), ctx)

    ddb.meta.events.register_first("before-parameter-build.dynamodb.TransactWriteItems", other_shard_first)
    # WHEN this invocation writes
    result = stream_ingest.handler(event, ctx)
    # THEN both succeed, the record exists once, and the other record of this batch was still written
    assert raced == [{"batchItemFailures": []}] and result == {"batchItemFailures": []}
    assert sorted(i["transaction_id"] for i in aws.transactions()) == ["other", "test-123"]
    assert aws.objects("rejected/") == {}


def test_tokens_are_keyed_and_shared_by_both_ingest_paths(aws, ctx):
    from handlers import api_handler
    from handlers.tokenise import card_token

    api_handler.handler(aws.api_event({"amount": 10.5, "merchant": "M", "card_number": "4000-0000-0000-0077",
                                       "location": "Oslo, Norway", "transaction_id": "tok-api"}), ctx)
    stream_ingest.handler(aws.kinesis_event([{"transaction_id": "tok-stream", "amount": 3,
                                              "card_number": "4000 0000 0000 0077"}]), ctx)
    tokens = {i["transaction_id"]: i["card_token"] for i in aws.transactions()}
    assert tokens["tok-api"] == tokens["tok-stream"] == card_token("4000000000000077")
    import hashlib
    import hmac

    from handler_fixtures import CARD_KEY
    assert tokens["tok-api"] == hmac.new(CARD_KEY.encode(), b"4000000000000077", hashlib.sha256).hexdigest()
    assert tokens["tok-api"] != hashlib.sha256(b"4000000000000077").hexdigest()  # keyed, not a plain hash


def test_oversized_record_is_quarantined(aws, ctx):
    event = aws.kinesis_event([{"transaction_id": "big", "amount": 1, "merchant": "m" * 70_000}])
    assert stream_ingest.handler(event, ctx) == {"batchItemFailures": []}
    (document,) = aws.objects("rejected/").values()
    assert document["records"][0]["reasons"] == [{"field": "data", "message": "must be at most 65536 bytes"}]
    assert len(document["records"][0]["record"]) <= 4096 and aws.transactions() == []
