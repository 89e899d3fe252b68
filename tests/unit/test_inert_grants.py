"""No inert grants: every action is granted on a resource type it authorises on.

`kinesis:SubscribeToShard` on the stream ARN looked like a read grant and granted
nothing (it authorises on stream-consumer ARNs only). The least-privilege report
now flags such grants, from AWS's Service Authorization Reference as the parliament
linter ships it, and every role policy of every stack is checked here.
"""

from __future__ import annotations

import json

import pytest

from fraud_pipeline.local.iam import check, inert_grants

STREAM = "arn:aws:kinesis:us-east-1:123456789012:stream/fraud-transactions-prod-x"
TABLE_STREAM = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/2026-01-01T00:00:00.000"
LOG_GROUP = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/fn"


def policy(*statements):
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": list(a), "Resource": r} for a, r in statements]}


def test_subscribe_to_shard_on_a_stream_is_flagged_and_named():
    rows = inert_grants(policy((["kinesis:GetRecords", "kinesis:SubscribeToShard"], [STREAM])))
    assert [(a, r) for a, r, _ in rows] == [("kinesis:SubscribeToShard", STREAM)]
    assert "consumer" in rows[0][2]


@pytest.mark.parametrize("actions, resources", [
    (["kinesis:GetRecords", "kinesis:GetShardIterator", "kinesis:ListShards"], [STREAM]),
    # stream labels hold colons: the resource part of an ARN is matched as one field
    (["dynamodb:GetRecords", "dynamodb:DescribeStream"], [TABLE_STREAM]),
    # a pattern that covers the type the action needs is not inert (log streams under the group)
    (["logs:CreateLogStream", "logs:PutLogEvents"], [f"{LOG_GROUP}:*"]),
    (["kinesis:ListStreams"], "*"),
])
def test_grants_on_the_right_resource_type_pass(actions, resources):
    assert inert_grants(policy((actions, resources))) == []


def test_a_star_only_action_on_an_arn_and_an_unknown_action_are_flagged():
    rows = inert_grants(policy((["kinesis:ListStreams"], [STREAM]), (["kinesis:ReadMyMind"], [STREAM])))
    reasons = {a: why for a, _, why in rows}
    assert "only Resource '*'" in reasons["kinesis:ListStreams"]
    assert "lists no such action" in reasons["kinesis:ReadMyMind"]


def test_the_report_is_not_ok_with_an_inert_grant():
    report = check([], {"fn": policy((["kinesis:SubscribeToShard"], [STREAM]))})
    assert not report.denied and report.inert["fn"] and not report.ok


def test_no_role_policy_of_any_stack_has_an_inert_grant(stack):
    found = {}
    for r in stack.of_type("aws:iam/rolePolicy:RolePolicy"):
        rows = inert_grants(json.loads(r.inputs["policy"]))
        if rows:
            found[r.name] = rows
    assert found == {}
