"""AWS clients and per-container caches, created once per cold start (lazily).

Importing this module creates nothing: the first call of `client(name)`
creates the client and keeps it for the life of the execution environment.
Every client has explicit timeouts and the standard retry mode; the ML client
has a short timeout and a single attempt (the caller falls back to the rules).

`cold_start_cache` marks the other per-container values (the card-token key,
the rules, the templates); `reset()` clears all of them (tests use it between
moto sessions).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_clients: dict[str, Any] = {}
_caches: list[Any] = []

#: Short deadline for the SageMaker endpoint: scoring falls back to the rules instead of waiting.
ML_CONNECT_TIMEOUT = 1.0
ML_READ_TIMEOUT = 2.0


def _config(service: str) -> Any:
    from botocore.config import Config

    if service == "sagemaker-runtime":
        return Config(connect_timeout=ML_CONNECT_TIMEOUT, read_timeout=ML_READ_TIMEOUT,
                      retries={"mode": "standard", "total_max_attempts": 1})
    return Config(connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3},
                  user_agent_extra="fraud-pipeline")


def client(service: str) -> Any:
    """The cached boto3 client for `service` (region from AWS_REGION / AWS_DEFAULT_REGION)."""
    found = _clients.get(service)
    if found is None:
        import boto3

        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        found = boto3.client(service, region_name=region, config=_config(service))
        _clients[service] = found
    return found


def cold_start_cache(func: F) -> F:
    """`functools.cache`, registered so `reset()` can clear it."""
    cached = functools.cache(func)
    _caches.append(cached)
    return cached  # type: ignore[return-value]


class _ResetHook:
    def __init__(self, func: Callable[[], None]):
        self.cache_clear = func


def on_reset(func: Callable[[], None]) -> None:
    """Also run `func` when the cached values are forgotten (module-level caches of other kinds)."""
    _caches.append(_ResetHook(func))


def reset() -> None:
    """Forget every client and cached value (as a new execution environment would)."""
    _clients.clear()
    reset_values()


def reset_values() -> None:
    """Forget the cached values (card-token key, rules, templates) but keep the clients.

    The local emulation hosts every function in one process: it calls this when it
    switches functions, so each reads its own parameters as its own cold start would.
    """
    for cached in _caches:
        cached.cache_clear()


class ConfigurationError(RuntimeError):
    """A required environment variable or parameter is missing or malformed."""


def env(name: str) -> str:
    """A required environment variable (the component sets all of them)."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise ConfigurationError(f"environment variable {name} is not set")
    return value


def ttl_cache(seconds: float) -> Callable[[F], F]:
    """Cache a no-argument function's value for `seconds` (parameters that operators may change)."""

    def decorate(func: F) -> F:
        state: dict[str, Any] = {}

        @functools.wraps(func)
        def wrapper() -> Any:
            import time

            now = time.monotonic()
            if "value" not in state or now >= state["expires"]:
                state["value"] = func()
                state["expires"] = now + seconds
            return state["value"]

        wrapper.cache_clear = state.clear  # type: ignore[attr-defined]
        _caches.append(wrapper)
        return wrapper  # type: ignore[return-value]

    return decorate
