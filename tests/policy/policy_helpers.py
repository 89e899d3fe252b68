"""Helpers shared by the policy-pack tests (a module of its own: `conftest` is ambiguous to import)."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

from fraud_policies import StackResource  # noqa: E402

_RESOURCES: dict[str, list[StackResource]] = {}


def stack_resources(ev) -> list[StackResource]:
    """Every custom resource as a stack policy sees it: props = outputs (which include the inputs)."""
    if ev.stack not in _RESOURCES:
        _RESOURCES[ev.stack] = [
            StackResource(type=r.type, name=r.name, urn=r.urn, props={**r.inputs, **r.outputs},
                          parent=r.parent, dependencies=tuple(r.depends_on))
            for r in ev.resources if r.custom
        ]
    return _RESOURCES[ev.stack]


def find(ev, type_: str, name_contains: str = ""):
    """The one recorded resource of `type_` whose logical or physical name contains `name_contains`."""
    return ev.one(type_, name_contains)


def broken_copy(ev, type_: str, name_contains: str, breaker) -> tuple[str, dict, str, str]:
    """A deep copy of a real resource's inputs with one setting broken by `breaker(props)`."""
    r = find(ev, type_, name_contains)
    props = copy.deepcopy(r.inputs)
    breaker(props)
    return r.type, props, r.name, r.urn


def stack_with(ev, type_: str, name_contains: str, breaker=None) -> list[StackResource]:
    """The stack's resources with one resource's props broken by `breaker(props)`, or removed if breaker is None."""
    target = find(ev, type_, name_contains).urn
    out = []
    for r in stack_resources(ev):
        if r.urn != target:
            out.append(r)
        elif breaker is not None:
            props = copy.deepcopy(r.props)
            breaker(props)
            out.append(StackResource(r.type, r.name, r.urn, props, r.parent, r.dependencies, dict(r.property_dependencies)))
    return out
