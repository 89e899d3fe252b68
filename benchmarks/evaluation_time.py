"""Evaluation time of the program for prod under Pulumi's mock engine, and the test suite's time.

The evaluation runs in fresh interpreters (best of N): the child times
importing `fraud_pipeline.evaluation` (Pulumi, pulumi-aws) and then
`evaluate("prod")` separately; the wall time of the whole child is reported
too. Then `make test` and `make test-fast` run once each, as the Makefile
has them (`make test`: ruff, mypy, the suite on pytest-xdist workers;
`make test-fast`: the suite without the tests marked `slow`), mypy on a clean
cache as on a fresh clone. Each reports wall time (and the suite's share, from
pytest's summary), CPU time (every process of the run), the load average
around it and its counts (`--skip-suite` leaves both out).
"""

from __future__ import annotations

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
#: pytest's own wall time, from the summary line (`... in 143.90s (0:02:23)`).
SUITE_SECONDS = re.compile(r" in ([\d.]+)s\b")
#: pytest-xdist workers, the Makefile's TEST_WORKERS (`auto`: one per CPU; `0`: one process).
WORKERS = "auto"
#: The targets run, and the goal for each on a 2-core machine, idle: the whole of `make test` in two
#: minutes, the fast loop in one.
LIMITS = {"test": 120.0, "test-fast": 60.0}


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


def make(target: str, workers: str = WORKERS) -> dict[str, Any]:
    """One run of `make <target>` in a subprocess, mypy's cache in a fresh directory (a fresh clone has none)."""
    command = ["make", "--no-print-directory", target, f"TEST_WORKERS={workers}"]
    load_before = os.getloadavg()[0]
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(prefix="mypy-cache-") as cache:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=REPO_ROOT, env={**python_env(), "MYPY_CACHE_DIR": cache},
                              capture_output=True, text=True, timeout=3600)
        wall = time.perf_counter() - started
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-1:] or [""]
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(tail[0])}
    seconds = SUITE_SECONDS.search(tail[0])
    return {"wall": wall, "suite": float(seconds.group(1)) if seconds else float("nan"), "cpu": cpu,
            "load_before": load_before, "load_after": os.getloadavg()[0], "counts": counts,
            "summary": tail[0].strip("= "), "returncode": done.returncode, "command": " ".join(command)}


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
    runs = {}
    for target in LIMITS:
        progress(f"evaluation_time: make {target} (TEST_WORKERS={workers}, once)")
        runs[f"make {target}"] = make(target, workers)
    kinds = sorted({kind for r in runs.values() for kind in r["counts"]})
    rows = [["in all, wall s", *(r["wall"] for r in runs.values())],
            ["the suite (pytest's summary), wall s", *(r["suite"] for r in runs.values())],
            ["the rest (ruff, mypy on a clean cache, make), wall s", *(r["wall"] - r["suite"] for r in runs.values())],
            ["CPU time, s (every process of the run)", *(r["cpu"] for r in runs.values())],
            ["load average (1 min) before", *(r["load_before"] for r in runs.values())],
            ["load average (1 min) after", *(r["load_after"] for r in runs.values())]]
    rows += [[kind, *(r["counts"].get(kind, 0) for r in runs.values())] for kind in kinds]
    result.table(f"`make test` and `make test-fast`, one run each (TEST_WORKERS={workers}; {os.cpu_count()} CPUs)",
                 ["figure", *runs], rows)
    for (name, r), limit in zip(runs.items(), LIMITS.values()):
        result.target(f"`{name}` wall time", r["wall"], limit, " s", what="(a 2-core machine, idle)")
        result.notes.append(f"{r['command']}: {r['summary']}")
        if r["returncode"] != 0:
            result.notes.append(f"WARNING: `{name}` exited {r['returncode']} (failures above are the suite's, ruff's "
                                "or mypy's, not the benchmark's)")
    result.notes.append("the wall times depend on what else the machine runs: see the load averages")
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0], lambda p: (
        p.add_argument("--repeat", type=int, default=REPEAT),
        p.add_argument("--stack", default="prod"),
        p.add_argument("--skip-suite", action="store_true", help="leave out the test suite runs"),
        p.add_argument("--workers", default=WORKERS, help="TEST_WORKERS for the make runs (pytest-xdist -n; default auto)")))


if __name__ == "__main__":
    raise SystemExit(main())
