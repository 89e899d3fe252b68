"""ArchiveBucket: high-risk transactions kept as evidence, and quarantined stream records.

Built from pulumi-aws v7's separate bucket resources (encryption, public access
block, ownership, versioning, lifecycle, policy), each a child of this
component, so none of the controls can be dropped by editing one big argument.
"""

from __future__ import annotations

import json
from typing import Mapping, NotRequired, Optional, TypedDict

import pulumi
import pulumi_aws as aws

from . import defaults
from .naming import Namer


def bucket_policy(bucket_arn: str) -> dict:
    """TLS-only, and only SSE-KMS uploads: nothing lands in the archive unencrypted or over plain HTTP."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            {
                "Sid": "DenyOutdatedTls",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
            },
        ],
    }


class ArchiveBucketArgs(TypedDict):
    environment: str
    """Environment name, the `<env>` of physical names."""
    environment_suffix: str
    """Suffix of physical names."""
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for default SSE-KMS (with an S3 bucket key to cut KMS calls)."""
    transition_days: pulumi.Input[int]
    """Days before objects move to Glacier Instant Retrieval."""
    expiration_days: pulumi.Input[int]
    """Days before objects expire (the evidence retention period)."""
    force_destroy: NotRequired[bool]
    """Let `pulumi destroy` empty the bucket (dev only)."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags for the bucket."""


class ArchiveBucket(pulumi.ComponentResource):
    """Private, versioned, SSE-KMS bucket with lifecycle."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]

    def __init__(self, name: str, args: ArchiveBucketArgs, opts: Optional[pulumi.ResourceOptions] = None):
        super().__init__("fraud-pipeline:index:ArchiveBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        self.bucket = aws.s3.Bucket(
            f"{name}-bucket",
            bucket=namer.name("fraud-archive", "bucket"),
            force_destroy=args.get("force_destroy", False),
            tags=args.get("tags"),
            opts=child,
        )
        bucket = self.bucket.id
        self.public_access_block = aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        self.ownership = aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket,
            rule={"object_ownership": defaults.S3_OBJECT_OWNERSHIP},
            opts=child,
        )
        self.encryption = aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket,
            rules=[{
                "apply_server_side_encryption_by_default": {
                    "sse_algorithm": "aws:kms",
                    "kms_master_key_id": args["kms_key_arn"],
                },
                "bucket_key_enabled": True,
            }],
            opts=child,
        )
        self.versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket,
            versioning_configuration={"status": "Enabled"},
            opts=child,
        )
        self.lifecycle = aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket,
            rules=[
                {
                    "id": "archive-then-expire",
                    "status": "Enabled",
                    "filter": {},
                    "transitions": [{"days": args["transition_days"], "storage_class": defaults.S3_ARCHIVE_STORAGE_CLASS}],
                    "expiration": {"days": args["expiration_days"]},
                    "noncurrent_version_expiration": {"noncurrent_days": defaults.S3_NONCURRENT_EXPIRATION_DAYS},
                    "abort_incomplete_multipart_upload": {"days_after_initiation": defaults.S3_ABORT_MULTIPART_DAYS},
                },
            ],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(bucket_policy(arn))),
            # A policy put before the public-access block exists could be judged public.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn})
