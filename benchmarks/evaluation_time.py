"""Evaluation time of the program for prod under Pulumi's mock engine, and the test suite's time.

The evaluation runs in fresh interpreters (best of N): the child times
importing `fraud_pipeline.evaluation` (Pulumi, pulumi-aws) and then
`evaluate("prod")` separately; the wall time of the whole child is reported
too. Then `make test`'s work runs once, in subprocesses: `ruff check .`,
`mypy` on a clean cache (as on a fresh clone) and the suite on pytest-xdist
workers (`-n auto --dist loadgroup`); and `make test-fast`'s once (the suite
without the tests marked `slow`). Each reports wall time, CPU time (every
process of the run), the load average around it and its counts
(`--skip-suite` leaves both out).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

from .common import REPO_ROOT, Result, progress, python_env
from .common import main as cli_main

REPEAT = 3
CHILD = """import json, time
t0 = time.perf_counter()
from fraud_pipeline.evaluation import evaluate
t1 = time.perf_counter()
ev = evaluate({stack!r})
t2 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "evaluate": t2 - t1, "resources": len(ev.resources)}}))
"""
SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")
#: pytest-xdist workers, as the Makefile's TEST_WORKERS (`auto`: one per CPU; `0`: one process).
WORKERS = "auto"
#: `make test` and `make test-fast`: whether ruff and mypy run first, and pytest's arguments (the Makefile runs
#: the same; tests/conftest.py marks `slow`).
SUITES: dict[str, tuple[bool, list[str]]] = {
    "make test": (True, []),
    "make test-fast": (False, ["-m", "not slow"]),
}
#: The goal for the suite on a 2-core machine, idle: the whole suite in two minutes, the fast loop in one.
LIMITS = {"make test": 120.0, "make test-fast": 60.0}


def evaluation(stack: str, repeat: int) -> dict[str, Any]:
    best: dict[str, Any] = {"import": float("inf"), "evaluate": float("inf"), "wall": float("inf"), "resources": 0}
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", CHILD.format(stack=stack)], cwd=REPO_ROOT, env=python_env(),
                              capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"evaluating {stack} failed: {done.stderr.strip()[-2000:]}")
        figures = json.loads(done.stdout.strip().splitlines()[-1])
        best["import"] = min(best["import"], figures["import"])
        best["evaluate"] = min(best["evaluate"], figures["evaluate"])
        best["wall"] = min(best["wall"], wall)
        best["resources"] = figures["resources"]
    return best


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run `command` in the repository; its output, wall time and CPU time (it and its children)."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=python_env(), capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return done, wall, (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)


def checks() -> dict[str, Any]:
    """`make test`'s first steps: ruff, then mypy on a clean cache (a fresh clone has none)."""
    with tempfile.TemporaryDirectory(prefix="mypy-cache-") as cache:
        ruff, ruff_wall, ruff_cpu = timed([sys.executable, "-m", "ruff", "check", "."])
        mypy, mypy_wall, mypy_cpu = timed([sys.executable, "-m", "mypy", "--cache-dir", cache])
    return {"wall": ruff_wall + mypy_wall, "cpu": ruff_cpu + mypy_cpu,
            "failed": [name for name, done in (("ruff", ruff), ("mypy", mypy)) if done.returncode != 0]}


def suite(extra: list[str], workers: str = WORKERS) -> dict[str, Any]:
    """One run of the test suite in a subprocess, on `workers` pytest-xdist workers (one process without xdist)."""
    parallel = ["-n", workers, "--dist", "loadgroup"] if importlib.util.find_spec("xdist") else []
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *parallel, *extra]
    load_before = os.getloadavg()[0]
    done, wall, cpu = timed(command)
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-1:] or [""]
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(tail[0])}
    return {"wall": wall, "cpu": cpu, "load_before": load_before, "load_after": os.getloadavg()[0], "counts": counts,
            "summary": tail[0].strip("= "), "returncode": done.returncode,
            "command": " ".join(c if " " not in c else repr(c) for c in ["python", *command[1:]])}


def run(quick: bool = False, repeat: int = REPEAT, stack: str = "prod", skip_suite: bool = False,
        workers: str = WORKERS) -> Result:
    if quick:
        repeat, skip_suite = 1, True
    result = Result("evaluation_time", "Evaluation time of the program (mock engine) and the test suite's time")
    progress(f"evaluation_time: evaluating '{stack}' in {repeat} fresh interpreter(s)")
    ev = evaluation(stack, repeat)
    result.table(f"Program evaluation for '{stack}' under the mock engine, best of {repeat} fresh interpreters "
                 f"({ev['resources']} resources)", ["phase", "seconds"], [
                     ["import fraud_pipeline.evaluation (pulumi, pulumi-aws)", ev["import"]],
                     [f"evaluate('{stack}')", ev["evaluate"]],
                     ["whole child process (startup + import + evaluate)", ev["wall"]],
                 ])
    if skip_suite:
        result.notes.append("test suite skipped (--skip-suite)")
        return result
    runs, first = {}, {}
    for name, (with_checks, extra) in SUITES.items():
        if with_checks:
            progress(f"evaluation_time: `{name}`: ruff check . and mypy on a clean cache")
            first[name] = checks()
        progress(f"evaluation_time: `{name}`: the test suite (pytest -n {workers}, once)")
        runs[name] = suite(extra, workers)
    none = {"wall": 0.0, "cpu": 0.0, "failed": []}
    total = {name: first.get(name, none)["wall"] + s["wall"] for name, s in runs.items()}
    kinds = sorted({kind for s in runs.values() for kind in s["counts"]})
    rows = [["ruff + mypy (clean cache), wall s", *(first.get(n, none)["wall"] for n in runs)],
            ["the suite, wall s", *(s["wall"] for s in runs.values())],
            ["in all, wall s", *total.values()],
            ["CPU time, s (every process of the run)", *(first.get(n, none)["cpu"] + s["cpu"] for n, s in runs.items())],
            ["load average (1 min) before the suite", *(s["load_before"] for s in runs.values())],
            ["load average (1 min) after", *(s["load_after"] for s in runs.values())]]
    rows += [[kind, *(s["counts"].get(kind, 0) for s in runs.values())] for kind in kinds]
    result.table(f"`make test` and `make test-fast`, one run each, the suite on pytest-xdist workers "
                 f"(-n {workers} --dist loadgroup; {os.cpu_count()} CPUs)", ["figure", *runs], rows)
    for name, s in runs.items():
        result.target(f"`{name}` wall time", total[name], LIMITS[name], " s", what="(a 2-core machine, idle)")
        result.notes.append(f"{name}: {s['command']}: {s['summary']}")
        if s["returncode"] != 0:
            result.notes.append(f"WARNING: `{name}` exited {s['returncode']} (failures above are the suite's, "
                                "not the benchmark's)")
        for tool in first.get(name, none)["failed"]:
            result.notes.append(f"WARNING: {tool} failed in `{name}`")
    if not importlib.util.find_spec("xdist"):
        result.notes.append("pytest-xdist is not installed: the suite ran in one process (make install adds it)")
    result.notes.append("the wall times depend on what else the machine runs: see the load averages")
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0], lambda p: (
        p.add_argument("--repeat", type=int, default=REPEAT),
        p.add_argument("--stack", default="prod"),
        p.add_argument("--skip-suite", action="store_true", help="leave out the test suite runs"),
        p.add_argument("--workers", default=WORKERS, help="pytest-xdist workers for the suite runs (-n; default auto)")))


if __name__ == "__main__":
    raise SystemExit(main())
