"""A private redis-server for `rksim calibrate redis` when no --port is given.

It listens on a free loopback port, keeps its files in a fresh directory (on a real disk when
one is at hand: fsync on tmpfs costs nothing), allows DEBUG from loopback, and is stopped (its
whole process group) when the calibration ends. Owning the server lets the calibration measure
load time the way an operator sees it: restart with a dataset and wait until PING stops
answering LOADING.
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
from pathlib import Path
from typing import Any

MEMORY_FILESYSTEMS = frozenset({"tmpfs", "ramfs"})


def filesystem_type(path: Path) -> str:
    """The file system type holding `path` (longest matching mount point), or "unknown"."""
    target = os.path.realpath(path)
    best, best_type = "", "unknown"
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        for line in mounts:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) < 5 or not right:
                continue
            mount_point = fields[4].replace("\\040", " ")
            inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
            if inside and len(mount_point) >= len(best):
                best, best_type = mount_point, right.split()[0]
    return best_type


def data_directory(parent: Path | None) -> Path:
    """A fresh directory under `parent`, else under /var/tmp (usually a disk), else the temp dir."""
    candidates = [parent] if parent is not None else [Path("/var/tmp"), Path(tempfile.gettempdir())]
    for candidate in candidates:
        if candidate.is_dir() and os.access(candidate, os.W_OK):
            return Path(tempfile.mkdtemp(prefix="rksim-calibrate-redis-", dir=candidate))
    raise RuntimeError(f"no writable directory among {', '.join(map(str, candidates))}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalRedis:
    """One redis-server child; use as a context manager so it never outlives the calibration."""

    def __init__(self, directory: Path, executable: str = "redis-server") -> None:
        path = shutil.which(executable)
        if path is None:
            raise RuntimeError(
                f"{executable} not found on PATH: install redis-server, or pass --port of a "
                "running server started with --enable-debug-command local"
            )
        self.executable = path
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = directory / "redis-server.log"

    def start(self, timeout_s: float = 300.0) -> float:
        """Start the server; seconds until PING answers (after any loading)."""
        args = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
            "--dir", str(self.directory), "--save", "", "--appendonly", "no",
            "--enable-debug-command", "local", "--daemonize", "no", "--logfile", "",
        ]  # fmt: skip
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(started + timeout_s)
        return time.monotonic() - started

    def wait_ready(self, deadline: float) -> None:
        import redis

        while True:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"redis-server exited with {self.process.returncode}; see {self.log_path}"
                )
            try:
                with redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2) as client:
                    client.ping()
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after a grace period."""
        if self.process is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait_s)
                break
        self.process = None

    def load_by_restart(self, client: Any) -> tuple[float, str]:
        """Restart on the RDB just saved; load time = ready time minus an empty start's.

        `client` is the caller's connection; it reconnects by itself after the restart.
        """
        rdb = self.directory / "dump.rdb"
        self.stop()
        aside = rdb.rename(self.directory / "dump.rdb.aside")
        empty_start = self.start()  # the same start without a dataset: process start-up
        self.stop()
        aside.rename(rdb)
        with_data = self.start()
        client.ping()
        return max(with_data - empty_start, 0.0), "restart until PING is not LOADING"

    def __enter__(self) -> LocalRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
