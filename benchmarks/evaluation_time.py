"""Evaluation time of the program for prod under Pulumi's mock engine, and the test suite's time.

The evaluation runs in fresh interpreters (best of N): the child times
importing `fraud_pipeline.evaluation` (Pulumi, pulumi-aws) and then
`evaluate("prod")` separately; the wall time of the whole child is reported
too. The test suite runs once, as `python -m pytest -q -p no:cacheprovider`
in a subprocess, for its wall time and counts (`--skip-suite` leaves it out).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
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


def suite() -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=REPO_ROOT,
                          env=python_env(), capture_output=True, text=True, timeout=3600)
    wall = time.perf_counter() - started
    tail = [line for line in done.stdout.strip().splitlines() if line.strip()][-1:] or [""]
    counts = {kind.rstrip("s") if kind.startswith("error") else kind: int(n) for n, kind in SUMMARY.findall(tail[0])}
    return {"wall": wall, "counts": counts, "summary": tail[0].strip("= "), "returncode": done.returncode}


def run(quick: bool = False, repeat: int = REPEAT, stack: str = "prod", skip_suite: bool = False) -> Result:
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
    else:
        progress("evaluation_time: running the test suite once (pytest -q -p no:cacheprovider)")
        s = suite()
        rows = [["wall time, s", s["wall"]]] + [[kind, n] for kind, n in sorted(s["counts"].items())]
        result.table("Test suite (python -m pytest -q -p no:cacheprovider, one run)", ["figure", "value"], rows)
        result.notes.append(f"pytest summary: {s['summary']}")
        if s["returncode"] != 0:
            result.notes.append(f"WARNING: the suite exited {s['returncode']} (failures above are the suite's, "
                                "not the benchmark's)")
    return result


def main() -> int:
    return cli_main(run, __doc__.splitlines()[0], lambda p: (
        p.add_argument("--repeat", type=int, default=REPEAT),
        p.add_argument("--stack", default="prod"),
        p.add_argument("--skip-suite", action="store_true", help="leave out the test suite run")))


if __name__ == "__main__":
    raise SystemExit(main())
