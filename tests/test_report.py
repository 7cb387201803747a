"""`rksim report`: the decision guide runs its scenarios and writes one offline HTML file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from simulator import report
from simulator.cli import app
from simulator.scenario import SUMMARY_SECTIONS, builtin_names

# The module fixture runs every scenario the guide cites at CI size (~30 s of CPU); on a busy
# machine running the suite in parallel its wall time can pass the default 300 s per test. One
# xdist group keeps the tests on one worker, so the module fixture is computed once, not twice.
pytestmark = [pytest.mark.timeout(900), pytest.mark.xdist_group("decision_guide")]

DOC = Path(__file__).resolve().parents[1] / "docs" / "decision-guide.md"
TOPICS = ("architecture", "storage", "scalability", "performance", "fault", "pub/sub", "caching")


@pytest.fixture(scope="module")
def measured() -> dict[str, report.Measured]:
    return report.measure(report.load_guide(), ci=True, seed=1)


def test_guide_rows_cite_real_scenarios_and_summary_keys() -> None:
    rows = report.load_guide()
    topics = " ".join(r.topic.lower() for r in rows)
    assert all(t in topics for t in TOPICS)
    for use_case in ("sessions", "analytics", "ingestion", "event sourcing"):
        assert use_case in topics
    for row in rows:
        assert row.claim and row.verdict and row.finding and row.keys, row.id
        assert set(row.scenarios) <= set(builtin_names()), row.id
        assert all(k.split(".")[0] in SUMMARY_SECTIONS for k in row.keys), row.id
    assert len({r.id for r in rows}) == len(rows)


def test_html_report_has_every_row_its_numbers_and_embedded_figures(
    measured: dict[str, report.Measured],
) -> None:
    rows = report.load_guide()
    page = report.render_html(rows, measured, report.Prices(), ci=True, seed=1)
    for row in rows:
        assert f'id="{row.id}"' in page and row.verdict in page
        for name in row.scenarios:
            assert f'href="#scenario-{name}"' in page and f'id="scenario-{name}"' in page
    assert page.count("* plotly.js v") == 1  # the library is inlined once: usable offline
    assert '<script src="http' not in page  # nothing is fetched from the network
    assert page.count("Plotly.newPlot") >= 2 * len(measured)
    assert 'id="cost"' in page and "Redis RAM" in page and "Kafka disk" in page


def test_a_dearer_ram_price_makes_the_redis_column_dearer(
    measured: dict[str, report.Measured],
) -> None:
    cheap = report.cost_table(measured, report.Prices(ram_gb_month=1.0))
    dear = report.cost_table(measured, report.Prices(ram_gb_month=10.0))

    def money(table: object) -> float:
        return float(str(table["Redis RAM $/month"].iloc[-1]).replace(",", ""))  # type: ignore[index]

    assert money(dear) == pytest.approx(10 * money(cheap), rel=0.01)
    per_message = report.bytes_per_message(measured)
    value_bytes = measured[report.COST_SCENARIO].spec.workload.value_bytes
    assert per_message["redis"] > value_bytes and per_message["kafka"] > value_bytes


def test_rksim_report_writes_html_and_markdown(
    measured: dict[str, report.Measured], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(report, "measure", lambda rows, **kwargs: measured)
    out, md = tmp_path / "guide.html", tmp_path / "guide.md"
    args = ["report", "--ci", "--out", str(out), "--markdown", str(md), "--price-ram-gb", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert md.read_text(encoding="utf-8").startswith(report.GENERATED_MARK)


def _structure(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^(#+ |<a id=)", line)]


def test_decision_guide_doc_was_generated_by_the_current_code(
    measured: dict[str, report.Measured],
) -> None:
    """Numbers change with the models; the headings, anchors and rows must not drift."""
    fresh = report.render_markdown(report.load_guide(), measured, report.Prices(), ci=True, seed=1)
    doc = DOC.read_text(encoding="utf-8")
    assert doc.startswith(report.GENERATED_MARK), "regenerate: rksim report --ci --markdown ..."
    assert _structure(doc) == _structure(fresh)
