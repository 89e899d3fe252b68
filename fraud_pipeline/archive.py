"""ArchiveBucket: evidence (high-risk transactions, quarantined records), label files and model artifacts.

Built from pulumi-aws v7's separate bucket resources (encryption, public access
block, ownership, versioning, lifecycle, policy), each a child of this
component, so none of the controls can be dropped by editing one big argument.

Prefixes: `high-risk/` and `rejected/` (detection's and the ingest paths'
evidence), `labels/` (bulk label files; `rejected/labels/` their refused rows)
age out with the lifecycle; `models/` does not, because the `model` parameter
may name any artifact there. The shipped default model is uploaded to
`models/default-<sha256[:12]>.json`: a new model is a new key, and the old
object is retained, so the parameter (which operators own) never names a
deleted artifact.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
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


def model_object_key(data: bytes, name: str = "default") -> str:
    """`models/<name>-<first hex digits of the SHA-256 of the bytes>.json`: content-addressed, so a new model is a new key."""
    digest = hashlib.sha256(data).hexdigest()[:defaults.MODEL_DIGEST_LENGTH]
    return f"{defaults.ARCHIVE_MODELS_PREFIX}{name}-{digest}.json"


def lifecycle_rules(transition_days: pulumi.Input[int], expiration_days: pulumi.Input[int]) -> list[dict]:
    """Evidence prefixes move to Glacier IR and expire; every prefix drops old versions and stale uploads."""
    rules: list[dict] = [
        {
            "id": f"archive-then-expire-{prefix.strip('/').replace('/', '-')}",
            "status": "Enabled",
            "filter": {"prefix": prefix},
            "transitions": [{"days": transition_days, "storage_class": defaults.S3_ARCHIVE_STORAGE_CLASS}],
            "expiration": {"days": expiration_days},
        }
        for prefix in defaults.ARCHIVE_EXPIRING_PREFIXES
    ]
    rules.append({
        "id": "noncurrent-versions-and-stale-uploads",
        "status": "Enabled",
        "filter": {},
        "noncurrent_version_expiration": {"noncurrent_days": defaults.S3_NONCURRENT_EXPIRATION_DAYS},
        "abort_incomplete_multipart_upload": {"days_after_initiation": defaults.S3_ABORT_MULTIPART_DAYS},
    })
    return rules


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
    default_model_path: NotRequired[str]
    """A model file to upload to `models/default-<sha256[:12]>.json` under the CMK (see `model_object_key`)."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags for the bucket."""


class ArchiveBucket(pulumi.ComponentResource):
    """Private, versioned, SSE-KMS bucket with lifecycle."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    default_model_key: Optional[str]
    """The uploaded default model's key (known at preview), or None when no model file was given."""

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
            rules=lifecycle_rules(args["transition_days"], args["expiration_days"]),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.versioning]),
        )
        self.policy = aws.s3.BucketPolicy(
            f"{name}-policy",
            bucket=bucket,
            policy=self.bucket.arn.apply(lambda arn: json.dumps(bucket_policy(arn))),
            # A policy put before the public-access block exists could be judged public.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.public_access_block]),
        )
        self.default_model_key = None
        self.default_model: Optional[aws.s3.BucketObjectv2] = None
        if args.get("default_model_path"):
            path = Path(args["default_model_path"])
            self.default_model_key = model_object_key(path.read_bytes())
            self.default_model = aws.s3.BucketObjectv2(
                f"{name}-default-model",
                bucket=bucket,
                key=self.default_model_key,
                source=pulumi.FileAsset(str(path)),
                content_type="application/json",
                server_side_encryption="aws:kms",
                kms_key_id=args["kms_key_arn"],
                bucket_key_enabled=True,
                tags=args.get("tags"),
                # A newer model is a new key; the old object stays, since the operator-owned
                # `model` parameter may still name it.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[self.encryption]),
            )
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "default_model_key": self.default_model_key})
