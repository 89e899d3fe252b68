"""What the program declared, read back as the emulation needs it.

Everything here is taken from the evaluated program (`evaluation.evaluate`):
names, settings, environment variables, policies and wires. Nothing is
restated, so when the program changes a name or a setting the emulation
follows without edits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

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
class ApiSpec:
    stage: str
    path: str
    method: str
    api_key_required: bool
    schema: dict | None
    validate_body: bool
    rate: float
    burst: int
    key_name: str
    responses: dict[str, tuple[str, str]]


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

    def function_by_arn(self, arn: str) -> FunctionSite:
        name = arn.split(":function:")[-1].split(":")[0]
        return self.functions[name]

    def queue_by_arn(self, arn: str) -> QueueSpec:
        return next(q for q in self.queues if q.arn == arn)

    def table_for_stream(self, stream_arn: str) -> TableSpec:
        table = stream_arn.split(":table/")[1].split("/stream/")[0]
        return next(t for t in self.tables if t.name == table)


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
    key = ev.one("aws:kms/key:Key")
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
        component = ev.by_urn(f.parent)
        functions[i["name"]] = FunctionSite(
            key=component.name.split("-")[-1], name=i["name"], arn=f.outputs["arn"], handler=i["handler"],
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
    )


def _api(ev: Evaluation) -> ApiSpec | None:
    methods = ev.of_type("aws:apigateway/method:Method")
    if not methods:
        return None
    method = methods[0].inputs
    resource = next(r for r in ev.of_type("aws:apigateway/resource:Resource") if r.outputs["id"] == method["resourceId"])
    stage = ev.one("aws:apigateway/stage:Stage").inputs
    model_name = (method.get("requestModels") or {}).get("application/json")
    schema = None
    for m in ev.of_type("aws:apigateway/model:Model"):
        if m.inputs["name"] == model_name:
            schema = json.loads(m.inputs["schema"])
    validator_id = method.get("requestValidatorId")
    validate_body = any(v.outputs["id"] == validator_id and v.inputs.get("validateRequestBody")
                        for v in ev.of_type("aws:apigateway/requestValidator:RequestValidator"))
    plan = ev.one("aws:apigateway/usagePlan:UsagePlan").inputs
    responses = {r.inputs["responseType"]: (str(r.inputs.get("statusCode") or ""),
                                            (r.inputs.get("responseTemplates") or {}).get("application/json", ""))
                 for r in ev.of_type("aws:apigateway/response:Response")}
    return ApiSpec(
        stage=stage["stageName"], path="/" + resource.inputs["pathPart"], method=method["httpMethod"],
        api_key_required=bool(method.get("apiKeyRequired")), schema=schema, validate_body=validate_body,
        rate=float(plan["throttleSettings"]["rateLimit"]), burst=int(plan["throttleSettings"]["burstLimit"]),
        key_name=ev.one("aws:apigateway/apiKey:ApiKey").inputs["name"], responses=responses,
    )
