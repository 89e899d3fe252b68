"""Reading property bags the way CrossGuard hands them over, without tripping on unknowns.

During `pulumi preview`, a property computed from another resource's output
(an ARN, a policy document rendered with `Output.apply`) is not known yet. The
Pulumi engine marks it with one of the sentinel strings below; `pulumi_policy`
wraps props in a proxy that raises on them. `policy/__main__.py` unwraps that
proxy to plain dicts and lists (keeping the sentinels), so the policies here
see plain data and decide for themselves: a value that cannot be known at
preview is *skipped*, never reported as a violation, and checked again by
`pulumi up` (which runs the policies on the real values).

`None` is different from unknown: it means the property is absent.
"""

from __future__ import annotations

import json
from typing import Any

#: The engine's unknown-value sentinels (the Pulumi wire protocol; `pulumi_policy.proxy` has the same list).
UNKNOWN_SENTINELS = frozenset({
    "1c4a061d-8072-4f0a-a4cb-0ff528b18fe7",  # boolean
    "3eeb2bf0-c639-47a8-9e75-3b44932eb421",  # number
    "04da6b54-80e4-46f7-96ec-b56ff0331ba9",  # string
    "6a19a0b0-7e62-4c92-b797-7f8e31da9cc2",  # array
    "030794c1-ac77-496b-92df-f27374a8bd58",  # asset
    "e48ece36-62e2-4504-bad9-02848725956a",  # archive
    "dd056dcd-154b-4c76-9bd3-c8f88648b5ff",  # object
})

#: What tests (and callers without an engine) may use to mark a value unknown.
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def is_unknown(value: Any) -> bool:
    return isinstance(value, str) and value in UNKNOWN_SENTINELS


def get(props: Any, *path: str | int) -> Any:
    """props[path...], or None if any step is absent; an unknown step returns the sentinel."""
    cur = props
    for step in path:
        if is_unknown(cur):
            return cur
        if isinstance(step, int):
            if not isinstance(cur, (list, tuple)) or step >= len(cur):
                return None
            cur = cur[step]
        else:
            if not isinstance(cur, dict):
                return None
            cur = cur.get(step)
    return cur


def as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


def num(value: Any) -> float | None:
    """Numbers arrive as floats (JSON); strings of digits are accepted too. None if absent or not a number."""
    if isinstance(value, bool) or value is None or is_unknown(value):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def fmt(value: Any) -> str:
    n = num(value)
    if n is not None and n.is_integer():
        return str(int(n))
    return repr(value)


def parse_json(value: Any) -> Any:
    """A JSON document given as a string or already as a dict; None if absent, the sentinel if unknown."""
    if value is None or is_unknown(value):
        return value
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return None
    return None


def short_type(resource_type: str) -> str:
    """`aws:sqs/queue:Queue` -> `aws:sqs/Queue` style label for messages."""
    parts = resource_type.split(":")
    if len(parts) == 3:
        return f"{parts[1].split('/')[0]}.{parts[2]}"
    return resource_type


def label(resource_type: str, name: str, props: Any = None) -> str:
    """How a message names a resource: type, logical name and, when known, the physical name."""
    physical = None
    if isinstance(props, dict):
        for key in ("name", "bucket", "stageName"):
            v = props.get(key)
            if isinstance(v, str) and v and not is_unknown(v):
                physical = v
                break
    text = f"{short_type(resource_type)} '{name}'" if name else short_type(resource_type)
    if physical and physical != name:
        text += f" ({physical})"
    return text
