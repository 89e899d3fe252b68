"""ArchiveAccessTrail: who read (and who wrote) the evidence in the archive bucket.

The archive holds evidence (high-risk transactions, quarantined records), label
files and model artifacts; a security review asks who read them. The answer is
CloudTrail **data events** in an encrypted trail of the stack's own, not S3
server access logging:

* server access logs are delivered best-effort (records can be late or missing);
  CloudTrail delivers every data event it records;
* access logs cannot be written to a target bucket whose default encryption is
  SSE-KMS with a customer-managed key, so they could not rest under the stack CMK
  like everything else; CloudTrail encrypts its log files with that key;
* an access-log record names a canonical user at best, a CloudTrail record names
  the IAM principal, its session (role session name, MFA, source identity) and
  the access key used;
* log file validation makes CloudTrail sign an hourly digest of the log files it
  delivered, so a deleted or edited log file is detected (`aws cloudtrail validate-logs`).

Management events stay off (`defaults.TRAIL_INCLUDE_MANAGEMENT_EVENTS`): the
account's or organisation's trail records those, and a second copy is billed.
The trail records object-level reads and writes (every data event, `readOnly`
not filtered) for the archive's objects and, when the archive is replicated, for
the replica's objects as well: a replica is the same evidence, and a copy that
can be read without a trace would undo this control. S3 records data events in
the bucket's region and a single-region trail sees only its own region, so with
a replica the trail is multi-region (a second selector alone would record
nothing); CloudTrail refuses a multi-region trail without global service events,
which are management events, so with management events off that flag records
and bills nothing.

The logs go to a bucket of their own (`fraud-audit-<env>-<suffix>`), hardened
like every bucket here (`buckets.hardened_bucket`), whose policy admits
CloudTrail's delivery for this one trail only (`aws:SourceArn`), and whose
lifecycle keeps them for the audit retention (`auditLogRetentionDays`).
The log bucket's own object access is not recorded (it would record its own
deliveries); its integrity rests on log file validation.
"""

from __future__ import annotations

from typing import NotRequired

import pulumi
import pulumi_aws as aws

from . import buckets, defaults
from .naming import ComponentArgs, Namer

CLOUDTRAIL_PRINCIPAL = "cloudtrail.amazonaws.com"
#: The resource type of S3 object-level data events in advanced event selectors.
S3_OBJECT_RESOURCE_TYPE = "AWS::S3::Object"


def trail_name(namer: Namer) -> str:
    """The trail's physical name; the key policy (kms.py) and the log bucket's policy name its ARN."""
    return namer.name("fraud-archive-access")


def log_bucket_name(namer: Namer) -> str:
    return namer.name("fraud-audit", "bucket")


def trail_arn(region: str, account_id: str, name: str) -> str:
    """A trail's ARN is known before it exists (home region, account, name), so policies can name it."""
    return f"arn:aws:cloudtrail:{region}:{account_id}:trail/{name}"


def delivery_statements(log_bucket_arn: str, account_id: str, source_trail_arn: str) -> list[dict]:
    """CloudTrail's delivery, as AWS documents it, for this one trail only (`aws:SourceArn`).

    CloudTrail checks the bucket ACL, then writes under `AWSLogs/<account>/` with the
    `bucket-owner-full-control` canned ACL (accepted under BucketOwnerEnforced ownership).
    """
    return [
        {
            "Sid": "CloudTrailChecksBucketAcl",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL_PRINCIPAL},
            "Action": "s3:GetBucketAcl",
            "Resource": log_bucket_arn,
            "Condition": {"StringEquals": {"aws:SourceArn": source_trail_arn}},
        },
        {
            "Sid": "CloudTrailWritesTheArchiveAccessLogs",
            "Effect": "Allow",
            "Principal": {"Service": CLOUDTRAIL_PRINCIPAL},
            "Action": "s3:PutObject",
            "Resource": f"{log_bucket_arn}/AWSLogs/{account_id}/*",
            "Condition": {"StringEquals": {
                "s3:x-amz-acl": "bucket-owner-full-control",
                "aws:SourceArn": source_trail_arn,
            }},
        },
    ]


def object_data_events_selector(name: str, bucket_arn: str) -> aws.cloudtrail.TrailAdvancedEventSelectorArgsDict:
    """Every object-level data event (reads and writes: no `readOnly` field) for one bucket's objects."""
    return {
        "name": name,
        "field_selectors": [
            {"field": "eventCategory", "equals": ["Data"]},
            {"field": "resources.type", "equals": [S3_OBJECT_RESOURCE_TYPE]},
            # `<bucket ARN>/` is AWS's "all objects of this bucket" (no trailing slash would also match
            # any other bucket whose name starts with this one's).
            {"field": "resources.ARN", "starts_withs": [f"{bucket_arn}/"]},
        ],
    }


def event_selectors(archive_bucket_arn: str, replica_bucket_arn: str | None = None,
                    include_management_events: bool = defaults.TRAIL_INCLUDE_MANAGEMENT_EVENTS,
                    ) -> list[aws.cloudtrail.TrailAdvancedEventSelectorArgsDict]:
    """The trail's advanced event selectors: the archive's objects, the replica's if any, management only if asked."""
    selectors = [object_data_events_selector("archive-object-reads-and-writes", archive_bucket_arn)]
    if replica_bucket_arn:
        selectors.append(object_data_events_selector("archive-replica-object-reads-and-writes", replica_bucket_arn))
    if include_management_events:
        selectors.append({"name": "management-events",
                          "field_selectors": [{"field": "eventCategory", "equals": ["Management"]}]})
    return selectors


def log_lifecycle_rules(retention_days: pulumi.Input[int]) -> list[aws.s3.BucketLifecycleConfigurationRuleArgsDict]:
    """Log files expire after the audit retention; old versions and stale uploads are dropped.

    No storage-class transition: log files are small (KB), and a transition request per
    object plus Glacier's 128 KB minimum billable size would cost more than it saves.
    """
    return [{
        "id": "expire-access-logs",
        "status": "Enabled",
        "filter": {},
        "expiration": {"days": retention_days},
        "noncurrent_version_expiration": {"noncurrent_days": defaults.S3_NONCURRENT_EXPIRATION_DAYS},
        "abort_incomplete_multipart_upload": {"days_after_initiation": defaults.S3_ABORT_MULTIPART_DAYS},
    }]


class ArchiveAccessTrailArgs(ComponentArgs):
    region: str
    """The stack's region: the trail's home region (part of its ARN) and the log bucket's region."""
    kms_key_arn: pulumi.Input[str]
    """The stack CMK: encrypts the log files (the trail's key) and is the log bucket's default SSE-KMS key."""
    archive_bucket_arn: pulumi.Input[str]
    """ARN of the bucket whose object reads and writes are recorded."""
    replica_bucket_arn: NotRequired[pulumi.Input[str]]
    """ARN of the archive's replica in another region: recorded too, which makes the trail multi-region."""
    retention_days: pulumi.Input[int]
    """Days the log files are kept (the audit retention, `auditLogRetentionDays`)."""
    force_destroy: NotRequired[bool]
    """Let `pulumi destroy` empty the log bucket (only where the stack is destroyable)."""


class ArchiveAccessTrail(pulumi.ComponentResource):
    """An encrypted, validated CloudTrail trail of the archive's data events, delivering to its own bucket."""

    trail_arn: pulumi.Output[str]
    trail_name: pulumi.Output[str]
    log_bucket_name: pulumi.Output[str]
    log_bucket_arn: pulumi.Output[str]
    multi_region: bool
    """True when the trail also records a replica in another region."""

    def __init__(self, name: str, args: ArchiveAccessTrailArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("fraud-pipeline:index:ArchiveAccessTrail", name, None, opts)
        namer = Namer(args["environment"], args["environment_suffix"])
        region = args["region"]
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        physical_trail = trail_name(namer)
        bucket_name = log_bucket_name(namer)
        # The bucket's ARN follows from its name (S3 ARNs carry neither region nor account), so its
        # policy can be rendered before the bucket exists.
        bucket_arn = f"arn:aws:s3:::{bucket_name}"
        statements = account.apply(
            lambda acct: delivery_statements(bucket_arn, acct, trail_arn(region, acct, physical_trail)))
        self.logs = buckets.hardened_bucket(
            f"{name}-logs", bucket_name, parent=self, kms_key_arn=args["kms_key_arn"],
            lifecycle_rules=log_lifecycle_rules(args["retention_days"]),
            force_destroy=args.get("force_destroy", False), policy_statements=statements, tags=args.get("tags"),
        )
        replica_arn = args.get("replica_bucket_arn")
        self.multi_region = replica_arn is not None
        selectors = pulumi.Output.all(args["archive_bucket_arn"], replica_arn).apply(
            lambda a: event_selectors(a[0], a[1]))
        self.trail = aws.cloudtrail.Trail(
            f"{name}-trail",
            name=physical_trail,
            s3_bucket_name=self.logs.bucket.id,
            kms_key_id=args["kms_key_arn"],
            enable_log_file_validation=defaults.TRAIL_LOG_FILE_VALIDATION,
            enable_logging=True,
            is_multi_region_trail=self.multi_region,
            # CloudTrail rejects a multi-region trail without global service events; they are management
            # events, which no selector records, so this records (and bills) nothing more.
            include_global_service_events=self.multi_region,
            advanced_event_selectors=selectors,
            tags=args.get("tags"),
            # CloudTrail checks at creation that it may write to the bucket: the policy must be in place.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.logs.policy]),
        )
        self.trail_arn = self.trail.arn
        self.trail_name = self.trail.name
        self.log_bucket_name = self.logs.bucket.bucket
        self.log_bucket_arn = self.logs.bucket.arn
        self.register_outputs({"trail_arn": self.trail_arn, "trail_name": self.trail_name,
                               "log_bucket_name": self.log_bucket_name, "log_bucket_arn": self.log_bucket_arn})
