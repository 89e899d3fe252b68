"""Evaluate the Pulumi program offline with Pulumi's own mock engine.

There is no Pulumi CLI or AWS account needed to know what `pulumi up` would
create: the program runs under `pulumi.runtime.set_mocks`, and a recording
monitor keeps every registered resource with its parent, inputs and the
outputs the mocks gave it. The offline plan, the unit tests and the local
emulation all read the program through this one door, so none of them keeps a
second copy of what the program declares.

Each evaluation runs in a fresh `contextvars.Context` and event loop, because
the Pulumi runtime keeps its root stack and config in context variables; that
makes several stacks evaluable in one process.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import inspect
import json
import runpy
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import get_root_resource
from pulumi.runtime.stack import run_pulumi_func

PROJECT = "fraud-pipeline"
ACCOUNT_ID = "123456789012"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RecordedResource:
    """One resource as the engine saw it: what the program asked for and what it got back."""

    urn: str
    type: str
    name: str
    parent: str
    custom: bool
    inputs: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    ignore_changes: list[str] = field(default_factory=list)
    depends_on: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)

    @property
    def physical_name(self) -> str:
        value = self.inputs.get("name") or self.inputs.get("bucket") or ""
        return value if isinstance(value, str) else ""



@dataclass
class Evaluation:
    """The outcome of one program evaluation."""

    stack: str
    resources: list[RecordedResource]
    exports: dict[str, Any]

    def of_type(self, type_: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str, name_contains: str = "") -> RecordedResource:
        found = [r for r in self.of_type(type_) if name_contains in r.name or name_contains in r.physical_name]
        if len(found) != 1:
            raise LookupError(f"expected one {type_} named *{name_contains}*, found {[r.name for r in found]}")
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        for r in self.resources:
            if r.urn == urn:
                return r
        raise LookupError(urn)

    def ancestors(self, resource: RecordedResource) -> list[RecordedResource]:
        """Enclosing components, innermost first (the root stack is not recorded)."""
        by_urn = {r.urn: r for r in self.resources}
        out, parent = [], resource.parent
        while parent in by_urn:
            out.append(by_urn[parent])
            parent = by_urn[parent].parent
        return out

    def children(self, urn: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.parent == urn]

    def custom_resources(self) -> Iterator[RecordedResource]:
        return (r for r in self.resources if r.custom)


def _short_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:10]


class AwsMocks(pulumi.runtime.Mocks):
    """Gives each AWS resource the outputs the real provider would: ARNs, URLs, ids.

    Outputs are deterministic (derived from names), so two evaluations of the
    same stack print the same plan and the local emulation gets real-looking
    ARNs to check IAM policies against.
    """

    def __init__(self, region: str, account: str = ACCOUNT_ID):
        self.region = region
        self.account = account

    # -- provider functions ------------------------------------------------
    def call(self, args: pulumi_mocks.MockCallArgs):
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"accountId": self.account, "arn": f"arn:aws:iam::{self.account}:user/mock", "userId": "MOCK", "id": self.account}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region, "endpoint": f"ec2.{self.region}.amazonaws.com", "description": self.region}
        if token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws", "reverseDnsPrefix": "com.amazonaws"}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            names = [f"{self.region}{z}" for z in "abc"]
            return {"names": names, "zoneIds": [f"use1-az{i}" for i in range(1, 4)], "id": self.region}
        raise LookupError(f"AwsMocks has no mock for provider function {token}; add one in evaluation.py")

    # -- resources ---------------------------------------------------------
    def new_resource(self, args: pulumi_mocks.MockResourceArgs):
        inputs = dict(args.inputs)
        if not args.custom:
            return f"{args.name}-id", inputs
        region, acct = inputs.get("region") or self.region, self.account
        name = inputs.get("name") or f"{args.name}-{_short_id(args.typ, args.name)[:7]}"
        rid = _short_id(args.typ, args.name)
        out: dict[str, Any] = {"name": name, **inputs}
        t = args.typ
        resource_id = name

        def arn(service: str, resource: str, *, with_region: bool = True) -> str:
            return f"arn:aws:{service}:{region if with_region else ''}:{acct}:{resource}"

        if t == "aws:kms/key:Key":
            key_id = f"{rid[:8]}-{rid[:4]}-4{rid[1:4]}-8{rid[4:7]}-{rid}{rid[:2]}"
            resource_id = key_id
            out.update(keyId=key_id, arn=arn("kms", f"key/{key_id}"))
        elif t == "aws:kms/alias:Alias":
            out.update(arn=arn("kms", name))
        elif t == "aws:dynamodb/table:Table":
            out["arn"] = arn("dynamodb", f"table/{name}")
            if inputs.get("streamEnabled"):
                out["streamArn"] = f"{out['arn']}/stream/2026-01-01T00:00:00.000"
                out["streamLabel"] = "2026-01-01T00:00:00.000"
        elif t == "aws:kinesis/stream:Stream":
            out["arn"] = arn("kinesis", f"stream/{name}")
            resource_id = out["arn"]
        elif t == "aws:sqs/queue:Queue":
            out.update(arn=arn("sqs", name), url=f"https://sqs.{region}.amazonaws.com/{acct}/{name}")
            resource_id = out["url"]
        elif t == "aws:sns/topic:Topic":
            out["arn"] = arn("sns", name)
            resource_id = out["arn"]
        elif t == "aws:sns/topicSubscription:TopicSubscription":
            out["arn"] = f"{inputs.get('topic', '')}:{rid}"
            resource_id = out["arn"]
        elif t == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket") or name
            out.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}", bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com")
            resource_id = bucket
        elif t == "aws:iam/role:Role":
            out.update(arn=f"arn:aws:iam::{acct}:role/{name}", uniqueId=f"AROA{rid.upper()}")
        elif t == "aws:lambda/function:Function":
            fn_arn = arn("lambda", f"function:{name}")
            out.update(arn=fn_arn, qualifiedArn=f"{fn_arn}:$LATEST", version="$LATEST",
                       invokeArn=f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{fn_arn}/invocations")
        elif t == "aws:lambda/eventSourceMapping:EventSourceMapping":
            resource_id = f"{rid[:8]}-{rid[:4]}-{rid[4:8]}-{rid[6:10]}-{rid}{rid[:2]}"
            out.update(uuid=resource_id, arn=arn("lambda", f"event-source-mapping:{resource_id}"))
        elif t == "aws:lambda/codeSigningConfig:CodeSigningConfig":
            config_id = f"csc-{rid}{rid[:7]}"
            out.update(arn=arn("lambda", f"code-signing-config:{config_id}"), configId=config_id,
                       lastModified="2026-01-01T00:00:00Z")
            resource_id = out["arn"]
        elif t == "aws:lambda/layerVersion:LayerVersion":
            layer_arn = arn("lambda", f"layer:{inputs.get('layerName', name)}")
            out.update(layerArn=layer_arn, version="1", arn=f"{layer_arn}:1", codeSha256=rid,
                       signingProfileVersionArn=None, signingJobArn=None)
            resource_id = out["arn"]
        elif t == "aws:signer/signingProfile:SigningProfile":
            profile_name = inputs.get("name") or f"{inputs.get('namePrefix', 'profile_')}{rid}"
            version = rid[:10]
            profile_arn = arn("signer", f"/signing-profiles/{profile_name}")
            out.update(name=profile_name, arn=profile_arn, version=version, versionArn=f"{profile_arn}/{version}",
                       platformDisplayName="AWS Lambda", status="Active")
            resource_id = profile_name
        elif t == "aws:signer/signingJob:SigningJob":
            job_id = f"{rid[:8]}-{rid[:4]}-{rid[4:8]}-{rid[6:10]}-{rid}{rid[:2]}"
            destination = (inputs.get("destination") or {}).get("s3") or {}
            out.update(jobId=job_id, status="Succeeded", platformId="AWSLambda-SHA384-ECDSA",
                       signedObjects=[{"s3s": [{"bucket": destination.get("bucket"),
                                                "key": f"{destination.get('prefix', '')}{job_id}.zip"}]}])
            resource_id = job_id
        elif t == "aws:s3/bucketObjectv2:BucketObjectv2":
            # Versioned buckets give every upload a version id (a signing job signs one version).
            out["versionId"] = f"v{rid}{rid[:6]}"
            out.setdefault("arn", arn(t.split(":")[1].split("/")[0], f"{t.split(':')[-1].lower()}/{name}"))
        elif t == "aws:cloudwatch/logGroup:LogGroup":
            out["arn"] = arn("logs", f"log-group:{name}")
        elif t == "aws:ssm/parameter:Parameter":
            out["arn"] = arn("ssm", f"parameter/{name.lstrip('/')}")
        elif t == "aws:cloudwatch/eventBus:EventBus":
            out["arn"] = arn("events", f"event-bus/{name}")
        elif t == "aws:cloudwatch/eventRule:EventRule":
            bus = inputs.get("eventBusName", "default")
            out["arn"] = arn("events", f"rule/{bus}/{name}" if bus != "default" else f"rule/{name}")
        elif t == "aws:sfn/stateMachine:StateMachine":
            out["arn"] = arn("states", f"stateMachine:{name}")
            resource_id = out["arn"]
        elif t == "aws:apigateway/restApi:RestApi":
            resource_id = rid
            out.update(rootResourceId=f"root{rid[:6]}", executionArn=arn("execute-api", rid), arn=f"arn:aws:apigateway:{region}::/restapis/{rid}")
        elif t == "aws:apigateway/stage:Stage":
            api = inputs.get("restApi", "api")
            stage = inputs.get("stageName", "stage")
            out.update(arn=f"arn:aws:apigateway:{region}::/restapis/{api}/stages/{stage}",
                       executionArn=arn("execute-api", f"{api}/{stage}"),
                       invokeUrl=f"https://{api}.execute-api.{region}.amazonaws.com/{stage}")
            resource_id = f"ags-{api}-{stage}"
        elif t == "aws:apigateway/apiKey:ApiKey":
            resource_id = rid
            out.update(value=inputs.get("value") or f"mock-api-key-{rid}", arn=f"arn:aws:apigateway:{region}::/apikeys/{rid}")
        elif t.startswith("aws:apigateway/"):
            resource_id = rid
            out.setdefault("arn", f"arn:aws:apigateway:{region}::/{t.split(':')[-1].lower()}/{rid}")
        elif t == "aws:wafv2/webAcl:WebAcl":
            resource_id = rid
            out.update(arn=arn("wafv2", f"regional/webacl/{name}/{rid}"), capacity=50)
        elif t == "aws:cloudwatch/metricAlarm:MetricAlarm":
            out["arn"] = arn("cloudwatch", f"alarm:{name}")
        elif t == "aws:cloudwatch/dashboard:Dashboard":
            out.update(dashboardName=inputs.get("dashboardName"), dashboardArn=f"arn:aws:cloudwatch::{acct}:dashboard/{inputs.get('dashboardName')}")
        elif t.startswith("aws:ec2/"):
            prefix = {"vpc": "vpc", "subnet": "subnet", "securityGroup": "sg", "vpcEndpoint": "vpce", "routeTable": "rtb"}.get(t.split("/")[1].split(":")[0], "ec2")
            resource_id = f"{prefix}-{rid}"
            out["arn"] = arn("ec2", f"{prefix}/{resource_id}")
            if prefix == "sg":
                out["name"] = inputs.get("name", name)
            if prefix == "vpce" and inputs.get("vpcEndpointType") == "Gateway":
                out["prefixListId"] = f"pl-{rid[:8]}"
        else:
            out.setdefault("arn", arn(t.split(":")[1].split("/")[0], f"{t.split(':')[-1].lower()}/{name}"))
        out.setdefault("id", resource_id)
        return resource_id, out


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """MockMonitor that also keeps each resource's parent, inputs and the stack exports."""

    def __init__(self, mocks: AwsMocks):
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []
        self.exports: dict[str, Any] = {}
        self._parents: dict[str, str] = {}
        self._transforms: dict[str, list] = {}

    def _apply_transforms(self, request) -> None:
        """Run the resource's own `transforms`, then each ancestor's, on its properties, as the engine does.

        Pulumi's mock monitor records transforms but does not run them; the engine applies a
        component's transforms to every descendant. Emulated here so a test can show what a
        team's transform does to the pipeline (and that the policy pack refuses an unsafe one).
        PRIVATE PULUMI SDK USE, marked: `pulumi.runtime.mocks._resolve_callbacks` (transform
        callbacks -> functions) and `_sync_await`; `tests/unit/test_children.py` fails if they change.
        Only properties are transformed; options a transform returns are ignored.
        """
        urn = self.make_urn(request.parent, request.type, request.name)
        self._parents[urn] = request.parent
        own = pulumi_mocks._resolve_callbacks(request.transforms)
        self._transforms[urn] = own
        chain, ancestor = list(own), request.parent
        while ancestor:
            chain += self._transforms.get(ancestor, [])
            ancestor = self._parents.get(ancestor, "")
        if not chain or request.type == "pulumi:pulumi:Stack":
            return
        props = rpc.deserialize_properties(request.object)
        for transform in chain:
            result = transform(pulumi.ResourceTransformArgs(
                custom=bool(request.custom), type_=request.type, name=request.name, props=props,
                opts=pulumi.ResourceOptions()))
            if inspect.isawaitable(result):
                result = pulumi_mocks._sync_await(result)
            if result is not None:
                props = result.props
        request.object.CopyFrom(pulumi_mocks._sync_await(rpc.serialize_properties(props, {})))

    def RegisterResource(self, request):
        self._apply_transforms(request)
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        inputs = rpc.deserialize_properties(request.object)
        registration = self.resources[response.urn]
        self.recorded.append(RecordedResource(
            urn=response.urn, type=request.type, name=request.name, parent=request.parent,
            custom=bool(request.custom), inputs=_plain(inputs), outputs=_plain(registration.state), id=registration.id,
            ignore_changes=list(request.ignoreChanges), depends_on=list(request.dependencies),
            replace_on_changes=list(request.replaceOnChanges),
        ))
        return response

    def RegisterResourceOutputs(self, request):
        if request.urn.split("::")[2] == "pulumi:pulumi:Stack":
            self.exports.update(_plain(rpc.deserialize_properties(request.outputs)))
        return super().RegisterResourceOutputs(request)


def _plain(value: Any) -> Any:
    """Strip Pulumi's secret wrappers so tests and the plan can read values."""
    if isinstance(value, dict):
        if value.get(rpc._special_sig_key) == rpc._special_secret_sig:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def stack_file(stack: str, root: Path = REPO_ROOT) -> Path:
    return root / f"Pulumi.{stack}.yaml"


def stack_config(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """A stack file's config as the Pulumi CLI hands it to the program: strings, structured values as JSON."""
    path = stack_file(stack, root)
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name}; stacks here: {', '.join(known_stacks(root))}")
    data = yaml.safe_load(path.read_text()) or {}
    config: dict[str, str] = {}
    for key, value in (data.get("config") or {}).items():
        if ":" not in key:
            key = f"{PROJECT}:{key}"
        if isinstance(value, dict) and "secure" in value:
            raise ValueError(f"{path.name}: {key} is encrypted; offline evaluation cannot decrypt it")
        if isinstance(value, bool):
            config[key] = "true" if value else "false"
        elif isinstance(value, (dict, list)):
            config[key] = json.dumps(value)
        else:
            config[key] = str(value)
    return config


async def _resolve_exports() -> dict[str, Any]:
    """`pulumi.export` values: under mocks the root stack never registers them, so resolve them here."""
    root = get_root_resource()
    resolved: dict[str, Any] = {}
    for key, value in (getattr(root, "outputs", None) or {}).items():
        output = pulumi.Output.from_input(value)
        resolved[key] = _plain(await output.future(with_unknowns=True))
    return resolved


def known_stacks(root: Path = REPO_ROOT) -> list[str]:
    order = {"dev": 0, "staging": 1, "prod": 2}
    names = (p.name[len("Pulumi."):-len(".yaml")] for p in root.glob("Pulumi.*.yaml"))
    return sorted(names, key=lambda n: (order.get(n, 3), n))


def configured_keys(namespace: str) -> set[str]:
    """The keys of `namespace` the stack's config sets (without the namespace).

    PRIVATE PULUMI SDK USE, kept here on purpose: the SDK has no public way to list a stack's
    config keys, and the program needs them to refuse a key it does not know (a typo would
    otherwise be ignored silently). `tests/unit/test_program.py::test_the_private_config_api_is_still_there`
    fails loudly if `pulumi.runtime.config.CONFIG` or `get_config_env` change. Values are read
    through the public `pulumi.Config`.
    """
    from pulumi.runtime import config as runtime_config

    keys = set(runtime_config.CONFIG.get()) | set(runtime_config.get_config_env())
    return {k.split(":", 1)[1] for k in keys if k.startswith(f"{namespace}:")}


def evaluate(
    stack: str,
    config: Mapping[str, str] | None = None,
    program: Callable[[], None] | None = None,
    root: Path = REPO_ROOT,
    monitor_sink: list | None = None,
) -> Evaluation:
    """Run the program for `stack` under the mock engine and return what it declared.

    `config` defaults to the stack file's; `program` defaults to the repo's
    `__main__.py`; `monitor_sink`, if given, receives the recording monitor
    (to see what was registered before an error). Errors the program raises (a bad stack file, a capacity
    check) propagate unchanged, exactly as `pulumi preview` would report them.
    """
    cfg = dict(stack_config(stack, root) if config is None else config)
    region = cfg.get("aws:region", "us-east-1")
    def run_main() -> None:
        runpy.run_path(str(root / "__main__.py"), run_name="__main__")

    run = program or run_main

    def _in_context() -> Evaluation:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # The mock monitor runs in executor threads that each need an event loop; give them ours to
        # close afterwards, rather than loops that are only garbage-collected (noisily) at exit.
        thread_loops: list[asyncio.AbstractEventLoop] = []

        def thread_loop() -> None:
            thread_loops.append(asyncio.new_event_loop())
            asyncio.set_event_loop(thread_loops[-1])

        executor = ThreadPoolExecutor(initializer=thread_loop)
        loop.set_default_executor(executor)
        try:
            monitor = RecordingMonitor(AwsMocks(region))
            if monitor_sink is not None:
                monitor_sink.append(monitor)
            pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
            pulumi.runtime.set_all_config(cfg, [])
            loop.run_until_complete(run_pulumi_func(run))
            exports = loop.run_until_complete(_resolve_exports())
            return Evaluation(stack=stack, resources=monitor.recorded, exports={**monitor.exports, **exports})
        finally:
            asyncio.set_event_loop(None)
            loop.close()
            executor.shutdown(wait=True)
            for each in thread_loops:
                each.close()

    return contextvars.Context().run(_in_context)
