"""Run the real handlers in-process, one invocation at a time, each with its own function's environment.

Lambda gives every function its own environment variables; here one process
hosts all seven, so an invocation sets the variables the program set on that
function (plus the emulated endpoint) and restores the environment key by key
after. Invocations are serialised, like one warm execution environment per
function with reserved concurrency 1; a function's prints (its logs) are
captured for its thread only (`ThreadRoutedStdout`).
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import IO, Any

from .iam import CallRecorder
from .topology import FunctionSite, Topology


@dataclass
class LambdaContext:
    """The attributes Powertools and the handlers read from Lambda's context object."""

    function_name: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    timeout_seconds: int
    aws_request_id: str
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = "local"

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class LogTee(io.TextIOBase):
    """Stands in for stdout while handlers run: keeps every line they print (logs, EMF metrics)."""

    def __init__(self, echo: IO[str] | None = None):
        self.lines: list[str] = []
        self.echo = echo
        self._buffer = ""
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self._buffer += text
            *complete, self._buffer = self._buffer.split("\n")
            self.lines.extend(line for line in complete if line)
        if self.echo is not None:
            self.echo.write(text)
        return len(text)

    def flush(self) -> None:
        if self.echo is not None:
            self.echo.flush()


class ThreadRoutedStdout(io.TextIOBase):
    """`sys.stdout` for a process that hosts functions: a function's prints go to its capture, others' to the terminal.

    Installed once for the whole emulation (never swapped per invocation): the thread running a
    function routes its writes (Powertools logs and EMF metrics) to that invocation's capture, and
    every other thread (the pump printing alerts, the HTTP server) writes to the real stream.
    """

    def __init__(self, terminal: Any):
        self.terminal = terminal
        self._local = threading.local()

    def capture(self, sink: Any | None) -> None:
        """Route this thread's writes to `sink` (None: back to the terminal)."""
        self._local.sink = sink

    def _target(self) -> Any:
        return getattr(self._local, "sink", None) or self.terminal

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return bool(getattr(self.terminal, "isatty", lambda: False)())


class LambdaHost:
    def __init__(self, topo: Topology, endpoint: str, recorder: CallRecorder, logs: LogTee):
        self.topo = topo
        self.recorder = recorder
        self.logs = logs
        self.base_env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": topo.region,
            "AWS_DEFAULT_REGION": topo.region,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
        }
        self._lock = threading.RLock()
        self.invocations: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.seconds: defaultdict[str, float] = defaultdict(float)   # wall-clock seconds spent in each function
        self._last: str | None = None

    def site(self, name_or_arn: str) -> FunctionSite:
        if name_or_arn.startswith("arn:"):
            return self.topo.function_by_arn(name_or_arn)
        return self.topo.functions[name_or_arn]

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Invoke the function's handler with its environment; exceptions propagate as function errors.

        One invocation at a time (the lock): the process environment and the handlers' module state
        belong to the invocation holding it. Its prints go to its log capture through the
        thread-routed stdout, so lines other threads print meanwhile are never swallowed; the
        environment is restored key by key, never cleared under other threads.
        """
        site = self.site(name_or_arn)
        module_name, _, attr = site.handler.rpartition(".")
        with self._lock:
            router = _routed_stdout()
            saved = dict(os.environ)
            os.environ.update(self.base_env)
            os.environ.update(site.environment)
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = site.name
            os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(site.memory)
            router.capture(self.logs)
            self.recorder.current = site.name
            started = time.perf_counter()
            try:
                handler = getattr(importlib.import_module(module_name), attr)
                if self._last != site.name:
                    # Each function is its own execution environment: values cached at one function's
                    # cold start (parameters, rules) are not another's.
                    clients = sys.modules.get("handlers.clients")
                    if clients is not None and hasattr(clients, "reset_values"):
                        clients.reset_values()
                    self._last = site.name
                context = LambdaContext(site.name, site.arn, site.memory, site.timeout, str(uuid.uuid4()),
                                        log_group_name=f"/aws/lambda/{site.name}")
                return handler(event, context)
            except Exception:
                self.errors[site.name] += 1
                raise
            finally:
                self.seconds[site.name] += time.perf_counter() - started
                self.invocations[site.name] += 1
                self.recorder.current = None
                router.capture(None)
                _restore_environment(saved)


def _routed_stdout() -> ThreadRoutedStdout:
    """The process's thread-routed stdout, installed over whatever stdout is now if it is not one yet."""
    if not isinstance(sys.stdout, ThreadRoutedStdout):
        sys.stdout = ThreadRoutedStdout(sys.stdout)
    return sys.stdout


def _restore_environment(saved: dict[str, str]) -> None:
    for key in [k for k in os.environ if k not in saved]:
        os.environ.pop(key, None)
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value
