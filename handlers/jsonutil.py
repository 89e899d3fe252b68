"""Strict JSON in, plain JSON out.

Input is parsed so that validation can judge exactly what the client sent:

* numbers with a fraction or exponent become `Decimal` (no binary rounding, so
  "at most two decimals" is checked on the digits the client wrote);
* `NaN`, `Infinity` and `-Infinity` (which Python's parser accepts) become a
  `NonFinite` marker that validation refuses with a message naming the field;
* a key repeated inside one object is an error (two parsers reading the same
  body differently is a classic way to smuggle a value past validation);
* anything the parser cannot take (bad syntax, nesting too deep, integers too
  long, bad UTF-8) is an `InvalidJson`, never an unhandled exception.

Output (`dumps`) writes `Decimal` as a JSON number: integral values as
integers, others as the shortest float text (amounts have at most two
decimals and are below 10^6, so nothing is lost).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any


class InvalidJson(ValueError):
    """The text is not one JSON document this service accepts."""

    def __init__(self, message: str, field: str = "body") -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NonFinite:
    """Marks a NaN / Infinity literal in the input (refused by validation)."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"NonFinite({self.literal})"


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _pairs_hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


def loads(text: str | bytes) -> Any:
    """Parse `text` strictly; raise `InvalidJson` for anything not acceptable."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidJson("is not valid UTF-8") from None
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_constant=NonFinite,
            object_pairs_hook=_pairs_hook,
        )
    except _DuplicateKey as dup:
        raise InvalidJson("appears more than once in the same object", field=safe_field_name(dup.key)) from None
    except RecursionError:
        raise InvalidJson("is nested too deeply") from None
    except (ValueError, TypeError):
        # json.JSONDecodeError is a ValueError; so is an over-long integer literal.
        raise InvalidJson("is not valid JSON") from None


def safe_field_name(name: Any, limit: int = 64) -> str:
    """A field name fit to echo back to the client: printable ASCII-escaped, bounded."""
    text = name if isinstance(name, str) else repr(name)
    text = text.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any, **kwargs: Any) -> str:
    """Compact JSON, `Decimal` as numbers, ASCII-only (safe for any transport)."""
    kwargs.setdefault("separators", (",", ":"))
    kwargs.setdefault("sort_keys", False)
    return json.dumps(value, default=_default, ensure_ascii=True, allow_nan=False, **kwargs)


def to_plain(value: Any) -> Any:
    """Deep-convert DynamoDB-deserialised values (`Decimal`, sets) into JSON types."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(to_plain(v) for v in value)
    if isinstance(value, Decimal):
        return _default(value)
    return value
