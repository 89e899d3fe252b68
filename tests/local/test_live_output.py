"""Live output: a line printed for a person is never swallowed by a function's log capture.

`serve` prints each published alert while other threads run functions. The Lambda host
used to swap `sys.stdout` for its log capture during every invocation, so an alert printed
by the pump thread while the API thread ran a handler went into the capture, not to the
terminal (59 of 108 lines lost under 32 concurrent clients). Capture is now per thread.
"""

from __future__ import annotations

import io
import sys
import threading
from types import SimpleNamespace

import pytest

from fraud_pipeline.local.host import LambdaHost, LogTee, ThreadRoutedStdout
from fraud_pipeline.local.iam import CallRecorder
from fraud_pipeline.local.topology import FunctionSite

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
import live_output_fixture as blocking  # noqa: E402


@pytest.fixture
def host_and_terminal():
    site = FunctionSite("blocking", "fraud-blocking-test", "arn:aws:lambda:us-east-1:123456789012:function:fraud-blocking-test",
                        "live_output_fixture.handler", {"SOME_VAR": "x"}, 10, 128, {})
    topo = SimpleNamespace(region="us-east-1", account="123456789012", functions={site.name: site})
    logs = LogTee()
    host = LambdaHost(topo, "http://127.0.0.1:1", CallRecorder("us-east-1", "123456789012"), logs)
    blocking.started.clear()
    blocking.release.clear()
    yield host, logs
    blocking.release.set()


@pytest.fixture
def terminal():
    """The process's stdout for the test's call phase (pytest re-installs its capture after fixtures run)."""
    original, stream = sys.stdout, io.StringIO()
    sys.stdout = ThreadRoutedStdout(stream)
    try:
        yield stream
    finally:
        sys.stdout = original


def test_a_line_printed_while_another_thread_runs_a_function_reaches_the_terminal(host_and_terminal, request):
    host, logs = host_and_terminal
    terminal = request.getfixturevalue("terminal")
    # GIVEN a function invocation in progress on another thread (its prints are its logs)
    worker = threading.Thread(target=host.invoke, args=("fraud-blocking-test", {}))
    worker.start()
    assert blocking.started.wait(5)
    # WHEN this thread prints an alert line meanwhile
    print("[fraud-alerts-dev] alert for txn-1", flush=True)
    blocking.release.set()
    worker.join(5)
    # THEN the line is on the terminal, and the function's own line is in its logs only
    assert "[fraud-alerts-dev] alert for txn-1" in terminal.getvalue()
    assert "handler log line" not in terminal.getvalue()
    assert any("handler log line" in line for line in logs.lines)
    assert not any("alert for txn-1" in line for line in logs.lines)


def test_the_process_environment_is_not_cleared_under_other_threads(host_and_terminal, monkeypatch):
    host, _ = host_and_terminal
    monkeypatch.setenv("SERVE_OWN_SETTING", "kept")
    seen: list[str | None] = []
    # GIVEN a function running on another thread WHEN this thread reads its own process setting
    worker = threading.Thread(target=host.invoke, args=("fraud-blocking-test", {}))
    worker.start()
    assert blocking.started.wait(5)
    import os
    seen.append(os.environ.get("SERVE_OWN_SETTING"))
    blocking.release.set()
    worker.join(5)
    # THEN it is there throughout, and the function's variables are gone afterwards
    assert seen == ["kept"] and os.environ.get("SERVE_OWN_SETTING") == "kept"
    assert "SOME_VAR" not in os.environ
