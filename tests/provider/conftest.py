"""Fixtures for the provider plugin's tests: one provider process for the session, started as the
Python language host starts it, and the dev stack constructed through it once."""

import json

import pytest
from provider_harness import ConstructOutcome, ProviderProcess, stack_inputs


@pytest.fixture(scope="session")
def provider(tmp_path_factory) -> ProviderProcess:
    process = ProviderProcess(cwd=tmp_path_factory.mktemp("consumer-project"))
    yield process
    process.stop()


@pytest.fixture(scope="session")
def served_schema(provider) -> dict:
    """The schema the running provider answers `GetSchema` with."""
    return json.loads(provider.get_schema())


@pytest.fixture(scope="session")
def component_schema(served_schema) -> dict:
    return served_schema["resources"]["fraud-pipeline:index:FraudPipeline"]


@pytest.fixture(scope="session")
def constructed(provider):
    """`constructed(stack)`: FraudPipeline 'fraud' constructed from Pulumi.<stack>.yaml's settings, as that
    stack's program builds it (once per session and stack)."""
    cache: dict[str, ConstructOutcome] = {}

    def construct(stack: str) -> ConstructOutcome:
        if stack not in cache:
            inputs = stack_inputs(stack)
            cache[stack] = provider.construct(inputs, stack=stack, name="fraud", config={"aws:region": inputs["region"]})
        return cache[stack]

    return construct


@pytest.fixture(scope="session")
def dev_construct(constructed) -> ConstructOutcome:
    return constructed("dev")
