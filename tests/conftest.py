"""Shared fixtures: each stack is evaluated once per test session under Pulumi's mock engine."""

import os
import sys
from pathlib import Path

import pytest

# The policy pack's checks (policy/fraud_policies) are imported as the Pulumi CLI imports them.
POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")

from fraud_pipeline.evaluation import Evaluation, evaluate, known_stacks  # noqa: E402

_CACHE: dict[str, Evaluation] = {}


def evaluated(stack: str) -> Evaluation:
    if stack not in _CACHE:
        _CACHE[stack] = evaluate(stack)
    return _CACHE[stack]


@pytest.fixture(params=known_stacks())
def stack(request) -> Evaluation:
    """Each stack's evaluation (dev, staging, prod), computed once per session."""
    return evaluated(request.param)


@pytest.fixture
def prod() -> Evaluation:
    return evaluated("prod")


@pytest.fixture
def dev() -> Evaluation:
    return evaluated("dev")
