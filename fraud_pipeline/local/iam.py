"""Least privilege, checked on the run: every AWS call a handler makes against its generated policy.

A botocore hook records (function, action, resource ARN) for each call; the
check evaluates it against the function's inline policy as the program
generated it (Allow statements, `*`/`?` wildcards, as IAM matches them), and
lists the grants no call used, with the reason where one is needed anyway.

It also flags *inert* grants: an action granted on a resource of a type the action
does not apply to (e.g. `kinesis:SubscribeToShard` on a stream ARN: it authorises
only on stream-consumer ARNs), which grants nothing and misleads a reviewer. The
action -> resource-type table is AWS's Service Authorization Reference as the
`parliament` IAM linter ships it.
"""

from __future__ import annotations

import fnmatch
import functools
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass(frozen=True)
class Call:
    function: str
    action: str
    resource: str
    via: str = "handler"          # "handler" or "event source mapping"


#: Grants whose use the emulation cannot observe, and why each is still needed.
UNOBSERVED_REASONS = {
    "logs:CreateLogStream": "used by the Lambda runtime to write the function's logs",
    "logs:PutLogEvents": "used by the Lambda runtime to write the function's logs",
    "dynamodb:GetItem": "reads back the stored item when a replay or a concurrent copy cancels a conditional write",
    "kms:Decrypt": "used by DynamoDB, SQS, SNS, S3 and SSM on the function's behalf (SSE with the CMK)",
    "kms:GenerateDataKey": "used by SQS, SNS and S3 on the function's behalf to encrypt what it writes",
    "xray:PutTraceSegments": "used by the X-Ray SDK when tracing is on",
    "xray:PutTelemetryRecords": "used by the X-Ray daemon when tracing is on",
    "sagemaker:InvokeEndpoint": "used only once /ml-endpoint names an endpoint (it is `none` here)",
    "kinesis:ListStreams": "called by the Kinesis event source mapping when it starts",
    "dynamodb:ListStreams": "called by the DynamoDB stream mapping when it starts",
    "kinesis:DescribeStream": "called by the mapping when it starts and on resharding",
    "kinesis:DescribeStreamSummary": "called by the mapping when it starts",
    "sqs:GetQueueAttributes": "called by the SQS mapping when it starts",
    "sqs:SendMessage": "on-failure destination: used only when a batch or an event exhausts its retries",
    "s3:GetObjectVersion": "used when the model parameter pins a version (<key>?versionId=<id>)",
    "ec2:CreateNetworkInterface": "used by the Lambda service to attach the function to the VPC",
    "ec2:DescribeNetworkInterfaces": "used by the Lambda service to attach the function to the VPC",
    "ec2:DeleteNetworkInterface": "used by the Lambda service to detach the function from the VPC",
    "ec2:AssignPrivateIpAddresses": "used by the Lambda service for VPC networking",
    "ec2:UnassignPrivateIpAddresses": "used by the Lambda service for VPC networking",
}


WRITE_OPERATIONS = {
    "PutItem", "UpdateItem", "BatchWriteItem", "TransactWriteItems", "SendMessage", "SendMessageBatch",
    "Publish", "PublishBatch", "PutEvents", "PutObject", "PutRecord", "PutRecords",
}


def _arn_of_queue(url: str, region: str, account: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{urlparse(url).path.rstrip('/').split('/')[-1]}"


def actions_for(service: str, operation: str, params: dict, region: str, account: str,
                resource_hint: str | None = None) -> list[tuple[str, str]]:
    """The IAM (action, resource) pairs one API call is authorised by.

    `resource_hint` names the resource of calls that carry none themselves
    (a stream `GetRecords` identifies its stream only through the iterator).
    """
    def table(name: str) -> str:
        return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"

    if service == "dynamodb":
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", table(t)) for t in params.get("RequestItems", {})]
        if operation == "TransactWriteItems":
            kinds = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}
            return sorted({(f"dynamodb:{kinds[k]}", table(v["TableName"]))
                           for item in params.get("TransactItems", []) for k, v in item.items()})
        if operation == "TransactGetItems":
            return sorted({("dynamodb:GetItem", table(i["Get"]["TableName"])) for i in params.get("TransactItems", [])})
        if "TableName" in params:
            return [(f"dynamodb:{operation}", table(params["TableName"]))]
        if "StreamArn" in params:
            return [(f"dynamodb:{operation}", params["StreamArn"])]
        return [(f"dynamodb:{operation}", "*")]
    if service == "dynamodbstreams":
        return [(f"dynamodb:{operation}", resource_hint or params.get("StreamArn") or "*")]
    if service == "sqs":
        action = {"SendMessageBatch": "SendMessage", "DeleteMessageBatch": "DeleteMessage",
                  "ChangeMessageVisibilityBatch": "ChangeMessageVisibility"}.get(operation, operation)
        return [(f"sqs:{action}", _arn_of_queue(params.get("QueueUrl", ""), region, account))]
    if service == "sns":
        # PublishBatch is authorised by sns:Publish.
        action = "Publish" if operation == "PublishBatch" else operation
        return [(f"sns:{action}", params.get("TopicArn") or params.get("TargetArn") or "*")]
    if service == "s3":
        bucket, key = params.get("Bucket", ""), params.get("Key")
        # IAM names some S3 operations differently: a versioned read is s3:GetObjectVersion, HEAD is
        # authorised by s3:GetObject, listing by s3:ListBucket.
        versioned = bool(params.get("VersionId"))
        action = {
            "GetObject": "GetObjectVersion" if versioned else "GetObject",
            "HeadObject": "GetObjectVersion" if versioned else "GetObject",
            "DeleteObject": "DeleteObjectVersion" if versioned else "DeleteObject",
            "GetObjectTagging": "GetObjectVersionTagging" if versioned else "GetObjectTagging",
            "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket", "ListObjectVersions": "ListBucketVersions",
            "HeadBucket": "ListBucket", "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject",
            "CompleteMultipartUpload": "PutObject", "CopyObject": "PutObject",
        }.get(operation, operation)
        return [(f"s3:{action}", f"arn:aws:s3:::{bucket}/{key}" if key is not None else f"arn:aws:s3:::{bucket}")]
    if service == "events":
        buses = {e.get("EventBusName", "default") for e in params.get("Entries", [])} or {"default"}
        return [(f"events:{operation}", b if b.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{b}")
                for b in sorted(buses)]
    if service == "ssm":
        names = params.get("Names") or [params.get("Name", "")]
        return [(f"ssm:{operation if operation != 'GetParameters' else 'GetParameters'}",
                 f"arn:aws:ssm:{region}:{account}:parameter/{n.lstrip('/')}") for n in names]
    if service in ("sagemaker-runtime", "runtime.sagemaker"):
        return [("sagemaker:InvokeEndpoint", f"arn:aws:sagemaker:{region}:{account}:endpoint/{params.get('EndpointName', '')}")]
    if service == "kinesis":
        stream = params.get("StreamARN") or (f"arn:aws:kinesis:{region}:{account}:stream/{params['StreamName']}"
                                             if params.get("StreamName") else resource_hint or "*")
        return [(f"kinesis:{operation}", stream)]
    return [(f"{service}:{operation}", "*")]


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def allows(policy: dict, action: str, resource: str) -> bool:
    """True when an Allow statement matches action and resource (and no Deny does)."""
    def matches(st: dict) -> bool:
        return (any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in _as_list(st.get("Action", [])))
                and any(fnmatch.fnmatchcase(resource, r) for r in _as_list(st.get("Resource", []))))

    statements = policy.get("Statement", [])
    if any(st.get("Effect") == "Deny" and matches(st) for st in statements):
        return False
    return any(st.get("Effect") == "Allow" and matches(st) for st in statements)


@dataclass
class CallRecorder:
    """Collects calls per function; `current` is set by the Lambda host around each invocation."""

    region: str
    account: str
    calls: set[Call] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: What handlers wrote (items, messages, events, objects, alerts), for the card-data scan.
    payloads: list[str] = field(default_factory=list)
    _local: threading.local = field(default_factory=threading.local)

    @property
    def current(self) -> str | None:
        return getattr(self._local, "function", None)

    @current.setter
    def current(self, value: str | None) -> None:
        self._local.function = value

    def hook(self, params: dict, model: Any, **_: Any) -> None:
        function = self.current
        if function is None:
            return
        service = model.service_model.service_name
        for action, resource in actions_for(service, model.name, params, self.region, self.account):
            self.calls.add(Call(function, action, resource))
        self.counts[function] += 1
        if model.name in WRITE_OPERATIONS:
            self.payloads.append(json.dumps(params, default=str))

    def attribute(self, function: str, source_arn: str, via: str = "event source mapping"):
        """A hook recording calls a poller makes on the function's behalf, named by the program's source ARN."""
        def hook(params: dict, model: Any, **_: Any) -> None:
            service = model.service_model.service_name
            hint = source_arn if service in ("dynamodbstreams", "kinesis") else None
            scrubbed = {k: v for k, v in params.items() if k not in ("StreamArn", "StreamARN")} if hint else params
            for action, resource in actions_for(service, model.name, scrubbed, self.region, self.account, hint):
                self.calls.add(Call(function, action, resource, via))
        return hook


@functools.cache
def _privileges() -> dict[str, tuple[list[str], dict[str, str]]]:
    """`service:Action` (lower case) -> (resource types it authorises on, resource type -> ARN glob)."""
    from parliament import iam_definition  # the linter's copy of AWS's Service Authorization Reference

    out: dict[str, tuple[list[str], dict[str, str]]] = {}
    for service in iam_definition:
        formats = {r["resource"]: re.sub(r"\$\{[^}]*\}", "*", r["arn"]) for r in service["resources"]}
        for privilege in service["privileges"]:
            types = [t["resource_type"].rstrip("*") for t in privilege["resource_types"] if t["resource_type"]]
            out[f"{service['prefix']}:{privilege['privilege']}".lower()] = (types, formats)
    return out


def _globs_overlap(a: str, b: str) -> bool:
    """Whether some string matches both `*`-globs (a granted ARN pattern and an ARN template field)."""

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return match(i + 1, j) or (j < len(b) and match(i, j + 1))
        if j < len(b) and b[j] == "*":
            return match(i, j + 1) or (i < len(a) and match(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and match(i + 1, j + 1)

    return match(0, 0)


def _arn_matches(template: str, arn: str) -> bool:
    """A granted ARN (pattern) against an ARN template, field by field; the resource part may hold colons."""
    template_parts, arn_parts = template.split(":", 5), arn.split(":", 5)
    if len(template_parts) != 6 or len(arn_parts) != 6:
        return False
    return all(_globs_overlap(a, t) for t, a in zip(template_parts, arn_parts))


def inert_grants(policy: dict) -> list[tuple[str, str, str]]:
    """(action, resource, reason) for every Allow of an action on a resource type it does not authorise on.

    Actions with wildcards, and Resource "*", are left to the policy pack's `iam-least-privilege`;
    an action the reference does not list is reported too, since nothing can vouch for it.
    """
    rows = []
    for st in policy.get("Statement", []):
        if st.get("Effect") != "Allow":
            continue
        for action in _as_list(st["Action"]):
            if "*" in action or "?" in action:
                continue
            known = _privileges().get(action.lower())
            for resource in _as_list(st["Resource"]):
                if resource == "*":
                    continue
                if known is None:
                    rows.append((action, resource, "the Service Authorization Reference lists no such action"))
                    continue
                types, formats = known
                if not types:
                    rows.append((action, resource, "the action has no resource-level permissions: only Resource '*' grants it"))
                elif not any(_arn_matches(formats.get(t, ""), resource) for t in types):
                    rows.append((action, resource, "the action authorises only on " + ", ".join(
                        f"{t} ({formats.get(t, '?')})" for t in types) + "; this ARN is none of them"))
    return rows


@dataclass
class PrivilegeReport:
    denied: list[Call]
    used: dict[str, list[Call]]
    unused: dict[str, list[tuple[str, str, str]]]   # function -> (action, resource, reason)
    #: function -> grants of an action on a resource type it does not apply to (they grant nothing)
    inert: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.denied and not any(self.inert.values())


def check(calls: Iterable[Call], policies: dict[str, dict]) -> PrivilegeReport:
    """Every call against its function's policy; then every grant against the calls."""
    calls = sorted(calls, key=lambda c: (c.function, c.action, c.resource))
    denied = [c for c in calls if not allows(policies[c.function], c.action, c.resource)]
    used: dict[str, list[Call]] = defaultdict(list)
    for c in calls:
        used[c.function].append(c)
    unused: dict[str, list[tuple[str, str, str]]] = {}
    for function, policy in policies.items():
        rows = []
        for st in policy.get("Statement", []):
            if st.get("Effect") != "Allow":
                continue
            for action in _as_list(st["Action"]):
                for resource in _as_list(st["Resource"]):
                    hit = any(fnmatch.fnmatchcase(c.action.lower(), action.lower()) and fnmatch.fnmatchcase(c.resource, resource)
                              for c in used.get(function, []))
                    if not hit:
                        rows.append((action, resource, UNOBSERVED_REASONS.get(action, "not used on this run")))
        unused[function] = rows
    inert = {function: inert_grants(policy) for function, policy in policies.items()}
    return PrivilegeReport(denied=denied, used=dict(used), unused=unused, inert=inert)
