"""ArchiveReplica: the archive's evidence survives the loss of its region.

Where the stack sets `archiveReplicationRegion` (prod: us-west-2, the stack being
in us-east-1), S3 replicates every object of the archive to a bucket in that
region. The replica is hardened exactly like the source (`buckets.hardened_bucket`
with `region=`: public access block, BucketOwnerEnforced, SSE-KMS with a bucket
key, versioning, the source's lifecycle rules, TLS-only policy) and encrypted
under a key of its own region, because S3 encrypts a replica only with a key in
the destination's region; a multi-Region replica of the stack CMK was not chosen
so that the replica region's key can be revoked, rotated and audited on its own.

* Every object (`filter` on the empty prefix) and every delete marker is
  replicated; a version-specific (permanent) delete never is, so the replica's
  versions survive a malicious delete at the source. SSE-KMS objects are
  replicated only when `sse_kms_encrypted_objects` is enabled, so it is: every
  archived object is SSE-KMS.
* Replicas land in `defaults.ARCHIVE_REPLICA_STORAGE_CLASS` (read rarely, kept
  long) and then follow the source's lifecycle (transition, expiry, noncurrent
  versions), since S3 does not replicate lifecycle actions.
* Replication metrics are on (no Replication Time Control, which is billed per GB):
  operations pending / failed and latency per rule, so a stalled replication can be alarmed on.
* The replication role is S3's alone (trust: `s3.amazonaws.com`, AWS's documented
  replication trust without source conditions, which S3 replication is not documented
  to send; only a principal of this account can pass the role to a bucket's
  replication configuration, `iam:PassRole`) and names specific ARNs only: read the source's versions, write the
  replica's objects, decrypt with the source key through S3 in the source region,
  encrypt with the replica key through S3 in the replica region, each key use
  bound to its bucket by the `aws:s3:arn` encryption context (the bucket's ARN,
  which is the context under an S3 Bucket Key, and its objects' ARNs without one).
* Objects written before replication was configured are not replicated by S3; a
  one-off S3 Batch Replication job copies them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import buckets, defaults
from .kms import administration_statement, rotating_key
from .naming import ComponentArgs, Namer
from .permissions import policy_document, service_trust_policy

S3_PRINCIPAL = "s3.amazonaws.com"


def s3_via(region: str) -> str:
    return f"s3.{region}.amazonaws.com"


def bucket_encryption_contexts(bucket_arn: str) -> list[str]:
    """`kms:EncryptionContext:aws:s3:arn` values of one bucket: the bucket (S3 Bucket Key) and its objects."""
    return [bucket_arn, f"{bucket_arn}/*"]


def replica_key_policy(account_id: str, replica_region: str, replication_role_arn: str,
                       replica_bucket_arn: str) -> dict:
    """The replica key's policy, in kms.py's style: administration, S3 use by this account, the replication role.

    Account principals use the key only through S3 in the replica's region (reading the
    replica after a failover, with IAM deciding who); the replication role may only
    encrypt replicas of this one bucket.
    """
    root = f"arn:aws:iam::{account_id}:root"
    return {
        "Version": "2012-10-17",
        "Statement": [
            administration_statement(account_id),
            {
                "Sid": "AccountPrincipalsUseKeyThroughS3InReplicaRegion",
                "Effect": "Allow",
                "Principal": {"AWS": root},
                "Action": ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"],
                "Resource": "*",
                "Condition": {"StringEquals": {"kms:CallerAccount": account_id,
                                               "kms:ViaService": s3_via(replica_region)}},
            },
            {
                "Sid": "ReplicationRoleEncryptsArchiveReplicas",
                "Effect": "Allow",
                "Principal": {"AWS": replication_role_arn},
                "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
                "Resource": "*",
                "Condition": {
                    "StringEquals": {"kms:ViaService": s3_via(replica_region)},
                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": bucket_encryption_contexts(replica_bucket_arn)},
                },
            },
        ],
    }


def replication_policy(source_bucket_arn: str, source_key_arn: str, source_region: str,
                       replica_bucket_arn: str, replica_key_arn: str, replica_region: str) -> dict:
    """The replication role's policy: AWS's documented minimum for SSE-KMS replication, on these ARNs only."""
    return policy_document([
        {
            "Sid": "ReadSourceReplicationConfiguration",
            "Effect": "Allow",
            "Action": ["s3:GetReplicationConfiguration", "s3:ListBucket"],
            "Resource": [source_bucket_arn],
        },
        {
            "Sid": "ReadSourceObjectVersions",
            "Effect": "Allow",
            "Action": ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"],
            "Resource": [f"{source_bucket_arn}/*"],
        },
        {
            "Sid": "WriteReplicas",
            "Effect": "Allow",
            "Action": ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
            "Resource": [f"{replica_bucket_arn}/*"],
        },
        {
            "Sid": "DecryptSourceObjectsThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": [source_key_arn],
            "Condition": {
                "StringEquals": {"kms:ViaService": s3_via(source_region)},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": bucket_encryption_contexts(source_bucket_arn)},
            },
        },
        {
            "Sid": "EncryptReplicasThroughS3",
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": [replica_key_arn],
            "Condition": {
                "StringEquals": {"kms:ViaService": s3_via(replica_region)},
                "StringLike": {"kms:EncryptionContext:aws:s3:arn": bucket_encryption_contexts(replica_bucket_arn)},
            },
        },
    ])


def replication_rule_id(replica_region: str) -> str:
    """The rule's id: the `RuleId` dimension of its replication metrics (the failure alarm names it)."""
    return f"everything-to-{replica_region}"


def replication_rule(replica_region: str, replica_bucket_arn: pulumi.Input[str],
                     replica_key_arn: pulumi.Input[str]) -> aws.s3.BucketReplicationConfigRuleArgsDict:
    """One enabled rule: every object, delete markers and SSE-KMS objects, to the replica under its own key.

    The filter is the empty prefix rather than an empty block: both mean "every object" to S3
    (a V2 rule, which is what allows delete-marker replication), and an explicit prefix
    cannot be dropped on its way through the provider.
    """
    return {
        "id": replication_rule_id(replica_region),
        "status": "Enabled",
        "priority": 1,
        "filter": {"prefix": ""},
        "delete_marker_replication": {"status": "Enabled"},
        "source_selection_criteria": {"sse_kms_encrypted_objects": {"status": "Enabled"}},
        "destination": {
            "bucket": replica_bucket_arn,
            "storage_class": defaults.ARCHIVE_REPLICA_STORAGE_CLASS,
            "encryption_configuration": {"replica_kms_key_id": replica_key_arn},
            "metrics": {"status": "Enabled"},
        },
    }


class ArchiveReplicaArgs(ComponentArgs):
    source_region: str
    """The stack's region, where the source bucket and its key are (the source key's `kms:ViaService`)."""
    replica_region: str
    """The region the replica, its key and its controls are created in (pulumi-aws v7's per-resource `region`)."""
    source_bucket_id: pulumi.Input[str]
    """The source (archive) bucket, which gets the replication configuration."""
    source_bucket_arn: pulumi.Input[str]
    """The source bucket's ARN, for the role's policy and trust."""
    source_kms_key_arn: pulumi.Input[str]
    """The stack CMK the source objects are encrypted with (the role decrypts with it)."""
    source_versioning: pulumi.Resource
    """The source's versioning resource: S3 refuses a replication configuration on an unversioned bucket."""
    lifecycle_rules: pulumi.Input[Sequence[aws.s3.BucketLifecycleConfigurationRuleArgsDict]]
    """The source's lifecycle rules (`archive.lifecycle_rules`): the replica ages out as the source does."""
    force_destroy: NotRequired[bool]
    """As for the source: let `pulumi destroy` empty the replica and schedule its key's deletion after 7 days."""


class ArchiveReplica(pulumi.ComponentResource):
    """A hardened replica of the archive in another region, under that region's own customer-managed key."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    key_arn: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    region: str

    def __init__(self, name: str, args: ArchiveReplicaArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:ArchiveReplica", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        source_region, region = args["source_region"], args["replica_region"]
        if region == source_region:
            raise ValueError(f"the archive replica must be in another region than the source ({source_region})")
        self.region = region
        tags = args.get("tags")
        force_destroy = args.get("force_destroy", False)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        bucket_name = namer.name("fraud-archive-replica", "bucket")
        # S3 ARNs carry neither region nor account: the replica's ARN is known from its name, so the key
        # policy (which must exist before the bucket's encryption can name the key) can bind to it.
        bucket_arn = f"arn:aws:s3:::{bucket_name}"

        # The role first (trust only): the replica key's policy names it, and KMS rejects a policy
        # whose principal does not exist yet. Its permissions follow once both keys exist.
        self.role = aws.iam.Role(
            f"{name}-role",
            name=namer.name("fraud-archive-replication", "role"),
            description=f"Lets S3 replicate the archive to {region}",
            assume_role_policy=json.dumps(service_trust_policy(S3_PRINCIPAL)),
            tags=tags,
            opts=child,
        )
        self.key, self.alias = rotating_key(
            name, parent=self, region=region,
            description=f"fraud-pipeline {args['environment']}: archive replica in {region}",
            policy=pulumi.Output.all(account, self.role.arn).apply(
                lambda a: json.dumps(replica_key_policy(a[0], region, a[1], bucket_arn))),
            alias=namer.name("fraud-archive-replica", "alias"), destroyable=force_destroy, tags=tags,
        )
        self.replica = buckets.hardened_bucket(
            name, bucket_name, parent=self, kms_key_arn=self.key.arn, lifecycle_rules=args["lifecycle_rules"],
            force_destroy=force_destroy, region=region, tags=tags,
        )
        self.role_policy = aws.iam.RolePolicy(
            f"{name}-role-policy",
            role=self.role.id,
            policy=pulumi.Output.all(args["source_bucket_arn"], args["source_kms_key_arn"], self.replica.bucket.arn,
                                     self.key.arn).apply(
                lambda a: json.dumps(replication_policy(a[0], a[1], source_region, a[2], a[3], region))),
            opts=child,
        )
        self.replication = aws.s3.BucketReplicationConfig(
            f"{name}-replication",
            bucket=args["source_bucket_id"],
            role=self.role.arn,
            rules=[replication_rule(region, self.replica.bucket.arn, self.key.arn)],
            # S3 checks versioning on both buckets, and the role's permissions, when the configuration is put.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                args["source_versioning"], self.replica.versioning, self.replica.encryption, self.role_policy]),
        )
        self.bucket_name = self.replica.bucket.bucket
        self.bucket_arn = self.replica.bucket.arn
        self.key_arn = self.key.arn
        self.role_arn = self.role.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "key_arn": self.key_arn, "role_arn": self.role_arn})
