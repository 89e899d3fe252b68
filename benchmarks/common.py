"""What every benchmark shares: the conditions of the run, timing helpers, results that print and serialise.

A benchmark module exposes `run(quick: bool = False, **options) -> Result` and
`main()` (its command line: `python -m benchmarks.<name> [--quick] [--json PATH]`).
A `Result` holds tables of figures, targets (each met or missed, with the margin)
and notes; it prints as plain text and is written as JSON for the runner, which
renders docs/benchmarks.md. Benchmarks never fail on a slow machine: a missed
target is printed, the exit status stays 0.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Distributions whose versions are part of the conditions of a run.
PACKAGES = ("pulumi", "pulumi-aws", "boto3", "botocore", "moto", "aws-lambda-powertools", "pytest")


# --------------------------------------------------------------------------- conditions
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO_ROOT, capture_output=True,
                               text=True, timeout=10).stdout.strip()
        return f"{head}{' + uncommitted changes' if dirty else ''}" if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def conditions() -> dict[str, Any]:
    """The machine, interpreter, date and package versions a figure was measured under."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        usable = os.cpu_count()
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": versions,
        "commit": _git(),
    }


def format_conditions(c: dict[str, Any]) -> list[str]:
    packages = ", ".join(f"{k} {v}" for k, v in c["packages"].items())
    return [
        f"date      {c['date']}",
        f"machine   {c['platform']}; {c['cpu']}; {c['cpu_count']} CPUs ({c['cpus_usable']} usable)",
        f"python    {c['python']}",
        f"packages  {packages}",
        f"commit    {c['commit']}",
    ]


# --------------------------------------------------------------------------- results
@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[Any]]


@dataclass
class Target:
    name: str
    target: str          # e.g. "<= 2.00 x json.loads"
    measured: str        # e.g. "0.91 x"
    met: bool
    margin: str          # e.g. "54% below the limit" / "missed by 0.3 x (15%)"


@dataclass
class Result:
    name: str
    title: str
    tables: list[Table] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    conditions: dict[str, Any] = field(default_factory=conditions)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        self.tables.append(Table(title, list(columns), [list(r) for r in rows]))

    def target(self, name: str, measured: float, limit: float, unit: str = "", *, what: str = "") -> Target:
        """A `measured <= limit` target; the margin says by how much it is met or missed."""
        met = measured <= limit
        if met:
            margin = f"met with {(limit - measured) / limit:.0%} headroom" if limit else "met"
        else:
            over = f" ({(measured - limit) / limit:.0%} over the limit)" if limit else ""
            margin = f"missed by {measured - limit:.3g}{unit}{over}"
        found = Target(name, f"<= {limit:.3g}{unit}{(' ' + what) if what else ''}", f"{measured:.3g}{unit}", met, margin)
        self.targets.append(found)
        return found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls(name=data["name"], title=data["title"], tables=[Table(**t) for t in data["tables"]],
                   targets=[Target(**t) for t in data["targets"]], notes=list(data["notes"]),
                   seconds=data.get("seconds", 0.0), conditions=data["conditions"])

    def text(self) -> str:
        lines = [f"== {self.title} ==", ""]
        lines += ["Conditions"] + [f"  {line}" for line in format_conditions(self.conditions)] + [""]
        for t in self.tables:
            lines += [t.title] + [f"  {line}" for line in text_table(t.columns, t.rows)] + [""]
        if self.targets:
            lines.append("Targets")
            for t in self.targets:
                lines.append(f"  [{'MET   ' if t.met else 'MISSED'}] {t.name}: {t.measured} (target {t.target}); {t.margin}")
            lines.append("")
        for note in self.notes:
            lines.append(f"note: {note}")
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)


def cell(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "n/a"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if abs(value) >= 0.001 or value == 0 else f"{value:.2e}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def text_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths))).rstrip()

    return [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]


# --------------------------------------------------------------------------- timing
def best_of(func: Callable[[], Any], repeat: int) -> float:
    """The fastest of `repeat` timed calls (perf_counter), in seconds."""
    best = float("inf")
    for _ in range(max(1, repeat)):
        started = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - started)
    return best


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
    return ordered[rank - 1]


def python_env() -> dict[str, str]:
    """The environment for child interpreters: this one, plus what the emulation and boto3 need offline."""
    env = dict(os.environ)
    env.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    return env


# --------------------------------------------------------------------------- command line
def main(run: Callable[..., Result], description: str, add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="a tiny input (a smoke run, not a measurement)")
    parser.add_argument("--json", metavar="PATH", help="also write the result as JSON to PATH")
    if add_arguments:
        add_arguments(parser)
    args = vars(parser.parse_args())
    out = args.pop("json")
    os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")
    started = time.perf_counter()
    result = run(**args)
    result.seconds = time.perf_counter() - started
    print(result.text(), flush=True)
    if out:
        Path(out).write_text(json.dumps(result.to_dict(), indent=2, default=str))
    return 0


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)
