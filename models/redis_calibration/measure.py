"""Measurements of a real redis-server, driven through redis-py; each returns plain numbers.

What each function measures, and the Redis mechanism behind it:

* `command_cost`: main-thread CPU per command, from `INFO cpu` (`used_cpu_user_main_thread` +
  `used_cpu_sys_main_thread`, getrusage of the main thread) over many SETs and GETs, once one
  request per command and once pipelined. CPU time, not client wall time: redis-py itself
  needs several µs per command, so a Python client's throughput says more about Python than
  about Redis.
* `loaded_request_cost`: the same CPU figure while `redis-benchmark -c 50` (the Redis docs' own
  benchmark, no pipelining) keeps the server busy, so that one loop iteration serves many
  clients; a cross-check, run only where redis-benchmark is installed (Debian: redis-tools).
* `fsync_latency`: `fdatasync` of small appends in the server's data directory (Redis calls
  `fdatasync` for the AOF on Linux: `redis_fsync` in config.h), the device cost that
  `appendfsync always` pays once per event-loop iteration with writes.
* `aof_fsync_cost`: the same cost as Redis clients see it: median SET latency with
  `appendfsync always` minus the median with `appendfsync no`.
* `fork_cost`: `INFO stats latest_fork_usec` of a BGSAVE over a dataset of known size made by
  `DEBUG POPULATE` (Redis latency docs: fork time grows with the page tables, ~10 ms/GB).
* `save_speed`: a foreground `SAVE` of that dataset (serialize + write + fsync), MB/s.
* `reload_cost`: `DEBUG RELOAD NOSAVE` (flush, then load the RDB just saved), ms per GB; a
  server the caller owns can instead be restarted (see `local_server.load_by_restart`).

Sizes are per GB of `used_memory` (GB = 2^30 bytes), the memory the Redis model accounts.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GB = 1024**3
MB = 1000**2  # disk and snapshot speeds are in MB/s with MB = 10^6 bytes, as in `[disk]`
KEY_PREFIX = "rksim:calibration:"


@dataclass(frozen=True)
class CommandCost:
    """Main-thread CPU per command (µs) and how many commands each figure is based on."""

    set_request_us: float  # SET, one request per command (read + parse + exec + write)
    get_request_us: float
    set_pipelined_us: float  # SET in pipelines of `pipeline` commands
    get_pipelined_us: float
    set_exec_us: float  # INFO commandstats usec_per_call: execution only
    get_exec_us: float
    client_pipelined_us: float  # redis-py wall time per pipelined command (client-bound)
    pipeline: int
    commands: int
    value_bytes: int


@dataclass(frozen=True)
class FsyncLatency:
    """fdatasync of a small append on the data directory's device (ms)."""

    median_ms: float
    p90_ms: float
    p99_ms: float
    log_sigma: float  # standard deviation of ln(latency): the lognormal sigma of `[disk]`
    samples: int
    directory: str


@dataclass(frozen=True)
class DatasetCost:
    """Fork, snapshot and load of a dataset made with DEBUG POPULATE."""

    keys: int
    value_bytes: int
    used_memory_bytes: int
    rdb_bytes: int
    fork_ms: float  # median latest_fork_usec over the BGSAVEs, ms
    fork_ms_per_gb: float
    save_s: float
    rdb_save_mb_s: float  # used_memory MB serialized per second by SAVE
    load_s: float
    load_ms_per_gb: float
    load_method: str


def main_thread_cpu_s(client: Any) -> float:
    """CPU seconds the server's main thread has used (user + system)."""
    info = client.info("cpu")
    if "used_cpu_user_main_thread" in info:
        return float(info["used_cpu_user_main_thread"]) + float(info["used_cpu_sys_main_thread"])
    # before Redis 6.2 only the whole process was reported (the same thing with io-threads 1)
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _cpu_per_command_us(client: Any, run: Any, commands: int) -> float:
    before = main_thread_cpu_s(client)
    run()
    after = main_thread_cpu_s(client)
    return max(after - before, 0.0) / commands * 1e6


def command_cost(
    client: Any,
    *,
    requests: int = 20_000,
    pipelined: int = 200_000,
    pipeline: int = 100,
    value_bytes: int = 100,
    keys: int = 10_000,
) -> CommandCost:
    """Main-thread CPU per SET and GET, unpipelined and pipelined (see the module docstring)."""
    value = "v" * value_bytes
    names = [f"{KEY_PREFIX}cmd:{i % keys}" for i in range(max(requests, pipelined))]
    client.config_resetstat()

    def single(op: str) -> Any:
        def go() -> None:
            if op == "set":
                for name in names[:requests]:
                    client.set(name, value)
            else:
                for name in names[:requests]:
                    client.get(name)

        return go

    def batched(op: str) -> Any:
        def go() -> None:
            for start in range(0, pipelined, pipeline):
                pipe = client.pipeline(transaction=False)
                for name in names[start : start + pipeline]:
                    if op == "set":
                        pipe.set(name, value)
                    else:
                        pipe.get(name)
                pipe.execute()

        return go

    set_request = _cpu_per_command_us(client, single("set"), requests)
    get_request = _cpu_per_command_us(client, single("get"), requests)
    set_pipelined = _cpu_per_command_us(client, batched("set"), pipelined)
    started = time.perf_counter()
    get_pipelined = _cpu_per_command_us(client, batched("get"), pipelined)
    client_wall_us = (time.perf_counter() - started) / pipelined * 1e6
    stats = client.info("commandstats")
    client.delete(*{names[i] for i in range(min(keys, len(names)))})
    return CommandCost(
        set_request_us=set_request,
        get_request_us=get_request,
        set_pipelined_us=set_pipelined,
        get_pipelined_us=get_pipelined,
        set_exec_us=float(stats.get("cmdstat_set", {}).get("usec_per_call", 0.0)),
        get_exec_us=float(stats.get("cmdstat_get", {}).get("usec_per_call", 0.0)),
        client_pipelined_us=client_wall_us,
        pipeline=pipeline,
        commands=2 * (requests + pipelined),
        value_bytes=value_bytes,
    )


def loaded_request_cost(
    client: Any,
    host: str,
    port: int,
    *,
    requests: int = 100_000,
    clients: int = 50,
    value_bytes: int = 100,
) -> float | None:
    """Main-thread CPU µs per SET while redis-benchmark runs `clients` connections; None
    without redis-benchmark."""
    benchmark = shutil.which("redis-benchmark")
    if benchmark is None:
        return None
    args = [
        benchmark, "-h", host, "-p", str(port), "-c", str(clients), "-n", str(requests),
        "-d", str(value_bytes), "-t", "set", "-r", "10000", "-q",
    ]  # fmt: skip

    def go() -> None:
        subprocess.run(args, check=True, capture_output=True, timeout=300)

    cost = _cpu_per_command_us(client, go, requests)
    client.flushall()
    return cost


def fsync_latency(
    directory: str | Path, *, samples: int = 200, append_bytes: int = 128
) -> FsyncLatency:
    """Time `samples` fdatasync calls, each after a small append, in `directory`."""
    path = Path(directory) / f"rksim-fsync-probe-{os.getpid()}.tmp"
    timings: list[float] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        payload = b"x" * append_bytes
        for _ in range(samples):
            os.write(fd, payload)
            started = time.perf_counter()
            os.fdatasync(fd)
            timings.append((time.perf_counter() - started) * 1e3)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    ordered = sorted(timings)
    logs = [math.log(max(t, 1e-6)) for t in timings]
    return FsyncLatency(
        median_ms=statistics.median(ordered),
        p90_ms=ordered[int(0.90 * (len(ordered) - 1))],
        p99_ms=ordered[int(0.99 * (len(ordered) - 1))],
        log_sigma=statistics.pstdev(logs) if len(logs) > 1 else 0.0,
        samples=samples,
        directory=str(directory),
    )


def _wait_persistence_idle(client: Any, timeout_s: float = 120.0) -> None:
    """Wait until no BGSAVE or AOF rewrite runs or is scheduled."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = client.info("persistence")
        busy = (
            info.get("rdb_bgsave_in_progress", 0)
            or info.get("aof_rewrite_in_progress", 0)
            or info.get("aof_rewrite_scheduled", 0)
        )
        if not busy:
            return
        time.sleep(0.02)
    raise TimeoutError(f"redis still saving or rewriting after {timeout_s} s")


def _median_set_latency_ms(client: Any, samples: int, value: str) -> float:
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        client.set(f"{KEY_PREFIX}aof:{i}", value)
        timings.append((time.perf_counter() - started) * 1e3)
    return statistics.median(timings)


def aof_fsync_cost(client: Any, *, samples: int = 500, value_bytes: int = 100) -> dict[str, float]:
    """Median SET latency (ms) with `appendfsync no` and `always`, and their difference.

    Turns the AOF on for the measurement (CONFIG SET) and restores the previous settings.
    """
    previous = {name: client.config_get(name)[name] for name in ("appendonly", "appendfsync")}
    value = "v" * value_bytes
    try:
        client.config_set("appendfsync", "no")
        client.config_set("appendonly", "yes")
        _wait_persistence_idle(client)
        _median_set_latency_ms(client, samples // 5, value)  # warm up connection and AOF file
        no_ms = _median_set_latency_ms(client, samples, value)
        client.config_set("appendfsync", "always")
        always_ms = _median_set_latency_ms(client, samples, value)
    finally:
        client.config_set("appendfsync", previous["appendfsync"])
        client.config_set("appendonly", previous["appendonly"])
        _wait_persistence_idle(client)
        names = [f"{KEY_PREFIX}aof:{i}" for i in range(samples)]
        client.delete(*names)
    return {
        "appendfsync_no_ms": no_ms,
        "appendfsync_always_ms": always_ms,
        "fsync_ms": max(always_ms - no_ms, 0.0),
    }


def populate(client: Any, keys: int, value_bytes: int) -> int:
    """Add `keys` keys of `value_bytes` bytes (DEBUG POPULATE); return used_memory after."""
    client.execute_command("DEBUG", "POPULATE", keys, f"{KEY_PREFIX}data", value_bytes)
    return int(client.info("memory")["used_memory"])


def fork_ms(client: Any, repeats: int = 3) -> float:
    """Median `latest_fork_usec` of `repeats` BGSAVEs, in ms."""
    forks = []
    for _ in range(repeats):
        _wait_persistence_idle(client)
        client.bgsave()
        _wait_persistence_idle(client)
        forks.append(int(client.info("stats")["latest_fork_usec"]) / 1000.0)
    return statistics.median(forks)


def save_s(client: Any) -> float:
    """Seconds of a foreground SAVE (the main thread serializes and fsyncs the RDB)."""
    _wait_persistence_idle(client)
    started = time.perf_counter()
    client.save()
    return time.perf_counter() - started


def reload_s(client: Any) -> float:
    """Seconds of `DEBUG RELOAD NOSAVE`: empty the dataset, load the RDB on disk."""
    started = time.perf_counter()
    client.execute_command("DEBUG", "RELOAD", "NOSAVE")
    return time.perf_counter() - started


def rdb_path(client: Any) -> Path:
    config = client.config_get("dir")
    config.update(client.config_get("dbfilename"))
    return Path(config["dir"]) / config["dbfilename"]


def dataset_cost(
    client: Any,
    *,
    keys: int,
    value_bytes: int = 100,
    fork_repeats: int = 3,
    load: Any = None,
) -> DatasetCost:
    """Fork, SAVE and load of a populated dataset; `load(client) -> (seconds, method)` may
    replace `DEBUG RELOAD NOSAVE` (a restart, for a server the caller owns)."""
    empty_memory = int(client.info("memory")["used_memory"])
    used = populate(client, keys, value_bytes)
    dataset_bytes = max(used - empty_memory, 1)
    fork = fork_ms(client, fork_repeats)
    saving = save_s(client)
    rdb_bytes = rdb_path(client).stat().st_size if rdb_path(client).exists() else 0
    if load is None:
        loading, method = reload_s(client), "DEBUG RELOAD NOSAVE"
    else:
        loading, method = load(client)
    return DatasetCost(
        keys=keys,
        value_bytes=value_bytes,
        used_memory_bytes=used,
        rdb_bytes=rdb_bytes,
        fork_ms=fork,
        fork_ms_per_gb=fork / (used / GB),
        save_s=saving,
        rdb_save_mb_s=(dataset_bytes / MB) / max(saving, 1e-6),
        load_s=loading,
        load_ms_per_gb=loading * 1000.0 / (dataset_bytes / GB),
        load_method=method,
    )
