"""Session-wide test policy: Hypothesis profiles, real-component markers, child processes.

See ``tests/support.py`` for the helpers (``require_binary``, ``spawn``, ``free_port``,
``wait_for_port``) and the skip-on-a-laptop / fail-in-CI rule for real components.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from support import MARKER_REQUIREMENTS, REPO_ROOT, ProcessGroup, in_ci, stop_all

ARTIFACTS_ROOT = REPO_ROOT / "test-artifacts"

# "ci": reproducible (derandomize: the same examples on every run, so a red CI is not a coin
# flip) and bounded in time; "dev": more examples, random, with the example database.
# HYPOTHESIS_PROFILE=<name> picks one explicitly.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if in_ci() else "dev"))

# Safety net for processes spawned outside a fixture (or when teardown never ran).
atexit.register(stop_all)


def pytest_report_header(config: pytest.Config) -> list[str]:
    mode = "CI=true: missing real components FAIL" if in_ci() else "missing real components skip"
    return [f"rksim: {mode}; hypothesis profile {settings.get_current_profile_name()}"]


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Check what a test's markers say it needs (skip on a laptop, fail under CI)."""
    for marker in item.iter_markers():
        check = MARKER_REQUIREMENTS.get(marker.name)
        if check is not None:
            check()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stop_all()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """An empty per-test folder under test-artifacts/ (git-ignored) for screenshots, logs."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid).strip("_")
    if len(name) > 120:
        digest = hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:10]
        name = f"{name[:100]}-{digest}"
    path = ARTIFACTS_ROOT / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@pytest.fixture
def process_group(artifacts_dir: Path) -> Iterator[ProcessGroup]:
    """Spawn children for one test; the whole process group of each is killed at teardown."""
    group = ProcessGroup(log_dir=artifacts_dir)
    try:
        yield group
    finally:
        group.stop_all()


@pytest.fixture(scope="session")
def session_process_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessGroup]:
    """Like `process_group` but shared by a session (e.g. one redis-server for many tests)."""
    group = ProcessGroup(log_dir=tmp_path_factory.mktemp("session-processes"))
    try:
        yield group
    finally:
        group.stop_all()
