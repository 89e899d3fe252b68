"""Drive the provider plugin offline, as the Pulumi engine would.

* `ProviderProcess` starts `provider/` the way the Python language host runs a plugin
  (`python <plugin dir> <engine address>`, in another working directory), reads the gRPC port
  the provider protocol prints on stdout, and gives a `ResourceProvider` stub.
* `FakeEngine` is the engine's gRPC service the provider logs to.
* `FakeMonitor` is a resource monitor gRPC server: it serves `Construct`'s child registrations
  and invokes with the repository's own `RecordingMonitor(AwsMocks(...))`
  (fraud_pipeline/evaluation.py), so a construct records exactly what `evaluate(stack)` records
  for a stack program, with the same mocked outputs, URNs included.

Everything is real gRPC over 127.0.0.1; only the engine's bookkeeping is faked.
"""

import asyncio
import os
import queue
import subprocess
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime import rpc
from pulumi.runtime.proto import (
    engine_pb2,
    engine_pb2_grpc,
    provider_pb2,
    provider_pb2_grpc,
    resource_pb2,
    resource_pb2_grpc,
)

from fraud_pipeline.evaluation import PROJECT, AwsMocks, RecordedResource, RecordingMonitor, _plain

REPO_ROOT = Path(__file__).resolve().parents[2]
PROVIDER_DIR = REPO_ROOT / "provider"
SCHEMA_FILE = PROVIDER_DIR / "schema.json"
REGENERATE = "python provider/generate_schema.py"
COMPONENT_TYPE = "fraud-pipeline:index:FraudPipeline"
STARTUP_TIMEOUT_SECONDS = 120


def stack_urn(stack: str, project: str = PROJECT) -> str:
    return f"urn:pulumi:{stack}::{project}::pulumi:pulumi:Stack::{project}-{stack}"


def _server(max_workers: int = 8) -> tuple[grpc.Server, list[asyncio.AbstractEventLoop]]:
    # MockMonitor serialises with an event loop per thread: give each worker one, closed at stop.
    loops: list[asyncio.AbstractEventLoop] = []

    def thread_loop() -> None:
        loops.append(asyncio.new_event_loop())
        asyncio.set_event_loop(loops[-1])

    executor = futures.ThreadPoolExecutor(max_workers=max_workers, initializer=thread_loop)
    return grpc.server(executor), loops


class FakeEngine(engine_pb2_grpc.EngineServicer):
    """The engine's service: keeps what the provider logs (warnings, errors)."""

    def __init__(self) -> None:
        self.logs: list[tuple[int, str]] = []
        self._server, self._loops = _server(4)
        engine_pb2_grpc.add_EngineServicer_to_server(self, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def Log(self, request, context):
        self.logs.append((request.severity, request.message))
        return empty_pb2.Empty()

    def GetRootResource(self, request, context):
        return engine_pb2.GetRootResourceResponse()

    def SetRootResource(self, request, context):
        return engine_pb2.SetRootResourceResponse()

    def warnings(self) -> list[str]:
        return [m for s, m in self.logs if s == engine_pb2.WARNING]

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
        for loop in self._loops:
            loop.close()


class _StackMonitor(RecordingMonitor):
    """RecordingMonitor with the construct's project and stack (it is not running a program here)."""

    def __init__(self, mocks: AwsMocks, project: str, stack: str):
        super().__init__(mocks)
        self._project, self._stack = project, stack

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        if parent:
            type_ = parent.split("::")[2].split("$").pop() + "$" + type_
        return "urn:pulumi:" + "::".join([self._stack, self._project, type_, name])


class FakeMonitor(resource_pb2_grpc.ResourceMonitorServicer):
    """A resource monitor gRPC server recording what the provider registers during one construct."""

    def __init__(self, region: str, stack: str, project: str = PROJECT):
        self.recording = _StackMonitor(AwsMocks(region), project, stack)
        self._lock = threading.Lock()
        self._server, self._loops = _server()
        resource_pb2_grpc.add_ResourceMonitorServicer_to_server(self, self._server)
        self.address = f"127.0.0.1:{self._server.add_insecure_port('127.0.0.1:0')}"
        self._server.start()

    def _call(self, method: str, request):
        with self._lock:
            return getattr(self.recording, method)(request)

    def GetDeploymentInfo(self, request, context):
        return self._call("GetDeploymentInfo", request)

    def SupportsFeature(self, request, context):
        return resource_pb2.SupportsFeatureResponse(hasSupport=self._call("SupportsFeature", request).hasSupport)

    def Invoke(self, request, context):
        return self._call("Invoke", request)

    def ReadResource(self, request, context):
        return self._call("ReadResource", request)

    def RegisterResource(self, request, context):
        return self._call("RegisterResource", request)

    def RegisterResourceOutputs(self, request, context):
        return self._call("RegisterResourceOutputs", request)

    def RegisterPackage(self, request, context):
        return self._call("RegisterPackage", request)

    def RegisterStackTransform(self, request, context):
        return self._call("RegisterStackTransform", request)

    def RegisterStackInvokeTransform(self, request, context):
        return self._call("RegisterStackInvokeTransform", request)

    def RegisterResourceHook(self, request, context):
        return self._call("RegisterResourceHook", request)

    def RegisterErrorHook(self, request, context):
        return self._call("RegisterErrorHook", request)

    def SignalAndWaitForShutdown(self, request, context):
        return self._call("SignalAndWaitForShutdown", request)

    @property
    def resources(self) -> list[RecordedResource]:
        return list(self.recording.recorded)

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
        for loop in self._loops:
            loop.close()


@dataclass
class ConstructOutcome:
    """A construct's answer (`state`, or `error` with the gRPC status) and what it registered."""

    resources: list[RecordedResource]
    urn: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    error: grpc.RpcError | None = None
    seconds: float = 0.0

    @property
    def error_text(self) -> str:
        """The status details and any InputPropertiesError reasons the error carries (what the CLI prints)."""
        if self.error is None:
            return ""
        parts = [self.error.details() or ""]
        for key, value in self.error.trailing_metadata() or ():
            if key == "grpc-status-details-bin":
                from pulumi.runtime.proto import errors_pb2, status_pb2

                status = status_pb2.Status.FromString(value)
                for detail in status.details:
                    errors = errors_pb2.InputPropertiesError()
                    if detail.Unpack(errors):
                        parts += [f"{e.property_path}: {e.reason}" for e in errors.errors]
        return "\n".join(p for p in parts if p)


class ProviderProcess:
    """`provider/` run as the Python language host runs a plugin, with a fake engine."""

    def __init__(self, python: str = sys.executable, cwd: Path | None = None):
        self.engine = FakeEngine()
        self.started = time.monotonic()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            [python, str(PROVIDER_DIR), self.engine.address],
            cwd=str(cwd or REPO_ROOT.parent), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        self._stderr: list[str] = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        self.port = self._read_port()
        self.startup_seconds = time.monotonic() - self.started
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def _drain_stderr(self) -> None:
        for line in self.process.stderr:
            self._stderr.append(line.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    def _read_port(self) -> int:
        # The provider protocol: the first line on stdout is the port. Keep draining stdout after it,
        # so nothing the provider might print there can ever block it on a full pipe.
        lines: queue.Queue = queue.Queue()

        def drain_stdout() -> None:
            for each in self.process.stdout:
                lines.put(each)
            lines.put(b"")

        threading.Thread(target=drain_stdout, daemon=True).start()
        try:
            line = lines.get(timeout=STARTUP_TIMEOUT_SECONDS)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"provider printed no port in {STARTUP_TIMEOUT_SECONDS} s; stderr:\n{self.stderr}") from None
        text = line.decode().strip()
        if not text.isdigit():
            self.stop()
            raise RuntimeError(f"provider did not start (stdout {text!r}, exit {self.process.returncode}); "
                               f"stderr:\n{self.stderr}")
        return int(text)

    def get_schema(self) -> str:
        return self.stub.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema

    def construct(self, inputs: dict[str, Any], *, stack: str = "dev", name: str = "fraud",
                  config: dict[str, str] | None = None, region: str | None = None,
                  dry_run: bool = False, dependencies: dict[str, list[str]] | None = None,
                  timeout: float = 300) -> ConstructOutcome:
        """Construct a FraudPipeline as the engine would for a program in `stack`, against a fresh fake monitor."""
        config = {"aws:region": inputs.get("region", "us-east-1")} if config is None else config
        monitor = FakeMonitor(region or config.get("aws:region") or inputs.get("region", "us-east-1"), stack)
        struct = struct_pb2.Struct()
        struct.update(inputs)
        request = provider_pb2.ConstructRequest(
            project=PROJECT, stack=stack, organization="organization", config=config, dryRun=dry_run,
            parallel=16, monitorEndpoint=monitor.address, type=COMPONENT_TYPE, name=name,
            parent=stack_urn(stack), inputs=struct,
            inputDependencies={k: provider_pb2.ConstructRequest.PropertyDependencies(urns=v)
                               for k, v in (dependencies or {}).items()},
        )
        started = time.monotonic()
        try:
            response = self.stub.Construct(request, timeout=timeout)
            state = _plain(rpc.deserialize_properties(response.state))
            return ConstructOutcome(resources=monitor.resources, urn=response.urn, state=state,
                                    seconds=time.monotonic() - started)
        except grpc.RpcError as exc:
            return ConstructOutcome(resources=monitor.resources, error=exc, seconds=time.monotonic() - started)
        finally:
            monitor.stop()

    def stop(self) -> None:
        if hasattr(self, "channel"):
            self.channel.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.engine.stop()


def stack_inputs(stack: str) -> dict[str, Any]:
    """A stack file's settings as FraudPipeline inputs: what a YAML program would write for that stack.

    Keys lose the `fraud-pipeline:` namespace, `aws:region` is `region`, and `environment` is the
    stack name (which `PipelineSettings.from_config` defaults it to); values stay as YAML typed them.
    """
    import yaml

    from fraud_pipeline.evaluation import stack_file

    config = (yaml.safe_load(stack_file(stack).read_text()) or {}).get("config") or {}
    inputs: dict[str, Any] = {"environment": stack}
    for key, value in config.items():
        inputs["region" if key == "aws:region" else key.split(":", 1)[-1]] = value
    return inputs
