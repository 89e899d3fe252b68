"""The type checker's configuration still covers what the source uses (pyproject.toml, [tool.mypy])."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]
#: `aws.<service>.` (a module of pulumi-aws) and `aws.<function>(` / `aws.<function>_output(` at the top level.
SERVICE = re.compile(r"\baws\.([a-z0-9_]+)\.")
FUNCTION = re.compile(r"\baws\.(get_[a-z0-9_]+?)(?:_output)?\(")


def checked_sources() -> list[Path]:
    return sorted(p for entry in CONFIG["files"] for p in (REPO / entry).rglob("*.py"))


def read_in_full() -> set[str]:
    """The pulumi-aws modules mypy reads (follow_imports normal), without the `.*`."""
    normal = [o for o in CONFIG["overrides"] if o.get("follow_imports") == "normal"]
    return {m.removesuffix(".*") for o in normal for m in o["module"]}


def test_every_pulumi_aws_module_the_source_uses_is_type_checked():
    # GIVEN pulumi-aws's modules skipped by default and those the library uses read in full
    assert any(o["module"] == ["pulumi_aws.*"] and o.get("follow_imports") == "skip" for o in CONFIG["overrides"])
    listed = read_in_full()
    # WHEN every reference to a pulumi-aws service or top-level function in the checked source is collected
    used: dict[str, set[str]] = {}
    for path in checked_sources():
        text = path.read_text()
        for module in {*SERVICE.findall(text), *FUNCTION.findall(text)}:
            used.setdefault(f"pulumi_aws.{module}", set()).add(str(path.relative_to(REPO)))
    # THEN each is read in full: an unlisted one would be Any, and its arguments unchecked
    missing = {m: sorted(files) for m, files in used.items() if m not in listed}
    assert not missing, f"add to pyproject.toml's follow_imports = \"normal\" list: {missing}"
    assert {"pulumi_aws.kms", "pulumi_aws.wafv2", "pulumi_aws.get_caller_identity"} <= set(used)
    # AND nothing is listed that the source no longer uses (beyond the package's own plumbing)
    plumbing = {"pulumi_aws", "pulumi_aws._utilities", "pulumi_aws._inputs", "pulumi_aws.outputs",
                "pulumi_aws.config", "pulumi_aws.provider"}
    assert listed - plumbing - set(used) == set()
