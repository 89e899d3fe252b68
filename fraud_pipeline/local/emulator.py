"""The whole pipeline on one machine: the program evaluated, materialised on moto, handlers wired as AWS wires them.

    emulator = Emulator("dev")          # evaluates the program, starts moto, creates the resources
    emulator.start_api()                # the REST API on 127.0.0.1
    emulator.drain()                    # run the mappings, rule and workflow until everything settled
    emulator.close()
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3

from ..evaluation import evaluate
from . import stepfunctions
from .api_server import LocalApi, LocalHttp, serve
from .host import LambdaHost, LogTee
from .iam import CallRecorder, PrivilegeReport, check
from .mappings import BucketNotificationPoller, QueuePoller, StreamPoller
from .materialise import Materialised, materialise
from .topology import Topology, topology


def _epoch(timestamp: str | None) -> float:
    if not timestamp:
        return time.time()
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


#: Locally there is no X-Ray daemon: tracing is switched off whatever the stack says.
LOCAL_OVERRIDES = {"POWERTOOLS_TRACE_DISABLED": "true"}


@dataclass
class Alert:
    topic: str
    subject: str
    message: str
    attributes: dict[str, str]
    received_at: float
    published_at: float


@dataclass
class ReviewRun:
    transaction_id: str | None
    status: str
    path: list[str]
    error: str | None


@dataclass
class Emulator:
    stack: str
    config: Mapping[str, str] | None = None
    echo_logs: bool = False
    aws_port: int = 0
    on_alert: Callable[[Alert], None] | None = None
    topo: Topology = field(init=False)
    alerts: list[Alert] = field(default_factory=list, init=False)
    reviews: list[ReviewRun] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        from . import moto_patches
        from .moto_service import MotoService

        moto_patches.apply()
        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
        self.topo = topology(evaluate(self.stack, self.config))
        self._server = MotoService("127.0.0.1", self.aws_port)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        # moto's backends are process-wide: one emulation per process, starting from nothing.
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST"), timeout=30).read()
        credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": self.topo.region}
        self.session = boto3.Session(**credentials)
        self.resources: Materialised = materialise(self.topo, self.session, self.endpoint)

        # Handlers build their clients from boto3's default session: record every call they make.
        self.recorder = CallRecorder(self.topo.region, self.topo.account)
        boto3.setup_default_session(**credentials)
        boto3.DEFAULT_SESSION.events.register("before-parameter-build", self.recorder.hook)
        self.logs = LogTee(sys.stdout if self.echo_logs else None)
        self.host = LambdaHost(self.topo, self.endpoint, self.recorder, self.logs)
        self.host.base_env.update(LOCAL_OVERRIDES)
        self._reset_handler_caches()

        self.sqs = self.client("sqs")
        self.pollers: list[Any] = []
        for m in self.topo.mappings:
            session = boto3.Session(**credentials)
            session.events.register("before-parameter-build", self.recorder.attribute(m.function, m.source_arn))
            client = lambda service, s=session: s.client(service, endpoint_url=self.endpoint)  # noqa: E731
            if m.kind == "sqs":
                self.pollers.append(QueuePoller(m, self.topo, self.host, client("sqs"), self.resources.queue_urls[m.source_arn]))
            elif m.kind == "kinesis":
                self.pollers.append(StreamPoller(m, self.topo, self.host, client("kinesis"), client("sqs"),
                                                 self.resources.queue_urls, m.source_arn))
            else:
                table = self.topo.table_for_stream(m.source_arn).name
                self.pollers.append(StreamPoller(m, self.topo, self.host, client("dynamodbstreams"), client("sqs"),
                                                 self.resources.queue_urls, self.resources.table_streams[table]))
        for index, n in enumerate(self.topo.notifications):
            config = self.topo.async_configs.get(n.function)
            # Lambda sends the on-failure record with the function's role: recorded as the function's call.
            session = boto3.Session(**credentials)
            session.events.register("before-parameter-build", self.recorder.attribute(
                n.function, (config.on_failure_arn if config else None) or "", via="async invocation"))
            self.pollers.append(BucketNotificationPoller(
                n, config, self.topo, self.host, self.client("sqs"), self.client("s3"),
                self.resources.notification_taps[index], self.resources.queue_urls,
                session.client("sqs", endpoint_url=self.endpoint)))
        self.api: LocalApi | None = None
        self._http: LocalHttp | None = None
        self._stop = threading.Event()
        self._pump_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- plumbing --------------------------------------------------------------
    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)

    @staticmethod
    def _reset_handler_caches() -> None:
        """A new emulation is a new execution environment: forget clients and cold-start values."""
        clients = sys.modules.get("handlers.clients")
        if clients is not None and hasattr(clients, "reset"):
            clients.reset()

    def function(self, key: str):
        return next(f for f in self.topo.functions.values() if f.key == key)

    # -- the API -----------------------------------------------------------------
    def start_api(self, port: int = 0, api_key: str | None = None) -> str:
        """Serve the REST API; returns the URL of POST /transactions (see `url` for the other routes)."""
        if self.topo.api is None:
            raise RuntimeError("the program declares no API")
        self.api = LocalApi(self.topo.api, self.host.invoke, api_key, openapi=self._openapi)
        self._http = serve(self.api, port=port)
        return self.url(self.function("api").name)

    def _openapi(self) -> dict:
        """The API's OpenAPI document, with this emulation's stage URL as its server."""
        from ..openapi import openapi_document

        if self._http is None or self.topo.api is None:
            raise RuntimeError("the API is not started")
        host, bound = self._http.server_address[:2]
        return openapi_document(self.topo.api, server_url=f"http://{host}:{bound}/{self.topo.api.stage}")

    @property
    def api_key(self) -> str:
        """The key the started API requires (`start_api` first)."""
        if self.api is None:
            raise RuntimeError("the API is not started")
        return self.api.api_key

    def url(self, function: str, **path_parameters: str) -> str:
        """The local URL of the route served by `function` (a name), its path parameters filled in."""
        if self._http is None or self.topo.api is None:
            raise RuntimeError("the API is not started")
        host, bound = self._http.server_address[:2]
        path = self.topo.api.route(function).path
        for name, value in path_parameters.items():
            path = path.replace("{" + name + "}", value)
        return f"http://{host}:{bound}/{self.topo.api.stage}{path}"

    @property
    def archive_bucket(self) -> str:
        """The bucket the program's S3 notifications watch (the archive)."""
        return self.topo.notifications[0].bucket if self.topo.notifications else self.topo.buckets[0]

    # -- running the mappings, rules and workflow -------------------------------
    def pump(self, flush: bool = False) -> int:
        """One round over every source; returns how many records or events moved."""
        with self._pump_lock:
            moved = sum(p.poll(flush) for p in self.pollers)
            moved += self._dispatch_rules()
            moved += self._capture_alerts()
            return moved

    def drain(self, idle_seconds: float = 2.0, timeout: float = 120.0) -> bool:
        """Pump until nothing moved for `idle_seconds` and no batch is pending; False on timeout."""
        deadline = time.monotonic() + timeout
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            moved = self.pump()
            pending = sum(getattr(p, "backlog", 0) for p in self.pollers)
            if moved or pending:
                idle_since = time.monotonic()
                if pending and not moved:
                    time.sleep(0.05)
            elif time.monotonic() - idle_since >= idle_seconds:
                return True
            else:
                time.sleep(0.05)
        return False

    def start(self, interval: float = 0.1) -> None:
        """Pump in a background thread (for `serve`)."""
        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.pump()
                except Exception as exc:  # keep serving; report what failed
                    print(f"[local] pump error: {exc!r}", file=sys.stderr)
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, daemon=True, name="local-pump")
        self._thread.start()

    def _dispatch_rules(self) -> int:
        moved = 0
        for rule in self.topo.rules:
            tap = self.resources.rule_taps[rule.name]
            for message in self.sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get("Messages", []):
                event = json.loads(message["Body"])
                for target in rule.targets:
                    machine = self.topo.state_machines.get(target["arn"])
                    if machine is not None:
                        self._run_workflow(machine, event)
                self.sqs.delete_message(QueueUrl=tap, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        return moved

    def _run_workflow(self, machine: dict, event: dict) -> None:
        execution = stepfunctions.run(machine["definition"], event, self.host.invoke, name=machine["name"])
        detail = event.get("detail") or {}
        self.reviews.append(ReviewRun(detail.get("transaction_id"), execution.status, execution.path, execution.error))

    def _capture_alerts(self) -> int:
        moved = 0
        for topic_arn, tap in self.resources.topic_taps.items():
            for message in self.sqs.receive_message(QueueUrl=tap, MaxNumberOfMessages=10).get("Messages", []):
                envelope = json.loads(message["Body"])
                alert = Alert(
                    topic=topic_arn.split(":")[-1], subject=envelope.get("Subject") or "", message=envelope.get("Message", ""),
                    attributes={k: v.get("Value") for k, v in (envelope.get("MessageAttributes") or {}).items()},
                    received_at=time.time(),
                    published_at=_epoch(envelope.get("Timestamp")),
                )
                self.alerts.append(alert)
                if self.on_alert:
                    self.on_alert(alert)
                self.sqs.delete_message(QueueUrl=tap, ReceiptHandle=message["ReceiptHandle"])
                moved += 1
        return moved

    # -- evidence ----------------------------------------------------------------
    def privilege_report(self) -> PrivilegeReport:
        return check(self.recorder.calls, {f.name: f.policy for f in self.topo.functions.values()})

    def items(self, table: str) -> list[dict]:
        """Every item of a table, as Scan returns them (DynamoDB JSON), for evidence after a run.

        Read from moto's in-process backend: moto's Scan sizes every item of every page again,
        which takes seconds a page on tables of a few thousand items. Falls back to Scan.
        """
        try:
            from moto.dynamodb.models import dynamodb_backends

            for account in list(dynamodb_backends):
                backend = dynamodb_backends[account][self.topo.region]
                if table in backend.tables:
                    return [item.to_json()["Attributes"] for item in backend.get_table(table).all_items()]
        except Exception:  # noqa: BLE001 -- a moto without this layout: use the API
            pass
        ddb = self.client("dynamodb")
        items, start = [], None
        while True:
            page = ddb.scan(TableName=table, **({"ExclusiveStartKey": start} if start else {}))
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def queue_depth(self, arn: str) -> int:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.resources.queue_urls[arn], AttributeNames=[
            "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        if self._http:
            self._http.shutdown()
        self._server.stop()
        boto3.DEFAULT_SESSION = None
        self._reset_handler_caches()
