"""Archive evidence controls: every read and write recorded, a replica in another region.

Which bucket is the archive follows from what it is: the bucket the functions
archive evidence to (their `ARCHIVE_BUCKET` variable). While those variables
cannot be known (a preview that creates the functions renders them later), the
archive is recognised by its name (`fraud-archive-<env>-<suffix>`), and a bucket
that is a replication destination is never the archive (it is its replica).

`archive-access-logged`: the archive, and any replica it replicates to, is covered
by a trail of the stack that records S3 object data events (reads and writes) for
its objects, encrypted with a KMS key of the stack, with log file validation,
logging on, delivering to a bucket of the stack whose lifecycle keeps the logs at
least the audit retention. A trail sees only its own region unless it is
multi-region, so a replica in another region needs a multi-region trail.

`archive-replicated`: the archive has a replication configuration with an enabled
rule that replicates every object (SSE-KMS ones included) to a bucket of the stack
in another region, encrypted with a KMS key of the stack in that region. That the
replica has its companions (SSE-KMS, public access block, ownership, lifecycle,
TLS-only policy) is `s3-bucket-companions`' finding, which checks every bucket of
the stack, the replica included; their content is checked by the resource policies.

Links that cannot be known at preview are skipped, never reported; `pulumi up`
runs the same checks on the real values.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, TypeGuard

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .stack_policies import StackResource, Violation, _of, _who, identifiers, linked, linked_bucket
from .values import as_list, get, is_unknown, num

TRAIL = "aws:cloudtrail/trail:Trail"
REPLICATION = "aws:s3/bucketReplicationConfig:BucketReplicationConfig"
REPLICATION_V2 = "aws:s3/bucketReplicationConfigV2:BucketReplicationConfigV2"
#: The variable that names the archive in the functions' environment (fraud_pipeline/wiring.py).
ARCHIVE_VARIABLE = "ARCHIVE_BUCKET"
ARCHIVE_NAME_PREFIX = "fraud-archive-"
REPLICA_NAME_PREFIX = "fraud-archive-replica-"
S3_OBJECT = "AWS::S3::Object"
#: Where CloudTrail writes under the delivery bucket (after an optional key prefix).
CLOUDTRAIL_LOG_PREFIX = "AWSLogs/"


def _known(value: Any) -> TypeGuard[str]:
    """A non-empty string known at preview."""
    return isinstance(value, str) and bool(value) and not is_unknown(value)


# --- which bucket is the archive, which its replica ---------------------------------------

def _replication_configs(resources: list[StackResource]) -> list[StackResource]:
    return _of(resources, REPLICATION, REPLICATION_V2)


def _destination_refs(resources: list[StackResource]) -> set[str]:
    """Known destination bucket ARNs of every replication rule in the stack."""
    out = set()
    for cfg in _replication_configs(resources):
        for rule in as_list(get(cfg.props, "rules")):
            dest = get(rule, "destination", "bucket")
            if _known(dest):
                out.add(dest)
    return out


def archive_buckets(resources: list[StackResource]) -> list[StackResource]:
    """The archive bucket(s): named by a function's ARCHIVE_BUCKET, else by name; never a replication destination."""
    buckets = _of(resources, *rp.BUCKET_TYPES)
    named = set()
    for fn in _of(resources, rp.FUNCTION):
        value = get(fn.props, "environment", "variables", ARCHIVE_VARIABLE)
        if _known(value):
            named.add(value)
    destinations = _destination_refs(resources)
    out = []
    for b in buckets:
        ids = identifiers(b)
        if ids & destinations:
            continue
        name = b.props.get("bucket")
        by_name = _known(name) and name.startswith(ARCHIVE_NAME_PREFIX) and not name.startswith(REPLICA_NAME_PREFIX)
        if ids & named or by_name:
            out.append(b)
    return out


def _rules(cfg: StackResource) -> list:
    return as_list(get(cfg.props, "rules"))


def _replicas_of(archive: StackResource, resources: list[StackResource]) -> list[StackResource]:
    """The stack's buckets an enabled rule of the archive's replication configuration writes to."""
    buckets = _of(resources, *rp.BUCKET_TYPES)
    configs, _ = linked_bucket(archive, _replication_configs(resources))
    out = []
    for cfg in configs:
        for rule in _rules(cfg):
            if get(rule, "status") != "Enabled":
                continue
            dest = get(rule, "destination", "bucket")
            if not _known(dest):
                continue
            out += [b for b in buckets if dest in identifiers(b) and b not in out]
    return out


# --- regions ----------------------------------------------------------------------------

def _arn_region(value: Any) -> str | None:
    if not _known(value) or not value.startswith("arn:"):
        return None
    parts = value.split(":")
    return (parts[3] or None) if len(parts) > 4 else None


def stack_region(resources: list[StackResource]) -> str | None:
    """The provider's region: the most common region in the ARNs of resources that set no region of their own."""
    regions = Counter(r for res in resources
                      if not _known(res.props.get("region")) and (r := _arn_region(res.props.get("arn"))))
    return regions.most_common(1)[0][0] if regions else None


def region_of(r: StackResource, default: str | None) -> str | None:
    """A resource's region: its own `region` (pulumi-aws v7), else a bucket's regional domain name, else `default`."""
    region = r.props.get("region")
    if _known(region):
        return region
    if is_unknown(region):
        return None
    domain = r.props.get("bucketRegionalDomainName")
    if _known(domain) and ".s3." in domain:
        return domain.split(".s3.", 1)[1].split(".", 1)[0]
    return default


def _bucket_arn(b: StackResource) -> str | None:
    arn = b.props.get("arn")
    if _known(arn):
        return arn
    name = b.props.get("bucket")
    return f"arn:aws:s3:::{name}" if _known(name) else None


# --- keys ----------------------------------------------------------------------------------

def stack_keys(resources: list[StackResource]) -> tuple[dict[str, StackResource], bool]:
    """Every identifier (ARN, id, and aliases) of the stack's KMS keys -> the key; and whether one is unknown."""
    keys = _of(resources, rp.KMS_KEY)
    by_id: dict[str, StackResource] = {i: k for k in keys for i in identifiers(k)}
    for alias in _of(resources, rp.KMS_ALIAS):
        target = alias.props.get("targetKeyId")
        if _known(target) and target in by_id:
            for i in identifiers(alias):
                by_id.setdefault(i, by_id[target])
    unknowable = any(is_unknown(k.props.get("arn")) or not identifiers(k) for k in keys)
    return by_id, unknowable


# --- archive-access-logged ---------------------------------------------------------------

def _field_selectors(selector: Any) -> dict[str, dict] | None:
    fields = get(selector, "fieldSelectors")
    if is_unknown(fields):
        return None
    out: dict[str, dict] = {}
    for f in as_list(fields):
        if not isinstance(f, dict) or is_unknown(f.get("field")):
            return None
        out[str(f.get("field"))] = f
    return out


def _values(field: dict, op: str) -> list | None:
    raw = field.get(op)
    if is_unknown(raw) or any(is_unknown(v) for v in as_list(raw)):
        return None
    return [v for v in as_list(raw) if isinstance(v, str)]


def _advanced_selector_covers(selector: Any, prefix: str) -> bool | None:
    """Does this advanced selector record every object data event (reads and writes) under `prefix`? None: unknown."""
    fields = _field_selectors(selector)
    if fields is None:
        return None
    category = fields.get("eventCategory")
    if category is None or "Data" not in (_values(category, "equals") or []):
        return False
    kind = fields.get("resources.type")
    if kind is None or S3_OBJECT not in (_values(kind, "equals") or []):
        return False
    if any(f in fields for f in ("readOnly", "eventName", "eventSource", "eventType", "userIdentity.arn",
                                 "errorCode", "sessionCredentialFromConsole", "eventNameExact")):
        return False  # a filter on who, what or reads-or-writes records only part of the events
    arn_field = fields.get("resources.ARN")
    if arn_field is None:
        return True  # every S3 object in the account
    found = {op: _values(arn_field, op) for op in ("startsWiths", "equals", "notStartsWiths", "notEquals",
                                                   "endsWiths", "notEndsWiths")}
    values = {op: v for op, v in found.items() if v is not None}
    if len(values) < len(found):
        return None
    if values["endsWiths"] or values["notEndsWiths"] or any(v.startswith(prefix) for v in values["notEquals"]):
        return False
    if any(q.startswith(prefix) or prefix.startswith(q) for q in values["notStartsWiths"]):
        return False
    return any(prefix.startswith(p) for p in values["startsWiths"])


def _basic_selector_covers(selector: Any, prefix: str) -> bool | None:
    if is_unknown(selector) or not isinstance(selector, dict):
        return None
    kind = get(selector, "readWriteType")
    if is_unknown(kind):
        return None
    if kind not in (None, "All"):
        return False
    for resource in as_list(get(selector, "dataResources")):
        if get(resource, "type") == S3_OBJECT:
            values = as_list(get(resource, "values"))
            if any(is_unknown(v) for v in values):
                return None
            if any(isinstance(v, str) and prefix.startswith(v) for v in values):
                return True
    return False


def trail_covers(trail: StackResource, bucket_arn: str) -> bool | None:
    """Whether the trail's selectors record every object read and write of the bucket (None: cannot be known)."""
    prefix = f"{bucket_arn}/"
    results: list[bool | None] = []
    advanced, basic = trail.props.get("advancedEventSelectors"), trail.props.get("eventSelectors")
    for raw, check in ((advanced, _advanced_selector_covers), (basic, _basic_selector_covers)):
        if is_unknown(raw):
            results.append(None)
            continue
        results += [check(s, prefix) for s in as_list(raw)]
    if any(r is True for r in results):
        return True
    return None if any(r is None for r in results) else False


def _expires_too_early(lifecycle: StackResource, floor: int) -> int | None:
    """The shortest expiry (days) below `floor` among enabled rules that reach CloudTrail's log objects."""
    shortest = None
    for rule in as_list(get(lifecycle.props, "rules")):
        if not isinstance(rule, dict) or rule.get("status") != "Enabled":
            continue
        prefix = get(rule, "filter", "prefix")
        if prefix is None:
            prefix = rule.get("prefix") or ""
        if get(rule, "filter", "tag") or get(rule, "filter", "and") or not isinstance(prefix, str):
            continue
        if not (CLOUDTRAIL_LOG_PREFIX.startswith(prefix) or prefix.startswith(CLOUDTRAIL_LOG_PREFIX)):
            continue
        days = num(get(rule, "expiration", "days"))
        if days is not None and days < floor and (shortest is None or days < shortest):
            shortest = int(days)
    return shortest


def _trail_problems(trail: StackResource, resources: list[StackResource], req: Requirements) -> list[Violation]:
    """What keeps a covering trail from being evidence: no key or validation, logging off, logs elsewhere or brief."""
    who = _who(trail)
    out: list[str] = []
    key = trail.props.get("kmsKeyId")
    if not is_unknown(key):
        if not _known(key):
            out.append(f"{who}: records the archive's object access but its log files are not encrypted with a KMS "
                       "key (SSE-S3 only). Fix: set kmsKeyId to the stack's key (KmsKeys.key.arn); the key policy "
                       "must admit cloudtrail.amazonaws.com for this trail (fraud_pipeline/kms.py).")
        else:
            keys, unknowable = stack_keys(resources)
            if key not in keys and not unknowable:
                out.append(f"{who}: kmsKeyId = {key!r} is not a key this stack manages. Fix: set kmsKeyId to the "
                           "stack's key (KmsKeys.key.arn).")
    validation = trail.props.get("enableLogFileValidation")
    if not is_unknown(validation) and validation is not True:
        out.append(f"{who}: log file validation is off, so a deleted or edited log file goes unnoticed. Fix: set "
                   "enableLogFileValidation = true (fraud_pipeline/defaults.py TRAIL_LOG_FILE_VALIDATION).")
    if trail.props.get("enableLogging") is False:
        out.append(f"{who}: logging is stopped (enableLogging = false). Fix: set enableLogging = true.")
    buckets = _of(resources, *rp.BUCKET_TYPES)
    target = trail.props.get("s3BucketName")
    delivery = [b for b in buckets if _known(target) and target in identifiers(b)]
    if not delivery:
        delivery = [b for b in buckets if b.urn in trail.property_dependencies.get("s3BucketName", ())]
    if _known(target) and not delivery and not any(not identifiers(b) for b in buckets):
        out.append(f"{who}: delivers to {target!r}, which is not a bucket of this stack, so the stack cannot vouch "
                   "for the logs' encryption, access and retention. Fix: deliver to the stack's audit bucket "
                   "(fraud_pipeline/audit_trail.py).")
    violations = [Violation(m, trail.urn) for m in out]
    lifecycles = _of(resources, rp.LIFECYCLE, rp.LIFECYCLE_V2)
    for bucket in delivery:
        found, _ = linked_bucket(bucket, lifecycles)
        for lifecycle in found:
            days = _expires_too_early(lifecycle, req.min_audit_log_retention_days)
            if days is not None:
                violations.append(Violation(
                    f"{_who(lifecycle)}: expires the access trail's log files after {days} days; {req.environment} "
                    f"requires {req.min_audit_log_retention_days}. Fix: raise auditLogRetentionDays.", lifecycle.urn))
    return violations


def _covering(trails: list[StackResource], bucket: StackResource, arn: str,
              home: str | None) -> tuple[list[StackResource], list[StackResource], bool]:
    """(trails that record the bucket, trails whose selectors match but not its region, whether that is unknown)."""
    covering, elsewhere, unknowable = [], [], False
    bucket_region = region_of(bucket, home)
    for trail in trails:
        covers = trail_covers(trail, arn)
        if covers is None:
            unknowable = True
            continue
        if not covers:
            continue
        multi = trail.props.get("isMultiRegionTrail")
        trail_region = region_of(trail, home)
        if multi is True or is_unknown(multi) or None in (trail_region, bucket_region) or trail_region == bucket_region:
            covering.append(trail)
        else:
            elsewhere.append(trail)
    return covering, elsewhere, unknowable


def archive_access_logged(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    if not req.archive_access_logging:
        return []
    trails = _of(resources, TRAIL)
    home = stack_region(resources)
    targets: list[StackResource] = []
    for archive in archive_buckets(resources):
        for b in [archive, *_replicas_of(archive, resources)]:
            if b not in targets:
                targets.append(b)
    out: list[Violation] = []
    seen: set[Violation] = set()
    for bucket in targets:
        arn = _bucket_arn(bucket)
        if arn is None:
            continue  # a bucket about to be named: checked at `up`
        covering, elsewhere, unknowable = _covering(trails, bucket, arn, home)
        if not covering:
            if unknowable:
                continue
            if elsewhere:
                out.append(Violation(
                    f"{_who(bucket)}: the trail(s) {', '.join(_who(t) for t in elsewhere)} select its objects but "
                    f"record only their own region, not {region_of(bucket, home)}. Fix: make the trail multi-region "
                    "(isMultiRegionTrail = true, with includeGlobalServiceEvents = true, which CloudTrail requires).",
                    bucket.urn))
                continue
            out.append(Violation(
                f"{_who(bucket)}: no CloudTrail trail of the stack records the object reads and writes (S3 data "
                "events) of this evidence bucket, so nobody can tell who read it. Fix: set archiveAccessLogging = "
                "true; the trail (fraud_pipeline/audit_trail.py) selects eventCategory Data, resources.type "
                f"AWS::S3::Object, resources.ARN StartsWith {arn}/, with no readOnly filter.", bucket.urn))
            continue
        problems = {t.urn: _trail_problems(t, resources, req) for t in covering}
        if any(not p for p in problems.values()):
            continue
        for trail in covering:
            for violation in problems[trail.urn]:
                if violation not in seen:
                    seen.add(violation)
                    out.append(violation)
    return out


# --- archive-replicated --------------------------------------------------------------------

def _replicates_everything(rule: dict) -> bool | None:
    """An enabled rule's scope: every object (no filter, the empty prefix or an empty filter)? None: unknown."""
    flt = rule.get("filter")
    if is_unknown(flt):
        return None
    if flt is None:
        prefix = rule.get("prefix")
        return None if is_unknown(prefix) else not prefix
    if not isinstance(flt, dict):
        return False
    if any(is_unknown(v) for v in flt.values()):
        return None
    return not (flt.get("prefix") or flt.get("tag") or flt.get("and"))


def _rule_problems(cfg: StackResource, i: int, rule: dict, source: StackResource, resources: list[StackResource],
                   home: str | None) -> list[str] | None:
    """What keeps an enabled rule from putting the evidence out of the region's reach; None: cannot be known."""
    who = f"{_who(cfg)} rules[{i}]"
    scope = _replicates_everything(rule)
    if scope is None:
        return None
    if not scope:
        return [f"{who}: replicates only part of the archive (filter {rule.get('filter') or rule.get('prefix')!r}). "
                "Fix: replicate every object (filter {prefix: \"\"}, fraud_pipeline/replication.py)."]
    dest_ref = get(rule, "destination", "bucket")
    buckets = [b for b in _of(resources, *rp.BUCKET_TYPES) if b is not source]
    dests, unknowable = linked(cfg, "rules", dest_ref, buckets)
    if not dests:
        if unknowable or not _known(dest_ref):
            return None
        return [f"{who}: replicates to {dest_ref!r}, which is not a bucket of this stack, so nothing vouches for the "
                "replica's hardening. Fix: replicate to the stack's replica bucket (fraud_pipeline/replication.py)."]
    dest = dests[0]
    source_region, dest_region = region_of(source, home), region_of(dest, home)
    if source_region and dest_region and source_region == dest_region:
        return [f"{who}: replicates to {_who(dest)} in {dest_region}, the archive's own region, so the loss of "
                f"{dest_region} takes both. Fix: set archiveReplicationRegion to another region than the stack's."]
    out = []
    sse = get(rule, "sourceSelectionCriteria", "sseKmsEncryptedObjects", "status")
    if not is_unknown(sse) and sse != "Enabled":
        out.append(f"{who}: does not replicate SSE-KMS objects (sourceSelectionCriteria.sseKmsEncryptedObjects is "
                   f"{sse or 'not set'}), and every archived object is SSE-KMS. Fix: set "
                   "sourceSelectionCriteria.sseKmsEncryptedObjects.status = \"Enabled\".")
    key_ref = get(rule, "destination", "encryptionConfiguration", "replicaKmsKeyId")
    if is_unknown(key_ref):
        return out
    if not _known(key_ref):
        out.append(f"{who}: names no replica key (destination.encryptionConfiguration.replicaKmsKeyId), so replicas "
                   f"are not encrypted under a customer-managed key of {dest_region or 'the replica region'}. Fix: "
                   "set replicaKmsKeyId to the replica region's key (ArchiveReplica.key.arn).")
        return out
    keys, keys_unknowable = stack_keys(resources)
    key = keys.get(key_ref)
    if key is None:
        if not keys_unknowable:
            out.append(f"{who}: replicaKmsKeyId = {key_ref!r} is not a key this stack manages (and rotates). Fix: "
                       "set it to the replica region's key of the stack (ArchiveReplica.key.arn).")
        return out
    key_region = _arn_region(key.props.get("arn")) or region_of(key, home)
    if dest_region and key_region and key_region != dest_region:
        out.append(f"{who}: the replica key {_who(key)} is in {key_region}, the replica in {dest_region}; S3 "
                   "encrypts a replica only with a key of the replica's region. Fix: use a key created in "
                   f"{dest_region} (aws.kms.Key(region=...)).")
    return out


def archive_replicated(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    if not req.archive_replication:
        return []
    home = stack_region(resources)
    configs = _replication_configs(resources)
    out: list[Violation] = []
    for archive in archive_buckets(resources):
        found, unknowable = linked_bucket(archive, configs)
        if not found:
            if not unknowable:
                out.append(Violation(
                    f"{_who(archive)}: the evidence bucket is not replicated, so it does not survive the loss of its "
                    "region. Fix: set archiveReplicationRegion (prod: us-west-2); fraud_pipeline/replication.py "
                    "declares the replica, its key and the BucketReplicationConfig.", archive.urn))
            continue
        satisfied = False
        findings: list[tuple[str, str]] = []
        for cfg in found:
            rules = get(cfg.props, "rules")
            if is_unknown(rules):
                satisfied = True
                continue
            enabled = 0
            for i, rule in enumerate(as_list(rules)):
                if not isinstance(rule, dict):
                    continue
                status = rule.get("status")
                if is_unknown(status):
                    satisfied = True
                    continue
                if status != "Enabled":
                    continue
                enabled += 1
                problems = _rule_problems(cfg, i, rule, archive, resources, home)
                if problems is None or not problems:
                    satisfied = True
                else:
                    findings += [(m, cfg.urn) for m in problems]
            if not enabled:
                findings.append((f"{_who(cfg)}: has no enabled rule, so nothing is replicated. Fix: set the rule's "
                                 "status = \"Enabled\".", cfg.urn))
        if not satisfied:
            out += [Violation(m, urn) for m, urn in findings]
    return out

