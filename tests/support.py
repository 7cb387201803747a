"""Helpers for tests that touch real components: binaries, ports, child processes.

Import them in a test module with ``from support import ...`` (pytest puts ``tests/`` on
``sys.path`` because ``tests/conftest.py`` lives there and ``tests/`` is not a package).

Real components: skip on a laptop, fail in CI
---------------------------------------------
A test that needs something outside Python (``redis-server``, Chromium, a Kafka cluster) asks
for it with one of the ``require_*`` helpers, or carries a marker that ``conftest.py`` maps to
one (``real_redis`` -> ``redis-server``, ``browser`` -> Chromium, see
``MARKER_REQUIREMENTS``)::

    @pytest.mark.real_redis
    def test_wait_blocks_until_replica_acknowledges(process_group):
        redis_server = require_binary("redis-server", "validation against real Redis")
        ...

Where the component is missing the test is *skipped* with the reason, so the suite still runs on
a laptop without it. When the environment variable ``CI`` is ``true`` (``.ci/run`` exports it)
the same call *fails* the test instead: CI installs every component, so a missing one is a
broken CI setup, and a skipped check is not a passed check.

Child processes that never outlive a test
-----------------------------------------
Start real servers with the ``process_group`` fixture (``session_process_group`` for a
session-wide one), never with a bare ``subprocess.Popen``::

    def test_dashboard_serves_page(process_group, artifacts_dir):
        port = free_port()
        proc = process_group.spawn(["streamlit", "run", "dashboard/app.py",
                                    "--server.port", str(port)])
        wait_for_port(port, proc=proc)
        ...

Each child runs in its own session and process group (``start_new_session=True``), so
everything it forks is in that group; at teardown the whole group gets SIGTERM, then SIGKILL
after a grace period. On Linux the child is also started under ``setpriv --pdeathsig KILL``
where available, so it dies with the pytest (xdist worker) process that spawned it even if that
process is killed before teardown. Output goes to a log file (``proc.log_path``, under the
test's ``artifacts_dir`` when the fixture is used), never to a pipe that could fill and block
the child; ``proc.log_tail()`` is included in the error when a server fails to come up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def in_ci() -> bool:
    """True when running under CI (``CI=true``), where missing components are failures."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(reason: str) -> None:
    """Skip the current test on a developer machine; fail it under CI (never returns)."""
    if in_ci():
        pytest.fail(f"required component missing in CI (CI=true): {reason}", pytrace=False)
    pytest.skip(reason)


def require(condition: bool, reason: str) -> None:
    """Continue only if `condition` holds; else skip (laptop) or fail (CI) with `reason`."""
    if not condition:
        missing(reason)


def require_binary(name: str, reason: str) -> str:
    """Return the path of executable `name`; skip (laptop) or fail (CI) if it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} not found on PATH (needed for: {reason})")
    assert path is not None  # for type checkers: missing() never returns
    return path


def require_module(name: str, reason: str) -> None:
    """Require an importable Python module (an optional dependency)."""
    import importlib.util

    require(
        importlib.util.find_spec(name) is not None,
        f"Python module {name} not installed (needed for: {reason})",
    )


def chromium_executable() -> str | None:
    """Path of a system Chromium/Chrome (``CHROMIUM_PATH`` wins), or None.

    Playwright cannot download its own browsers here: launch with
    ``chromium.launch(executable_path=..., args=["--no-sandbox"])`` (CI runs as root).
    """
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium(reason: str) -> str:
    """Return the Chromium path; skip (laptop) or fail (CI) without one."""
    path = chromium_executable()
    if path is None:
        missing(f"no Chromium found ({', '.join(CHROMIUM_NAMES)} or CHROMIUM_PATH) for: {reason}")
    assert path is not None
    return path


# Marker -> check run before every test that carries it (see conftest.pytest_runtest_setup).
# `real_kafka` is not mapped: no Kafka distribution is installed by .ci/run, so a Kafka test
# must say itself what it needs (e.g. require_binary("kafka-server-start.sh", ...)).
MARKER_REQUIREMENTS = {
    "real_redis": lambda: require_binary("redis-server", "tests marked real_redis"),
    "browser": lambda: require_chromium("tests marked browser"),
}


# Ports for servers the tests start come from below Linux's default ephemeral range
# (ip_local_port_range 32768-60999), one slice per xdist worker, handed out in turn: nothing
# else on the machine is given them by bind(0) or by an outgoing connect() between our check
# and the server's own bind, the two workers never pick the same one, and ports handed out
# before their servers bind (a Kafka cluster's four nodes) differ.
_PORT_BASE, _PORT_SLICE = 20_000, 3_000
_next_port: list[int] = []


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and that nothing else will be handed."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    index = int(worker) if worker.isdigit() else 0
    low = _PORT_BASE + index * _PORT_SLICE
    high = low + _PORT_SLICE
    if high > _ephemeral_low():  # an unusual port range (or many workers): ask the kernel
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])
    if not _next_port:
        _next_port.append(low + os.getpid() % _PORT_SLICE)  # runs in a row start apart
    for _ in range(_PORT_SLICE):
        port = _next_port[0]
        _next_port[0] = low + (port + 1 - low) % _PORT_SLICE
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken (a server of an earlier test, or TIME_WAIT): the next one
            return port
    raise RuntimeError(f"no free port in {low}-{high - 1}")


class ManagedProcess:
    """A child running in its own process group; `stop()` ends the whole group."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path, grace_s: float) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.pgid = popen.pid  # start_new_session=True: the child leads its own group
        self.log_path = log_path
        self.grace_s = grace_s

    def poll(self) -> int | None:
        return self.popen.poll()

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def log_tail(self, max_chars: int = 4000) -> str:
        """Last part of the child's combined stdout/stderr."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def stop(self) -> None:
        """SIGTERM the whole group, SIGKILL it after the grace period, reap the leader."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=self.grace_s)
        # The leader is reaped; wait for the rest of its group (grandchildren) too.
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        # SIGKILL is delivered asynchronously and orphans are reaped by init: wait until the
        # group is really empty so the next test starts clean.
        deadline = time.monotonic() + 5
        while self._group_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        _live.pop(self.pid, None)

    def __repr__(self) -> str:
        return f"ManagedProcess(pid={self.pid}, args={self.popen.args!r})"


# Every process started by spawn() and not yet stopped, so conftest can stop leftovers at the
# end of the session (one registry per xdist worker: each worker is its own process).
_live: dict[int, ManagedProcess] = {}


def spawn(
    cmd: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    log_path: str | os.PathLike[str] | None = None,
    grace_s: float = 5.0,
    die_with_parent: bool = True,
) -> ManagedProcess:
    """Start `cmd` in a new session/process group with output to a log file.

    The caller owns the result and must `stop()` it; prefer the `process_group` fixture, which
    does so at teardown. `extra_env` is added to `env` (default: this process's environment).
    With `die_with_parent` the child gets SIGKILL if the spawning thread dies (Linux setpriv).
    """
    args = [os.fspath(part) for part in cmd]
    setpriv = shutil.which("setpriv") if die_with_parent else None
    if setpriv is not None:
        args = [setpriv, "--pdeathsig", "KILL", "--", *args]
    child_env = dict(os.environ if env is None else env)
    if extra_env:
        child_env.update(extra_env)
    if log_path is None:
        fd, name = tempfile.mkstemp(prefix="rksim-child-", suffix=".log")
        os.close(fd)
        log_path = name
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as log:
        popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=child_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proc = ManagedProcess(popen, path, grace_s)
    _live[proc.pid] = proc
    return proc


def stop_all() -> None:
    """Stop every process spawn() started that is still registered (session safety net)."""
    for proc in list(_live.values()):
        proc.stop()


class ProcessGroup:
    """Processes started for one test (or session); all stopped together at teardown."""

    def __init__(self, log_dir: Path | None = None) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []

    def spawn(self, cmd: Sequence[str | os.PathLike[str]], **kwargs: object) -> ManagedProcess:
        """Like `support.spawn`; the log defaults to ``<log_dir>/<program>-<n>.log``."""
        if kwargs.get("log_path") is None and self.log_dir is not None:
            program = Path(os.fspath(cmd[0])).name
            kwargs["log_path"] = self.log_dir / f"{program}-{len(self.processes)}.log"
        proc = spawn(cmd, **kwargs)  # type: ignore[arg-type]
        self.processes.append(proc)
        return proc

    def stop_all(self) -> None:
        """Stop in reverse start order (clients before the servers they talk to)."""
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()


def wait_for_port(
    port: int,
    *,
    host: str = "127.0.0.1",
    timeout_s: float = 30.0,
    proc: ManagedProcess | None = None,
) -> None:
    """Wait until something accepts TCP connections on host:port; fail early if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            pytest.fail(
                f"{proc!r} exited with {proc.returncode} before listening on {host}:{port}; "
                f"log {proc.log_path}:\n{proc.log_tail()}",
                pytrace=False,
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            tail = f"; log {proc.log_path}:\n{proc.log_tail()}" if proc is not None else ""
            pytest.fail(f"nothing listening on {host}:{port} after {timeout_s}s{tail}")
        time.sleep(0.05)
