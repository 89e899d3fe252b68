"""Field rules for a transaction, shared by the API, the stream ingest and the review workflow.

Pure: no AWS, no clock reads (callers pass `now_ms`). Every problem is a
`FieldError(field, message)`; all of them are collected (not just the first),
and no message ever quotes the submitted value (it could be a card number).

Two modes:

* ``api``    -- `amount`, `merchant`, `card_number` and `location` are required;
* ``stream`` -- only `transaction_id` and `amount` are required (producers send
  minimal records).

The result of a successful validation is a normalised transaction dict (see
`Transaction` keys below) plus the card digits, which the caller turns into a
token straight away and then drops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from .jsonutil import NonFinite, safe_field_name

Mode = Literal["api", "stream"]

MAX_AMOUNT = Decimal("1000000")
CENT = Decimal("0.01")
MAX_TEXT = 128
MAX_CUSTOMER_ID = 64
TRANSACTION_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CARD_CHARS_RE = re.compile(r"^[0-9 -]+$")
CARD_LAST4_RE = re.compile(r"^[0-9]{4}$")
CARD_TOKEN_RE = re.compile(r"^[0-9a-f]{64}$")
#: Earliest accepted timestamp (2000-01-01T00:00:00Z) and allowed clock skew into the future.
MIN_TIMESTAMP_MS = 946_684_800_000
MAX_FUTURE_SKEW_MS = 5 * 60 * 1000
DEFAULT_CURRENCY = "USD"
CARD_IN_TEXT = "must not contain a card number"
#: Most details one response lists (a body full of junk keys stays a small answer).
MAX_DETAILS = 25

API_FIELDS = (
    "amount", "merchant", "card_number", "location", "currency", "customer_id",
    "transaction_id", "timestamp", "hour", "location_mismatch", "velocity_flag",
)
REQUIRED: dict[str, tuple[str, ...]] = {
    "api": ("amount", "merchant", "card_number", "location"),
    "stream": ("transaction_id", "amount"),
}

#: Active ISO 4217 alphabetic codes (funds and precious-metal codes excluded).
ISO_4217 = frozenset("""
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP
GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD
KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK
NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS
SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST
XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL
""".split())

# Characters refused in free text: C0/C1 controls, line/paragraph separators,
# bidi overrides and isolates (they let a merchant name spoof an alert), lone surrogates.
_BAD_TEXT_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


#: 13-19 digits, single spaces/dashes allowed, not inside a longer digit run.
_DIGIT_RUN_RE = re.compile(r"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def contains_card_number(text: str) -> bool:
    """True when `text` holds a Luhn-valid run of 13-19 digits (what PCI scanners flag as a PAN)."""
    return any(luhn_ok(m.group(0).replace(" ", "").replace("-", "")) for m in _DIGIT_RUN_RE.finditer(text))


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


@dataclass
class Validated:
    """Outcome of `validate_transaction`."""

    errors: list[FieldError] = field(default_factory=list)
    transaction: dict[str, Any] | None = None
    #: Card digits (separators removed); only for the caller to tokenise, never to store.
    card_number: str | None = None
    #: Fields the client actually sent (the idempotency fingerprint is built from these).
    supplied: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return not self.errors


class InvalidInput(ValueError):
    """Raised by callers that want an exception (the review workflow); lists every problem."""

    def __init__(self, errors: list[FieldError], what: str = "input") -> None:
        self.errors = errors
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:MAX_DETAILS])
        super().__init__(f"invalid {what}: {summary}")


# --------------------------------------------------------------------------- field checks
def check_amount(value: Any) -> tuple[Decimal | None, str | None]:
    if isinstance(value, NonFinite):
        return None, "must be a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        return None, "must be a JSON number"
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None, "must be a finite number"
        value = Decimal(repr(value))
    amount = Decimal(value)
    if not amount.is_finite():
        return None, "must be a finite number"
    if amount <= 0:
        return None, "must be greater than 0"
    if amount > MAX_AMOUNT:
        return None, "must not exceed 1000000"
    try:
        cents = amount.quantize(CENT)
    except InvalidOperation:  # pragma: no cover - guarded by the range check
        return None, "must have at most two decimal places"
    if cents != amount:
        return None, "must have at most two decimal places"
    return cents, None


def check_text(value: Any, *, max_len: int = MAX_TEXT, trim: bool = True) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, "must be a string"
    if _BAD_TEXT_RE.search(value):
        return None, "must not contain control, bidirectional-override or invalid Unicode characters"
    text = value.strip() if trim else value
    if not 1 <= len(text) <= max_len:
        return None, f"must be 1-{max_len} characters" + (" after trimming" if trim else "")
    if contains_card_number(text):
        return None, CARD_IN_TEXT
    return text, None


def country_of(location: str) -> str:
    """The country part of a location: after the last comma, or the whole string."""
    return location.rsplit(",", 1)[-1].strip()


def check_customer_id(value: Any) -> tuple[str | None, str | None]:
    return check_text(value, max_len=MAX_CUSTOMER_ID, trim=False)


def check_location(value: Any) -> tuple[str | None, str | None]:
    text, error = check_text(value)
    if error:
        return None, error
    assert text is not None
    if not country_of(text):
        return None, "must name a country after the last comma"
    return text, None


def check_card_number(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, "must be a string"
    if not CARD_CHARS_RE.match(value):
        return None, "must contain only digits, spaces and dashes"
    digits = value.replace(" ", "").replace("-", "")
    if not 12 <= len(digits) <= 19:
        return None, "must have 12-19 digits"
    return digits, None


def check_currency(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, "must be a string"
    if value not in ISO_4217:
        return None, "must be an ISO 4217 currency code in capitals, such as USD"
    return value, None


def check_transaction_id(value: Any) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not TRANSACTION_ID_RE.match(value):
        return None, "must be 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
    if contains_card_number(value):
        return None, CARD_IN_TEXT
    return value, None


def check_timestamp(value: Any, now_ms: int) -> tuple[int | None, str | None]:
    if isinstance(value, bool) or isinstance(value, NonFinite):
        return None, "must be epoch milliseconds (an integer) or an ISO 8601 date-time string"
    if isinstance(value, (int, Decimal, float)):
        try:
            number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            if not number.is_finite() or number != number.to_integral_value():
                return None, "must be epoch milliseconds (an integer) or an ISO 8601 date-time string"
            if abs(number) > Decimal(10) ** 15:  # never build a huge int from an exponent like 1e999999
                return None, "must be between 2000-01-01T00:00:00Z and 5 minutes from now (epoch milliseconds, not seconds)"
            millis = int(number)
        except (InvalidOperation, ValueError, OverflowError):
            return None, "must be epoch milliseconds (an integer) or an ISO 8601 date-time string"
    elif isinstance(value, str):
        if len(value) > 40 or not value.isascii():
            return None, "is not a valid ISO 8601 date-time"
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None, "is not a valid ISO 8601 date-time"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            millis = int(parsed.timestamp() * 1000)
        except (OverflowError, ValueError, OSError):
            return None, "is not a valid ISO 8601 date-time"
    else:
        return None, "must be epoch milliseconds (an integer) or an ISO 8601 date-time string"
    if not MIN_TIMESTAMP_MS <= millis <= now_ms + MAX_FUTURE_SKEW_MS:
        return None, "must be between 2000-01-01T00:00:00Z and 5 minutes from now (epoch milliseconds, not seconds)"
    return millis, None


def check_hour(value: Any) -> tuple[int | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None, "must be an integer between 0 and 23"
    if isinstance(value, Decimal) and (not value.is_finite() or value != value.to_integral_value()
                                       or not 0 <= value <= 23):
        return None, "must be an integer between 0 and 23"
    hour = int(value)
    if not 0 <= hour <= 23:
        return None, "must be an integer between 0 and 23"
    return hour, None


def check_bool(value: Any) -> tuple[bool | None, str | None]:
    if not isinstance(value, bool):
        return None, "must be true or false"
    return value, None


def hour_of(timestamp_ms: int) -> int:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC).hour


# --------------------------------------------------------------------------- the transaction
def validate_transaction(body: Any, *, mode: Mode, now_ms: int, default_timestamp_ms: int | None = None) -> Validated:
    """Check a submitted transaction; collect every error.

    `default_timestamp_ms` is used when the body has no timestamp (the API
    passes the request time, the stream passes the record's arrival time).
    """
    if not isinstance(body, dict):
        return Validated(errors=[FieldError("body", "must be a JSON object")])
    errors: list[FieldError] = []
    for name in body:
        if name not in API_FIELDS:
            errors.append(FieldError(safe_field_name(name), "is not a recognised field"))
    for name in REQUIRED[mode]:
        if name not in body:
            errors.append(FieldError(name, "is required"))

    txn: dict[str, Any] = {}
    card: str | None = None

    def take(name: str, check: Any, *args: Any) -> Any:
        if name not in body:
            return None
        value, error = check(body[name], *args)
        if error:
            errors.append(FieldError(name, error))
            return None
        return value

    amount = take("amount", check_amount)
    merchant = take("merchant", check_text)
    card = take("card_number", check_card_number)
    location = take("location", check_location)
    currency = take("currency", check_currency)
    customer_id = take("customer_id", check_customer_id)
    transaction_id = take("transaction_id", check_transaction_id)
    timestamp = take("timestamp", check_timestamp, now_ms)
    hour = take("hour", check_hour)
    location_mismatch = take("location_mismatch", check_bool)
    velocity_flag = take("velocity_flag", check_bool)

    if errors:
        return Validated(errors=_ordered(errors))

    if timestamp is None:
        timestamp = default_timestamp_ms if default_timestamp_ms is not None else now_ms
    txn["transaction_id"] = transaction_id  # may be None: the caller generates one
    txn["timestamp"] = timestamp
    txn["amount"] = amount
    txn["currency"] = currency or DEFAULT_CURRENCY
    if merchant is not None:
        txn["merchant"] = merchant
    if location is not None:
        txn["location"] = location
        txn["country"] = country_of(location)
    if customer_id is not None:
        txn["customer_id"] = customer_id
    txn["hour"] = hour if hour is not None else hour_of(timestamp)
    txn["location_mismatch"] = bool(location_mismatch)
    txn["velocity_flag"] = bool(velocity_flag)
    if card is not None:
        txn["card_last4"] = card[-4:]
    return Validated(transaction=txn, card_number=card, supplied=frozenset(body))


def _ordered(errors: list[FieldError]) -> list[FieldError]:
    """Known fields in declaration order first, unknown ones after; capped."""
    rank = {name: i for i, name in enumerate(("body",) + API_FIELDS)}
    errors = sorted(errors, key=lambda e: rank.get(e.field, len(rank)))
    return errors[:MAX_DETAILS]


# --------------------------------------------------------------------------- stored items and events
DECISIONS = ("approve", "review", "block")


def validate_stored(txn: dict[str, Any], *, now_ms: int) -> list[FieldError]:
    """Check a transaction as stored in the table (or carried in a stream image).

    Used by detection to recognise a poison image and by the tests to prove
    nothing invalid is ever stored.
    """
    errors: list[FieldError] = []
    if txn.get("record_type") != "transaction":
        errors.append(FieldError("record_type", "must be 'transaction'"))
    for name, check, args in (
        ("transaction_id", check_transaction_id, ()),
        ("amount", check_amount, ()),
        ("timestamp", check_timestamp, (now_ms + 366 * 86_400_000,)),
        ("hour", check_hour, ()),
        ("currency", check_currency, ()),
    ):
        if name not in txn:
            errors.append(FieldError(name, "is required"))
            continue
        _, error = check(txn[name], *args)
        if error:
            errors.append(FieldError(name, error))
    for name in ("merchant", "location"):
        if name in txn and check_text(txn[name])[1]:
            errors.append(FieldError(name, "must be 1-128 characters of text"))
    if "customer_id" in txn and check_text(txn["customer_id"], max_len=MAX_CUSTOMER_ID, trim=False)[1]:
        errors.append(FieldError("customer_id", "must be 1-64 characters of text"))
    for name in ("location_mismatch", "velocity_flag"):
        if name in txn and not isinstance(txn[name], bool):
            errors.append(FieldError(name, "must be true or false"))
    last4, token = txn.get("card_last4"), txn.get("card_token")
    if (last4 is None) != (token is None):
        errors.append(FieldError("card_token", "card_token and card_last4 must come together"))
    if last4 is not None and not (isinstance(last4, str) and CARD_LAST4_RE.match(last4)):
        errors.append(FieldError("card_last4", "must be four digits"))
    if token is not None and not (isinstance(token, str) and CARD_TOKEN_RE.match(token)):
        errors.append(FieldError("card_token", "must be a 64-character hex HMAC"))
    if "card_number" in txn:
        errors.append(FieldError("card_number", "must never be stored"))
    return errors


#: An explanation from the in-function model: the code, then the features that moved the risk most.
MODEL_REASON_RE = re.compile(r"^MODEL_RISK: [a-z][a-z0-9_]{0,63}(?:, [a-z][a-z0-9_]{0,63}){0,4}$")

def reason_ok(reason: str, reason_codes: frozenset[str]) -> bool:
    """A rule code, ALLOWLISTED_CARD, or a model explanation `MODEL_RISK: feature, feature`."""
    return reason in reason_codes or reason == "ALLOWLISTED_CARD" or bool(MODEL_REASON_RE.match(reason))


def validate_decision_detail(detail: Any, *, reason_codes: frozenset[str], now_ms: int) -> dict[str, Any]:
    """Check the `detail` of a FraudDecision event; return it normalised or raise `InvalidInput`."""
    if not isinstance(detail, dict):
        raise InvalidInput([FieldError("detail", "must be a JSON object")], "decision event")
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    for name in ("transaction_id", "timestamp", "amount", "currency", "score", "decision", "reasons"):
        if name not in detail:
            errors.append(FieldError(name, "is required"))
    for name, check, args in (
        ("transaction_id", check_transaction_id, ()),
        ("timestamp", check_timestamp, (now_ms,)),
        ("amount", check_amount, ()),
        ("currency", check_currency, ()),
    ):
        if name in detail:
            value, error = check(detail[name], *args)
            if error:
                errors.append(FieldError(name, error))
            else:
                out[name] = value
    for name in ("merchant", "location", "country"):
        value = detail.get(name)
        if value is not None:
            text, error = check_text(value)
            if error:
                errors.append(FieldError(name, error))
            else:
                out[name] = text
    last4 = detail.get("card_last4")
    if last4 is not None:
        if isinstance(last4, str) and CARD_LAST4_RE.match(last4):
            out["card_last4"] = last4
        else:
            errors.append(FieldError("card_last4", "must be four digits"))
    if "score" in detail:
        score = detail["score"]
        if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
            errors.append(FieldError("score", "must be an integer between 0 and 100"))
        else:
            out["score"] = score
    if "decision" in detail:
        if detail["decision"] in DECISIONS:
            out["decision"] = detail["decision"]
        else:
            errors.append(FieldError("decision", "must be one of approve, review, block"))
    if "reasons" in detail:
        reasons = detail["reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) and reason_ok(r, reason_codes) for r in reasons):
            errors.append(FieldError("reasons", "must be a list of known reason codes"))
        else:
            out["reasons"] = list(reasons)
    if errors:
        raise InvalidInput(errors, "decision event")
    return out
