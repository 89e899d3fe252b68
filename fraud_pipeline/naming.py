"""Physical names: `<base>-<env>-<suffix>`, checked against each service's limits.

Names are computed, never free-typed, so two stacks of the same account cannot
collide and a too-long name fails at preview rather than at `CreateBucket`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import pulumi


class ComponentArgs(TypedDict):
    """What every component of the pipeline takes: its naming and its tags (the child Args extend it)."""

    environment: str
    """Environment name (dev, staging, prod), the `<env>` of physical names."""
    environment_suffix: str
    """Suffix of physical names, so two stacks of one account never collide."""
    tags: NotRequired[pulumi.Input[Mapping[str, str]]]
    """Tags for every taggable resource the component creates (`Monitoring` and `PrivateNetwork` merge them
    over the base tags)."""


#: The longest name each kind of resource accepts (AWS service quotas).
MAX_LENGTH: dict[str, int] = {
    "bucket": 63,
    "queue": 80,
    "function": 64,
    "role": 64,
    "table": 255,
    "stream": 128,
    "topic": 256,
    "state_machine": 80,
    "event_bus": 256,
    "event_rule": 64,
    "web_acl": 128,
    "api": 1024,
    "alarm": 255,
    "dashboard": 255,
    "alias": 256,
    "vpc": 255,
    "default": 255,
}

_BASE = re.compile(r"^[a-z][a-z0-9-]*[a-z0-9]$")


@dataclass(frozen=True)
class Namer:
    """Derives every physical name of one environment."""

    environment: str
    suffix: str

    def name(self, base: str, kind: str = "default") -> str:
        if not _BASE.match(base):
            raise ValueError(f"name base {base!r} must be lowercase letters, digits and dashes")
        full = f"{base}-{self.environment}-{self.suffix}"
        limit = MAX_LENGTH[kind]
        if len(full) > limit:
            raise ValueError(f"{kind} name {full!r} is {len(full)} characters; AWS allows {limit}")
        return full

    def log_group(self, service_path: str, base: str) -> str:
        """Log group names: `/aws/<service>/<physical name>` where AWS expects that prefix."""
        return f"/aws/{service_path}/{self.name(base)}"

    def parameter(self, leaf: str) -> str:
        """SSM parameter path of this environment (`/fraud-detection/<env>/<leaf>`, the path operators and the handlers use)."""
        return f"/fraud-detection/{self.environment}/{leaf}"
