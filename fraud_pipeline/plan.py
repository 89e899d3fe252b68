"""Offline plan: what `pulumi up` would create for a stack, without the CLI or an AWS account.

    python -m fraud_pipeline.plan prod
    python -m fraud_pipeline.plan --diff staging prod

The program is evaluated with Pulumi's mock engine (`evaluation.py`), so the
tree printed is the program's own, resource for resource.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .evaluation import Evaluation, RecordedResource, evaluate, known_stacks, stack_config
from .settings import NAMESPACE, PipelineSettings, SettingsError, describe_rule, setting_fields

#: Per resource type, the inputs worth seeing in a plan (dotted paths).
SHOWN: dict[str, tuple[str, ...]] = {
    "aws:kms/key:Key": ("enableKeyRotation", "deletionWindowInDays"),
    "aws:dynamodb/table:Table": ("name", "billingMode", "readCapacity", "writeCapacity", "pointInTimeRecovery.enabled",
                                 "deletionProtectionEnabled", "streamViewType"),
    "aws:appautoscaling/target:Target": ("scalableDimension", "minCapacity", "maxCapacity"),
    "aws:kinesis/stream:Stream": ("name", "shardCount", "retentionPeriod", "encryptionType"),
    "aws:sqs/queue:Queue": ("name", "visibilityTimeoutSeconds", "messageRetentionSeconds"),
    "aws:s3/bucket:Bucket": ("bucket", "forceDestroy"),
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration": ("rules",),
    "aws:s3/bucketObjectv2:BucketObjectv2": ("key", "serverSideEncryption"),
    "aws:s3/bucketNotification:BucketNotification": ("lambdaFunctions.events", "lambdaFunctions.filterPrefix"),
    "aws:sns/topic:Topic": ("name",),
    "aws:sns/topicSubscription:TopicSubscription": ("protocol",),
    "aws:lambda/function:Function": ("name", "memorySize", "timeout", "reservedConcurrentExecutions",
                                     "tracingConfig.mode", "vpcConfig.subnetIds"),
    "aws:lambda/permission:Permission": ("principal",),
    "aws:lambda/eventSourceMapping:EventSourceMapping": ("batchSize", "maximumRetryAttempts",
                                                         "maximumRecordAgeInSeconds", "bisectBatchOnFunctionError"),
    "aws:cloudwatch/logGroup:LogGroup": ("name", "retentionInDays"),
    "aws:apigateway/stage:Stage": ("stageName", "xrayTracingEnabled"),
    "aws:apigateway/usagePlan:UsagePlan": ("throttleSettings", "quotaSettings"),
    "aws:cloudwatch/metricAlarm:MetricAlarm": ("name", "threshold"),
    "aws:sfn/stateMachine:StateMachine": ("name", "tracingConfiguration.enabled"),
    "aws:ssm/parameter:Parameter": ("name", "type"),
    "aws:ec2/vpc:Vpc": ("cidrBlock",),
    "aws:ec2/vpcEndpoint:VpcEndpoint": ("serviceName", "vpcEndpointType"),
}


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(value, list):
            value = value[0] if value else None
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_brief(v)}" for k, v in value.items() if not isinstance(v, (dict, list))) + "}"
    if isinstance(value, list):
        if value and isinstance(value[0], dict):
            return f"[{len(value)} rule(s)]"
        return f"[{len(value)}]" if len(value) > 3 else "[" + ", ".join(map(_brief, value)) + "]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def describe(resource: RecordedResource) -> str:
    shown = [(path, _dig(resource.inputs, path)) for path in SHOWN.get(resource.type, ())]
    details = ", ".join(f"{path}={_brief(v)}" for path, v in shown if v is not None and path != "name")
    short_type = resource.type.split(":")[-1]
    physical = resource.inputs.get("name") or resource.inputs.get("bucket")
    label = f"{short_type} {physical}" if isinstance(physical, str) else f"{short_type} ({resource.name})"
    return f"{label}" + (f"  [{details}]" if details else "")


def render_tree(evaluation: Evaluation) -> str:
    lines: list[str] = []
    by_parent: dict[str, list[RecordedResource]] = {}
    for r in evaluation.resources:
        by_parent.setdefault(r.parent, []).append(r)
    roots = [r for r in evaluation.resources if not r.parent or r.parent.split("::")[2] == "pulumi:pulumi:Stack"]

    def walk(r: RecordedResource, depth: int) -> None:
        kids = by_parent.get(r.urn, [])
        indent = "  " * depth
        if not r.custom:
            lines.append(f"{indent}{r.type.split(':')[-1]} {r.name}  ({sum(1 for _ in _descendants(r, by_parent))} resources)")
        else:
            lines.append(f"{indent}- {describe(r)}")
        for k in sorted(kids, key=lambda x: (x.custom, x.type, x.name)):
            walk(k, depth + 1)

    for r in roots:
        walk(r, 0)
    return "\n".join(lines)


def _descendants(r: RecordedResource, by_parent: dict[str, list[RecordedResource]]) -> Iterable[RecordedResource]:
    for k in by_parent.get(r.urn, []):
        if k.custom:
            yield k
        yield from _descendants(k, by_parent)


def settings_of(stack: str) -> PipelineSettings:
    config = stack_config(stack)
    values = {k.split(":", 1)[1]: v for k, v in config.items() if k.startswith(f"{NAMESPACE}:")}
    if "aws:region" in config:
        values["aws:region"] = config["aws:region"]
    return PipelineSettings.from_config(stack, values)


def plan(stack: str) -> str:
    evaluation = evaluate(stack)
    counts = Counter(r.type.split(":")[-1] for r in evaluation.custom_resources())
    total = sum(counts.values())
    s = settings_of(stack)
    header = [
        f"Plan for stack '{stack}' (region {s.region}): {total} resources would be created.",
        "Evaluated offline with Pulumi's mock engine; `pulumi up` on this stack declares the same tree.",
        "",
        "",
    ]
    summary = ["", "By type: " + ", ".join(f"{t} x{n}" for t, n in sorted(counts.items()))]
    return "\n".join(header) + render_tree(evaluation) + "\n".join(summary)


def diff(a: str, b: str) -> str:
    sa, sb = settings_of(a), settings_of(b)
    rows = []
    for f in setting_fields():
        va, vb = getattr(sa, f.name), getattr(sb, f.name)
        if va != vb:
            rows.append((f.metadata["key"], _brief(list(va) if isinstance(va, tuple) else va),
                         _brief(list(vb) if isinstance(vb, tuple) else vb), f.metadata["unit"]))
    ea, eb = evaluate(a), evaluate(b)
    ca = Counter(r.type.split(":")[-1] for r in ea.custom_resources())
    cb = Counter(r.type.split(":")[-1] for r in eb.custom_resources())
    w = max([len(r[0]) for r in rows] + [7])
    wa = max([len(r[1]) for r in rows] + [len(a)])
    out = [f"Settings that differ between '{a}' and '{b}':", "",
           f"{'setting':<{w}}  {a:<{wa}}  {b}"]
    out += [f"{k:<{w}}  {x:<{wa}}  {y}   ({unit})" for k, x, y, unit in rows]
    out += ["", f"Resources: {a} {sum(ca.values())}, {b} {sum(cb.values())}"]
    for t in sorted(set(ca) | set(cb)):
        if ca[t] != cb[t]:
            out.append(f"  {t}: {ca[t]} vs {cb[t]}")
    return "\n".join(out)


def reference() -> str:
    """The README's configuration reference: every setting, its rule, default and the stacks' values."""
    stacks = known_stacks()
    loaded = {st: settings_of(st) for st in stacks}

    def cell(value: object) -> str:
        if isinstance(value, tuple):
            value = ", ".join(value) if value else "(none)"
        if isinstance(value, bool):
            value = str(value).lower()
        return str(value).replace("|", "\\|")

    head = ["| key | unit | allowed | default | " + " | ".join(stacks) + " | meaning |",
            "|---|---|---|---|" + "---|" * len(stacks) + "---|"]
    rows = []
    for f in setting_fields():
        key = f.metadata["key"]
        if key == "environment":
            continue
        if f.metadata["required"]:
            default = "required"
        elif f.default is not dataclasses.MISSING:
            default = cell(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = cell(f.default_factory())
        else:
            raise TypeError(f"setting {key} is neither required nor has a default")
        values = " | ".join(cell(getattr(loaded[st], f.name)) for st in stacks)
        rows.append(f"| `{key}` | {f.metadata['unit']} | {describe_rule(f)} | {default} | {values} | {f.metadata['doc']} |")
    return "\n".join(head + rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_pipeline.plan", description=__doc__.split("\n\n")[0])
    parser.add_argument("stack", nargs="?", help=f"stack to plan ({', '.join(known_stacks())})")
    parser.add_argument("--reference", action="store_true", help="print the configuration reference (Markdown)")
    parser.add_argument("--diff", nargs=2, metavar=("A", "B"), help="show the settings that differ between two stacks")
    args = parser.parse_args(argv)
    try:
        if args.reference:
            print(reference())
        elif args.diff:
            print(diff(*args.diff))
        elif args.stack:
            print(plan(args.stack))
        else:
            parser.error("name a stack or use --diff A B")
    except (SettingsError, FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
