"""Powertools Logger, Metrics and Tracer, configured once per function.

Service name, namespace and log level come from the POWERTOOLS_* variables the
component sets per function. The logger's formatter masks anything that looks
like a card number (13-19 digits, spaces/dashes allowed) as a last line of
defence: the handlers never log request bodies or card data in the first place.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

#: 13-19 digits, optionally separated by single spaces/dashes, not part of a longer digit run.
#: (12-digit runs are left alone: every ARN carries a 12-digit account id, and 12-digit PANs are
#: all but unused; the handlers never log card data in the first place.)
PAN_RE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
_EPOCH_MS_RE = re.compile(r"^1[0-9]{12}$")
REDACTED = "[REDACTED-PAN]"


def mask_pans(text: str) -> str:
    """Replace card-number-like digit runs; plain 13-digit epoch-millisecond values are kept."""

    def repl(match: re.Match[str]) -> str:
        return match.group(0) if _EPOCH_MS_RE.match(match.group(0)) else REDACTED

    return PAN_RE.sub(repl, text)


class RedactingFormatter(LambdaPowertoolsFormatter):
    """Powertools JSON log lines with card-number-like digit runs masked."""

    def serialize(self, log: dict) -> str:  # type: ignore[override]
        return mask_pans(super().serialize(log))


logger = Logger(logger_formatter=RedactingFormatter(), utc=True)
metrics = Metrics()
class LazyTracer:
    """Powertools Tracer, created at the first invocation instead of at import.

    Importing the X-Ray SDK costs more than importing boto3 and creating two
    clients; deferring it keeps handler imports cheap, and with
    POWERTOOLS_TRACE_DISABLED=true (stacks without X-Ray) it is never loaded.
    Response capture is always off (and POWERTOOLS_TRACER_CAPTURE_RESPONSE=false).
    """

    def __init__(self) -> None:
        self._tracer: Any = None

    @property
    def enabled(self) -> bool:
        return os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")

    def _real(self) -> Any:
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def _lazy(self, kind: str, func: Callable[..., Any]) -> Callable[..., Any]:
        decorated: list[Callable[..., Any]] = []

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not self.enabled:
                return func(*args, **kwargs)
            if not decorated:
                decorate = getattr(self._real(), kind)
                decorated.append(decorate(func, capture_response=False))
            return decorated[0](*args, **kwargs)

        return wrapper

    def capture_lambda_handler(self, func: Callable[..., Any] | None = None, **_: Any) -> Any:
        if func is None:
            return lambda f: self._lazy("capture_lambda_handler", f)
        return self._lazy("capture_lambda_handler", func)

    def capture_method(self, func: Callable[..., Any] | None = None, **_: Any) -> Any:
        if func is None:
            return lambda f: self._lazy("capture_method", f)
        return self._lazy("capture_method", func)


tracer = LazyTracer()
