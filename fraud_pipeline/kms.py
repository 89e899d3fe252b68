"""KmsKeys: the one customer-managed key every data store of an environment uses.

One key per environment keeps the key policy reviewable in one place and lets
a security team revoke the whole environment's data access with one action.
"""

from __future__ import annotations

import json
from typing import Mapping, NotRequired, Optional, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import Namer


class KmsKeysArgs(TypedDict):
    environment: str
    """Environment name, the `<env>` of physical names."""
    environment_suffix: str
    """Suffix of physical names."""
    region: str
    """Region of the key; service principals such as CloudWatch Logs are regional."""
    destroyable: NotRequired[bool]
    """Shortest deletion window (7 days) so a dev stack can be torn down quickly; else 30 days."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags for the key."""


def key_policy(account_id: str, region: str) -> dict:
    """The key policy: account administration, then exactly the services this pipeline uses.

    Services that encrypt on behalf of a caller (DynamoDB, Kinesis, SQS, S3,
    SNS, SSM, Step Functions, Lambda) are admitted through `kms:ViaService` for
    principals of this account only; services that act as themselves (Logs,
    EventBridge, CloudWatch alarms publishing to an encrypted topic) are named
    as service principals and bound to this account by `aws:SourceAccount`.
    """
    root = f"arn:aws:iam::{account_id}:root"
    usage = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    via = [f"{svc}.{region}.amazonaws.com" for svc in defaults.KMS_VIA_SERVICES]
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": [
                    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
                    "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
                    "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
                    "kms:RotateKeyOnDemand",
                ],
                "Resource": "*",
            },
            {
                "Sid": "AccountPrincipalsUseKeyThroughPipelineServices",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": usage + ["kms:CreateGrant"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:CallerAccount": account_id, "kms:ViaService": via},
                },
            },
            {
                "Sid": "CloudWatchLogsEncryptsThisAccountsLogGroups",
                "Effect": "Allow",
                "Principal": {"Service": f"logs.{region}.amazonaws.com"},
                "Action": usage,
                "Resource": "*",
                "Condition": {
                    "ArnLike": {"kms:EncryptionContext:aws:logs:arn": f"arn:aws:logs:{region}:{account_id}:log-group:*"},
                },
            },
            {
                "Sid": "EventBridgeAndAlarmsWriteToEncryptedTargets",
                "Effect": "Allow",
                "Principal": {"Service": ["events.amazonaws.com", "cloudwatch.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "StepFunctionsAndSnsUseKeyForThisAccount",
                "Effect": "Allow",
                "Principal": {"Service": ["states.amazonaws.com", "sns.amazonaws.com"]},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            {
                "Sid": "VendedLogDeliveryReadsEncryptedStateMachineLogs",
                "Effect": "Allow",
                "Principal": {"Service": "delivery.logs.amazonaws.com"},
                "Action": "kms:Decrypt",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


class KmsKeys(pulumi.ComponentResource):
    """Customer-managed key with yearly rotation and an alias."""

    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    alias_name: pulumi.Output[str]

    def __init__(self, name: str, args: KmsKeysArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("fraud-pipeline:index:KmsKeys", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        region = args["region"]
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        window = (defaults.KMS_DELETION_WINDOW_DAYS_DESTROYABLE if args.get("destroyable")
                  else defaults.KMS_DELETION_WINDOW_DAYS_PROTECTED)

        self.key = aws.kms.Key(
            f"{name}-key",
            description=f"fraud-pipeline {args['environment']}: tables, stream, queues, topics, archive, logs, parameters",
            enable_key_rotation=defaults.KMS_ENABLE_ROTATION,
            rotation_period_in_days=defaults.KMS_ROTATION_PERIOD_DAYS,
            deletion_window_in_days=window,
            policy=identity.account_id.apply(lambda acct: json.dumps(key_policy(acct, region))),
            tags=args.get("tags"),
            opts=child,
        )
        self.alias = aws.kms.Alias(
            f"{name}-alias",
            name=f"alias/{namer.name('fraud-pipeline', 'alias')}",
            target_key_id=self.key.key_id,
            opts=child,
        )
        self.key_arn = self.key.arn
        self.key_id = self.key.key_id
        self.alias_name = self.alias.name
        self.register_outputs({"key_arn": self.key_arn, "key_id": self.key_id, "alias_name": self.alias_name})
