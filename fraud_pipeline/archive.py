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

Two evidence controls hang off the bucket, each a child component:
`ArchiveAccessTrail` (audit_trail.py: every object read and write recorded as
CloudTrail data events, where `archiveAccessLogging` is on) and `ArchiveReplica`
(replication.py: every object replicated to a hardened bucket under its own key
in `archiveReplicationRegion`). The replica is declared first, so the trail can
record its objects too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import buckets, defaults
from .audit_trail import ArchiveAccessTrail, ArchiveAccessTrailArgs
from .naming import ComponentArgs, Namer
from .replication import ArchiveReplica


def bucket_policy(bucket_arn: str) -> dict:
    """TLS-only (see `buckets.bucket_policy`): nothing reaches the archive over plain HTTP or old TLS."""
    return buckets.bucket_policy(bucket_arn)


def model_object_key(data: bytes, name: str = "default") -> str:
    """`models/<name>-<first hex digits of the SHA-256 of the bytes>.json`: content-addressed, so a new model is a new key."""
    digest = hashlib.sha256(data).hexdigest()[:defaults.MODEL_DIGEST_LENGTH]
    return f"{defaults.ARCHIVE_MODELS_PREFIX}{name}-{digest}.json"


def lifecycle_rules(transition_days: pulumi.Input[int], expiration_days: pulumi.Input[int]
                    ) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """Evidence prefixes move to Glacier IR and expire; every prefix drops old versions and stale uploads."""
    rules: list[aws.s3.BucketLifecycleConfigurationRuleArgsDict] = [
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


class ArchiveBucketArgs(ComponentArgs):
    kms_key_arn: pulumi.Input[str]
    """Customer-managed key for default SSE-KMS (with an S3 bucket key to cut KMS calls)."""
    transition_days: pulumi.Input[int]
    """Days before objects move to Glacier Instant Retrieval."""
    expiration_days: pulumi.Input[int]
    """Days before objects expire (the evidence retention period)."""
    force_destroy: NotRequired[bool]
    """Let `pulumi destroy` empty the bucket (dev only); applies to the replica and the access-log bucket too."""
    region: str
    """The stack's region: the bucket's, the access trail's home region, and the replication source region."""
    access_logging: NotRequired[bool]
    """Record every object read and write (and the replica's) as CloudTrail data events in a trail of its own."""
    access_log_retention_days: NotRequired[int]
    """Days the access trail's log files are kept (the audit retention); required with `access_logging`."""
    replication_region: NotRequired[str]
    """Replicate every object to a bucket under its own key in this region; "" or absent = no replica."""
    default_model_path: NotRequired[str]
    """A model file to upload to `models/default-<sha256[:12]>.json` under the CMK (see `model_object_key`)."""


class ArchiveBucket(pulumi.ComponentResource):
    """Private, versioned, SSE-KMS bucket with lifecycle; optionally access-logged and replicated."""

    bucket_name: pulumi.Output[str]
    bucket_arn: pulumi.Output[str]
    default_model_key: str | None
    """The uploaded default model's key (known at preview), or None when no model file was given."""
    replica_bucket_name: pulumi.Output[str] | None
    """The replica's bucket name, or None without replication."""
    replica_bucket_arn: pulumi.Output[str] | None
    """The replica's bucket ARN, or None without replication."""
    replica_kms_key_arn: pulumi.Output[str] | None
    """The replica region's key the replicas are encrypted with, or None without replication."""
    access_trail_arn: pulumi.Output[str] | None
    """The access trail's ARN, or None without access logging."""
    access_log_bucket_name: pulumi.Output[str] | None
    """The bucket the access trail delivers to, or None without access logging."""

    def __init__(self, name: str, args: ArchiveBucketArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:ArchiveBucket", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        namer = Namer(args["environment"], args["environment_suffix"])
        force_destroy = args.get("force_destroy", False)
        hardened = buckets.hardened_bucket(
            name, namer.name("fraud-archive", "bucket"), parent=self, kms_key_arn=args["kms_key_arn"],
            lifecycle_rules=lifecycle_rules(args["transition_days"], args["expiration_days"]),
            force_destroy=force_destroy, tags=args.get("tags"),
        )
        self.hardened = hardened
        self.bucket, self.public_access_block, self.ownership = hardened.bucket, hardened.public_access_block, hardened.ownership
        self.encryption, self.versioning, self.lifecycle = hardened.encryption, hardened.versioning, hardened.lifecycle
        self.policy = hardened.policy
        bucket = self.bucket.id
        self.default_model_key = None
        self.default_model: aws.s3.BucketObjectv2 | None = None
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
        replication_region = args.get("replication_region") or ""
        # The children's naming and tags are this component's (a missing `tags` stays missing).
        base: ComponentArgs = {"environment": args["environment"], "environment_suffix": args["environment_suffix"]}
        if "tags" in args:
            base["tags"] = args["tags"]
        self.replica: ArchiveReplica | None = None
        if replication_region:
            self.replica = ArchiveReplica(f"{name}-replica", {
                **base, "source_region": args["region"], "replica_region": replication_region,
                "source_bucket_id": bucket, "source_bucket_arn": self.bucket.arn,
                "source_kms_key_arn": args["kms_key_arn"], "source_versioning": self.versioning,
                "lifecycle_rules": lifecycle_rules(args["transition_days"], args["expiration_days"]),
                "force_destroy": force_destroy,
            }, child)
        self.access_trail: ArchiveAccessTrail | None = None
        if args.get("access_logging"):
            if "access_log_retention_days" not in args:
                raise ValueError("ArchiveBucketArgs.access_log_retention_days is required with access_logging")
            trail_args: ArchiveAccessTrailArgs = {
                **base, "region": args["region"], "kms_key_arn": args["kms_key_arn"],
                "archive_bucket_arn": self.bucket.arn,
                "retention_days": args["access_log_retention_days"], "force_destroy": force_destroy,
            }
            if self.replica:
                trail_args["replica_bucket_arn"] = self.replica.bucket_arn
            self.access_trail = ArchiveAccessTrail(f"{name}-access", trail_args, child)
        self.bucket_name = self.bucket.bucket
        self.bucket_arn = self.bucket.arn
        self.replica_bucket_name = self.replica.bucket_name if self.replica else None
        self.replica_bucket_arn = self.replica.bucket_arn if self.replica else None
        self.replica_kms_key_arn = self.replica.key_arn if self.replica else None
        self.access_trail_arn = self.access_trail.trail_arn if self.access_trail else None
        self.access_log_bucket_name = self.access_trail.log_bucket_name if self.access_trail else None
        self.register_outputs({"bucket_name": self.bucket_name, "bucket_arn": self.bucket_arn,
                               "default_model_key": self.default_model_key,
                               "replica_bucket_name": self.replica_bucket_name,
                               "replica_bucket_arn": self.replica_bucket_arn,
                               "replica_kms_key_arn": self.replica_kms_key_arn,
                               "access_trail_arn": self.access_trail_arn,
                               "access_log_bucket_name": self.access_log_bucket_name})
