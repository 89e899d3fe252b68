"""Shared fixtures: each stack is evaluated once per test session under Pulumi's mock engine.

Also the suite's shape for `make test` (pytest-xdist workers, `-n auto --dist loadgroup`) and
`make test-fast`: which tests share a process or an emulation and so run together on one worker
(`SHARED`), and which are the slow end-to-end ones (`SLOW`, marked `slow`: `make test` runs them,
first, `make test-fast` leaves them out with `-m "not slow"`).
"""

import os
import sys
from pathlib import Path

import pytest

# The policy pack's checks (policy/fraud_policies) are imported as the Pulumi CLI imports them.
POLICY_DIR = Path(__file__).resolve().parents[1] / "policy"
if str(POLICY_DIR) not in sys.path:
    sys.path.insert(0, str(POLICY_DIR))

os.environ.setdefault("AWS_ACCOUNT_ID_ENDPOINT_MODE", "disabled")


def _share_botocore_loader() -> None:
    """One botocore data loader for the whole test process, as one botocore session has.

    Every boto3/botocore session builds its own Loader, and a Loader parses the service models'
    JSON (dynamodb, s3, sqs, ... endpoints.json) the first time a client of that session needs
    them. The handler tests start a fresh moto account, default session and clients for every
    test, and the emulation makes a session per event source mapping, so over half of their
    time went into parsing the same files again (tests/handlers alone: 202 s -> 92 s). The Loader only reads botocore's own
    data files and caches what it read per instance; nothing in botocore, boto3 or moto mutates
    what it returns (no `service-data-loaded` handler is registered), so sharing it is what the
    clients of one session already do. Sessions, clients, credentials and event hooks stay
    per session. Child processes (`serve`, the provider) are not affected.
    """
    import botocore.loaders
    import botocore.session

    if getattr(botocore.session.create_loader, "shared_for_tests", False):
        return
    loaders: dict = {}
    create = botocore.loaders.create_loader

    def create_loader(search_path_string=None):
        if search_path_string not in loaders:
            loaders[search_path_string] = create(search_path_string)
        return loaders[search_path_string]

    create_loader.shared_for_tests = True
    botocore.session.create_loader = create_loader


_share_botocore_loader()

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


# --------------------------------------------------------------------------- the suite's shape
#: Tests sharing a module- or session-scoped process or emulation: each entry is one unit of work for
#: the xdist scheduler below, so the whole group runs on one worker, back to back, and the resource is
#: built once rather than once per worker. tests/local needs it for correctness too: moto's backends
#: are process-wide, so a worker must never hold two emulations at once; a group's module fixture is
#: torn down before its worker runs anything else (every other emulation, in tests/local and in the
#: benchmarks, is opened and closed inside one test).
SHARED = {
    "tests/local/test_emulation.py": "emulation",        # one Emulator("dev") with its API, module scope
    "tests/local/test_openapi_fuzz.py": "openapi-fuzz",  # another one, module scope
    "tests/local/test_service.py": "serve",              # one `serve` subprocess, module scope
    "tests/unit/test_backtest.py": "backtest",           # a model trained once, module scope
    "tests/provider/": "provider",                       # one provider process and its constructs, session scope
}

#: The slow end-to-end tests, longest first (the scheduler starts them in this order, so none is left
#: to start last): a directory, a module, a test (`path::name`, every parameter) or one parameter
#: (`path::name[id]`). Seconds: one test or group on a 2-core machine under -n 2 (measured with other load).
SLOW = (
    # `serve` as a subprocess driven over HTTP and the AWS CLI (~100 s for the module)
    "tests/local/test_service.py",
    # the emulation in-process: every function, mapping and the review workflow on moto
    "tests/local/test_emulation.py",                                                                   # ~30 s
    "tests/local/test_program_changes.py::test_demo_loses_nothing_and_leaks_no_card_number",           # ~25 s
    # a few hundred generated transactions through the handlers on moto (~25 s each)
    "tests/handlers/test_replay_equivalence.py",
    "tests/handlers/test_fraud_detection.py::test_detection_averages_at_most_half_an_aws_call_per_transaction",
    # benchmarks run quick: `serve`, generated histories, the emulation, fresh interpreters
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[local_service]",         # ~20 s
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[detection_quality]",
    "tests/local/test_openapi_fuzz.py",                                                                # ~18 s
    "tests/unit/test_backtest.py::test_train_writes_a_valid_model_with_its_card",                      # trains a model
    "tests/unit/test_backtest.py::test_run_scores_the_period_with_the_trained_model",
    "tests/unit/test_backtest.py::test_the_model_round_trips_train_to_run",
    "tests/provider/",  # the Pulumi provider plugin as a subprocess, over gRPC (~15 s for the directory)
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[aws_calls]",             # ~12 s
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[demo_latency]",
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[cold_start]",
    "tests/unit/test_benchmarks_smoke.py::test_benchmark_runs_on_a_tiny_input[evaluation_time]",
    "tests/local/test_program_changes.py::test_a_stack_setting_change_is_followed_without_edits",      # ~5 s
    "tests/local/test_program_changes.py::test_a_poison_alert_is_redriven_to_the_dlq_after_its_visibility_timeout",
)

ROOT = Path(__file__).resolve().parents[1]


def _covers(entry: str, nodeid: str) -> bool:
    """A directory, a module, a test (every parameter) or one parameter of a test."""
    if entry.endswith("/"):
        return nodeid.startswith(entry)
    if "::" not in entry:
        return nodeid.startswith(entry + "::")
    return nodeid == entry or ("[" not in entry and nodeid.startswith(entry + "["))


def shared_group(nodeid: str) -> str | None:
    return next((group for entry, group in SHARED.items() if _covers(entry, nodeid)), None)


def slow_rank(nodeid: str) -> int | None:
    """The position of the SLOW entry covering this test (0 = the longest), None when it is not slow."""
    return next((rank for rank, entry in enumerate(SLOW) if _covers(entry, nodeid)), None)


def _check_entry(entry: str, nodeids: list[str]) -> None:
    """A SHARED or SLOW entry must still name something: a renamed module or test fails collection here."""
    path, _, test = entry.partition("::")
    if not (ROOT / path).exists():
        raise pytest.UsageError(f"tests/conftest.py names {path}, which does not exist: update SHARED/SLOW")
    if not test:
        return
    function = test.split("[")[0]
    if f"def {function}(" not in (ROOT / path).read_text():
        raise pytest.UsageError(f"tests/conftest.py names {entry}: no such test in {path}; update SLOW")
    collected = [n for n in nodeids if n.startswith(f"{path}::{function}")]
    if "[" in test and collected and entry not in collected:
        raise pytest.UsageError(f"tests/conftest.py names {entry}: no such parameter; update SLOW")


def pytest_configure(config):
    # The `slow` mark this file adds is declared in pyproject.toml. The scheduler is registered only where
    # xdist is (not with -p no:xdist, where its hook would be an unknown one).
    if LoadGroupScheduling is not None and config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(SharedFirstSchedulerPlugin(), "fraud-pipeline-scheduler")


@pytest.hookimpl(tryfirst=True)  # before `-m "not slow"` deselects
def pytest_collection_modifyitems(config, items):
    nodeids = [item.nodeid for item in items]
    for entry in (*SHARED, *SLOW):
        _check_entry(entry, nodeids)
    for item in items:
        if slow_rank(item.nodeid) is not None:
            item.add_marker(pytest.mark.slow)


try:
    from xdist.scheduler import LoadGroupScheduling
except ImportError:  # pytest-xdist not installed: the suite runs serially, as before
    LoadGroupScheduling = None

if LoadGroupScheduling is not None:

    class SharedFirstScheduling(LoadGroupScheduling):
        """`--dist loadgroup` with this suite's groups, the slow work first.

        A unit of work is a SHARED group, an `xdist_group` mark's group, or one test. Groups come from
        the test ids here, in the controller: pytest-xdist 3.8 carries an `xdist_group` mark to the
        controller by appending `@group` to the test's node id, which pytest 9.2's structured node ids
        no longer allow, so marks alone group nothing (pytest-dev/pytest-xdist#1386).

        Units are handed out longest first (SLOW's order, then the rest in collection order): the
        long ones start at once on both workers and the many short tests fill in behind them, instead
        of a 30-second test starting last.
        """

        def _split_scope(self, nodeid: str) -> str:
            scope = super()._split_scope(nodeid)  # an `@group` suffix, should xdist set one again
            if scope != nodeid:
                return scope
            return shared_group(nodeid) or nodeid

        def _assign_work_unit(self, node) -> None:
            if not getattr(self, "_slow_first", False):
                self._slow_first = True

                def rank(unit) -> int:
                    ranks = [r for r in map(slow_rank, unit[1]) if r is not None]
                    return min(ranks) if ranks else len(SLOW)

                ordered = sorted(self.workqueue.items(), key=rank)  # stable: collection order within a rank
                self.workqueue.clear()
                self.workqueue.update(ordered)
            super()._assign_work_unit(node)

    class SharedFirstSchedulerPlugin:
        @pytest.hookimpl(tryfirst=True)  # before xdist's own implementation answers
        def pytest_xdist_make_scheduler(self, config, log):
            if config.getvalue("dist") == "loadgroup":
                return SharedFirstScheduling(config, log)
            return None
