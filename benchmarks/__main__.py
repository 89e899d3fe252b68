"""`python -m benchmarks` (`make bench`): every benchmark in sequence, each in a fresh interpreter, then docs/benchmarks.md.

    python -m benchmarks                  # all of them, then rewrite docs/benchmarks.md
    python -m benchmarks --skip-suite     # without the test-suite run (quicker)
    python -m benchmarks --only scoring --only cold_start   # some of them; the docs are left alone
    python -m benchmarks --quick          # tiny inputs, a smoke run; the docs are left alone

Benchmarks print figures and targets; a missed target does not fail the run.
The exit status is non-zero only when a benchmark itself crashed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import REPO_ROOT, Result, python_env
from .report import BENCHMARKS, render

DOCS = REPO_ROOT / "docs" / "benchmarks.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="run only this benchmark (repeatable)")
    parser.add_argument("--skip-suite", action="store_true", help="leave the test-suite run out of evaluation_time")
    parser.add_argument("--quick", action="store_true", help="tiny inputs (smoke run); the docs are not rewritten")
    parser.add_argument("--docs", type=Path, default=DOCS, help="markdown file to (re)write (default docs/benchmarks.md)")
    parser.add_argument("--no-docs", action="store_true", help="do not rewrite the markdown")
    args = parser.parse_args(argv)

    names = args.only or list(BENCHMARKS)
    results: list[Result] = []
    crashed: list[str] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for name in names:
            out = Path(tmp) / f"{name}.json"
            command = [sys.executable, "-m", f"benchmarks.{name}", "--json", str(out)]
            if args.quick:
                command.append("--quick")
            if args.skip_suite and name == "evaluation_time":
                command.append("--skip-suite")
            print(f"\n### benchmarks.{name}", flush=True)
            done = subprocess.run(command, cwd=REPO_ROOT, env=python_env())
            if done.returncode != 0 or not out.exists():
                print(f"[bench] benchmarks.{name} FAILED (exit {done.returncode})", file=sys.stderr, flush=True)
                crashed.append(name)
                continue
            results.append(Result.from_dict(json.loads(out.read_text())))
    total = time.perf_counter() - started

    print("\n### summary")
    for r in results:
        for t in r.targets:
            print(f"  [{'MET   ' if t.met else 'MISSED'}] {r.name}: {t.name}: {t.measured} (target {t.target}); {t.margin}")
    for name in crashed:
        print(f"  [CRASH ] {name}")
    print(f"  {len(results)} benchmark(s) in {total:.0f} s")

    complete = not args.only and not args.quick and not crashed
    if args.no_docs:
        pass
    elif complete:
        args.docs.write_text(render(results, total))
        print(f"  wrote {args.docs.relative_to(REPO_ROOT) if args.docs.is_relative_to(REPO_ROOT) else args.docs}")
    else:
        print("  docs not rewritten (a partial, quick or failed run)")
    return 1 if crashed else 0


if __name__ == "__main__":
    raise SystemExit(main())
