"""Which function runs which handler, with which settings and environment variables.

Pure data derived from the settings, so the handler contract (docs/handlers.md) is
stated once and checked by tests without mocks; `pipeline.py` only turns it
into resources.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .settings import PipelineSettings

#: The handler contract: environment variable (handlers/contract.py names each) -> the functions that receive it.
CONTRACT: dict[str, tuple[str, ...]] = {
    "TABLE_NAME": ("api", "ingest", "detection", "notification", "review", "label", "label-ingest"),
    "FEATURES_TABLE_NAME": ("detection", "review", "label", "label-ingest"),
    "ALERT_QUEUE_URL": ("detection",),
    # label-ingest reads the label files and quarantines refused rows in the same bucket.
    "ARCHIVE_BUCKET": ("detection", "ingest", "label-ingest"),
    # Detection publishes decisions; the label paths (and the review outcome) publish labels.
    "EVENT_BUS_NAME": ("detection", "review", "label", "label-ingest"),
    "ALERT_TOPIC_ARN": ("notification", "review"),
    "ML_ENDPOINT_PARAM": ("detection", "review"),
    "MODEL_PARAM": ("detection",),
    "MODEL_SHADOW_PARAM": ("detection",),
    "LISTS_PARAM": ("detection",),
    "TEMPLATES_PARAM": ("notification", "review"),
    "CARD_TOKEN_KEY_PARAM": ("api", "ingest"),
    "RULES_JSON": ("detection", "review"),
    # The functions that create transaction items (and their claims) set their TTL from it.
    "TRANSACTION_RETENTION_DAYS": ("api", "ingest"),
    "ENVIRONMENT": ("api", "ingest", "detection", "notification", "review", "label", "label-ingest"),
}

#: Where the stack has its private network (`networkEnabled`), every function runs in it: the API and
#: stream-ingest functions see card numbers, and none of them needs a route to the internet.
VPC_FUNCTIONS = ("api", "ingest", "detection", "notification", "review", "label", "label-ingest")

#: The detection mapping only wants new transactions: claims and updates never reach the function.
DETECTION_FILTER = {"eventName": ["INSERT"], "dynamodb": {"NewImage": {"record_type": {"S": ["transaction"]}}}}


@dataclass(frozen=True)
class FunctionSpec:
    key: str
    handler: str
    memory_mb: int
    timeout_seconds: int
    reserved_concurrency: int
    service_name: str


def function_specs(s: PipelineSettings) -> dict[str, FunctionSpec]:
    support = (s.support_memory_mb, s.support_timeout_seconds, s.support_reserved_concurrency)
    return {
        "api": FunctionSpec("api", "handlers.api_handler.handler", s.api_memory_mb, s.api_timeout_seconds,
                            s.api_reserved_concurrency, "transactions-api"),
        "ingest": FunctionSpec("ingest", "handlers.stream_ingest.handler", s.processing_memory_mb,
                               s.processing_timeout_seconds, s.processing_reserved_concurrency, "stream-ingest"),
        "detection": FunctionSpec("detection", "handlers.fraud_detection.handler", s.processing_memory_mb,
                                  s.processing_timeout_seconds, s.processing_reserved_concurrency, "fraud-detection"),
        "notification": FunctionSpec("notification", "handlers.notification_handler.handler", *support, "notification"),
        "review": FunctionSpec("review", "handlers.review_workflow.handler", *support, "review-workflow"),
        "label": FunctionSpec("label", "handlers.label_api.handler", *support, "label-api"),
        "label-ingest": FunctionSpec("label-ingest", "handlers.label_ingest.handler", *support, "label-ingest"),
    }


def environment_variables(key: str, values: Mapping[str, str], s: PipelineSettings, service_name: str) -> dict[str, str]:
    """The variables function `key` receives: its share of the contract plus Powertools' settings.

    `values` maps every contract variable the function receives, except RULES_JSON,
    ENVIRONMENT and TRANSACTION_RETENTION_DAYS (which come from the settings), to its resolved
    value; a missing one is a wiring bug and raises KeyError naming it.
    """
    resolved = {**values, "RULES_JSON": json.dumps(s.rules(), sort_keys=True), "ENVIRONMENT": s.environment,
                "TRANSACTION_RETENTION_DAYS": str(s.transaction_retention_days)}
    out = {name: resolved[name] for name, users in CONTRACT.items() if key in users}
    out.update({
        "POWERTOOLS_SERVICE_NAME": service_name,
        "POWERTOOLS_METRICS_NAMESPACE": "FraudPipeline",
        "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
        "POWERTOOLS_TRACE_DISABLED": "false" if s.tracing_enabled else "true",
    })
    return out
