"""Fixtures for the policy-pack tests.

The stacks come from the session-cached evaluations of tests/conftest.py (`stack`,
`dev`, `prod`): one mock-engine run per stack per session, shared with the unit tests.
`policy/` goes on sys.path so `import fraud_policies` works as it does for the Pulumi CLI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
TESTS_DIR = Path(__file__).resolve().parent
for path in (POLICY_DIR, TESTS_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


def _session_evaluated(config):
    """tests/conftest.py's `evaluated` (its session cache), found among the loaded conftest plugins by file."""
    root = Path(__file__).resolve().parents[1] / "conftest.py"
    for plugin in config.pluginmanager.get_plugins():
        path = getattr(plugin, "__file__", None)
        if path and Path(path).resolve() == root and hasattr(plugin, "evaluated"):
            return plugin.evaluated
    raise RuntimeError("tests/conftest.py is not loaded")


@pytest.fixture
def evaluation(request):
    """evaluation("staging"): the session-cached evaluation of that stack (shared with the unit tests)."""
    return _session_evaluated(request.config)
