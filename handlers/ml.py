"""Optional SageMaker scoring, blended into the rules score (see `rules.blend`).

The SSM parameter named by ML_ENDPOINT_PARAM holds an endpoint name or `none`.
The name must match `fraud-<ENVIRONMENT>-*` (IAM scopes sagemaker:InvokeEndpoint
to that prefix); anything else means rules only. The parameter is re-read every
5 minutes, so switching the model on or off needs no deployment.

One InvokeEndpoint call scores a whole batch (up to 100 instances):

    request  (application/json): {"instances": [{"amount": 15000.0, "currency": "USD", "hour": 23,
                                  "country": "Nigeria", "merchant": "...", "location_mismatch": false,
                                  "velocity_flag": false, "velocity_count": 1}, ...]}
    response (application/json): {"predictions": [0.93, ...]}  (or a bare list; each a fraud
                                  probability 0-1, or an object with "score" 0-1)

The client has a 1 s connect / 2 s read timeout and no retries. Any error, a
malformed or mismatched response, or a bad endpoint name gives `None` (rules only)
and counts the `MLFallback` metric.
"""

from __future__ import annotations

import json
import math
import os
import re
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from . import contract
from .clients import client, ttl_cache
from .jsonutil import dumps
from .observability import logger, metrics

MAX_INSTANCES = 100
PARAM_TTL_SECONDS = 300


@ttl_cache(PARAM_TTL_SECONDS)
def endpoint_name() -> str | None:
    param = os.environ.get(contract.ML_ENDPOINT_PARAM, "").strip()
    if not param:
        return None
    try:
        value = client("ssm").get_parameter(Name=param, WithDecryption=True)["Parameter"]["Value"].strip()
    except (ClientError, BotoCoreError) as exc:
        logger.warning("ML endpoint parameter unreadable; scoring with rules only",
                       extra={"parameter": param, "error_type": type(exc).__name__})
        return None
    if value.lower() in ("", "none"):
        return None
    environment = os.environ.get(contract.ENVIRONMENT, "").strip()
    pattern = rf"^fraud-{re.escape(environment)}-[A-Za-z0-9](?:-*[A-Za-z0-9])*$"
    if not environment or len(value) > 63 or not re.match(pattern, value):
        logger.error("ML endpoint name must match fraud-<environment>-*; scoring with rules only",
                     extra={"parameter": param})
        return None
    return value


def features(txn: dict[str, Any], velocity_count: int) -> dict[str, Any]:
    return {
        "amount": float(txn["amount"]),
        "currency": txn.get("currency", "USD"),
        "hour": int(txn.get("hour", 0)),
        "country": txn.get("country"),
        "merchant": txn.get("merchant"),
        "location_mismatch": bool(txn.get("location_mismatch", False)),
        "velocity_flag": bool(txn.get("velocity_flag", False)),
        "velocity_count": velocity_count,
    }


def _as_score(value: Any) -> int | None:
    if isinstance(value, dict):
        value = value.get("score")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= 1:
        return None
    return round(value * 100)


def score_batch(instances: list[dict[str, Any]]) -> list[int | None]:
    """ML scores (0-100) per instance; None everywhere when ML is off or failed."""
    name = endpoint_name()
    if name is None or not instances:
        return [None] * len(instances)
    scores: list[int | None] = []
    for start in range(0, len(instances), MAX_INSTANCES):
        chunk = instances[start:start + MAX_INSTANCES]
        scores.extend(_invoke(name, chunk))
    return scores


def _invoke(name: str, chunk: list[dict[str, Any]]) -> list[int | None]:
    try:
        response = client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, ContentType="application/json", Accept="application/json",
            Body=dumps({"instances": chunk}).encode())
        payload = json.loads(response["Body"].read())
        predictions = payload.get("predictions") if isinstance(payload, dict) else payload
        if not isinstance(predictions, list) or len(predictions) != len(chunk):
            raise ValueError("response does not have one prediction per instance")
        scores = [_as_score(p) for p in predictions]
        if any(s is None for s in scores):
            raise ValueError("a prediction is not a probability between 0 and 1")
        return scores
    except (ClientError, BotoCoreError, ValueError, KeyError, TypeError) as exc:
        logger.warning("ML scoring failed; falling back to rules only", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="MLFallback", unit="Count", value=len(chunk))
        return [None] * len(chunk)
