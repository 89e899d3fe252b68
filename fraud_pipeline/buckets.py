"""The hardening every bucket of the pipeline gets, in one place.

pulumi-aws v7 splits a bucket's controls into separate resources (public access
block, ownership controls, SSE-KMS, versioning, lifecycle, policy). `hardened_bucket`
declares all of them for one bucket, children of the caller's component and named
`<name>-<control>`, so the archive, its replica, the audit-log bucket and the code
bucket cannot differ in a control by accident, and an existing bucket keeps its
resources' URNs when it moves onto this helper.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from . import defaults


def tls_only_statements(bucket_arn: str) -> list[dict]:
    """Deny every request made without TLS, or with TLS older than 1.2."""
    resources = [bucket_arn, f"{bucket_arn}/*"]
    return [
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        {
            "Sid": "DenyOutdatedTls",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": resources,
            "Condition": {"NumericLessThan": {"s3:TlsVersion": "1.2"}},
        },
    ]


def bucket_policy(bucket_arn: str, extra_statements: Sequence[dict] = ()) -> dict:
    """TLS-only, plus the statements a bucket's writers need (e.g. CloudTrail's delivery)."""
    return {"Version": "2012-10-17", "Statement": tls_only_statements(bucket_arn) + list(extra_statements)}


@dataclass
class HardenedBucket:
    """The bucket and each of its control resources (exposed so a caller can depend on or adjust one)."""

    bucket: aws.s3.Bucket
    public_access_block: aws.s3.BucketPublicAccessBlock
    ownership: aws.s3.BucketOwnershipControls
    encryption: aws.s3.BucketServerSideEncryptionConfiguration
    versioning: aws.s3.BucketVersioning
    lifecycle: aws.s3.BucketLifecycleConfiguration
    policy: aws.s3.BucketPolicy

    @property
    def name(self) -> pulumi.Output[str]:
        return self.bucket.bucket

    @property
    def arn(self) -> pulumi.Output[str]:
        return self.bucket.arn


def hardened_bucket(
    name: str,
    bucket_name: str,
    *,
    parent: pulumi.Resource,
    kms_key_arn: pulumi.Input[str],
    lifecycle_rules: pulumi.Input[Sequence[aws.s3.BucketLifecycleConfigurationRuleArgsDict]],
    force_destroy: bool = False,
    region: str | None = None,
    policy_statements: pulumi.Input[Sequence[Mapping]] = (),
    tags: pulumi.Input[Mapping[str, str]] | None = None,
) -> HardenedBucket:
    """A private, versioned, SSE-KMS (bucket key), TLS-only bucket with ACLs disabled and a lifecycle.

    `region` places the bucket and its controls in another region than the provider's (pulumi-aws v7's
    per-resource region), as a cross-region replica needs. `policy_statements` are appended to the
    TLS-only policy; the policy waits for the public access block, since a policy put before the block
    exists could be judged public.
    """
    child = pulumi.ResourceOptions(parent=parent)
    bucket = aws.s3.Bucket(f"{name}-bucket", bucket=bucket_name, force_destroy=force_destroy, region=region,
                           tags=tags, opts=child)
    public_access_block = aws.s3.BucketPublicAccessBlock(
        f"{name}-public-access-block", bucket=bucket.id, region=region,
        block_public_acls=True, block_public_policy=True, ignore_public_acls=True, restrict_public_buckets=True,
        opts=child,
    )
    ownership = aws.s3.BucketOwnershipControls(
        f"{name}-ownership", bucket=bucket.id, region=region,
        rule={"object_ownership": defaults.S3_OBJECT_OWNERSHIP}, opts=child,
    )
    encryption = aws.s3.BucketServerSideEncryptionConfiguration(
        f"{name}-encryption", bucket=bucket.id, region=region,
        rules=[{
            "apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms", "kms_master_key_id": kms_key_arn},
            "bucket_key_enabled": True,
        }],
        opts=child,
    )
    versioning = aws.s3.BucketVersioning(
        f"{name}-versioning", bucket=bucket.id, region=region,
        versioning_configuration={"status": "Enabled"}, opts=child,
    )
    lifecycle = aws.s3.BucketLifecycleConfiguration(
        f"{name}-lifecycle", bucket=bucket.id, region=region, rules=lifecycle_rules,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[versioning]),
    )
    policy = aws.s3.BucketPolicy(
        f"{name}-policy", bucket=bucket.id, region=region,
        policy=pulumi.Output.all(bucket.arn, policy_statements).apply(
            lambda a: json.dumps(bucket_policy(a[0], a[1]))),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[public_access_block]),
    )
    return HardenedBucket(bucket, public_access_block, ownership, encryption, versioning, lifecycle, policy)
