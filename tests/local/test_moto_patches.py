"""The one fix to moto (TransactWriteItems without table copies) keeps the semantics the handlers rely on.

Both the emulation and the handler tests run on it, so it is checked here against what
DynamoDB documents: all conditions first, one cancellation reason per action (the failed
one with its item when ALL_OLD is asked for), nothing written when any fails.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from fraud_pipeline.local import moto_patches


@pytest.fixture
def ddb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    moto_patches.apply()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(TableName="t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                            BillingMode="PAY_PER_REQUEST")
        yield client


def put(key: str, value: str = "v", condition: bool = True) -> dict:
    op: dict = {"TableName": "t", "Item": {"k": {"S": key}, "v": {"S": value}}}
    if condition:
        op.update(ConditionExpression="attribute_not_exists(k)", ReturnValuesOnConditionCheckFailure="ALL_OLD")
    return {"Put": op}


def keys(ddb) -> set[str]:
    return {i["k"]["S"] for i in ddb.scan(TableName="t")["Items"]}


def test_all_or_nothing_with_one_reason_per_action_and_the_old_item(ddb):
    ddb.transact_write_items(TransactItems=[put("a", "first")])
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[put("b"), put("a", "second"), put("c")])
    reasons = caught.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed", "None"]
    assert reasons[1]["Item"]["v"] == {"S": "first"}
    assert keys(ddb) == {"a"}  # b and c were not written
    ddb.transact_write_items(TransactItems=[put("b"), put("c"),
                                            {"Update": {"TableName": "t", "Key": {"k": {"S": "a"}},
                                                        "UpdateExpression": "SET v = :v",
                                                        "ExpressionAttributeValues": {":v": {"S": "third"}}}}])
    assert keys(ddb) == {"a", "b", "c"}
    assert ddb.get_item(TableName="t", Key={"k": {"S": "a"}})["Item"]["v"] == {"S": "third"}


def test_two_actions_on_one_item_and_more_than_100_actions_are_refused(ddb):
    with pytest.raises(ClientError, match="ValidationException"):
        ddb.transact_write_items(TransactItems=[put("a"), put("a", condition=False)])
    with pytest.raises(ClientError, match="ValidationException"):
        ddb.transact_write_items(TransactItems=[put(f"k{i}") for i in range(101)])
    assert keys(ddb) == set()
