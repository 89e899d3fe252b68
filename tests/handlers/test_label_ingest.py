"""Bulk label files on S3: formats, quarantine, idempotent re-runs and the AWS calls they cost."""

from __future__ import annotations

import gzip
import json
from collections import Counter

import pytest
from boto3.dynamodb.types import TypeDeserializer
from handler_fixtures import (
    LabelEventCapture,
    luhn_complete,
    s3_event,
    store_transactions,
)

from handlers import label_ingest
from handlers.label_ingest import LabelIngestFailed

TS = 1748779200000
PAN = "4012888888881881"


def txns(n, merchants=10):
    return [{"transaction_id": f"b-{i:03d}", "amount": 20 + i, "merchant": f"Store {i % merchants}",
             "card_number": luhn_complete(f"5100{i:011d}"), "location": "Lyon, France", "timestamp": TS + i}
            for i in range(n)]


@pytest.fixture
def stored(aws, ctx):
    """GIVEN 5 recorded transactions b-000..b-004 and a capture of FraudLabel events."""
    store_transactions(aws, ctx, txns(5))
    return LabelEventCapture(aws)


def put(aws, key, data: bytes):
    aws.s3.put_object(Bucket=aws.bucket, Key=key, Body=data)
    return s3_event(aws.bucket, key, sizes=[len(data)])


def labelled(aws):
    return {i["transaction_id"]: (i.get("label"), i.get("label_source"), i.get("label_note"))
            for i in aws.transactions() if "label" in i}


def feature_state(aws):
    d = TypeDeserializer()
    return sorted(json.dumps({k: sorted(v) if isinstance(v, set) else str(v)
                              for k, v in {a: d.deserialize(b) for a, b in i.items()}.items()}, sort_keys=True)
                  for i in aws.ddb.scan(TableName=aws.features_table)["Items"])


JSONL = "\n".join([
    json.dumps({"transaction_id": "b-000", "label": "fraud", "source": "chargeback"}),      # 1 good
    "",                                                                                    # 2 blank
    json.dumps({"transaction_id": "b-001", "label": "genuine", "source": "customer", "note": "called"}),  # 3 good
    json.dumps({"transaction_id": "b-002", "label": "stolen", "source": "chargeback"}),    # 4 bad label
    "{not json",                                                                           # 5 bad JSON
    json.dumps({"transaction_id": "ghost-1", "label": "fraud", "source": "analyst"}),      # 6 unknown id
    json.dumps({"transaction_id": "b-003", "label": "fraud", "source": "analyst", "note": f"pan {PAN}"}),  # 7 PAN
    json.dumps({"transaction_id": PAN, "label": "fraud", "source": "analyst"}),            # 8 PAN as id
    json.dumps({"transaction_id": "b-004", "label": "fraud", "source": "analyst", PAN: "x"}),  # 9 PAN as key
    json.dumps(["b-004", "fraud"]),                                                        # 10 not an object
    "   ",                                                                                 # 11 blank
]) + "\n"

EXPECTED_JSONL_QUARANTINE = [
    {"line": 4, "reasons": [{"field": "label", "message": "must be one of: fraud, genuine"}]},
    {"line": 5, "reasons": [{"field": "row", "message": "is not valid JSON"}]},
    {"line": 6, "reasons": [{"field": "transaction_id", "message": "is not a known transaction"}]},
    {"line": 7, "reasons": [{"field": "note", "message": "must not contain a card number"}]},
    {"line": 8, "reasons": [{"field": "transaction_id", "message": "must not contain a card number"}]},
    {"line": 9, "reasons": [{"field": "[REDACTED-PAN]", "message": "is not a recognised field"}]},
    {"line": 10, "reasons": [{"field": "row", "message": "must be a JSON object"}]},
]


def test_jsonl_file_good_rows_recorded_bad_and_unknown_quarantined_rerun_changes_nothing(aws, ctx, stored, log_lines):
    # WHEN a JSONL label file lands under labels/
    event = put(aws, "labels/2025/06/chargebacks.jsonl", JSONL.encode())
    result = label_ingest.handler(event, ctx)
    # THEN the two good rows are recorded
    assert labelled(aws) == {"b-000": ("fraud", "chargeback", None), "b-001": ("genuine", "customer", "called")}
    (summary,) = result["files"]
    assert summary == {"key": "labels/2025/06/chargebacks.jsonl", "rows": 9, "recorded": 2, "unchanged": 0,
                       "rejected": 7, "failed": 0}
    # AND the others are quarantined by line number, with no row content
    quarantine = aws.objects("rejected/")
    assert list(quarantine) == ["rejected/labels/2025/06/chargebacks.jsonl.json"]
    document = quarantine["rejected/labels/2025/06/chargebacks.jsonl.json"]
    assert document == {"source_key": "labels/2025/06/chargebacks.jsonl", "records": EXPECTED_JSONL_QUARANTINE}
    assert PAN not in aws.raw_dump().replace(JSONL, "") and PAN not in "\n".join(log_lines())
    events = stored.events()
    assert sorted(e["detail"]["transaction_id"] for e in events) == ["b-000", "b-001"]
    before = (aws.transactions(), feature_state(aws), document)

    # WHEN the same event is delivered again
    (again,) = label_ingest.handler(event, ctx)["files"]
    # THEN nothing changes: the rows are found unchanged, the quarantine is the same
    assert again == {**summary, "recorded": 0, "unchanged": 2}
    assert (aws.transactions(), feature_state(aws),
            aws.objects("rejected/")["rejected/labels/2025/06/chargebacks.jsonl.json"]) == before
    assert sorted(e["detail"]["transaction_id"] for e in stored.events()) == ["b-000", "b-001"]  # at-least-once


def test_csv_gz_with_header_notes_and_bad_rows(aws, ctx, stored):
    text = ("\ufeffTransaction_ID, label ,source,note\r\n"
            "b-000,fraud,chargeback,\r\n"                       # 2 good, empty note
            "b-001 , genuine , analyst ,\"looked, fine\"\r\n"  # 3 good, quoted note with a comma
            "\r\n"                                             # 4 blank
            "b-002,fraud\r\n"                                  # 5 too few columns
            "b-003,,analyst,\r\n"                              # 6 missing label
            "nobody,genuine,customer,\r\n"                     # 7 unknown
            f"b-004,fraud,customer,card {PAN}\r\n"             # 8 PAN in note
            "b-000,genuine,analyst,second thoughts\r\n")       # 9 same id again: the last row wins
    event = put(aws, "labels/feed one.csv.gz", gzip.compress(text.encode()))
    assert "feed+one.csv.gz" in event["Records"][0]["s3"]["object"]["key"]
    (summary,) = label_ingest.handler(event, ctx)["files"]
    assert summary["recorded"] == 2 and summary["rejected"] == 4
    assert labelled(aws) == {"b-000": ("genuine", "analyst", "second thoughts"), "b-001": ("genuine", "analyst", "looked, fine")}
    document = aws.objects("rejected/")["rejected/labels/feed one.csv.gz.json"]
    assert document["records"] == [
        {"line": 5, "reasons": [{"field": "row", "message": "must have 4 columns, as the header"}]},
        {"line": 6, "reasons": [{"field": "label", "message": "is required"}]},
        {"line": 7, "reasons": [{"field": "transaction_id", "message": "is not a known transaction"}]},
        {"line": 8, "reasons": [{"field": "note", "message": "must not contain a card number"}]},
    ]
    assert PAN not in json.dumps(document)
    # a re-run: unchanged
    (again,) = label_ingest.handler(event, ctx)["files"]
    assert (again["recorded"], again["unchanged"]) == (0, 2)


@pytest.mark.parametrize("key, data, reason", [
    ("labels/a.txt", b"x", {"field": "object", "message": "key must end in .jsonl, .ndjson, .json or .csv, "
                                                          "optionally followed by .gz"}),
    ("labels/a.csv", b"id,label\nb-000,fraud\n",
     {"field": "header", "message": "must name the columns transaction_id, label, source and optionally note "
                                    "and labelled_at"}),
    ("labels/a.jsonl.gz", b"not gzip at all", {"field": "object", "message": "is not a valid gzip file"}),
])
def test_whole_object_problems_are_one_quarantine_record(aws, ctx, stored, key, data, reason):
    label_ingest.handler(put(aws, key, data), ctx)
    (document,) = aws.objects("rejected/labels/").values()
    assert document["source_key"] == key and [r["reasons"] for r in document["records"]] == [[reason]]
    assert labelled(aws) == {}


def test_objects_over_the_limit_are_refused_even_when_compressed(aws, ctx, stored, monkeypatch, log_lines):
    event = s3_event(aws.bucket, "labels/huge.jsonl", sizes=[60 * 1024 * 1024])  # never read
    label_ingest.handler(event, ctx)
    document = aws.objects("rejected/")["rejected/labels/huge.jsonl.json"]
    assert document["records"] == [{"line": 0, "reasons": [{"field": "object", "message": "must be at most 52428800 bytes"}]}]
    assert any('"level":"ERROR"' in line and "label file refused" in line for line in log_lines())
    monkeypatch.setattr(label_ingest, "MAX_OBJECT_BYTES", 1000)
    row = json.dumps({"transaction_id": "b-000", "label": "fraud", "source": "analyst"}) + "\n"
    label_ingest.handler(put(aws, "labels/bomb.ndjson.gz", gzip.compress((row * 100).encode())), ctx)
    document = aws.objects("rejected/")["rejected/labels/bomb.ndjson.gz.json"]
    assert document["records"][0]["reasons"] == [{"field": "object", "message": "must be at most 1000 bytes decompressed"}]
    assert labelled(aws) == {}


def test_keys_outside_labels_and_other_events_are_ignored(aws, ctx, stored, calls):
    calls.reset()
    result = label_ingest.handler(s3_event(aws.bucket, "rejected/labels/x.jsonl.json", "high-risk/a.json"), ctx)
    assert result == {"files": []} and calls.calls == []
    assert label_ingest.handler(s3_event(aws.bucket, "labels/x.jsonl", event_name="ObjectRemoved:Delete"), ctx) == \
        {"files": []}
    assert label_ingest.handler(s3_event("another-bucket", "labels/x.jsonl"), ctx) == {"files": []}
    # deleted before it was read: nothing to do, not an error
    (summary,) = label_ingest.handler(s3_event(aws.bucket, "labels/gone.jsonl"), ctx)["files"]
    assert summary["rows"] == 0 and aws.objects("rejected/") == {}


def test_transient_failures_raise_so_the_event_is_retried(aws, ctx, stored, monkeypatch):
    data = "\n".join(json.dumps({"transaction_id": f"b-00{i}", "label": "fraud", "source": "chargeback"})
                     for i in range(3)).encode()
    event = put(aws, "labels/retry.jsonl", data)
    monkeypatch.setattr(label_ingest.labels.dynamo, "backoff", lambda attempt: None)
    monkeypatch.setenv("EVENT_BUS_NAME", "no-such-bus")  # labels stored, events not published
    with pytest.raises(LabelIngestFailed):
        label_ingest.handler(event, ctx)
    monkeypatch.setenv("EVENT_BUS_NAME", "fraud-events-test")
    (summary,) = label_ingest.handler(event, ctx)["files"]
    assert (summary["recorded"], summary["unchanged"], summary["failed"]) == (0, 3, 0)
    assert len(stored.events()) == 3
    # a table that cannot be reached: raised as well
    monkeypatch.setenv("TABLE_NAME", "no-such-table")
    with pytest.raises(LabelIngestFailed):
        label_ingest.handler(event, ctx)


def test_a_100_row_file_costs_a_handful_of_calls(aws, ctx, calls):
    # GIVEN 100 transactions at 10 merchants and a file labelling all of them fraud
    store_transactions(aws, ctx, txns(100, merchants=10))
    rows = [{"transaction_id": f"b-{i:03d}", "label": "fraud", "source": "chargeback"} for i in range(100)]
    event = put(aws, "labels/100.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    calls.reset()
    # WHEN it is processed
    (summary,) = label_ingest.handler(event, ctx)["files"]
    # THEN all are recorded with a bounded number of calls (never one per row)
    assert summary["recorded"] == 100
    count = Counter(calls.calls)
    assert count[("s3", "GetObject")] == 1
    assert count[("dynamodb", "BatchGetItem")] == 2        # claims, then items
    assert 4 <= count[("dynamodb", "TransactWriteItems")] <= 12  # 300 actions, 10 labels per merchant
    assert count[("events", "PutEvents")] == 10
    assert sum(count.values()) <= 25
    # AND the IAM actions are the ones granted to label-ingest
    assert {a for a, _ in calls.authorised} == {"s3:GetObject", "dynamodb:BatchGetItem", "dynamodb:UpdateItem",
                                                "events:PutEvents"}
    # AND the same file again: unchanged, no writes
    calls.reset()
    (again,) = label_ingest.handler(event, ctx)["files"]
    assert again["unchanged"] == 100 and ("dynamodb", "TransactWriteItems") not in calls.calls


def test_quarantine_upload_needs_put_object_under_rejected_labels(aws, ctx, stored, calls):
    label_ingest.handler(put(aws, "labels/bad.csv", b"transaction_id,label,source\nb-000,maybe,analyst\n"), ctx)
    assert ("s3:PutObject", f"{aws.bucket}/rejected/labels/bad.csv.json") in calls.authorised


def test_chargeback_dates_become_the_label_time_and_bad_dates_are_quarantined(aws, ctx, stored):
    # GIVEN a chargeback CSV with a labelled_at column: epoch ms, ISO 8601 UTC, empty, and three bad dates
    raised = TS + 7 * 86_400_000
    text = ("transaction_id,label,source,labelled_at\n"
            f"b-000,fraud,chargeback,{raised}\n"                     # 2 epoch ms
            "b-001,fraud,chargeback,2025-06-09T12:00:00Z\n"          # 3 ISO 8601 UTC
            "b-002,fraud,chargeback,\n"                              # 4 no date: processing time
            "b-003,fraud,chargeback,2999-01-01T00:00:00Z\n"          # 5 in the future
            f"b-004,fraud,chargeback,{TS - 1000}\n"                  # 6 before the transaction
            "b-004,fraud,chargeback,2025-06-09T12:00:00+02:00\n")    # 7 not UTC (invalid: line 6 stays the row)
    before = int(__import__("time").time() * 1000)
    (summary,) = label_ingest.handler(put(aws, "labels/chargebacks.csv", text.encode()), ctx)["files"]
    assert (summary["recorded"], summary["rejected"]) == (3, 3)
    document = aws.objects("rejected/")["rejected/labels/chargebacks.csv.json"]
    assert document["records"] == [
        {"line": 5, "reasons": [{"field": "labelled_at", "message": "must not be in the future"}]},
        {"line": 6, "reasons": [{"field": "labelled_at", "message": "must not be before the transaction's timestamp"}]},
        {"line": 7, "reasons": [{"field": "labelled_at", "message": "must be epoch milliseconds or an ISO 8601 "
                                                                     "UTC date-time (e.g. 2026-01-05T10:00:00Z)"}]},
    ]
    items = {i["transaction_id"]: i for i in aws.transactions()}
    iso = 1749470400000  # 2025-06-09T12:00:00Z
    assert (int(items["b-000"]["labelled_at"]), int(items["b-001"]["labelled_at"])) == (raised, iso)
    assert int(items["b-002"]["labelled_at"]) >= before
    # AND the feature entries are keyed by those times: the card's frauds entry and the merchant's day
    d = TypeDeserializer()
    feats = {i["entity"]["S"]: {k: d.deserialize(v) for k, v in i.items()}
             for i in aws.ddb.scan(TableName=aws.features_table)["Items"]}
    frauds = set().union(*(f.get("frauds", set()) for k, f in feats.items() if k.startswith("card#")))
    assert {f"{raised}#b-000", f"{iso}#b-001"} <= frauds
    assert feats["merchant#store 0"]["f_20250608"] == 1 and feats["merchant#store 1"]["f_20250609"] == 1
    assert {e["detail"]["transaction_id"]: e["detail"]["labelled_at"] for e in stored.events()}["b-000"] == raised

    # WHEN a later file names a date before the transaction again, alone
    text = f"transaction_id,label,source,labelled_at\nb-004,fraud,chargeback,{TS - 1000}\n"
    (summary,) = label_ingest.handler(put(aws, "labels/early.csv", text.encode()), ctx)["files"]
    # THEN it is quarantined naming the field, and nothing is written
    assert (summary["recorded"], summary["rejected"]) == (0, 1)
    assert aws.objects("rejected/")["rejected/labels/early.csv.json"]["records"] == [
        {"line": 2, "reasons": [{"field": "labelled_at", "message": "must not be before the transaction's timestamp"}]}]
    assert "label" not in {i["transaction_id"]: i for i in aws.transactions()}["b-004"]
