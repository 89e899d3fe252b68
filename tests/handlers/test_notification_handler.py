"""Alerts from the queue to SNS: one message per transaction, whatever SQS and Lambda retry."""

from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

from handlers import clients, fraud_detection, notification_handler, stream_ingest
from handlers.alerts import TemplateError, parse_templates, sns_subject


def flagged(aws, ctx, payloads):
    """Ingest, detect and return the alert-queue messages for `payloads`."""
    assert stream_ingest.handler(aws.kinesis_event(payloads), ctx) == {"batchItemFailures": []}
    assert fraud_detection.handler(aws.stream_event(aws.new_stream_records()), ctx) == {"batchItemFailures": []}
    return aws.alert_messages()


REVIEW = {"transaction_id": "n-1", "amount": 5500, "hour": 23, "location_mismatch": True, "merchant": "Caf\u00e9 M\u00fcller",
          "card_number": "4000 0000 0000 0077", "location": "Z\u00fcrich, Switzerland"}


def test_alert_is_published_once_even_when_the_batch_is_delivered_again(aws, ctx):
    # GIVEN an alert on the queue
    messages = flagged(aws, ctx, [REVIEW])
    assert len(messages) == 1
    # WHEN the notification handler gets it, and then gets the same batch again (a retry / redelivery)
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    # THEN SNS got exactly one message, with ASCII subject, masked card and the filterable attributes
    (note,) = aws.sns_notifications()
    assert note["Subject"] == "Fraud alert: REVIEW 5,500.00 USD at Cafe Muller"
    assert note["Message"] == ("Transaction n-1: REVIEW (60/100) for 5,500.00 USD at Caf\u00e9 M\u00fcller, card **** 0077. "
                               "Reasons: ELEVATED_AMOUNT, ODD_HOUR, LOCATION_MISMATCH.")
    assert {k: v["Value"] for k, v in note["MessageAttributes"].items()} == {"decision": "review", "severity": "medium"}
    (item,) = aws.transactions()
    assert item["alert_sent_at"] > 0 and item["alert_message_id"]


def test_two_copies_in_one_batch_publish_once(aws, ctx):
    messages = flagged(aws, ctx, [REVIEW])
    copy = {**messages[0], "MessageId": "copy-of-" + messages[0]["MessageId"]}
    assert notification_handler.handler(aws.sqs_event([messages[0], copy]), ctx) == {"batchItemFailures": []}
    assert len(aws.sns_notifications()) == 1


def test_alert_in_flight_elsewhere_is_retried_later_not_duplicated(aws, ctx):
    # GIVEN another consumer holds a fresh claim on the transaction (SQS delivered a copy to it)
    messages = flagged(aws, ctx, [REVIEW])
    (item,) = aws.transactions()
    key = {"transaction_id": {"S": "n-1"}, "timestamp": {"N": str(item["timestamp"])}}
    now = int(time.time() * 1000)
    aws.ddb.update_item(TableName=aws.table, Key=key, UpdateExpression="SET alert_claim = :c, alert_claimed_at = :t",
                        ExpressionAttributeValues={":c": {"S": "other"}, ":t": {"N": str(now)}})
    # WHEN this copy is handled THEN it is reported for retry and nothing is published
    result = notification_handler.handler(aws.sqs_event(messages), ctx)
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert aws.sns_notifications() == []
    # WHEN the other consumer died and its lease ran out THEN the retry publishes
    aws.ddb.update_item(TableName=aws.table, Key=key, UpdateExpression="SET alert_claimed_at = :t",
                        ExpressionAttributeValues={":t": {"N": str(now - notification_handler.CLAIM_LEASE_MS - 1)}})
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    assert len(aws.sns_notifications()) == 1


def test_publish_failure_is_retried_and_nothing_is_lost(aws, ctx):
    # GIVEN two alerts, and SNS fails the first entry of the batch
    messages = flagged(aws, ctx, [REVIEW, {**REVIEW, "transaction_id": "n-2"}])
    sns = clients.client("sns")
    refused = []

    def drop_first(params, **kwargs):  # SNS does not take the first entry...
        refused.append(params["PublishBatchRequestEntries"].pop(0)["Id"])

    def report_it(http_response, parsed, model, **kwargs):  # ...and says so in the response
        parsed.setdefault("Failed", []).append({"Id": refused[-1], "Code": "InternalError", "SenderFault": False})

    sns.meta.events.register("before-parameter-build.sns.PublishBatch", drop_first)
    sns.meta.events.register("after-call.sns.PublishBatch", report_it)
    result = notification_handler.handler(aws.sqs_event(messages), ctx)
    # THEN only that message is reported, and its claim is released
    assert result == {"batchItemFailures": [{"itemIdentifier": messages[0]["MessageId"]}]}
    assert len(aws.sns_notifications()) == 1
    sns.meta.events.unregister("before-parameter-build.sns.PublishBatch", drop_first)
    sns.meta.events.unregister("after-call.sns.PublishBatch", report_it)
    # WHEN the failed message is redelivered THEN it is published at once (no lease to wait for)
    assert notification_handler.handler(aws.sqs_event([messages[0]]), ctx) == {"batchItemFailures": []}
    assert len(aws.sns_notifications()) == 1
    assert all("alert_sent_at" in i for i in aws.transactions())


def test_marker_failure_after_publish_does_not_resend(aws, ctx):
    messages = flagged(aws, ctx, [REVIEW])
    ddb = clients.client("dynamodb")
    calls = []

    def fail_the_mark(params, **kwargs):
        calls.append(params.get("UpdateExpression"))
        if params.get("UpdateExpression", "").startswith("SET alert_sent_at"):
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "UpdateItem")

    ddb.meta.events.register_first("before-parameter-build.dynamodb.UpdateItem", fail_the_mark)
    # publish succeeded, the mark did not: the message is still done (reporting it would resend)
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    assert len(aws.sns_notifications()) == 1


def test_poison_and_orphan_messages_fail_towards_the_dlq(aws, ctx, log_lines):
    messages = flagged(aws, ctx, [REVIEW])
    poison = {**messages[0], "MessageId": "poison", "Body": "{not json"}
    invalid = {**messages[0], "MessageId": "invalid", "Body": json.dumps({**json.loads(messages[0]["Body"]), "score": "high"})}
    orphan = {**messages[0], "MessageId": "orphan", "Body": json.dumps({**json.loads(messages[0]["Body"]), "transaction_id": "ghost"})}
    result = notification_handler.handler(aws.sqs_event([poison, messages[0], invalid, orphan]), ctx)
    assert sorted(f["itemIdentifier"] for f in result["batchItemFailures"]) == ["invalid", "orphan", "poison"]
    assert len(aws.sns_notifications()) == 1
    assert any("poison alert message" in line and '"score"' in line for line in log_lines())


def test_block_alert_severity_and_long_subject(aws, ctx):
    long_merchant = "Unknown Store"
    aws.ssm.put_parameter(Name="/fraud-detection/test/alert-templates", Type="String", Overwrite=True,
                          Value=json.dumps({"subject": "[{environment}] {severity} {decision}: {amount} {currency} at "
                                                       "{merchant} with {card} for {transaction_id} {reasons}",
                                            "body": "{card} {score}"}))
    messages = flagged(aws, ctx, [{"transaction_id": "n-b" + "x" * 60, "amount": 99999.99, "merchant": long_merchant,
                                   "card_number": "4000000000000077", "location": "Tehran, Iran"}])
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    (note,) = aws.sns_notifications()
    assert len(note["Subject"]) == 100 and note["Subject"].endswith("...") and note["Subject"].isascii()
    assert note["Subject"].startswith("[test] high BLOCK: 99,999.99 USD at Unknown Store with **** 0077")
    assert note["Message"] == "**** 0077 100"
    assert note["MessageAttributes"]["severity"]["Value"] == "high"


@pytest.mark.parametrize("value", [
    "not json",
    json.dumps({"subject": "x"}),
    json.dumps({"subject": "{amount.__class__}", "body": "b"}),
    json.dumps({"subject": "{card_number}", "body": "b"}),
    json.dumps({"subject": "s", "body": "b", "html": "x"}),
])
def test_bad_templates_fall_back_to_the_built_in_ones(aws, ctx, value, log_lines):
    aws.ssm.put_parameter(Name="/fraud-detection/test/alert-templates", Type="String", Value=value, Overwrite=True)
    messages = flagged(aws, ctx, [REVIEW])
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    (note,) = aws.sns_notifications()
    assert note["Subject"] == "Fraud alert: REVIEW 5,500.00 USD at Cafe Muller"
    assert "Card:        **** 0077" in note["Message"]
    assert any("alert templates invalid" in line for line in log_lines())


def test_missing_template_parameter_uses_the_built_in_ones(aws, ctx):
    aws.ssm.delete_parameter(Name="/fraud-detection/test/alert-templates")
    messages = flagged(aws, ctx, [REVIEW])
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    assert aws.sns_notifications()[0]["Subject"] == "Fraud alert: REVIEW 5,500.00 USD at Cafe Muller"


def test_template_values_are_substituted_once():
    templates = parse_templates(json.dumps({"subject": "{merchant}", "body": "{merchant} {card}"}))
    from handlers.alerts import render
    assert render(templates["body"], {"merchant": "{card}", "card": "**** 1"}) == "{card} **** 1"
    with pytest.raises(TemplateError, match="unknown placeholder"):
        parse_templates(json.dumps({"subject": "{0}", "body": "b"}))
    assert sns_subject("Line\nbreak \u00e9\u4e2d " + "y" * 200).startswith("Line break e y")


def test_duplicate_is_recognised_even_without_the_old_item_in_the_error(aws, ctx, calls):
    # GIVEN an alert already sent, and a DynamoDB answer to the failed claim that carries no old item
    messages = flagged(aws, ctx, [REVIEW])
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}

    def drop_return_values(params, **kwargs):
        params.pop("ReturnValuesOnConditionCheckFailure", None)

    clients.client("dynamodb").meta.events.register("before-parameter-build.dynamodb.UpdateItem", drop_return_values)
    calls.reset()
    # WHEN the message is delivered again
    assert notification_handler.handler(aws.sqs_event(messages), ctx) == {"batchItemFailures": []}
    # THEN the handler read the item to find the mark, and nothing was published again
    assert ("dynamodb", "GetItem") in calls.calls and ("sns", "PublishBatch") not in calls.calls
    assert len(aws.sns_notifications()) == 1


def test_the_seeded_templates_parameter_is_valid_for_the_notification_handler():
    # GIVEN the value the stack seeds /fraud-detection/<env>/notification-templates with
    from fraud_pipeline.params import placeholders
    from handlers.alerts import parse_templates

    # WHEN the handler parses it THEN it is accepted (no fallback warning on every alert)
    parsed = parse_templates(placeholders()["notification-templates"])
    assert "{card}" in parsed["body"] and "{timestamp}" in parsed["body"]
