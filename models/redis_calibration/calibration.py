"""Calibrate the Redis model against a real server: measure, map to scenario keys, write TOML.

The measurements (see `measure`) become values of keys the scenario already has:

| scenario key | from |
|---|---|
| `[disk] fsync_ms` | median `fdatasync` of a small append in the server's data directory |
| `[disk] fsync_sigma` | standard deviation of ln(fsync latency) (the lognormal's sigma) |
| `[redis] cpu_speed` | the model's CPU cost of a pipelined SET (100 bytes, pipelines of 100) divided by the measured main-thread CPU per such SET |
| `[redis] fork_ms_per_gb` | `latest_fork_usec` of a BGSAVE / used_memory in GB |
| `[redis] load_ms_per_gb` | restart (or DEBUG RELOAD NOSAVE) time / dataset GB |
| `[redis] rdb_save_mb_s` | dataset MB / seconds of a foreground SAVE |

Everything else measured (pipelined costs, execution-only costs, the AOF always-vs-no latency
gap, file sizes, the hardware) is written as comments, so the file stays a valid partial
scenario: copy its sections into a scenario, or pass them as `--set` overrides.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

from models.redis_calibration import measure
from models.redis_calibration.local_server import LocalRedis, data_directory, filesystem_type

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Calibration:
    """Everything one calibration measured, and where."""

    commands: measure.CommandCost
    fsync: measure.FsyncLatency
    aof: dict[str, float]
    dataset: measure.DatasetCost
    model_request_us: float  # the model's cost of the same one-command request at cpu_speed 1
    model_pipelined_us: float
    machine: dict[str, str]
    loaded_set_us: float | None = None  # redis-benchmark -c 50 SET, main-thread CPU µs

    @property
    def cpu_speed(self) -> float:
        """Model cost / measured cost of a pipelined SET (> 1: this CPU is faster than the
        model's reference). Pipelined, because then parsing and execution dominate and the
        server's idle wake-ups (epoll_wait, scheduler) do not count."""
        return self.model_pipelined_us / self.commands.set_pipelined_us

    @property
    def cpu_speed_single_client(self) -> float:
        return self.model_request_us / self.commands.set_request_us

    def sections(self) -> dict[str, dict[str, float]]:
        """The scenario sections this calibration sets (keys the models accept)."""
        return {
            "disk": {
                "fsync_ms": _round(self.fsync.median_ms),
                "fsync_sigma": _round(min(max(self.fsync.log_sigma, 0.0), 3.0)),
            },
            "redis": {
                "cpu_speed": _round(self.cpu_speed),
                "fork_ms_per_gb": _round(self.dataset.fork_ms_per_gb),
                "load_ms_per_gb": _round(self.dataset.load_ms_per_gb),
                "rdb_save_mb_s": _round(self.dataset.rdb_save_mb_s),
            },
        }

    def overrides(self) -> list[str]:
        """The sections as `--set section.key=value` arguments."""
        return [
            f"{section}.{key}={value}"
            for section, values in self.sections().items()
            for key, value in values.items()
        ]

    def to_toml(self) -> str:
        """A partial scenario (`[disk]`, `[redis]`) with the raw measurements as comments."""
        c, f, d = self.commands, self.fsync, self.dataset
        lines = [
            "# Calibration of the rksim Redis model, written by `rksim calibrate redis`.",
            "# Copy these sections into a scenario (or pass them as --set overrides);",
            "# docs/calibration.md explains every value.",
            "#",
            *(f"# {key}: {value}" for key, value in self.machine.items()),
            "#",
            f"# main-thread CPU per command, µs (SET/GET of {c.value_bytes} bytes, "
            f"{c.commands} commands):",
            f"#   pipelines of {c.pipeline}: SET {c.set_pipelined_us:.2f}, "
            f"GET {c.get_pipelined_us:.2f}  (model at cpu_speed 1: SET "
            f"{self.model_pipelined_us:.2f} -> cpu_speed {self.cpu_speed:.3f})",
            f"#   one client, one command per request: SET {c.set_request_us:.2f}, GET "
            f"{c.get_request_us:.2f}  (model: SET {self.model_request_us:.2f} -> "
            f"{self.cpu_speed_single_client:.3f}; an idle loop's wake-ups count here)",
            "#   redis-benchmark -c 50 -t set (no pipelining): SET "
            + (f"{self.loaded_set_us:.2f}" if self.loaded_set_us else "not measured"),
            f"#   execution only (INFO commandstats usec_per_call): SET {c.set_exec_us:.2f}, "
            f"GET {c.get_exec_us:.2f}",
            f"#   redis-py wall time per pipelined GET: {c.client_pipelined_us:.2f} (client-bound)",
            f"# fdatasync of a {128}-byte append, ms: median {f.median_ms:.3f}, p90 {f.p90_ms:.3f},"
            f" p99 {f.p99_ms:.3f} ({f.samples} samples)",
            f"# SET latency, ms: appendfsync no {self.aof['appendfsync_no_ms']:.3f}, always "
            f"{self.aof['appendfsync_always_ms']:.3f} (difference {self.aof['fsync_ms']:.3f})",
            f"# dataset: {d.keys} keys x {d.value_bytes} bytes (DEBUG POPULATE), used_memory "
            f"{d.used_memory_bytes / 2**20:.1f} MiB, RDB {d.rdb_bytes / 2**20:.1f} MiB",
            f"#   fork {d.fork_ms:.2f} ms; SAVE {d.save_s:.3f} s; load {d.load_s:.3f} s "
            f"({d.load_method})",
            "",
        ]
        return "\n".join(lines) + tomli_w.dumps(self.sections())

    def summary(self) -> dict[str, Any]:
        """Plain data of every measurement (for JSON or a test)."""
        return {
            "sections": self.sections(),
            "commands": asdict(self.commands),
            "fsync": asdict(self.fsync),
            "aof": dict(self.aof),
            "dataset": asdict(self.dataset),
            "model_request_us": self.model_request_us,
            "model_pipelined_us": self.model_pipelined_us,
            "loaded_set_us": self.loaded_set_us,
            "cpu_speed_single_client": self.cpu_speed_single_client,
            "machine": dict(self.machine),
        }


def _round(value: float) -> float:
    return float(f"{value:.4g}")


def model_costs_us(value_bytes: int, pipeline: int) -> tuple[float, float]:
    """The Redis model's main-thread cost (µs, cpu_speed 1) of a one-command SET request, and of
    one SET in a pipeline of `pipeline`: the same cost table the simulation charges."""
    from models.redis.commands import SET, CostModel
    from models.redis.config import RedisConfig

    costs = CostModel(RedisConfig(appendonly=False))
    op = np.full(pipeline, SET, dtype=np.int8)
    nbytes = np.full(pipeline, float(value_bytes))
    first = np.zeros(pipeline, dtype=bool)
    last = np.zeros(pipeline, dtype=bool)
    first[0] = last[-1] = True
    exec_ms, read_ms, write_ms = costs.row_costs(op, nbytes, first, last)
    batch_ms = float(exec_ms.sum() + read_ms.sum() + write_ms.sum()) + costs.iteration_ms
    single = costs.row_costs(op[:1], nbytes[:1], first[:1] | True, last[:1] | True)
    single_ms = float(sum(part.sum() for part in single)) + costs.iteration_ms
    return single_ms * 1000.0, batch_ms / pipeline * 1000.0


def machine_facts(client: Any, directory: str) -> dict[str, str]:
    """What the numbers depend on: Redis version, CPU, kernel, the data directory's device."""
    server = client.info("server")
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "measured": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "redis": f"{server.get('redis_version')} ({server.get('os')}, "
        f"{server.get('multiplexing_api')})",
        "cpu": f"{cpu}, {os.cpu_count()} logical CPUs",
        "kernel": platform.release(),
        "data directory": f"{directory} ({filesystem_type(Path(directory))})",
    }


def _require_empty(client: Any) -> None:
    keyspace = client.info("keyspace")
    if keyspace:
        raise RuntimeError(
            "calibration needs an empty server (it loads a dataset, reloads it and then runs "
            f"FLUSHALL); this one has keys: {keyspace}"
        )


def calibrate_server(
    client: Any,
    *,
    keys: int,
    value_bytes: int = 100,
    quick: bool = False,
    load: Any = None,
    address: tuple[str, int] | None = None,
    progress: Progress | None = None,
) -> Calibration:
    """Measure an empty server reachable through `client` (DEBUG enabled); leave it empty.

    `address` (host, port) lets redis-benchmark load the server for the cross-check."""
    say = progress or (lambda _text: None)
    _require_empty(client)
    directory = client.config_get("dir")["dir"]
    machine = machine_facts(client, directory)
    try:
        say("per-command CPU cost (SET/GET, unpipelined and pipelined)")
        scale = 10 if quick else 1
        commands = measure.command_cost(
            client, requests=20_000 // scale, pipelined=200_000 // scale, value_bytes=value_bytes
        )
        loaded = None
        if address is not None:
            say("per-request CPU cost under redis-benchmark -c 50 (if installed)")
            loaded = measure.loaded_request_cost(
                client, *address, requests=20_000 if quick else 200_000, value_bytes=value_bytes
            )
        say(f"fsync latency in {directory}")
        fsync = measure.fsync_latency(directory, samples=100 if quick else 300)
        say("AOF: SET latency with appendfsync no vs always")
        aof = measure.aof_fsync_cost(client, samples=200 if quick else 1000)
        say(f"dataset of {keys} keys: fork, SAVE, load")
        dataset = measure.dataset_cost(
            client, keys=keys, value_bytes=value_bytes, fork_repeats=1 if quick else 3, load=load
        )
    finally:
        client.flushall()
    model_request, model_pipelined = model_costs_us(commands.value_bytes, commands.pipeline)
    return Calibration(
        commands, fsync, aof, dataset, model_request, model_pipelined, machine, loaded
    )


def calibrate(
    host: str = "127.0.0.1",
    port: int | None = None,
    *,
    keys: int = 1_000_000,
    value_bytes: int = 100,
    directory: Path | None = None,
    quick: bool = False,
    progress: Progress | None = None,
) -> Calibration:
    """Calibrate the server at host:port, or (port None) a private redis-server started here."""
    import redis

    say = progress or (lambda _text: None)
    if port is not None:
        with redis.Redis(host=host, port=port, socket_timeout=600) as client:
            return calibrate_server(
                client,
                keys=keys,
                value_bytes=value_bytes,
                quick=quick,
                address=(host, port),
                progress=say,
            )
    folder = data_directory(directory)
    say(f"starting a private redis-server in {folder} ({filesystem_type(folder)})")
    try:
        with (
            LocalRedis(folder) as server,
            redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=600) as client,
        ):
            return calibrate_server(
                client,
                keys=keys,
                value_bytes=value_bytes,
                quick=quick,
                load=server.load_by_restart,
                address=("127.0.0.1", server.port),
                progress=say,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # made by mkdtemp for this calibration only


def validate_sections(sections: dict[str, dict[str, Any]]) -> list[str]:
    """Problems of a calibration's sections as scenario values ([] when they validate)."""
    from pydantic import ValidationError

    from models.redis.config import RedisConfig
    from simulator.scenario import Disk

    problems: list[str] = []
    unknown = set(sections) - {"disk", "redis"}
    if unknown:
        problems.append(f"unexpected sections: {sorted(unknown)}")
    for name, model in (("disk", Disk), ("redis", RedisConfig)):
        try:
            model(**sections.get(name, {}))
        except ValidationError as exc:
            problems += [
                f"[{name}] {'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            ]
    return problems


def run_command(
    host: str, port: int | None, out: Path, keys: int, progress: Progress, *, quick: bool = False
) -> list[str]:
    """`rksim calibrate redis`: calibrate, validate, write `out`; the lines to show the user.

    `quick` takes a tenth of the samples (tests)."""
    try:
        import redis
    except ImportError:
        raise RuntimeError("redis-py is needed: pip install redis") from None
    try:
        result = calibrate(host, port, keys=keys, quick=quick, progress=progress)
    except redis.RedisError as exc:
        where = f"{host}:{port}" if port is not None else "the private redis-server"
        raise RuntimeError(f"redis at {where}: {type(exc).__name__}: {exc}") from None
    problems = validate_sections(result.sections())
    if problems:
        raise RuntimeError("calibration values do not validate: " + "; ".join(problems))
    out.parent.mkdir(parents=True, exist_ok=True)
    text = result.to_toml()
    out.write_text(text, encoding="utf-8")
    return [*text.splitlines()[4:], f"calibration written to {out}"]
