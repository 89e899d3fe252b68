"""Card tokenisation: HMAC-SHA256 of the card digits under a secret key.

The key is the SSM SecureString named by CARD_TOKEN_KEY_PARAM, read once per
cold start with decryption. It must be at least 32 characters; a shorter or
missing key is a configuration error (the ingest answers 503, nothing is
stored). The token is the lowercase hex digest: the same card always gives the
same token (velocity counting works on it) and it cannot be reversed without
the key. Only the token and the last four digits ever leave the ingest handlers.
"""

from __future__ import annotations

import hashlib
import hmac

from . import contract
from .clients import ConfigurationError, client, cold_start_cache, env

MIN_KEY_LENGTH = 32


@cold_start_cache
def _key() -> bytes:
    name = env(contract.CARD_TOKEN_KEY_PARAM)
    value = client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    if len(value) < MIN_KEY_LENGTH:
        raise ConfigurationError(f"the card-token key in {name} must be at least {MIN_KEY_LENGTH} characters")
    return value.encode("utf-8")


def card_token(digits: str) -> str:
    """HMAC-SHA256(key, digits) as 64 hex characters."""
    return hmac.new(_key(), digits.encode("ascii"), hashlib.sha256).hexdigest()
