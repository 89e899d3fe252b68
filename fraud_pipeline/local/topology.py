"""What the program declared, read back as the emulation needs it.

Everything here is taken from the evaluated program (`evaluation.evaluate`):
names, settings, environment variables, policies and wires. Nothing is
restated, so when the program changes a name or a setting the emulation
follows without edits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, overload
from urllib.parse import unquote

from ..evaluation import Evaluation, RecordedResource


@dataclass
class TableSpec:
    name: str
    hash_key: str
    range_key: str | None
    attributes: dict[str, str]
    stream_view_type: str | None
    ttl_attribute: str | None


@dataclass
class QueueSpec:
    name: str
    arn: str
    url: str
    visibility_timeout: int
    retention: int
    dead_letter_arn: str | None = None
    max_receive_count: int | None = None


@dataclass
class FunctionSite:
    key: str
    name: str
    arn: str
    handler: str
    environment: dict[str, str]
    timeout: int
    memory: int
    policy: dict


@dataclass
class MappingSpec:
    function: str
    kind: str
    source_arn: str
    batch_size: int
    window_seconds: float
    max_retries: int | None
    max_record_age: int | None
    bisect: bool
    on_failure_arn: str | None
    filters: list[dict]
    report_failures: bool


@dataclass
class RouteSpec:
    """One method of the REST API: its resource path (a template), the function behind it, its request model."""

    path: str                       # "/transactions/{transaction_id}/label"
    method: str
    function: str                   # the proxy integration's function name
    api_key_required: bool
    schema: dict | None
    validate_body: bool
    path_parameters: tuple[str, ...] = ()

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when `path` (no stage, no query) is this route's, else None."""
        want, got = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(want) != len(got):
            return None
        params: dict[str, str] = {}
        for w, g in zip(want, got):
            if w.startswith("{") and w.endswith("}"):
                if not g:
                    return None
                params[w[1:-1]] = unquote(g)
            elif w != g:
                return None
        return params


@dataclass
class ApiSpec:
    stage: str
    routes: list[RouteSpec]
    rate: float
    burst: int
    key_name: str
    responses: dict[str, tuple[str, str]]

    def route(self, function: str) -> RouteSpec:
        return next(r for r in self.routes if r.function == function)

    @property
    def path(self) -> str:
        """The first route's path (POST /transactions)."""
        return self.routes[0].path


@dataclass
class NotificationSpec:
    """An S3 event notification that invokes a function (asynchronously, as S3 does)."""

    bucket: str
    function: str
    events: list[str]
    prefix: str
    suffix: str


@dataclass
class AsyncConfig:
    """A function's asynchronous-invocation settings (FunctionEventInvokeConfig)."""

    function: str
    max_retries: int
    max_event_age: int
    on_failure_arn: str | None
    on_success_arn: str | None


@dataclass
class ObjectSpec:
    """An object the program uploads (aws.s3.BucketObjectv2)."""

    bucket: str
    key: str
    source_path: str | None
    content: str | None
    content_type: str | None


@dataclass
class RuleSpec:
    name: str
    bus: str
    pattern: dict
    targets: list[dict] = field(default_factory=list)


@dataclass
class Topology:
    stack: str
    region: str
    account: str
    key_arn: str
    tables: list[TableSpec]
    streams: list[dict]
    queues: list[QueueSpec]
    topics: list[dict]
    subscriptions: list[dict]
    buckets: list[str]
    parameters: list[dict]
    buses: list[str]
    rules: list[RuleSpec]
    state_machines: dict[str, dict]
    functions: dict[str, FunctionSite]
    mappings: list[MappingSpec]
    api: ApiSpec | None
    notifications: list[NotificationSpec] = field(default_factory=list)
    async_configs: dict[str, AsyncConfig] = field(default_factory=dict)   # function name -> settings
    objects: list[ObjectSpec] = field(default_factory=list)

    def function_by_arn(self, arn: str) -> FunctionSite:
        name = arn.split(":function:")[-1].split(":")[0]
        return self.functions[name]

    def queue_by_arn(self, arn: str) -> QueueSpec:
        return next(q for q in self.queues if q.arn == arn)

    def table_for_stream(self, stream_arn: str) -> TableSpec:
        table = stream_arn.split(":table/")[1].split("/stream/")[0]
        return next(t for t in self.tables if t.name == table)


@overload
def _int(value: Any, default: int) -> int: ...
@overload
def _int(value: Any, default: None = None) -> int | None: ...
def _int(value: Any, default: int | None = None) -> int | None:
    return default if value is None else int(value)


def _policy_of(ev: Evaluation, function: RecordedResource) -> dict:
    """The inline policy of the function's role, as the program generated it."""
    role_arn = function.inputs["role"]
    role = next(r for r in ev.of_type("aws:iam/role:Role") if r.outputs.get("arn") == role_arn)
    docs = [json.loads(p.inputs["policy"]) for p in ev.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.inputs.get("role") in (role.outputs.get("id"), role.outputs.get("name"))]
    return {"Version": "2012-10-17", "Statement": [st for d in docs for st in d["Statement"]]}


def topology(ev: Evaluation) -> Topology:
    key = ev.one("aws:kms/key:Key", "fraud-kms-key")
    region = key.outputs["arn"].split(":")[3]
    account = key.outputs["arn"].split(":")[4]

    tables = []
    for t in ev.of_type("aws:dynamodb/table:Table"):
        i = t.inputs
        tables.append(TableSpec(
            name=i["name"], hash_key=i["hashKey"], range_key=i.get("rangeKey"),
            attributes={a["name"]: a["type"] for a in i["attributes"]},
            stream_view_type=i.get("streamViewType") if i.get("streamEnabled") else None,
            ttl_attribute=(i.get("ttl") or {}).get("attributeName"),
        ))

    queues = []
    for q in ev.of_type("aws:sqs/queue:Queue"):
        i = q.inputs
        redrive = json.loads(i["redrivePolicy"]) if i.get("redrivePolicy") else {}
        queues.append(QueueSpec(
            name=i["name"], arn=q.outputs["arn"], url=q.outputs["url"],
            visibility_timeout=_int(i.get("visibilityTimeoutSeconds"), 30),
            retention=_int(i.get("messageRetentionSeconds"), 345600),
            dead_letter_arn=redrive.get("deadLetterTargetArn"), max_receive_count=redrive.get("maxReceiveCount"),
        ))

    functions: dict[str, FunctionSite] = {}
    for f in ev.of_type("aws:lambda/function:Function"):
        i = f.inputs
        functions[i["name"]] = FunctionSite(
            key=_function_key(ev, f), name=i["name"], arn=f.outputs["arn"], handler=i["handler"],
            environment=dict((i.get("environment") or {}).get("variables") or {}),
            timeout=_int(i.get("timeout"), 3), memory=_int(i.get("memorySize"), 128), policy=_policy_of(ev, f),
        )

    mappings = []
    for m in ev.of_type("aws:lambda/eventSourceMapping:EventSourceMapping"):
        i = m.inputs
        source = i["eventSourceArn"]
        kind = source.split(":")[2]
        if kind == "dynamodb" and "/stream/" not in source:
            raise ValueError(f"mapping {m.name}: not a table stream: {source}")
        mappings.append(MappingSpec(
            function=i["functionName"].split(":function:")[-1], kind=kind, source_arn=source,
            batch_size=_int(i.get("batchSize"), 100), window_seconds=float(i.get("maximumBatchingWindowInSeconds") or 0),
            max_retries=_int(i.get("maximumRetryAttempts")), max_record_age=_int(i.get("maximumRecordAgeInSeconds")),
            bisect=bool(i.get("bisectBatchOnFunctionError")),
            on_failure_arn=((i.get("destinationConfig") or {}).get("onFailure") or {}).get("destinationArn"),
            filters=[json.loads(f["pattern"]) for f in (i.get("filterCriteria") or {}).get("filters", [])],
            report_failures="ReportBatchItemFailures" in (i.get("functionResponseTypes") or []),
        ))

    rules = []
    for r in ev.of_type("aws:cloudwatch/eventRule:EventRule"):
        rule = RuleSpec(name=r.inputs["name"], bus=r.inputs.get("eventBusName", "default"),
                        pattern=json.loads(r.inputs["eventPattern"]))
        for t in ev.of_type("aws:cloudwatch/eventTarget:EventTarget"):
            if t.inputs["rule"] == rule.name:
                rule.targets.append({"arn": t.inputs["arn"], "dlq": (t.inputs.get("deadLetterConfig") or {}).get("arn"),
                                     "max_retries": _int((t.inputs.get("retryPolicy") or {}).get("maximumRetryAttempts"), 185)})
        rules.append(rule)

    return Topology(
        stack=ev.stack, region=region, account=account, key_arn=key.outputs["arn"],
        tables=tables,
        streams=[{"name": s.inputs["name"], "shards": _int(s.inputs.get("shardCount"), 1), "arn": s.outputs["arn"],
                  "retention": _int(s.inputs.get("retentionPeriod"), 24)} for s in ev.of_type("aws:kinesis/stream:Stream")],
        queues=queues,
        topics=[{"name": t.inputs["name"], "arn": t.outputs["arn"]} for t in ev.of_type("aws:sns/topic:Topic")],
        subscriptions=[dict(s.inputs) for s in ev.of_type("aws:sns/topicSubscription:TopicSubscription")],
        buckets=[b.outputs["bucket"] for b in ev.of_type("aws:s3/bucket:Bucket")],
        parameters=[{"name": p.inputs["name"], "type": p.inputs["type"], "value": p.inputs["value"]}
                    for p in ev.of_type("aws:ssm/parameter:Parameter")],
        buses=[b.inputs["name"] for b in ev.of_type("aws:cloudwatch/eventBus:EventBus")],
        rules=rules,
        state_machines={s.outputs["arn"]: {"name": s.inputs["name"], "definition": json.loads(s.inputs["definition"])}
                        for s in ev.of_type("aws:sfn/stateMachine:StateMachine")},
        functions=functions,
        mappings=mappings,
        api=_api(ev),
        notifications=_notifications(ev),
        async_configs=_async_configs(ev),
        objects=_objects(ev),
    )


def _function_key(ev: Evaluation, function: RecordedResource) -> str:
    """The program's key of a function ("label-ingest"): its component is named `<pipeline>-<key>`."""
    component = ev.by_urn(function.parent)
    pipeline = next(iter(ev.ancestors(component)), None)
    if pipeline is not None and component.name.startswith(pipeline.name + "-"):
        return component.name[len(pipeline.name) + 1:]
    return component.name


def _function_name(reference: str) -> str:
    """A function name from a name, a function ARN or an API Gateway invoke ARN."""
    if ":function:" in reference:
        return reference.split(":function:")[-1].split("/")[0].split(":")[0]
    return reference


def _notifications(ev: Evaluation) -> list[NotificationSpec]:
    out = []
    for n in ev.of_type("aws:s3/bucketNotification:BucketNotification"):
        for target in n.inputs.get("lambdaFunctions") or []:
            out.append(NotificationSpec(
                bucket=n.inputs["bucket"], function=_function_name(target["lambdaFunctionArn"]),
                events=list(target.get("events") or []), prefix=target.get("filterPrefix") or "",
                suffix=target.get("filterSuffix") or ""))
    return out


def _async_configs(ev: Evaluation) -> dict[str, AsyncConfig]:
    out = {}
    for c in ev.of_type("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig"):
        i = c.inputs
        destinations = i.get("destinationConfig") or {}
        name = _function_name(i["functionName"])
        out[name] = AsyncConfig(
            function=name, max_retries=_int(i.get("maximumRetryAttempts"), 2),
            max_event_age=_int(i.get("maximumEventAgeInSeconds"), 21600),
            on_failure_arn=(destinations.get("onFailure") or {}).get("destination"),
            on_success_arn=(destinations.get("onSuccess") or {}).get("destination"))
    return out


def _objects(ev: Evaluation) -> list[ObjectSpec]:
    out = []
    for o in ev.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        i = o.inputs
        source = i.get("source")
        out.append(ObjectSpec(bucket=i["bucket"], key=i["key"], source_path=getattr(source, "path", None),
                              content=i.get("content"), content_type=i.get("contentType")))
    return out


def _resource_path(resources: dict[str, RecordedResource], resource_id: str) -> str:
    parts = []
    while resource_id in resources:
        resource = resources[resource_id]
        parts.append(resource.inputs["pathPart"])
        resource_id = resource.inputs["parentId"]
    return "/" + "/".join(reversed(parts))


def _api(ev: Evaluation) -> ApiSpec | None:
    methods = ev.of_type("aws:apigateway/method:Method")
    if not methods:
        return None
    resources = {r.outputs["id"]: r for r in ev.of_type("aws:apigateway/resource:Resource")}
    models = {m.inputs["name"]: json.loads(m.inputs["schema"]) for m in ev.of_type("aws:apigateway/model:Model")}
    validators = {v.outputs["id"]: v.inputs for v in ev.of_type("aws:apigateway/requestValidator:RequestValidator")}
    integrations = ev.of_type("aws:apigateway/integration:Integration")
    routes = []
    for m in methods:
        method = m.inputs
        integration = next(i.inputs for i in integrations if i.inputs["resourceId"] == method["resourceId"]
                           and i.inputs["httpMethod"] == method["httpMethod"])
        if integration.get("type") != "AWS_PROXY":
            raise ValueError(f"method {m.name}: only Lambda proxy integrations are emulated")
        model_name = (method.get("requestModels") or {}).get("application/json")
        routes.append(RouteSpec(
            path=_resource_path(resources, method["resourceId"]), method=method["httpMethod"],
            function=_function_name(integration["uri"]), api_key_required=bool(method.get("apiKeyRequired")),
            schema=models.get(model_name) if model_name else None,
            validate_body=bool((validators.get(method.get("requestValidatorId")) or {}).get("validateRequestBody")),
            path_parameters=tuple(k.split(".")[-1] for k in (method.get("requestParameters") or {})
                                  if k.startswith("method.request.path.")),
        ))
    # the shortest path first: POST /transactions is `routes[0]`
    routes.sort(key=lambda r: (r.path.count("/"), r.path))
    stage = ev.one("aws:apigateway/stage:Stage").inputs
    plan = ev.one("aws:apigateway/usagePlan:UsagePlan").inputs
    responses = {r.inputs["responseType"]: (str(r.inputs.get("statusCode") or ""),
                                            (r.inputs.get("responseTemplates") or {}).get("application/json", ""))
                 for r in ev.of_type("aws:apigateway/response:Response")}
    return ApiSpec(
        stage=stage["stageName"], routes=routes,
        rate=float(plan["throttleSettings"]["rateLimit"]), burst=int(plan["throttleSettings"]["burstLimit"]),
        key_name=ev.one("aws:apigateway/apiKey:ApiKey").inputs["name"], responses=responses,
    )
