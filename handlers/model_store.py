"""Where the detection function gets its model, candidate model and run-time lists.

* MODEL_PARAM / MODEL_SHADOW_PARAM name SSM parameters holding ``none`` (rules
  only) or an S3 key under ``models/`` in the archive bucket, optionally
  ``<key>?versionId=<id>`` to pin a version. The artifact is read with
  GetObject (the bucket encrypts it with the customer-managed key) and checked
  by `model.load_model`; it is fetched again only when the parameter's value
  changes.
* LISTS_PARAM names the lists document (`scoring.parse_lists`).

Each parameter is re-read every `REFRESH_SECONDS` (the first read is the cold
start), so switching a model, rolling one back or editing a list needs no
deployment; SSM keeps every version with who changed it and when
(`aws ssm get-parameter-history`). Anything unreadable or invalid is logged
and counted (`ModelLoadFailed`, `ListsLoadFailed`); the function then keeps
what it had (or, at a cold start, scores with the rules and the RULES_JSON
lists): a bad upload never stops detection.
"""

from __future__ import annotations

import os
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract
from .clients import client, on_reset, ttl_cache
from .model import ModelError, Scorecard, load_model
from .observability import logger, metrics
from .scoring import Lists, ListsError, parse_lists

REFRESH_SECONDS = 300
MODEL_PREFIX = contract.ARCHIVE_MODELS_PREFIX
MAX_MODEL_BYTES = 5 * 1024 * 1024
_REF_RE = re.compile(r"^(models/[A-Za-z0-9!_.*'()/-]{1,900}\.json)(?:\?versionId=([A-Za-z0-9._-]{1,1024}))?$")

_loaded: dict[str, tuple[str, Scorecard | None]] = {}  # parameter -> (value it was loaded from, model)
_lists: dict[str, Lists] = {}


def _parameter(name: str) -> str | None:
    try:
        return client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"].strip()
    except (ClientError, BotoCoreError) as exc:
        logger.warning("parameter unreadable", extra={"parameter": name, "error_type": type(exc).__name__})
        return None


def parse_reference(value: str) -> tuple[str, str | None] | None:
    """(key, version id) of a model reference, None for `none`; ModelError when malformed."""
    if value.lower() == "none":
        return None
    match = _REF_RE.match(value)
    if not match:
        raise ModelError("the model parameter must be 'none' or models/<name>.json[?versionId=<id>]")
    return match.group(1), match.group(2)


def _fetch(key: str, version: str | None) -> Scorecard:
    request: dict[str, Any] = {"Bucket": os.environ.get(contract.ARCHIVE_BUCKET, ""), "Key": key}
    if version:
        request["VersionId"] = version
    body = client("s3").get_object(**request)["Body"]
    raw = body.read(MAX_MODEL_BYTES + 1)
    if len(raw) > MAX_MODEL_BYTES:
        raise ModelError(f"the model artifact is larger than {MAX_MODEL_BYTES} bytes")
    return load_model(raw)


def _model(env_name: str) -> Scorecard | None:
    param = os.environ.get(env_name, "").strip()
    if not param:
        return None
    value = _parameter(param)
    previous = _loaded.get(param)
    if value is None:  # unreadable: keep what we have
        return previous[1] if previous else None
    if previous and previous[0] == value:
        return previous[1]
    try:
        reference = parse_reference(value)
        model = _fetch(*reference) if reference else None
    except (ModelError, ClientError, BotoCoreError) as exc:
        logger.error("model not loaded; keeping the previous one", extra={
            "parameter": param, "problem": str(exc) if isinstance(exc, ModelError) else type(exc).__name__})
        metrics.add_metric(name="ModelLoadFailed", unit="Count", value=1)
        return previous[1] if previous else None
    _loaded[param] = (value, model)
    logger.info("model loaded", extra={"parameter": param, "model_version": model.version if model else "none"})
    return model


@ttl_cache(REFRESH_SECONDS)
def live_model() -> Scorecard | None:
    return _model("MODEL_PARAM")


@ttl_cache(REFRESH_SECONDS)
def shadow_model() -> Scorecard | None:
    return _model("MODEL_SHADOW_PARAM")


@ttl_cache(REFRESH_SECONDS)
def lists() -> Lists | None:
    param = os.environ.get(contract.LISTS_PARAM, "").strip()
    if not param:
        return None
    value = _parameter(param)
    if value is not None:
        try:
            _lists[param] = parse_lists(value)
        except ListsError as exc:
            logger.error("lists parameter invalid; keeping the previous lists", extra={"parameter": param,
                                                                                     "problem": str(exc)})
            metrics.add_metric(name="ListsLoadFailed", unit="Count", value=1)
    return _lists.get(param)


def forget() -> None:
    """Drop loaded models and lists (tests: a new execution environment)."""
    _loaded.clear()
    _lists.clear()


on_reset(forget)
