"""KmsKeys: the one customer-managed key every data store of an environment uses.

One key per environment keeps the key policy reviewable in one place and lets
a security team revoke the whole environment's data access with one action.
(The archive's cross-region replica is the one exception: S3 encrypts a replica
only with a key of the replica's region, so `replication.py` declares that key,
with a policy in this module's style built from `administration_statement`.)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import audit_trail, defaults
from .naming import ComponentArgs, Namer

#: What the account (through IAM) may do to administer a key; using it is granted separately.
ADMINISTRATION_ACTIONS = (
    "kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*",
    "kms:Revoke*", "kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource",
    "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion",
    "kms:RotateKeyOnDemand",
)


class KmsKeysArgs(ComponentArgs):
    region: str
    """Region of the key; service principals such as CloudWatch Logs are regional."""
    destroyable: NotRequired[bool]
    """Shortest deletion window (7 days) so a dev stack can be torn down quickly; else 30 days."""
    access_trail: NotRequired[bool]
    """Admit the stack's archive access trail (`audit_trail.py`) to encrypt its log files with the key.
    Default true: the statements name that one trail's ARN, so where it does not exist they grant nothing."""


def administration_statement(account_id: str) -> dict:
    """The account administers the key (IAM decides who); no data use is granted here."""
    return {
        "Sid": "AccountAdministersKey",
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
        "Action": list(ADMINISTRATION_ACTIONS),
        "Resource": "*",
    }


def cloudtrail_statements(account_id: str, trail_arns: Sequence[str]) -> list[dict]:
    """What CloudTrail needs to encrypt a trail's log and digest files, as AWS documents it, for these trails only.

    Data keys are generated on CloudTrail's behalf (`kms:GenerateDataKey*`, with the trail's ARN
    as `aws:cloudtrail:arn` encryption context), and CloudTrail describes the key when the trail is
    created or updated; both are bound to the named trails by `aws:SourceArn` and to this account by
    `aws:SourceAccount`. Principals of this account may decrypt what CloudTrail encrypted
    (reading or validating the logs, and creating the trail on a bucket with an S3 Bucket Key);
    IAM still decides which of them may.
    """
    trails = list(trail_arns)
    source = {"aws:SourceArn": trails, "aws:SourceAccount": account_id}
    this_accounts_trails = f"arn:aws:cloudtrail:*:{account_id}:trail/*"
    return [
        {
            "Sid": "CloudTrailEncryptsTheArchiveAccessTrail",
            "Effect": "Allow",
            "Principal": {"Service": audit_trail.CLOUDTRAIL_PRINCIPAL},
            "Action": "kms:GenerateDataKey*",
            "Resource": "*",
            "Condition": {
                "StringEquals": source,
                "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": this_accounts_trails},
            },
        },
        {
            "Sid": "CloudTrailDescribesKeyForTheArchiveAccessTrail",
            "Effect": "Allow",
            "Principal": {"Service": audit_trail.CLOUDTRAIL_PRINCIPAL},
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"StringEquals": source},
        },
        {
            "Sid": "AccountPrincipalsDecryptCloudTrailLogs",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{account_id}:root"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:CallerAccount": account_id},
                "StringLike": {"kms:EncryptionContext:aws:cloudtrail:arn": this_accounts_trails},
            },
        },
    ]


def key_policy(account_id: str, region: str, trail_arns: Sequence[str] = ()) -> dict:
    """The key policy: account administration, then exactly the services this pipeline uses.

    Services that encrypt on behalf of a caller (DynamoDB, Kinesis, SQS, S3,
    SNS, SSM, Step Functions, Lambda) are admitted through `kms:ViaService` for
    principals of this account only; services that act as themselves (Logs,
    EventBridge, CloudWatch alarms publishing to an encrypted topic, CloudTrail
    for the `trail_arns`) are named as service principals and bound to this
    account by `aws:SourceAccount` (CloudTrail also to its trails by `aws:SourceArn`).
    """
    root = f"arn:aws:iam::{account_id}:root"
    usage = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    via = [f"{svc}.{region}.amazonaws.com" for svc in defaults.KMS_VIA_SERVICES]
    statements = [
        administration_statement(account_id),
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
    ]
    if trail_arns:
        statements += cloudtrail_statements(account_id, trail_arns)
    return {"Version": "2012-10-17", "Statement": statements}


def rotating_key(name: str, *, parent: pulumi.Resource, description: str, policy: pulumi.Input[str], alias: str,
                 destroyable: bool, region: str | None = None,
                 tags: pulumi.Input[Mapping[str, str]] | None = None) -> tuple[aws.kms.Key, aws.kms.Alias]:
    """A customer-managed key with the pipeline's rotation and deletion window, and its `alias/<alias>`.

    Every key of the pipeline (the environment's, and the archive replica's in its own region) is
    made here, so none can differ in rotation or deletion window. Named `<name>-key` / `<name>-alias`,
    children of `parent`.
    """
    child = pulumi.ResourceOptions(parent=parent)
    key = aws.kms.Key(
        f"{name}-key",
        region=region,
        description=description,
        enable_key_rotation=defaults.KMS_ENABLE_ROTATION,
        rotation_period_in_days=defaults.KMS_ROTATION_PERIOD_DAYS,
        deletion_window_in_days=(defaults.KMS_DELETION_WINDOW_DAYS_DESTROYABLE if destroyable
                                 else defaults.KMS_DELETION_WINDOW_DAYS_PROTECTED),
        policy=policy,
        tags=tags,
        opts=child,
    )
    return key, aws.kms.Alias(f"{name}-alias", region=region, name=f"alias/{alias}", target_key_id=key.key_id,
                              opts=child)


class KmsKeys(pulumi.ComponentResource):
    """Customer-managed key with yearly rotation and an alias."""

    key_arn: pulumi.Output[str]
    key_id: pulumi.Output[str]
    alias_name: pulumi.Output[str]

    def __init__(self, name: str, args: KmsKeysArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:KmsKeys", name, None, opts)
        namer = Namer(args["environment"], args["environment_suffix"])
        region = args["region"]
        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        # The archive access trail's ARN is known from its name, so the key admits it before it exists
        # (the trail needs the key first: CloudTrail checks it may use the key when the trail is created).
        trail = audit_trail.trail_name(namer) if args.get("access_trail", True) else None
        self.key, self.alias = rotating_key(
            name, parent=self,
            description=f"fraud-pipeline {args['environment']}: tables, stream, queues, topics, archive, logs, parameters",
            policy=identity.account_id.apply(lambda acct: json.dumps(key_policy(
                acct, region, [audit_trail.trail_arn(region, acct, trail)] if trail else ()))),
            alias=namer.name("fraud-pipeline", "alias"), destroyable=bool(args.get("destroyable")),
            tags=args.get("tags"),
        )
        self.key_arn = self.key.arn
        self.key_id = self.key.key_id
        self.alias_name = self.alias.name
        self.register_outputs({"key_arn": self.key_arn, "key_id": self.key_id, "alias_name": self.alias_name})
