"""The CLI never shows a traceback for a user error, and reports an internal error briefly.

tests/test_cli.py covers a bad override, an unknown scenario, an invalid file, a usage error and
`show` of a non-result; these add malformed inputs of other kinds, and an internal error (a
registered system whose build raises) -> exit 1 with the --debug hint, and the traceback only
with --debug. Atomic result writes are covered by tests/unit/test_results.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str]:
    """Run `rksim ARGS` in-process (a subprocess costs seconds of imports): exit code, output."""
    from simulator import cli

    monkeypatch.setattr(sys, "argv", ["rksim", *args])
    monkeypatch.setitem(cli._DEBUG, "on", False)
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.err + out.out


BAD_FILES = {
    "not_toml.toml": "this is [not toml",
    "binary.toml": "\x00\x01\x02\xff",
    "wrong_type.toml": '[scenario]\nduration_s = "long"\n',
    "bad_fault.toml": '[system]\nkind = "kafka"\n[[faults]]\nat_s = 1\nkind = "meteor"\n',
    "bad_target.toml": '[system]\nkind = "kafka"\n[[faults]]\nat_s = 0\nkind = "crash"\n'
    'target = "nobody"\n',
    "bad_kafka.toml": '[system]\nkind = "kafka"\n[kafka]\nbrokers = 1\n[kafka.topic]\n'
    "replication_factor = 3\n",
    "bad_redis.toml": '[system]\nkind = "redis"\n[redis]\nappendfsync = "sometimes"\n',
    "unknown_system.toml": '[system]\nkind = "cassandra"\n',
    "huge.toml": "[scenario]\nduration_s = 1e300\n[workload]\nrate_per_s = 1e300\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_a_bad_scenario_file_exits_2_without_a_traceback(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / name
    path.write_text(BAD_FILES[name], encoding="utf-8", errors="surrogateescape")
    code, output = _cli(monkeypatch, capsys, "run", str(path), "--check-invariants")
    assert code == 2, output
    assert output.strip()
    assert "Traceback" not in output


@pytest.mark.parametrize(
    "args",
    [
        ["run", "kafka_acks_latency", "--set", "no_equals_sign"],
        ["run", "kafka_acks_latency", "--set", "kafka.brokers=many"],
        ["run", "redis_rdb_crash", "--set", "redis.nope=1"],
        ["validate", "/nonexistent/dir/file.toml"],
        ["sweep", "queue_mm1", "--backend", "carrier-pigeon"],
        ["sweep", "queue_mm1", "--grid", "queue.service_ms"],
        ["sweep-report", "/nonexistent"],
    ],
    ids=lambda a: " ".join(a)[:40],
)
def test_bad_arguments_exit_2_without_a_traceback(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)  # a sweep must not leave sweep-out/ in the repository
    code, output = _cli(monkeypatch, capsys, *args)
    assert code == 2, output
    assert "Traceback" not in output


BROKEN_SYSTEM = """
import sys
from simulator import systems
from simulator.cli import main
from simulator.model import SystemModel

class Broken(SystemModel):
    def build(self):
        raise RuntimeError("deliberately broken model")

systems.register(systems.System("broken", systems.SystemConfig, Broken))
sys.argv = ["rksim", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_an_internal_error_exits_1_with_a_short_report(debug: bool, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[system]\nkind = "broken"\n[scenario]\nduration_s = 1\n', encoding="utf-8")
    args = ["--debug", "run", str(path)] if debug else ["run", str(path)]
    proc = subprocess.run(
        [sys.executable, "-c", BROKEN_SYSTEM, *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert "deliberately broken model" in proc.stderr
    if debug:
        assert "Traceback" in proc.stderr
    else:
        assert "Traceback" not in proc.stderr
        assert "--debug" in proc.stderr
