"""A real `redis-server` child for the validation tests: start, crash, pause, restart.

Every server is a child of the test (`tests/support.py` process groups: it dies with the test),
listens on a free loopback port, keeps its files in its own directory on a real disk (fsync on
tmpfs costs nothing, which would hide what `appendfsync` does) and allows `DEBUG` from loopback
(`enable-debug-command local`, needed since Redis 7.0). Nothing here touches a system service.

(Named `redis_server`, not `server`, so that it cannot shadow another test folder's helper:
test folders are not packages and share one `sys.path`.)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from support import ManagedProcess, ProcessGroup, free_port, missing

from models.redis_calibration.local_server import filesystem_type

# File systems where fsync is not a trip to a device.
MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "overlay-tmpfs"})

# Settings of every test server unless a test says otherwise: no persistence, no protection
# beyond loopback, logs to stdout (the child's log file).
BASE_CONFIG: dict[str, str] = {
    "bind": "127.0.0.1",
    "protected-mode": "yes",
    "daemonize": "no",
    "enable-debug-command": "local",
    "save": "",
    "appendonly": "no",
    "logfile": "",
    "loglevel": "notice",
}


def real_disk_dir(preferred: Path, name: str) -> Path:
    """`preferred` if it is on a real disk, else a folder under /var/tmp; skip/fail if neither."""
    fallback = Path("/var/tmp") / "rksim-redis-validation" / name
    for candidate in (preferred, fallback):
        if candidate == fallback:
            shutil.rmtree(candidate, ignore_errors=True)  # no stale dump.rdb from an earlier run
        candidate.mkdir(parents=True, exist_ok=True)
        if filesystem_type(candidate) not in MEMORY_FILESYSTEMS:
            return candidate
    missing(f"no directory on a real disk for redis-server data (tried {preferred}, /var/tmp)")
    raise AssertionError("unreachable")


class RedisServer:
    """One redis-server process on 127.0.0.1 with its own data directory."""

    def __init__(
        self,
        group: ProcessGroup,
        data_dir: Path,
        config: Mapping[str, str | int] | None = None,
        *,
        executable: str = "redis-server",
        name: str = "redis",
    ) -> None:
        self.group = group
        self.data_dir = data_dir
        self.executable = executable
        self.name = name
        self.port = free_port()
        self.config: dict[str, str] = dict(BASE_CONFIG)
        self.config.update({k: str(v) for k, v in (config or {}).items()})
        self.process: ManagedProcess | None = None
        self.starts = 0
        data_dir.mkdir(parents=True, exist_ok=True)

    # --- lifecycle -------------------------------------------------------------------------
    def command_line(self) -> list[str]:
        args = [self.executable, "--port", str(self.port), "--dir", str(self.data_dir)]
        for key, value in self.config.items():
            # `--save 5 1` gives save two words; `--save ""` is one real, empty argument
            args += [f"--{key}", *(value.split() or [""])]
        return args

    def start(self, timeout_s: float = 60.0) -> float:
        """Start (or restart) the server; return seconds until it answered PING (not LOADING)."""
        log = self.data_dir.parent / f"{self.name}-{self.starts}.log"
        started = time.monotonic()
        self.process = self.group.spawn(self.command_line(), log_path=log)
        self.starts += 1
        self.wait_ready(timeout_s)
        return time.monotonic() - started

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Wait until PING succeeds: listening and done loading its RDB/AOF."""
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.process.returncode}; log "
                    f"{self.process.log_path}:\n{self.process.log_tail()}",
                    pytrace=False,
                )
            try:
                with self.client(socket_timeout=1.0) as client:
                    client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                last_error = exc
            time.sleep(0.01)
        tail = self.process.log_tail() if self.process is not None else ""
        pytest.fail(f"{self.name} not ready after {timeout_s}s ({last_error}):\n{tail}")

    def kill(self) -> None:
        """SIGKILL: a process crash. The kernel keeps what the process had written (page cache)."""
        proc = self._require_process()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.popen.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the process stops (as in a long GC or VM pause); its sockets stay open."""
        os.kill(self._require_process().pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self._require_process().pid, signal.SIGCONT)

    def restart_after_crash(self, timeout_s: float = 60.0) -> float:
        """Start again on the same port and directory; seconds until ready."""
        proc = self._require_process()
        if proc.poll() is None:
            self.kill()
        return self.start(timeout_s)

    def _require_process(self) -> ManagedProcess:
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process

    # --- talking to it ---------------------------------------------------------------------
    def client(self, **kwargs: Any) -> redis.Redis:
        """A new connection (redis-py has no retries or timeouts unless asked for)."""
        options: dict[str, Any] = {"socket_timeout": 30.0, "decode_responses": True}
        options.update(kwargs)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def info(self, section: str) -> dict[str, Any]:
        with self.client() as client:
            return client.info(section)

    def present(self, keys: Iterable[str]) -> set[str]:
        """Which of `keys` exist now (one pipelined EXISTS per key)."""
        keys = list(keys)
        with self.client() as client:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.exists(key)
            flags = pipe.execute()
        return {key for key, flag in zip(keys, flags, strict=True) if flag}


# `redis_factory(config, name=...)` (conftest): a started server, killed at teardown
RedisFactory = Callable[..., RedisServer]
