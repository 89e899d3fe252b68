"""Run the real handlers in-process, one invocation at a time, each with its own function's environment.

Lambda gives every function its own environment variables; here one process
hosts all seven, so an invocation swaps `os.environ` to exactly the variables
the program set on that function (plus the emulated endpoint) and restores it
after. Invocations are serialised, like one warm execution environment per
function with reserved concurrency 1.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

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

    def __init__(self, echo: io.TextIOBase | None = None):
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
        self.seconds: Counter[str] = Counter()
        self._last: str | None = None

    def site(self, name_or_arn: str) -> FunctionSite:
        if name_or_arn.startswith("arn:"):
            return self.topo.function_by_arn(name_or_arn)
        return self.topo.functions[name_or_arn]

    def invoke(self, name_or_arn: str, event: Any) -> Any:
        """Invoke the function's handler with its environment; exceptions propagate as function errors."""
        site = self.site(name_or_arn)
        module_name, _, attr = site.handler.rpartition(".")
        with self._lock:
            saved = dict(os.environ)
            saved_stdout = sys.stdout
            os.environ.update(self.base_env)
            os.environ.update(site.environment)
            os.environ["AWS_LAMBDA_FUNCTION_NAME"] = site.name
            os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = str(site.memory)
            sys.stdout = self.logs
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
                sys.stdout = saved_stdout
                os.environ.clear()
                os.environ.update(saved)
