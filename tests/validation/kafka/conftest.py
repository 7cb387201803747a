"""Fixtures of the real-Kafka validation: one cluster per pytest session, a fresh topic per test.

The cluster (1 KRaft controller + 3 brokers, see kafka_cluster.py) is started once per session
by the first test that asks for it. The cases inject faults into that shared cluster, so they
must not run concurrently: every real-cluster test is marked ``xdist_group("kafka")`` and
``make test`` runs ``pytest -n 2 --dist loadgroup``, which sends them all to one worker. (Under
another ``--dist`` mode each worker that gets a Kafka test starts its own cluster: slower,
still correct.)

What each case saw and how long it took is written to
``test-artifacts/kafka-validation-<worker>.txt`` and, when this conftest is loaded by the
process that reports (no xdist, or the folder given on the command line), printed at the end.

Missing java, Maven/jars or confluent-kafka skip the tests on a laptop and fail them under CI
(``tests/support.py``).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kafka_cluster import ClusterError, KafkaCluster
from kafka_libs import LibsUnavailable, fetch
from support import REPO_ROOT, missing, require_binary, require_module

# Seconds per step, carried in the reports' user_properties (so they reach the xdist
# controller) and printed at the end of the session; docs/validation.md quotes them.
TIMING_KEY = "kafka_validation_seconds"
OUTCOME_KEY = "kafka_validation_outcome"
TIMINGS: dict[str, float] = {}
OUTCOMES: dict[str, str] = {}
_reported_start: list[bool] = []
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
SUMMARY_FILE = REPO_ROOT / "test-artifacts" / f"kafka-validation-{WORKER}.txt"


def _summary_line(text: str) -> None:
    """Append a line to this worker's summary file (read it after a CI run)."""
    SUMMARY_FILE.parent.mkdir(parents=True, exist_ok=True)
    with SUMMARY_FILE.open("a", encoding="utf-8") as out:
        out.write(text + "\n")


@pytest.fixture(scope="session")
def kafka_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """The session's Kafka cluster; stopped (every process group killed) when the session ends."""
    require_binary("java", "a real Kafka cluster (Java 17)")
    require_module("confluent_kafka", "driving the real Kafka cluster")
    started = time.monotonic()
    try:
        libs = fetch()
    except LibsUnavailable as exc:
        missing(f"Kafka jars unavailable: {exc}")
    fetched = time.monotonic()
    SUMMARY_FILE.unlink(missing_ok=True)
    cluster = KafkaCluster(
        libs=libs,
        base_dir=tmp_path_factory.mktemp("kafka"),
        log_dir=REPO_ROOT / "test-artifacts" / f"kafka-cluster-{WORKER}",
    )
    try:
        try:
            cluster.start()
        except ClusterError as exc:
            pytest.fail(f"the Kafka cluster did not start: {exc}", pytrace=False)
        cluster.fetch_s = fetched - started
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka(kafka_cluster: KafkaCluster, request: pytest.FixtureRequest) -> Iterator[KafkaCluster]:
    """The cluster, healthy before the test and healed after it (faults never leak)."""
    timings = request.node.user_properties
    if not _reported_start:
        _reported_start.append(True)
        for step, seconds in (
            ("jars (mvn copy-dependencies)", kafka_cluster.fetch_s),
            ("cluster format + start", kafka_cluster.startup_s),
        ):
            timings.append((TIMING_KEY, (step, seconds)))
            _summary_line(f"{seconds:7.1f}s  {step}")
    started = time.monotonic()
    kafka_cluster.heal()
    try:
        yield kafka_cluster
    finally:
        kafka_cluster.heal()
        seconds = time.monotonic() - started
        timings.append((TIMING_KEY, (request.node.name, seconds)))
        _summary_line(f"{seconds:7.1f}s  {request.node.name} (heal included)")


@pytest.fixture
def topic(request: pytest.FixtureRequest) -> str:
    """A unique topic name for this test (created by the test with its own settings)."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:80]
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def report_outcome(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record one line of what the real cluster did (printed at the end of the session)."""

    def record(text: str) -> None:
        request.node.user_properties.append((OUTCOME_KEY, text))
        _summary_line(f"{request.node.name}: {text}")

    return record


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give `xdist_group` tests their ``@group`` node-id suffix under ``--dist loadgroup``.

    pytest-xdist (3.8) adds the suffix by assigning ``item._nodeid``, which pytest 9.2 no longer
    reads (node ids are structured ``NodeId`` objects now), so loadgroup silently behaves like
    load and the Kafka tests spread over workers. This does what xdist meant to do, only for
    marked items whose id still lacks the suffix; a no-op once xdist does it itself.
    """
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        groups = sorted(
            {
                str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                for mark in item.iter_markers("xdist_group")
            }
        )
        if not groups or "@" in item.nodeid.rpartition("]")[2]:
            continue
        node_id = getattr(item, "_id", None)
        parse = getattr(type(node_id), "parse", None)
        if node_id is not None and parse is not None:
            item._id = parse(f"{item.nodeid}@{'_'.join(groups)}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        name = report.nodeid.rpartition("::")[2]
        for key, value in report.user_properties:
            if key == TIMING_KEY and isinstance(value, tuple):
                TIMINGS[str(value[0])] = float(value[1])
            elif key == OUTCOME_KEY:
                OUTCOMES[name] = str(value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if TIMINGS:
        terminalreporter.write_sep("-", "real Kafka validation (seconds, heal included)")
        for name, seconds in TIMINGS.items():
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")
    for name, text in OUTCOMES.items():
        terminalreporter.write_line(f"{name}: {text}")
