"""`rksim calibrate redis` against a real server: the TOML validates, the numbers are plausible.

Plausibility bounds are orders of magnitude around published figures, wide enough for any
machine CI may run on: a Redis command costs about 1 µs of CPU to execute (Redis benchmark
page), fsync from tens of µs (NVMe with power-loss protection) to tens of ms (spinning or
network disks), fork 9-13 ms/GB on physical hosts and up to 239 ms/GB on old Xen (latency
docs), and RDB loads at tens to hundreds of MB/s.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from redis_server import RedisFactory
from support import REPO_ROOT, free_port

KEYS = 100_000  # about 20 MB of used_memory: fork and load are measurable, and fast


@pytest.mark.real_redis
def test_calibrate_writes_a_valid_plausible_toml(
    redis_factory: RedisFactory, artifacts_dir: Path
) -> None:
    from models.redis_calibration import run_command, validate_sections

    server = redis_factory()
    out = artifacts_dir / "calibration-redis.toml"
    messages: list[str] = []
    lines = run_command("127.0.0.1", server.port, out, KEYS, messages.append, quick=True)
    assert lines[-1] == f"calibration written to {out}"
    assert messages, "progress is reported"

    sections = tomllib.loads(out.read_text(encoding="utf-8"))
    assert validate_sections(sections) == []
    assert set(sections) == {"disk", "redis"}
    disk, redis_section = sections["disk"], sections["redis"]
    assert 0.001 <= disk["fsync_ms"] <= 200
    assert 0 <= disk["fsync_sigma"] <= 3
    assert 0.02 <= redis_section["cpu_speed"] <= 50
    assert 0.1 <= redis_section["fork_ms_per_gb"] <= 5_000
    assert 100 <= redis_section["load_ms_per_gb"] <= 600_000
    assert 1 <= redis_section["rdb_save_mb_s"] <= 20_000
    # the calibration leaves the server as it found it: empty, AOF off
    with server.client() as client:
        assert client.dbsize() == 0
        assert client.config_get("appendonly")["appendonly"] == "no"


def test_documented_calibration_is_a_partial_scenario_the_models_accept() -> None:
    """docs/calibration.md's TOML: every key is one that `[disk]` / `[redis]` accepts."""
    from models.redis.config import RedisConfig
    from simulator.scenario import Disk

    text = (REPO_ROOT / "docs" / "calibration.md").read_text(encoding="utf-8")
    block = text.split("```toml", 1)[1].split("```", 1)[0]
    documented = tomllib.loads(block)
    assert set(documented) == {"disk", "redis"}
    Disk(**documented["disk"])
    RedisConfig(**documented["redis"])


def rksim_calibrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", "calibrate", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_calibrate_names_the_systems_it_can_measure() -> None:
    proc = rksim_calibrate("nosuch")
    assert proc.returncode == 2, proc.stderr
    assert "no calibration for 'nosuch'; available: redis" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_calibrate_reports_an_unreachable_server_in_one_line(tmp_path: Path) -> None:
    proc = rksim_calibrate("redis", "--port", str(free_port()), "--out", str(tmp_path / "c.toml"))
    assert proc.returncode == 2, proc.stderr
    assert "error: redis at 127.0.0.1:" in proc.stderr and "ConnectionError" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "c.toml").exists()
