"""The sweep report: one offline HTML file; figures with confidence bands, faceted by system."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import SMALL

from simulator import load_scenario, sweep
from simulator.plots import sweep_facet, sweep_figure
from simulator.sweep_report import write_report


def rksim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator.cli", *args], capture_output=True, text=True, timeout=120
    )


def synthetic(
    systems: list[str], x_values: list[float], others: dict[str, list] | None = None
) -> pd.DataFrame:
    rows = []
    for system in systems:
        for x in x_values:
            for extra in (
                [{}]
                if not others
                else [dict(zip(others, v, strict=True)) for v in zip(*others.values(), strict=True)]
            ):
                for seed in (1, 2, 3):
                    rows.append(
                        {
                            "param.rate": x,
                            **{f"param.{k}": v for k, v in extra.items()},
                            "scenario": system,
                            "system": system,
                            "seed": seed,
                            "latency": x * (1 + 0.1 * seed),
                            "error": "",
                        }
                    )
    return pd.DataFrame(rows)


def test_sweep_figure_draws_a_band_and_a_mean_line_per_series_and_a_panel_per_system() -> None:
    table = synthetic(["redis", "kafka"], [1.0, 2.0, 3.0], {"acks": ["1", "all"]})
    assert sweep_facet(table) == "system"
    fig = sweep_figure(table, "rate", "latency", facet="system")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "tonexty"]
    assert len(lines) == len(bands) == 2 * 2  # 2 systems x 2 acks values
    assert {t.xaxis for t in lines} == {"x", "x2"}
    assert {t.name for t in lines} == {"acks=1", "acks=all"}
    # mean over the seeds 1, 2, 3: x * 1.2
    assert list(lines[0].y) == pytest.approx([1.2, 2.4, 3.6])


def test_points_that_differ_in_more_than_a_few_parameters_become_markers_with_error_bars() -> None:
    table = synthetic(["queue"], [1.0, 2.0], {"s": [0.1 * i for i in range(12)]})
    fig = sweep_figure(table, "param.rate", "latency")
    assert all(t.mode == "markers" and t.error_y.array is not None for t in fig.data)


def test_unknown_parameter_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: rate"):
        sweep_figure(synthetic(["q"], [1.0]), "rte", "latency")


def test_report_is_one_offline_html_file_from_the_sweep_directory(tmp_path: Path) -> None:
    spec = load_scenario("queue_mm1", SMALL)
    sweep(spec, {"workload.rate_per_s": [200, 400, 600]}, seeds=2, out=tmp_path, workers=1)
    path = write_report(tmp_path)
    page = path.read_text(encoding="utf-8")
    assert path == tmp_path / "report.html"
    assert "<script src=" not in page  # plotly.js is inline: the page opens offline
    assert page.count("Plotly.newPlot") >= 2
    assert "latency_ms.ack.mean vs workload.rate_per_s" in page
    assert "The same in every run" in page and "messages.lost" in page


def test_sweep_and_report_commands_on_an_experiment_file(tmp_path: Path) -> None:
    experiment = tmp_path / "exp.toml"
    experiment.write_text(
        '[experiment]\nname = "tiny"\nscenarios = ["queue_mm1"]\n'
        f"set = {SMALL!r}\nreplications = 2\n".replace("'", '"')
        + '[grid]\n"workload.rate_per_s" = [300]\n'
    )
    out = tmp_path / "out"
    proc = rksim(
        "sweep", str(experiment), "--out", str(out), "--grid", "queue.servers=1,2", "-j", "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert "4 runs (0 failed)" in proc.stdout and "± " in proc.stdout
    report = rksim("sweep-report", str(out), "--metric", "latency_ms.ack.p99")
    assert report.returncode == 0, report.stderr
    assert "latency_ms.ack.p99 vs queue.servers" in (out / "report.html").read_text()


def test_user_errors_exit_2_without_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from simulator.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nscenarios = ["queue_mm1"]\nreplications = -1\n')
    cases = [
        (("sweep", str(bad)), "experiment.replications: -1 is not allowed"),
        (("sweep-report", str(tmp_path)), "not a sweep directory"),
        (("sweep", "queue_mm1", "--scheduler", "tcp://x:1"), "--scheduler needs --backend dask"),
        (("sweep", "queue_mm1", "--backend", "spark"), "allowed: local, dask"),
        (("sweep", "queue_mm1", "--keep", "everything"), "allowed: summary, tables, all"),
    ]
    for args, message in cases:
        monkeypatch.setattr(sys, "argv", ["rksim", *args])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (args, err)
        assert message in err and "Traceback" not in err
