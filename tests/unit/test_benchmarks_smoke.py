"""Smoke test of the benchmarks: each module imports and runs on a tiny input, and the report renders.

Quick runs measure nothing; they prove `make bench` will not crash on the code as it is.
"""

import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import Result  # noqa: E402
from benchmarks.report import BENCHMARKS, render  # noqa: E402


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_benchmark_runs_on_a_tiny_input(name):
    # GIVEN a benchmark module WHEN it runs quick THEN it returns printable figures, and targets where it has them
    module = importlib.import_module(f"benchmarks.{name}")
    result = module.run(quick=True)
    assert isinstance(result, Result) and result.name == name
    assert result.tables and all(t.rows for t in result.tables)
    if name in ("scoring", "aws_calls", "cold_start"):
        assert result.targets
    text = result.text()
    assert result.title in text and "Conditions" in text
    assert Result.from_dict(result.to_dict()).to_dict() == result.to_dict()


def test_report_renders_every_section_with_conditions_and_targets():
    # GIVEN a result with a table and a target WHEN the markdown is rendered THEN both appear with the conditions
    result = Result("scoring", "Scoring")
    result.table("figures", ["a", "b"], [["x", 1.5]])
    result.target("ratio", 1.0, 2.0, " x")
    text = render([result], 60.0)
    assert "## Conditions" in text and "capacity.md" in text
    assert "| x | 1.5 |" in text and "**met**" in text
