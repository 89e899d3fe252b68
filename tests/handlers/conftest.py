"""Fixtures for the handler tests: a moto account with the pipeline's resources.

The environment is set before any handler module is imported (the handlers
read RULES_JSON at import, as at a Lambda cold start).
"""

from __future__ import annotations

import io
import json
import logging
import os

os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    # moto's DynamoDB Streams with current botocore
    "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
    "ENVIRONMENT": "test",
    "TABLE_NAME": "fraud-transactions-test",
    "FEATURES_TABLE_NAME": "fraud-features-test",
    "MODEL_PARAM": "/fraud-detection/test/model",
    "MODEL_SHADOW_PARAM": "/fraud-detection/test/model-shadow",
    "LISTS_PARAM": "/fraud-detection/test/lists",
    "ALERT_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/fraud-alerts-test",
    "ARCHIVE_BUCKET": "fraud-archive-test",
    "EVENT_BUS_NAME": "fraud-events-test",
    "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:fraud-alerts-test",
    "ML_ENDPOINT_PARAM": "/fraud-detection/test/ml-endpoint",
    "TEMPLATES_PARAM": "/fraud-detection/test/alert-templates",
    "CARD_TOKEN_KEY_PARAM": "/fraud-detection/test/card-token-key",
    "TRANSACTION_RETENTION_DAYS": "540",
    "RULES_JSON": json.dumps({
        "high_amount": 10000.0, "elevated_amount": 5000.0, "review_score": 40, "block_score": 70,
        "velocity_max_transactions": 5, "velocity_window_minutes": 10,
        "blocked_merchants": ["Unknown Store"], "high_risk_countries": ["Nigeria", "North Korea", "Iran"],
    }),
    "POWERTOOLS_SERVICE_NAME": "fraud-handlers-test",
    "POWERTOOLS_METRICS_NAMESPACE": "FraudPipeline",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
    "POWERTOOLS_TRACE_DISABLED": "true",
})

import boto3  # noqa: E402
import pytest  # noqa: E402
from handler_fixtures import Aws  # noqa: E402
from moto import mock_aws  # noqa: E402

from handlers import clients  # noqa: E402
from handlers.observability import logger as powertools_logger  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _moto_transactions_without_table_copies():
    """The emulation's one fix to moto (fraud_pipeline/local/moto_patches.py), for the handler tests too:
    moto 5.2's TransactWriteItems deep-copies every table it touches once per action as its rollback
    backup, which makes a 100-action call on a few hundred items take seconds. The patch keeps the
    semantics the handlers rely on (all conditions first, one cancellation reason per item with
    ALL_OLD, nothing written when any fails), checked in tests/local/test_moto_patches.py."""
    from fraud_pipeline.local import moto_patches

    moto_patches.apply()
    yield


@pytest.fixture
def aws():
    """GIVEN a fresh moto account holding the pipeline's tables, queue, bucket, bus, topic and parameters."""
    with mock_aws():
        clients.reset()
        boto3.setup_default_session()
        env = Aws(boto3.session.Session(region_name="us-east-1"))
        env.create_all()
        yield env
        clients.reset()


@pytest.fixture
def log_lines():
    """Every log line the handlers write, as emitted (JSON strings)."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(powertools_logger.registered_formatter)
    powertools_logger._logger.addHandler(handler)

    def lines() -> list[str]:
        return [line for line in buffer.getvalue().splitlines() if line.strip()]

    yield lines
    powertools_logger._logger.removeHandler(handler)


@pytest.fixture
def calls(aws):
    """AWS calls the handlers make (test-side clients use their own session and are not counted)."""
    from handler_fixtures import CallCounter

    counter = CallCounter()
    clients.reset()  # clients created from now on carry the hook
    return counter


@pytest.fixture
def ctx():
    from handler_fixtures import LambdaContext

    return LambdaContext()


def pytest_configure(config):
    # Powertools warns when an invocation emitted no metric (e.g. a 405); that is expected here.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")
