"""Stack policies: what one resource cannot show.

Each function takes the list of every resource in the stack (`StackResource`:
type, name, urn, parent, props = the resource's outputs, which include its
inputs) and the stack requirements, and returns `Violation`s (message + the URN
of the resource at fault).

Resources refer to each other by value (an ARN, URL, bucket name, log group
name). A link is followed by that value; when the value cannot be known at
preview (a resource about to be created has no ARN yet), the link is followed
through the engine's property dependencies instead, and if that is not
possible either, the check is **skipped** for that resource rather than
reported: `pulumi up` runs the same policies on the real values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeGuard

from . import resource_policies as rp
from .requirements import STRICTEST, Requirements
from .values import as_list, fmt, get, is_unknown, label, num, parse_json


@dataclass
class StackResource:
    type: str
    name: str
    urn: str
    props: dict
    parent: str | None = None
    #: URNs this resource depends on (all of them).
    dependencies: tuple[str, ...] = ()
    #: property name -> URNs that property's value came from.
    property_dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)


class Violation(NamedTuple):
    message: str
    urn: str | None = None


IDENTIFYING_KEYS = ("arn", "id", "name", "url", "bucket", "keyId", "executionArn", "streamArn", "invokeArn",
                    "qualifiedArn", "targetKeyId")


def identifiers(r: StackResource) -> set[str]:
    return {v for k in IDENTIFYING_KEYS if isinstance(v := r.props.get(k), str) and v and not is_unknown(v)}


def _of(resources: Iterable[StackResource], *types: str) -> list[StackResource]:
    return [r for r in resources if r.type in types]


def _known(value: Any) -> TypeGuard[str]:
    """A non-empty string known at preview."""
    return isinstance(value, str) and bool(value) and not is_unknown(value)


def linked(holder: StackResource, prop: str, value: Any, candidates: list[StackResource]) -> tuple[list[StackResource], bool]:
    """The candidates that `holder.props[prop]` (= value) refers to, and whether that cannot be known yet.

    By value when it is known; else by the engine's dependency of that property on a
    candidate; else, when exactly one candidate is among the holder's dependencies, that one.
    """
    if _known(value):
        found = [c for c in candidates if value in identifiers(c)]
        if found:
            return found, False
    found = [c for c in candidates if c.urn in holder.property_dependencies.get(prop, ())]
    if found:
        return found, False
    if not _known(value) or any(_has_unknown_identity(c) for c in candidates):
        found = [c for c in candidates if c.urn in holder.dependencies]
        if len(found) == 1:
            return found, False
        return [], True
    return [], False


def _has_unknown_identity(r: StackResource) -> bool:
    return any(is_unknown(r.props.get(k)) for k in IDENTIFYING_KEYS) or not identifiers(r)


def _who(r: StackResource) -> str:
    return label(r.type, r.name, r.props)


# --- S3: every bucket has its companions -------------------------------------------

#: What every bucket needs beside it; the content of each is checked by its resource policy.
BUCKET_COMPANIONS = (
    ((rp.SSE, rp.SSE_V2), "server-side encryption configuration (SSE-KMS)", "BucketServerSideEncryptionConfiguration"),
    ((rp.PAB,), "public access block", "BucketPublicAccessBlock"),
    ((rp.OWNERSHIP,), "ownership controls (BucketOwnerEnforced)", "BucketOwnershipControls"),
    ((rp.LIFECYCLE, rp.LIFECYCLE_V2), "lifecycle configuration", "BucketLifecycleConfiguration"),
    ((rp.BUCKET_POLICY,), "TLS-only bucket policy", "BucketPolicy"),
)


def s3_bucket_companions(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    for bucket in _of(resources, *rp.BUCKET_TYPES):
        for types, what, cls in BUCKET_COMPANIONS:
            found, unknowable = linked_bucket(bucket, _of(resources, *types))
            if not found and not unknowable:
                out.append(Violation(f"{_who(bucket)}: has no {what}. Fix: declare an aws.s3.{cls} with "
                                     "bucket = this bucket's id (see fraud_pipeline/archive.py).", bucket.urn))
    return out


def linked_bucket(bucket: StackResource, companions: list[StackResource]) -> tuple[list[StackResource], bool]:
    names = identifiers(bucket)
    found, unknowable = [], False
    for c in companions:
        ref = c.props.get("bucket")
        if isinstance(ref, str) and not is_unknown(ref) and ref in names:
            found.append(c)
        elif (ref is None or is_unknown(ref)) and bucket.urn in c.property_dependencies.get("bucket", c.dependencies):
            found.append(c)
        elif is_unknown(ref) or (not names and ref is not None):
            unknowable = True
    return found, (unknowable and not found)


# --- Lambda: every function has its log group, masked ---------------------------------

def function_log_group_and_masking(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    groups = _of(resources, rp.LOG_GROUP)
    protections = _of(resources, rp.LOG_PROTECTION)
    for fn in _of(resources, rp.FUNCTION):
        group_name = get(fn.props, "loggingConfig", "logGroup")
        if group_name is None:
            fname = fn.props.get("name")
            group_name = f"/aws/lambda/{fname}" if isinstance(fname, str) and not is_unknown(fname) else None
        if group_name is None or is_unknown(group_name):
            continue  # cannot be known at preview
        matches = [g for g in groups if group_name in identifiers(g)]
        if not matches:
            if any(_has_unknown_identity(g) for g in groups):
                continue
            out.append(Violation(f"{_who(fn)}: its log group {group_name!r} is not managed by the stack (Lambda would "
                                 "create it with no retention, no CMK and no data protection). Fix: declare an "
                                 "aws.cloudwatch.LogGroup with that name and set loggingConfig.logGroup to it.", fn.urn))
            continue
        masking = [p for p in protections if get(p.props, "logGroupName") == group_name]
        if any(is_unknown(get(p.props, "logGroupName")) for p in protections) and not masking:
            continue
        if not masking:
            out.append(Violation(f"{_who(fn)}: log group {group_name!r} has no data-protection policy. Fix: declare an "
                                 "aws.cloudwatch.LogDataProtectionPolicy on it that masks CreditCardNumber.", fn.urn))
        elif not any(_masks(p) for p in masking):
            out.append(Violation(f"{_who(fn)}: the data-protection policy of {group_name!r} does not mask card numbers. "
                                 "Fix: add Operation {Deidentify: {MaskConfig: {}}} for the CreditCardNumber identifier.",
                                 fn.urn))
    return out


def _masks(p: StackResource) -> bool:
    doc = parse_json(get(p.props, "policyDocument"))
    return is_unknown(doc) or (doc is not None and rp.masks_card_numbers(doc))


# --- SQS: consumer queues, their DLQs and timeouts -----------------------------------

def _consumed_queues(resources: list[StackResource]):
    """(mapping, queue, function-or-None) for every SQS event source mapping whose queue is in the stack."""
    queues = _of(resources, rp.QUEUE)
    functions = _of(resources, rp.FUNCTION)
    for esm in _of(resources, rp.ESM):
        kind = rp.source_kind(esm.props)
        if kind not in ("queue", None):
            continue
        found, _ = linked(esm, "eventSourceArn", esm.props.get("eventSourceArn"), queues)
        if not found:
            continue
        fns, _ = linked(esm, "functionName", esm.props.get("functionName"), functions)
        yield esm, found[0], (fns[0] if len(fns) == 1 else None)


def _dlq_of(queue: StackResource, queues: list[StackResource]) -> tuple[StackResource | None, Any]:
    """The queue's DLQ (if in the stack) and its parsed redrive policy (None: none; the sentinel: unknown)."""
    others = [q for q in queues if q is not queue]
    policy = parse_json(queue.props.get("redrivePolicy"))
    if policy is None:
        return None, None
    target = get(policy, "deadLetterTargetArn") if not is_unknown(policy) else None
    found, _ = linked(queue, "redrivePolicy", target, others)
    return (found[0] if len(found) == 1 else None), policy


def sqs_consumer_queue_has_dlq(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    queues = _of(resources, rp.QUEUE)
    for esm, queue, _ in _consumed_queues(resources):
        dlq, policy = _dlq_of(queue, queues)
        if is_unknown(policy):
            continue  # rendered from the DLQ's ARN: known at `up`
        if policy is None:
            out.append(Violation(f"{_who(queue)}: consumed by {_who(esm)} but has no dead-letter queue; a poison message "
                                 "is retried until it expires. Fix: set redrivePolicy = {deadLetterTargetArn: <DLQ ARN>, "
                                 "maxReceiveCount: 5} (fraud_pipeline/queue.py).", queue.urn))
            continue
        target, count = get(policy, "deadLetterTargetArn"), num(get(policy, "maxReceiveCount"))
        if not _known(target) or count is None or count < 1:
            out.append(Violation(f"{_who(queue)}: redrivePolicy {policy} is incomplete. Fix: set deadLetterTargetArn to "
                                 "the DLQ's ARN and maxReceiveCount >= 1.", queue.urn))
        elif dlq is None and not any(_has_unknown_identity(q) for q in queues):
            out.append(Violation(f"{_who(queue)}: redrivePolicy points at {target!r}, which is not a queue of this stack. "
                                 "Fix: point deadLetterTargetArn at the stack's DLQ.", queue.urn))
    return out


def sqs_visibility_covers_consumer(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    for _esm, queue, fn in _consumed_queues(resources):
        if fn is None:
            continue
        vis_raw, timeout_raw = queue.props.get("visibilityTimeoutSeconds"), fn.props.get("timeout")
        if is_unknown(vis_raw) or is_unknown(timeout_raw):
            continue
        vis = num(vis_raw) if vis_raw is not None else 30.0     # SQS default
        timeout = num(timeout_raw) if timeout_raw is not None else 3.0  # Lambda default
        if vis is None or timeout is None or vis >= 6 * timeout:
            continue
        out.append(Violation(f"{_who(queue)}: visibility timeout {fmt(vis)} s is less than 6 x the timeout of its consumer "
                             f"{_who(fn)} ({fmt(timeout)} s = {fmt(6 * timeout)} s); messages would be redelivered while "
                             f"still being processed. Fix: set visibilityTimeoutSeconds >= {fmt(6 * timeout)} "
                             "(stack setting alertVisibilityTimeoutSeconds) or lower the function timeout.", queue.urn))
    return out


def sqs_dlq_retention_exceeds_source(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    queues = _of(resources, rp.QUEUE)
    for queue in queues:
        dlq, policy = _dlq_of(queue, queues)
        if dlq is None:
            continue
        src_raw, dlq_raw = queue.props.get("messageRetentionSeconds"), dlq.props.get("messageRetentionSeconds")
        if is_unknown(src_raw) or is_unknown(dlq_raw):
            continue
        src = num(src_raw) if src_raw is not None else 345600.0  # SQS default, 4 days
        dead = num(dlq_raw) if dlq_raw is not None else 345600.0
        if src is None or dead is None or dead > src:   # None: not a number (as the visibility-timeout check)
            continue
        out.append(Violation(f"{_who(dlq)}: retention {fmt(dead)} s is not longer than that of its source {_who(queue)} "
                             f"({fmt(src)} s); a message moved late in its life expires in the DLQ before anyone sees it. "
                             "Fix: set the DLQ's messageRetentionSeconds to 1209600 (14 days, stack setting "
                             "dlqRetentionSeconds) and keep the source's shorter.", dlq.urn))
    return out


# --- API Gateway: every stage behind WAF, with execution logging -----------------------

def apigateway_waf_on_every_stage(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    associations = _of(resources, rp.WAF_ASSOCIATION)
    for stage in _of(resources, rp.STAGE):
        arn = stage.props.get("arn")
        covered = unknowable = False
        for a in associations:
            ref = a.props.get("resourceArn")
            if _known(ref) and _known(arn):
                covered = covered or ref == arn
            elif stage.urn in a.property_dependencies.get("resourceArn", a.dependencies):
                covered = True
            else:
                unknowable = True
        if covered or unknowable:
            continue
        out.append(Violation(f"{_who(stage)}: no WAF web ACL is associated with this stage. Fix: declare an "
                             "aws.wafv2.WebAclAssociation with resourceArn = stage.arn and the API's web ACL.", stage.urn))
    return out


def apigateway_execution_logging_on_every_stage(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    settings = _of(resources, rp.METHOD_SETTINGS)
    for stage in _of(resources, rp.STAGE):
        api, name = stage.props.get("restApi"), stage.props.get("stageName")
        if is_unknown(api) or is_unknown(name):
            continue
        mine = [m for m in settings if m.props.get("restApi") == api and m.props.get("stageName") == name]
        if not mine and any(is_unknown(m.props.get("restApi")) or is_unknown(m.props.get("stageName")) for m in settings):
            continue
        if not any(m.props.get("methodPath") == "*/*" and get(m.props, "settings", "loggingLevel") in ("ERROR", "INFO")
                   or is_unknown(get(m.props, "settings", "loggingLevel")) for m in mine):
            out.append(Violation(f"{_who(stage)}: no execution logging for all methods of the stage. Fix: declare an "
                                 "aws.apigateway.MethodSettings with methodPath \"*/*\" and settings.loggingLevel \"ERROR\" "
                                 "(API Gateway needs the account's CloudWatch role).", stage.urn))
    return out


# --- Lambda permissions point at this stack's callers -----------------------------------

CALLER_KEYS = ("arn", "executionArn")


def lambda_permission_source_in_stack(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    out = []
    prefixes = {v for r in resources for k in CALLER_KEYS
                if isinstance(v := r.props.get(k), str) and v and not is_unknown(v)}
    unknown_callers = any(is_unknown(r.props.get(k)) for r in resources for k in CALLER_KEYS)
    for perm in _of(resources, rp.PERMISSION):
        source = perm.props.get("sourceArn")
        if source is None or is_unknown(source):
            continue  # absence is `lambda-permission-scoped`'s finding; unknown is checked at `up`
        if any(source == p or source.startswith(p + "/") or source.startswith(p + ":") for p in prefixes):
            continue
        if unknown_callers:
            continue
        out.append(Violation(f"{_who(perm)}: sourceArn {source!r} is not a resource of this stack, so a caller outside "
                             "the pipeline may invoke the function. Fix: derive sourceArn from the calling resource "
                             "(e.g. rest_api.execution_arn + \"/*/POST/transactions\").", perm.urn))
    return out


# --- every key reference is the pipeline's own customer-managed key ----------------------

KEY_REFERENCES: dict[str, list[tuple[str | int, ...]]] = {
    rp.TABLE: [("serverSideEncryption", "kmsKeyArn")],
    rp.QUEUE: [("kmsMasterKeyId",)],
    rp.TOPIC: [("kmsMasterKeyId",)],
    rp.STREAM: [("kmsKeyId",)],
    rp.LOG_GROUP: [("kmsKeyId",)],
    rp.STATE_MACHINE: [("encryptionConfiguration", "kmsKeyId")],
    rp.FUNCTION: [("kmsKeyArn",)],
    rp.EVENT_BUS: [("kmsKeyIdentifier",)],
    rp.PARAMETER: [("keyId",)],
    rp.BUCKET_OBJECT: [("kmsKeyId",)],
    rp.BUCKET_OBJECT_V1: [("kmsKeyId",)],
}


def encryption_uses_stack_key(resources: list[StackResource], req: Requirements = STRICTEST) -> list[Violation]:
    keys = _of(resources, rp.KMS_KEY)
    aliases = _of(resources, rp.KMS_ALIAS)
    known = set().union(*(identifiers(k) for k in keys)) if keys else set()
    for a in aliases:
        target = a.props.get("targetKeyId")
        if isinstance(target, str) and any(target in identifiers(k) for k in keys):
            known |= identifiers(a)
    if any(_has_unknown_identity(k) for k in keys):
        return []  # the key is new in this preview: its ARN is known only at `up`
    out = []
    for r in resources:
        paths = list(KEY_REFERENCES.get(r.type, []))
        if r.type in (rp.SSE, rp.SSE_V2):
            paths = [("rules", i, "applyServerSideEncryptionByDefault", "kmsMasterKeyId")
                     for i in range(len(as_list(get(r.props, "rules"))))]
        for path in paths:
            ref = get(r.props, *path)
            if not isinstance(ref, str) or not ref or is_unknown(ref) or ref in known:
                continue  # absent keys are `encryption-at-rest-cmk`'s finding
            out.append(Violation(f"{_who(r)}: {'.'.join(str(p) for p in path)} = {ref!r} is not the customer-managed key "
                                 "this stack manages (and rotates). Fix: pass the pipeline key (KmsKeys.key.arn).", r.urn))
    return out
