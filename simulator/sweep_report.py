"""`rksim sweep-report DIR`: one self-contained HTML page of a sweep's standard plots.

Metric vs parameter with confidence bands (`simulator.plots.sweep_figure`), faceted by system,
plus what did not vary, the failed runs and the per-point statistics. plotly.js is embedded in the
page, so it opens offline and can be mailed as one file. Works on a sweep still running or
interrupted (the runs finished so far).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from simulator import plots
from simulator.stats import metric_columns, point_stats, wide
from simulator.sweeps import failed_runs, load_sweep

REPORT_FILE = "report.html"
# The standard plots, in this order, when present in the table.
STANDARD_METRICS = (
    "latency_ms.ack.mean",
    "latency_ms.ack.p99",
    "latency_ms.end_to_end.p99",
    "throughput.delivered_per_s",
    "messages.lost",
    "messages.duplicates",
    "messages.indeterminate",
    "availability.unavailable_s",
)

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.2em; } .meta { color: #666; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1.5em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f5f5f5; } pre { white-space: pre-wrap; font-size: 0.85em; }
.figure { margin-bottom: 2em; }
"""


def varied_parameters(table: pd.DataFrame) -> list[str]:
    """The `param.*` columns that take more than one value."""
    return [
        c for c in table.columns if c.startswith("param.") and table[c].nunique(dropna=True) > 1
    ]


def report_metrics(
    table: pd.DataFrame, wanted: Sequence[str] | None = None
) -> tuple[list[str], dict[str, Any]]:
    """(metrics to plot, metrics constant over every run -> their value)."""
    available = metric_columns(table)
    candidates = list(wanted) if wanted else [m for m in STANDARD_METRICS if m in available]
    missing = [m for m in candidates if m not in table.columns]
    if missing:
        raise ValueError(
            f"no metric column(s) {', '.join(missing)}; allowed: {', '.join(available)}"
        )
    ok = table.drop(index=failed_runs(table).index)
    plotted, constant = [], {}
    for metric in candidates:
        values = pd.to_numeric(ok[metric], errors="coerce").dropna()
        if wanted or values.nunique() > 1:
            plotted.append(metric)
        elif len(values):
            constant[metric] = values.iloc[0]
    return plotted, constant


def _table_html(frame: pd.DataFrame, max_rows: int = 500) -> str:
    return frame.head(max_rows).to_html(index=False, na_rep="–", border=0, escape=True)


def build_report(
    table: pd.DataFrame,
    meta: dict[str, Any],
    *,
    metrics: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> str:
    """The report page as HTML text (plotly.js inline)."""
    from plotly.offline import get_plotlyjs

    wanted = list(metrics or []) or list(meta.get("metrics") or [])
    plotted, constant = report_metrics(table, wanted)
    if parameters:
        params = [p if p.startswith("param.") else f"param.{p}" for p in parameters]
        unknown = [p for p in params if p not in table.columns]
        if unknown:
            allowed = ", ".join(c.removeprefix("param.") for c in varied_parameters(table))
            raise ValueError(f"no swept parameter(s) {', '.join(unknown)}; allowed: {allowed}")
    else:
        params = varied_parameters(table)
    facet = plots.sweep_facet(table)
    failed = failed_runs(table)
    name = str(meta.get("name") or "sweep")
    total = int(meta.get("total_runs") or len(table))
    seeds = table["seed"].nunique() if "seed" in table.columns else 0
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(name)}: sweep report</title><style>{_STYLE}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        f"<h1>{html.escape(name)}</h1>",
    ]
    if meta.get("description"):
        parts.append(f"<p>{html.escape(str(meta['description']))}</p>")
    done = f"{len(table)} of {total} runs" if len(table) < total else f"{len(table)} runs"
    systems = sorted(map(str, table["system"].dropna().unique())) if "system" in table else []
    parts.append(
        f"<p class='meta'>{done} ({len(failed)} failed), {seeds} seed(s) per point, "
        f"systems: {html.escape(', '.join(systems))}; "
        f"bands and error bars: {confidence:.0%} Student-t confidence interval of the mean over "
        f"seeds. Generated {datetime.now(UTC).isoformat(timespec='seconds')}.</p>"
    )
    if len(table) < total:
        parts.append("<p><b>Incomplete sweep</b>: rerun the sweep command to finish it.</p>")
    if not params:
        parts.append("<p>No parameter varies in this sweep: see the statistics below.</p>")
    for parameter in params:
        parts.append(f"<h2>{html.escape(parameter.removeprefix('param.'))}</h2>")
        for metric in plotted:
            sub = table[table[parameter].notna()]
            if pd.to_numeric(sub[metric], errors="coerce").notna().sum() == 0:
                continue
            fig = plots.sweep_figure(sub, parameter, metric, facet=facet, confidence=confidence)
            fig.update_layout(height=420)
            div = fig.to_html(
                full_html=False, include_plotlyjs=False, config={"displaylogo": False}
            )
            parts.append(f"<div class='figure'>{div}</div>")
    if constant:
        rows = pd.DataFrame(
            {"metric": list(constant), "value in every run": list(constant.values())}
        )
        parts.append("<h2>The same in every run</h2>" + _table_html(rows))
    if len(failed):
        shown = failed.assign(
            error=failed["error"].astype(str).map(lambda e: e.splitlines()[0] if e else e)
        )
        columns = [c for c in shown.columns if c.startswith("param.")] + [
            "scenario",
            "seed",
            "error",
        ]
        parts.append(
            f"<h2>Failed runs ({len(failed)})</h2>"
            + _table_html(shown[[c for c in columns if c in shown.columns]])
        )
    if plotted:
        stats = wide(point_stats(table, plotted, confidence))
        parts.append(
            f"<h2>Per point: mean ± half-width of the {confidence:.0%} interval</h2>"
            + _table_html(stats)
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(
    directory: str | Path,
    out: str | Path | None = None,
    *,
    metrics: Sequence[str] | None = None,
    parameters: Sequence[str] | None = None,
    confidence: float = 0.95,
) -> Path:
    """Write the report of the sweep in `directory` (default: DIR/report.html); return its path."""
    if not 0 < confidence < 1 or math.isnan(confidence):
        raise ValueError(f"confidence: {confidence} is not allowed; allowed: 0 < confidence < 1")
    table, meta = load_sweep(directory)
    page = build_report(table, meta, metrics=metrics, parameters=parameters, confidence=confidence)
    target = Path(out) if out is not None else Path(directory) / REPORT_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
