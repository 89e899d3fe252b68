"""The archive's evidence controls: the access trail (audit_trail.py), the cross-region replica
(replication.py) and the key policy statements they need (kms.py), as pure functions and as the
evaluated stacks declare them (prod: trail and replica; staging: trail only; dev: neither)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fraud_policies.resource_policies import policy_document_violations  # policy/ is on sys.path (tests/conftest.py)

from fraud_pipeline import audit_trail, defaults, kms, replication
from fraud_pipeline.archive import lifecycle_rules
from fraud_pipeline.evaluation import ACCOUNT_ID, Evaluation
from fraud_pipeline.plan import settings_of

T = {
    "bucket": "aws:s3/bucket:Bucket", "key": "aws:kms/key:Key", "alias": "aws:kms/alias:Alias",
    "trail": "aws:cloudtrail/trail:Trail", "replication": "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
    "role": "aws:iam/role:Role", "role_policy": "aws:iam/rolePolicy:RolePolicy",
    "sse": "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "pab": "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
    "own": "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
    "ver": "aws:s3/bucketVersioning:BucketVersioning",
    "life": "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "bpol": "aws:s3/bucketPolicy:BucketPolicy",
}
COMPANIONS = ("sse", "pab", "own", "ver", "life", "bpol")
ARCHIVE = "arn:aws:s3:::fraud-archive-t-x1"
REPLICA = "arn:aws:s3:::fraud-archive-replica-t-x1"
TRAIL = f"arn:aws:cloudtrail:eu-west-1:{ACCOUNT_ID}:trail/fraud-archive-access-t-x1"
SOURCE_KEY = f"arn:aws:kms:eu-west-1:{ACCOUNT_ID}:key/source"
REPLICA_KEY = f"arn:aws:kms:eu-central-1:{ACCOUNT_ID}:key/replica"
ROLE = f"arn:aws:iam::{ACCOUNT_ID}:role/fraud-archive-replication-t-x1"


def by_sid(policy: dict) -> dict[str, dict]:
    return {st["Sid"]: st for st in policy["Statement"]}


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


# --- pure: the trail ---------------------------------------------------------------------

def test_selectors_record_every_object_read_and_write_of_the_archive_only():
    [selector] = audit_trail.event_selectors(ARCHIVE)
    fields = {f["field"]: f for f in selector["field_selectors"]}
    assert fields["eventCategory"]["equals"] == ["Data"]
    assert fields["resources.type"]["equals"] == ["AWS::S3::Object"]
    # the trailing slash: all of this bucket's objects, and no other bucket whose name starts alike
    assert fields["resources.ARN"]["starts_withs"] == [f"{ARCHIVE}/"]
    assert "readOnly" not in fields and "eventName" not in fields  # reads and writes, every operation


def test_selectors_add_the_replica_and_management_events_only_when_asked():
    selectors = audit_trail.event_selectors(ARCHIVE, REPLICA)
    assert [s["field_selectors"][2]["starts_withs"] for s in selectors] == [[f"{ARCHIVE}/"], [f"{REPLICA}/"]]
    assert defaults.TRAIL_INCLUDE_MANAGEMENT_EVENTS is False
    assert not any(f.get("equals") == ["Management"] for s in selectors for f in s["field_selectors"])
    with_management = audit_trail.event_selectors(ARCHIVE, include_management_events=True)
    assert with_management[-1]["field_selectors"] == [{"field": "eventCategory", "equals": ["Management"]}]


def test_delivery_statements_admit_cloudtrail_for_this_trail_only():
    bucket = "arn:aws:s3:::fraud-audit-t-x1"
    statements = by_sid({"Statement": audit_trail.delivery_statements(bucket, ACCOUNT_ID, TRAIL)})
    acl, write = statements["CloudTrailChecksBucketAcl"], statements["CloudTrailWritesTheArchiveAccessLogs"]
    for st in (acl, write):
        assert st["Principal"] == {"Service": "cloudtrail.amazonaws.com"} and st["Effect"] == "Allow"
        assert st["Condition"]["StringEquals"]["aws:SourceArn"] == TRAIL
    assert (acl["Action"], acl["Resource"]) == ("s3:GetBucketAcl", bucket)
    assert (write["Action"], write["Resource"]) == ("s3:PutObject", f"{bucket}/AWSLogs/{ACCOUNT_ID}/*")
    assert write["Condition"]["StringEquals"]["s3:x-amz-acl"] == "bucket-owner-full-control"


def test_log_lifecycle_expires_after_the_retention_and_drops_old_versions():
    [rule] = audit_trail.log_lifecycle_rules(365)
    assert rule["status"] == "Enabled" and rule["filter"] == {} and "transitions" not in rule
    assert rule["expiration"] == {"days": 365}
    assert rule["noncurrent_version_expiration"] == {"noncurrent_days": defaults.S3_NONCURRENT_EXPIRATION_DAYS}
    assert rule["abort_incomplete_multipart_upload"] == {"days_after_initiation": defaults.S3_ABORT_MULTIPART_DAYS}


def test_trail_arn_is_known_from_region_account_and_name():
    assert audit_trail.trail_arn("eu-west-1", ACCOUNT_ID, "fraud-archive-access-t-x1") == TRAIL


# --- pure: the key policy's CloudTrail statements ---------------------------------------------

def test_key_policy_admits_cloudtrail_for_the_named_trail_only():
    statements = by_sid(kms.key_policy(ACCOUNT_ID, "eu-west-1", [TRAIL]))
    encrypt = statements["CloudTrailEncryptsTheArchiveAccessTrail"]
    assert encrypt["Principal"] == {"Service": "cloudtrail.amazonaws.com"}
    assert encrypt["Action"] == "kms:GenerateDataKey*"
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceArn": [TRAIL], "aws:SourceAccount": ACCOUNT_ID}
    assert encrypt["Condition"]["StringLike"] == {
        "kms:EncryptionContext:aws:cloudtrail:arn": f"arn:aws:cloudtrail:*:{ACCOUNT_ID}:trail/*"}
    describe = statements["CloudTrailDescribesKeyForTheArchiveAccessTrail"]
    assert describe["Action"] == "kms:DescribeKey"
    assert describe["Condition"]["StringEquals"] == {"aws:SourceArn": [TRAIL], "aws:SourceAccount": ACCOUNT_ID}
    decrypt = statements["AccountPrincipalsDecryptCloudTrailLogs"]
    assert decrypt["Principal"] == {"AWS": f"arn:aws:iam::{ACCOUNT_ID}:root"} and decrypt["Action"] == "kms:Decrypt"
    assert decrypt["Condition"]["StringEquals"] == {"kms:CallerAccount": ACCOUNT_ID}
    # CloudTrail gets nothing else: no Decrypt, no Encrypt, no other service's context
    cloudtrail = [st for st in statements.values() if st["Principal"].get("Service") == "cloudtrail.amazonaws.com"]
    assert {a for st in cloudtrail for a in as_list(st["Action"])} == {"kms:GenerateDataKey*", "kms:DescribeKey"}


def test_key_policy_without_a_trail_has_no_cloudtrail_statement():
    policy = kms.key_policy(ACCOUNT_ID, "eu-west-1")
    assert not any("CloudTrail" in st["Sid"] for st in policy["Statement"])
    assert policy["Statement"][0] == kms.administration_statement(ACCOUNT_ID)


# --- pure: the replica ---------------------------------------------------------------------

def test_replication_policy_names_specific_arns_only():
    doc = replication.replication_policy(ARCHIVE, SOURCE_KEY, "eu-west-1", REPLICA, REPLICA_KEY, "eu-central-1")
    assert policy_document_violations(doc) == []
    resources = {r for st in doc["Statement"] for r in as_list(st["Resource"])}
    assert resources == {ARCHIVE, f"{ARCHIVE}/*", f"{REPLICA}/*", SOURCE_KEY, REPLICA_KEY}
    statements = by_sid(doc)
    assert statements["ReadSourceReplicationConfiguration"]["Resource"] == [ARCHIVE]
    assert statements["WriteReplicas"]["Action"] == ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"]
    decrypt, encrypt = statements["DecryptSourceObjectsThroughS3"], statements["EncryptReplicasThroughS3"]
    assert (decrypt["Action"], decrypt["Resource"]) == (["kms:Decrypt"], [SOURCE_KEY])
    assert decrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-west-1.amazonaws.com"},
                                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [ARCHIVE, f"{ARCHIVE}/*"]}}
    assert (encrypt["Action"], encrypt["Resource"]) == (["kms:Encrypt", "kms:GenerateDataKey"], [REPLICA_KEY])
    assert encrypt["Condition"] == {"StringEquals": {"kms:ViaService": "s3.eu-central-1.amazonaws.com"},
                                    "StringLike": {"kms:EncryptionContext:aws:s3:arn": [REPLICA, f"{REPLICA}/*"]}}


def test_replica_key_policy_follows_the_stack_key_style():
    statements = by_sid(replication.replica_key_policy(ACCOUNT_ID, "eu-central-1", ROLE, REPLICA))
    assert statements["AccountAdministersKey"] == kms.administration_statement(ACCOUNT_ID)
    use = statements["AccountPrincipalsUseKeyThroughS3InReplicaRegion"]
    assert use["Condition"]["StringEquals"] == {"kms:CallerAccount": ACCOUNT_ID,
                                                "kms:ViaService": "s3.eu-central-1.amazonaws.com"}
    role = statements["ReplicationRoleEncryptsArchiveReplicas"]
    assert role["Principal"] == {"AWS": ROLE} and role["Action"] == ["kms:Encrypt", "kms:GenerateDataKey"]
    assert role["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == [REPLICA, f"{REPLICA}/*"]
    assert not any(st.get("Principal") == "*" for st in statements.values())


def test_replication_rule_replicates_everything_under_the_replica_key():
    rule = replication.replication_rule("eu-central-1", REPLICA, REPLICA_KEY)
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["delete_marker_replication"] == {"status": "Enabled"}
    assert rule["source_selection_criteria"] == {"sse_kms_encrypted_objects": {"status": "Enabled"}}
    assert rule["destination"] == {
        "bucket": REPLICA, "storage_class": defaults.ARCHIVE_REPLICA_STORAGE_CLASS,
        "encryption_configuration": {"replica_kms_key_id": REPLICA_KEY}, "metrics": {"status": "Enabled"}}
    assert "replication_time" not in rule["destination"]  # RTC is billed per GB; metrics alone suffice


# --- evaluated stacks ----------------------------------------------------------------------

@pytest.fixture
def evaluation(request):
    """evaluation("staging"): tests/conftest.py's session-cached evaluation (shared with the other stack tests)."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in request.config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == root and hasattr(plugin, "evaluated"):
            return plugin.evaluated
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture
def staging(evaluation) -> Evaluation:
    return evaluation("staging")


def stack_key(ev: Evaluation):
    return ev.one(T["key"], "fraud-kms")


def archive_bucket(ev: Evaluation):
    return ev.one(T["bucket"], "fraud-archive-bucket")


def companions(ev: Evaluation, bucket_name: str) -> dict[str, dict]:
    out = {}
    for kind in COMPANIONS:
        [found] = [r for r in ev.of_type(T[kind]) if r.inputs["bucket"] == bucket_name]
        out[kind] = found
    return out


def component_of(ev: Evaluation, resource) -> str:
    return ev.by_urn(resource.parent).type


def test_prod_trail_is_encrypted_validated_and_records_archive_and_replica(prod):
    trail = prod.one(T["trail"])
    i = trail.inputs
    assert component_of(prod, trail) == "fraud-pipeline:index:ArchiveAccessTrail"
    assert prod.ancestors(trail)[1].type == "fraud-pipeline:index:ArchiveBucket"
    assert i["name"] == "fraud-archive-access-prod-f5g6h"
    assert i["kmsKeyId"] == stack_key(prod).outputs["arn"]
    assert i["enableLogFileValidation"] is True and i["enableLogging"] is True
    # the replica (us-west-2) is recorded only by a multi-region trail; CloudTrail requires global
    # service events with it, which are management events, and no selector records those
    assert i["isMultiRegionTrail"] is True and i["includeGlobalServiceEvents"] is True
    starts = [f["startsWiths"] for s in i["advancedEventSelectors"] for f in s["fieldSelectors"]
              if f["field"] == "resources.ARN"]
    replica = prod.one(T["bucket"], "fraud-archive-replica-bucket")
    assert starts == [[archive_bucket(prod).outputs["arn"] + "/"], [replica.outputs["arn"] + "/"]]
    assert not any(f["field"] == "readOnly" for s in i["advancedEventSelectors"] for f in s["fieldSelectors"])
    assert not any(f.get("equals") == ["Management"] for s in i["advancedEventSelectors"] for f in s["fieldSelectors"])


def test_staging_trail_is_single_region_without_global_events(staging):
    i = staging.one(T["trail"]).inputs
    assert i["isMultiRegionTrail"] is False and i["includeGlobalServiceEvents"] is False
    assert len(i["advancedEventSelectors"]) == 1
    assert i["kmsKeyId"] == stack_key(staging).outputs["arn"] and i["enableLogFileValidation"] is True


@pytest.mark.parametrize("stack_name", ["staging", "prod"])
def test_audit_bucket_is_hardened_and_admits_only_this_trail(evaluation, stack_name):
    ev = evaluation(stack_name)
    s = settings_of(stack_name)
    trail = ev.one(T["trail"])
    bucket = ev.one(T["bucket"], "fraud-archive-access-logs-bucket")
    name = bucket.inputs["bucket"]
    assert name == f"fraud-audit-{s.environment}-{s.environment_suffix}"
    assert trail.inputs["s3BucketName"] == bucket.outputs["id"]
    assert bucket.inputs["forceDestroy"] is (not s.deletion_protection)
    c = companions(ev, name)
    sse = c["sse"].inputs["rules"][0]
    assert sse["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "aws:kms",
                                                         "kmsMasterKeyId": stack_key(ev).outputs["arn"]}
    assert all(c["pab"].inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                    "restrictPublicBuckets"))
    assert c["own"].inputs["rule"]["objectOwnership"] == "BucketOwnerEnforced"
    assert c["ver"].inputs["versioningConfiguration"]["status"] == "Enabled"
    [rule] = c["life"].inputs["rules"]
    assert rule["expiration"]["days"] == s.audit_log_retention_days
    statements = by_sid(json.loads(c["bpol"].inputs["policy"]))
    assert statements["DenyInsecureTransport"]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for sid in ("CloudTrailChecksBucketAcl", "CloudTrailWritesTheArchiveAccessLogs"):
        assert statements[sid]["Condition"]["StringEquals"]["aws:SourceArn"] == trail.outputs["arn"]
    # CloudTrail checks the bucket policy when the trail is created
    assert c["bpol"].urn in trail.depends_on


@pytest.mark.parametrize("stack_name", ["dev", "staging", "prod"])
def test_stack_key_policy_admits_cloudtrail_scoped_to_the_stacks_trail(evaluation, stack_name):
    ev = evaluation(stack_name)
    s = settings_of(stack_name)
    statements = by_sid(json.loads(stack_key(ev).inputs["policy"]))
    name = f"fraud-archive-access-{s.environment}-{s.environment_suffix}"
    expected = f"arn:aws:cloudtrail:{s.region}:{ACCOUNT_ID}:trail/{name}"
    if not s.archive_access_logging:  # no trail (dev): the key admits no CloudTrail at all
        assert not [sid for sid in statements if "CloudTrail" in sid]
        return
    encrypt = statements["CloudTrailEncryptsTheArchiveAccessTrail"]
    assert encrypt["Condition"]["StringEquals"] == {"aws:SourceArn": [expected], "aws:SourceAccount": ACCOUNT_ID}
    assert encrypt["Condition"]["StringLike"]["kms:EncryptionContext:aws:cloudtrail:arn"] == \
        f"arn:aws:cloudtrail:*:{ACCOUNT_ID}:trail/*"
    trails = ev.of_type(T["trail"])
    if trails:  # the ARN the policy names before the trail exists is the one the trail gets
        assert trails[0].outputs["arn"] == expected


def test_prod_replica_is_in_us_west_2_under_its_own_key(prod):
    s = settings_of("prod")
    assert (s.region, s.archive_replication_region) == ("us-east-1", "us-west-2")
    replica = prod.one(T["bucket"], "fraud-archive-replica-bucket")
    assert component_of(prod, replica) == "fraud-pipeline:index:ArchiveReplica"
    assert replica.inputs["bucket"] == "fraud-archive-replica-prod-f5g6h"
    assert replica.inputs["region"] == "us-west-2"
    assert replica.inputs["forceDestroy"] is False  # as the source: prod keeps its evidence
    key = prod.one(T["key"], "fraud-archive-replica")
    assert key.inputs["region"] == "us-west-2" and key.outputs["arn"].split(":")[3] == "us-west-2"
    assert key.outputs["arn"] != stack_key(prod).outputs["arn"]
    assert key.inputs["enableKeyRotation"] is defaults.KMS_ENABLE_ROTATION is True
    assert key.inputs["rotationPeriodInDays"] == defaults.KMS_ROTATION_PERIOD_DAYS
    assert key.inputs["deletionWindowInDays"] == defaults.KMS_DELETION_WINDOW_DAYS_PROTECTED
    alias = prod.one(T["alias"], "fraud-archive-replica")
    assert alias.inputs["region"] == "us-west-2" and alias.inputs["name"] == "alias/fraud-archive-replica-prod-f5g6h"
    c = companions(prod, replica.inputs["bucket"])
    assert {kind: r.inputs.get("region") for kind, r in c.items()} == {kind: "us-west-2" for kind in COMPANIONS}
    sse = c["sse"].inputs["rules"][0]
    assert sse == {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "aws:kms",
                                                          "kmsMasterKeyId": key.outputs["arn"]},
                   "bucketKeyEnabled": True}
    assert all(c["pab"].inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                    "restrictPublicBuckets"))
    assert c["ver"].inputs["versioningConfiguration"]["status"] == "Enabled"
    source_rules = companions(prod, archive_bucket(prod).inputs["bucket"])["life"].inputs["rules"]
    assert c["life"].inputs["rules"] == source_rules
    assert len(source_rules) == len(lifecycle_rules(s.archive_transition_days, s.archive_expiration_days))
    assert json.loads(c["bpol"].inputs["policy"])["Statement"][0]["Sid"] == "DenyInsecureTransport"


def test_prod_replica_key_policy_admits_s3_in_its_region_and_the_replication_role(prod):
    key = prod.one(T["key"], "fraud-archive-replica")
    role = prod.one(T["role"], "fraud-archive-replica")
    replica = prod.one(T["bucket"], "fraud-archive-replica-bucket")
    statements = by_sid(json.loads(key.inputs["policy"]))
    assert set(statements) == {"AccountAdministersKey", "AccountPrincipalsUseKeyThroughS3InReplicaRegion",
                               "ReplicationRoleEncryptsArchiveReplicas"}
    assert statements["AccountPrincipalsUseKeyThroughS3InReplicaRegion"]["Condition"]["StringEquals"][
        "kms:ViaService"] == "s3.us-west-2.amazonaws.com"
    role_statement = statements["ReplicationRoleEncryptsArchiveReplicas"]
    assert role_statement["Principal"] == {"AWS": role.outputs["arn"]}
    assert role_statement["Condition"]["StringLike"]["kms:EncryptionContext:aws:s3:arn"] == \
        [replica.outputs["arn"], replica.outputs["arn"] + "/*"]
    # KMS rejects a policy naming a principal that does not exist yet: the role comes first
    assert role.urn in key.depends_on


def test_prod_replication_config_replicates_everything_to_the_replica(prod):
    cfg = prod.one(T["replication"])
    source = archive_bucket(prod)
    replica = prod.one(T["bucket"], "fraud-archive-replica-bucket")
    key = prod.one(T["key"], "fraud-archive-replica")
    role = prod.one(T["role"], "fraud-archive-replica")
    assert cfg.inputs["bucket"] == source.outputs["id"] and cfg.inputs["role"] == role.outputs["arn"]
    assert "region" not in cfg.inputs  # on the source, in the stack's region
    [rule] = cfg.inputs["rules"]
    assert rule["status"] == "Enabled" and rule["filter"] == {"prefix": ""}
    assert rule["deleteMarkerReplication"] == {"status": "Enabled"}
    assert rule["sourceSelectionCriteria"] == {"sseKmsEncryptedObjects": {"status": "Enabled"}}
    assert rule["destination"] == {
        "bucket": replica.outputs["arn"], "storageClass": defaults.ARCHIVE_REPLICA_STORAGE_CLASS,
        "encryptionConfiguration": {"replicaKmsKeyId": key.outputs["arn"]}, "metrics": {"status": "Enabled"}}
    source_versioning = companions(prod, source.inputs["bucket"])["ver"]
    replica_versioning = companions(prod, replica.inputs["bucket"])["ver"]
    assert {source_versioning.urn, replica_versioning.urn} <= set(cfg.depends_on)


def test_prod_replication_role_is_s3s_and_names_specific_arns_only(prod):
    role = prod.one(T["role"], "fraud-archive-replica")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
    assert [(st["Principal"], st["Action"]) for st in trust] == [({"Service": "s3.amazonaws.com"}, "sts:AssumeRole")]
    [policy] = [p for p in prod.of_type(T["role_policy"]) if p.inputs["role"] == role.outputs["id"]]
    doc = json.loads(policy.inputs["policy"])
    assert policy_document_violations(doc) == []
    source = archive_bucket(prod).outputs["arn"]
    replica = prod.one(T["bucket"], "fraud-archive-replica-bucket").outputs["arn"]
    keys = {stack_key(prod).outputs["arn"], prod.one(T["key"], "fraud-archive-replica").outputs["arn"]}
    resources = {r for st in doc["Statement"] for r in as_list(st["Resource"])}
    assert resources == {source, f"{source}/*", f"{replica}/*"} | keys
    assert all("*" not in r.replace("/*", "") for r in resources)
    vias = {st["Sid"]: st["Condition"]["StringEquals"]["kms:ViaService"] for st in doc["Statement"]
            if st["Sid"].endswith("ThroughS3")}
    assert vias == {"DecryptSourceObjectsThroughS3": "s3.us-east-1.amazonaws.com",
                    "EncryptReplicasThroughS3": "s3.us-west-2.amazonaws.com"}


def test_staging_has_the_trail_but_no_replica(staging):
    assert len(staging.of_type(T["trail"])) == 1
    assert staging.of_type(T["replication"]) == []
    assert not [b for b in staging.of_type(T["bucket"]) if "replica" in b.inputs["bucket"]]
    assert staging.of_type("fraud-pipeline:index:ArchiveReplica") == []
    assert [k.name for k in staging.of_type(T["key"])] == ["fraud-kms-key"]


def test_dev_has_neither_trail_nor_replica(dev):
    assert dev.of_type(T["trail"]) == [] and dev.of_type(T["replication"]) == []
    assert dev.of_type("fraud-pipeline:index:ArchiveAccessTrail") == []
    assert dev.of_type("fraud-pipeline:index:ArchiveReplica") == []
    names = [b.inputs["bucket"] for b in dev.of_type(T["bucket"])]
    assert not [n for n in names if n.startswith(("fraud-audit-", "fraud-archive-replica-"))]


@pytest.mark.parametrize("stack_name, expected", [("dev", 0), ("staging", 9), ("prod", 22)])
def test_evidence_controls_add_what_each_stack_asks_for(evaluation, stack_name, expected):
    """The trail (a component, its bucket's seven resources, the trail) and the replica (a component, its
    bucket's seven, key, alias, role, role policy, replication configuration), and nothing in dev."""
    ev = evaluation(stack_name)
    added = [r for r in ev.resources
             if r.type in ("fraud-pipeline:index:ArchiveAccessTrail", "fraud-pipeline:index:ArchiveReplica")
             or any(a.type in ("fraud-pipeline:index:ArchiveAccessTrail", "fraud-pipeline:index:ArchiveReplica")
                    for a in ev.ancestors(r))]
    assert len(added) == expected
