"""The archive's evidence policies (`archive-access-logged`, `archive-replicated`) catch what they exist for.

Each case takes the real stack, removes a resource or breaks one setting in a copy,
and expects violations that name the resource at fault and the fix; the real stacks pass.
"""

from __future__ import annotations

import copy

import fraud_policies as fp
import pytest
from fraud_policies import archive_policies as ap
from fraud_policies.values import UNKNOWN
from policy_helpers import find, stack_resources, stack_with

T = {
    "trail": "aws:cloudtrail/trail:Trail", "bucket": "aws:s3/bucket:Bucket", "key": "aws:kms/key:Key",
    "replication": "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
    "life": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
}
ARCHIVE, REPLICA, TRAIL = "fraud-archive-bucket", "fraud-archive-replica-bucket", "fraud-archive-access-trail"
REPLICATION = "fraud-archive-replica-replication"
LOGGED, REPLICATED = "archive-access-logged", "archive-replicated"
#: The policies this file's failing cases cover (test_policy_failures.py checks every policy has one).
ARCHIVE_POLICY_CASES = [(LOGGED,), (REPLICATED,)]


def selectors(props) -> list[dict]:
    return props["advancedEventSelectors"]


def arn_field(selector: dict) -> dict:
    return next(f for f in selector["fieldSelectors"] if f["field"] == "resources.ARN")


def rule(props) -> dict:
    return props["rules"][0]


def check(policy, resources, config=None):
    return fp.check_stack(policy, resources, config)


def only(violations, named, *fragments):
    assert len(violations) == 1, violations
    message, urn = violations[0]
    assert urn.endswith("::" + named) and named in message and "Fix:" in message, violations[0]
    for fragment in fragments:
        assert fragment in message, message
    return message


# --- the real stacks ---------------------------------------------------------------------

@pytest.mark.parametrize("policy", [LOGGED, REPLICATED])
def test_every_stack_passes(stack, policy):
    assert check(policy, stack_resources(stack)) == []


def test_the_archive_is_identified_by_what_it_is(evaluation):
    """GIVEN prod (archive, replica, audit-log bucket, code bucket)
    WHEN the policies look for the archive
    THEN they find the one bucket the functions archive to, not its replica nor the other buckets."""
    ev = evaluation("prod")
    resources = stack_resources(ev)
    assert [b.name for b in ap.archive_buckets(resources)] == [ARCHIVE]
    # renamed, it is still the archive: the functions' ARCHIVE_BUCKET names it
    renamed = []
    for r in resources:
        props = copy.deepcopy(r.props)
        if r.name == ARCHIVE:
            props.update(bucket="evidence-prod", id="evidence-prod", arn="arn:aws:s3:::evidence-prod")
        variables = (props.get("environment") or {}).get("variables")
        if r.type == "aws:lambda/function:Function" and isinstance(variables, dict) and "ARCHIVE_BUCKET" in variables:
            variables["ARCHIVE_BUCKET"] = "evidence-prod"
        renamed.append(fp.StackResource(r.type, r.name, r.urn, props, r.parent, r.dependencies))
    assert [b.name for b in ap.archive_buckets(renamed)] == [ARCHIVE]


def test_requirements_make_the_policies_bite_where_the_stack_does_not_opt_in(evaluation):
    """GIVEN dev (no trail, no replica) and staging (no replica)
    WHEN the requirements are raised by config
    THEN the archive is reported; without config, dev and staging pass (their requirements are lower)."""
    dev = stack_resources(evaluation("dev"))
    only(check(LOGGED, dev, {"archiveAccessLoggingRequired": True}), ARCHIVE, "no CloudTrail trail",
         "archiveAccessLogging = true")
    staging = stack_resources(evaluation("staging"))
    only(check(REPLICATED, staging, {"archiveReplicationRequired": True}), ARCHIVE, "not replicated",
         "archiveReplicationRegion")


# --- archive-access-logged ---------------------------------------------------------------

def test_no_trail_leaves_archive_and_replica_unrecorded(evaluation):
    violations = check(LOGGED, stack_with(evaluation("prod"), T["trail"], ""))
    assert sorted(urn.rsplit("::", 1)[1] for _, urn in violations) == [ARCHIVE, REPLICA]
    assert all("no CloudTrail trail of the stack records" in m and "Fix:" in m for m, _ in violations)


def _archive_selector_reads_only(props):
    selectors(props)[0]["fieldSelectors"].append({"field": "readOnly", "equals": ["true"]})


def _archive_selector_other_bucket(props):
    arn_field(selectors(props)[0])["startsWiths"] = ["arn:aws:s3:::someone-elses-bucket/"]


def _archive_selector_management_only(props):
    props["advancedEventSelectors"] = [{"name": "mgmt", "fieldSelectors": [{"field": "eventCategory",
                                                                            "equals": ["Management"]}]}]


@pytest.mark.parametrize("breaker", [_archive_selector_reads_only, _archive_selector_other_bucket,
                                     _archive_selector_management_only],
                         ids=["reads-only", "other-bucket", "management-only"])
def test_a_selector_that_misses_the_archives_reads_or_writes_is_reported(evaluation, breaker):
    violations = check(LOGGED, stack_with(evaluation("staging"), T["trail"], "", breaker))
    only(violations, ARCHIVE, "no CloudTrail trail", "resources.ARN StartsWith arn:aws:s3:::fraud-archive-staging-")


def test_the_replica_selector_is_required_too(evaluation):
    drop_replica = lambda p: p.update(advancedEventSelectors=selectors(p)[:1])  # noqa: E731
    only(check(LOGGED, stack_with(evaluation("prod"), T["trail"], "", drop_replica)), REPLICA, "no CloudTrail trail")


def test_a_single_region_trail_does_not_see_the_replica(evaluation):
    single = lambda p: p.update(isMultiRegionTrail=False, includeGlobalServiceEvents=False)  # noqa: E731
    only(check(LOGGED, stack_with(evaluation("prod"), T["trail"], "", single)), REPLICA,
         "record only their own region, not us-west-2", "isMultiRegionTrail = true")


def test_basic_event_selectors_count_as_coverage(evaluation):
    basic = lambda p: (p.pop("advancedEventSelectors"), p.update(eventSelectors=[{  # noqa: E731
        "readWriteType": "All", "includeManagementEvents": False,
        "dataResources": [{"type": "AWS::S3::Object", "values": ["arn:aws:s3:::fraud-archive-staging-c3d4e/"]}]}]))
    assert check(LOGGED, stack_with(evaluation("staging"), T["trail"], "", basic)) == []
    write_only = lambda p: (basic(p), p["eventSelectors"][0].update(readWriteType="WriteOnly"))  # noqa: E731
    only(check(LOGGED, stack_with(evaluation("staging"), T["trail"], "", write_only)), ARCHIVE, "no CloudTrail trail")


@pytest.mark.parametrize("breaker, fragments", [
    (lambda p: p.pop("kmsKeyId"), ["not encrypted with a KMS key", "kmsKeyId"]),
    (lambda p: p.update(kmsKeyId="arn:aws:kms:us-west-2:999999999999:key/other"), ["not a key this stack manages"]),
    (lambda p: p.update(enableLogFileValidation=False),
     ["log file validation is off", "enableLogFileValidation = true"]),
    (lambda p: p.update(enableLogging=False), ["logging is stopped", "enableLogging = true"]),
    (lambda p: p.update(s3BucketName="someone-elses-log-bucket"), ["not a bucket of this stack", "audit bucket"]),
], ids=["no-key", "foreign-key", "no-validation", "logging-off", "foreign-bucket"])
def test_a_covering_trail_must_be_evidence_grade(evaluation, breaker, fragments):
    violations = check(LOGGED, stack_with(evaluation("staging"), T["trail"], "", breaker))
    only(violations, TRAIL, *fragments)


def test_log_files_must_outlive_the_audit_retention(evaluation):
    short = lambda p: p["rules"][0]["expiration"].update(days=30.0)  # noqa: E731
    violations = check(LOGGED, stack_with(evaluation("staging"), T["life"], "fraud-archive-access-logs", short))
    only(violations, "fraud-archive-access-logs-lifecycle", "after 30 days", "staging requires 90",
         "auditLogRetentionDays")


def test_unknown_selectors_at_preview_are_skipped(evaluation):
    blur = lambda p: p.update(advancedEventSelectors=UNKNOWN)  # noqa: E731
    assert check(LOGGED, stack_with(evaluation("prod"), T["trail"], "", blur)) == []


# --- archive-replicated ------------------------------------------------------------------

def test_no_replication_config_is_reported_on_the_archive(evaluation):
    only(check(REPLICATED, stack_with(evaluation("prod"), T["replication"], "")), ARCHIVE,
         "not replicated", "archiveReplicationRegion")


def test_a_replica_in_the_archives_region_survives_nothing(evaluation):
    same_region = lambda p: p.update(region="us-east-1",  # noqa: E731
                                     bucketRegionalDomainName="fraud-archive-replica-prod-f5g6h.s3.us-east-1.amazonaws.com")
    only(check(REPLICATED, stack_with(evaluation("prod"), T["bucket"], REPLICA, same_region)), REPLICATION,
         "the archive's own region", "another region")


@pytest.mark.parametrize("breaker, fragments", [
    (lambda p: rule(p)["destination"].pop("encryptionConfiguration"), ["names no replica key", "replicaKmsKeyId"]),
    (lambda p: rule(p)["destination"]["encryptionConfiguration"].update(
        replicaKmsKeyId="arn:aws:kms:us-west-2:999999999999:key/other"), ["not a key this stack manages"]),
    (lambda p: rule(p)["sourceSelectionCriteria"]["sseKmsEncryptedObjects"].update(status="Disabled"),
     ["does not replicate SSE-KMS objects", "sseKmsEncryptedObjects.status"]),
    (lambda p: rule(p)["destination"].update(bucket="arn:aws:s3:::someone-elses-bucket"),
     ["not a bucket of this stack"]),
    (lambda p: rule(p).update(filter={"prefix": "labels/"}), ["replicates only part", "prefix"]),
    (lambda p: rule(p).update(status="Disabled"), ["no enabled rule"]),
], ids=["no-replica-key", "foreign-key", "sse-kms-not-replicated", "foreign-destination", "partial", "disabled"])
def test_a_rule_that_does_not_put_the_evidence_out_of_reach_is_reported(evaluation, breaker, fragments):
    only(check(REPLICATED, stack_with(evaluation("prod"), T["replication"], "", breaker)), REPLICATION, *fragments)


def test_the_replica_key_must_be_in_the_replica_region(evaluation):
    """GIVEN the replication rule pointed at the stack CMK (us-east-1) for a replica in us-west-2
    THEN it is reported: S3 encrypts a replica only with a key of the replica's region."""
    ev = evaluation("prod")
    stack_key = find(ev, T["key"], "fraud-kms-key").outputs["arn"]
    wrong = lambda p: rule(p)["destination"]["encryptionConfiguration"].update(replicaKmsKeyId=stack_key)  # noqa: E731
    only(check(REPLICATED, stack_with(ev, T["replication"], "", wrong)), REPLICATION,
         "is in us-east-1, the replica in us-west-2", "key created in us-west-2")


def test_the_replica_key_counts_as_a_stack_key(evaluation):
    """GIVEN prod, whose replica is encrypted with its own key in us-west-2
    THEN encryption-uses-stack-key accepts it (a key the stack manages and rotates) and removing it is reported."""
    ev = evaluation("prod")
    assert check("encryption-uses-stack-key", stack_resources(ev)) == []
    without = stack_with(ev, T["key"], "fraud-archive-replica-key")
    violations = check("encryption-uses-stack-key", without)
    assert violations and all("fraud-archive-replica" in m for m, _ in violations)
