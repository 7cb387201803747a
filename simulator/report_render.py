"""The decision guide rendered: one self-contained HTML page or the Markdown of the docs.

The HTML embeds plotly once (usable offline); the Markdown is `docs/decision-guide.md`.
"""

from __future__ import annotations

import html
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from simulator.guide_rows import (
    GENERATED_MARK,
    GuideRow,
    Measured,
    Prices,
    cost_table,
    format_value,
    held_count,
    row_table,
    value_or_none,
)


# figures ---------------------------------------------------------------------------------------
def _fates_bars(m: Measured) -> go.Figure:
    """One stacked bar per run: share of produced messages in each fate."""
    labels = list(m.results) if m.is_comparison else [m.name]
    fig = go.Figure()
    for fate in ("delivered", "superseded", "lost", "skipped", "failed", "indeterminate"):
        shares = []
        for result in m.results.values():
            messages = result.summary["messages"]
            shares.append(100.0 * messages[fate] / max(1, messages["produced"]))
        if any(shares) or fate == "delivered":
            fig.add_trace(go.Bar(x=shares, y=labels, orientation="h", name=fate))
    fig.update_layout(
        barmode="stack",
        template="plotly_white",
        title=f"{m.name}: what happened to every message",
        xaxis_title="% of produced",
        height=160 + 45 * len(labels),
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def _latency_bars(m: Measured) -> go.Figure:
    labels = list(m.results) if m.is_comparison else [m.name]
    fig = go.Figure()
    for kind, name in (("ack", "produce -> ack p99"), ("end_to_end", "produce -> delivery p99")):
        values = [value_or_none(r.summary, f"latency_ms.{kind}.p99") for r in m.results.values()]
        fig.add_trace(go.Bar(x=labels, y=[v if v else None for v in values], name=name))
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title=f"{m.name}: p99 latency (ms, log scale)",
        yaxis_type="log",
        height=320,
        margin={"l": 10, "r": 10, "t": 50, "b": 40},
    )
    return fig


def _cost_figure(table: pd.DataFrame) -> go.Figure:
    money = [c for c in table.columns if c.endswith("$/month")]
    fig = go.Figure()
    for column in money:
        values = [float(str(v).replace(",", "")) for v in table[column]]
        fig.add_trace(go.Bar(x=list(table["messages/s"]), y=values, name=column))
    fig.update_layout(
        barmode="group",
        template="plotly_white",
        title="Holding the same retention: Redis RAM vs Kafka disk ($/month, log scale)",
        xaxis_title="messages/s",
        yaxis_type="log",
        height=340,
    )
    return fig


class _Figures:
    """Embeds plotly.js with the first figure only, so the file stays self-contained and small."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig: go.Figure) -> str:
        first = self.count == 0
        self.count += 1
        return fig.to_html(
            full_html=False,
            include_plotlyjs=first,
            div_id=f"figure-{self.count}",
            config={"displaylogo": False},
        )


# HTML ------------------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3}.verdict{font-weight:bold}.missing{color:#8a5a00}
.held{color:#176b2c}.not-held{color:#b00020;font-weight:bold}.lesson{white-space:pre-wrap}
section{border-top:1px solid #ddd;margin-top:1.5em}
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _links_html(names: list[str]) -> str:
    return ", ".join(f'<a href="#scenario-{_e(n)}">{_e(n)}</a>' for n in names)


def _expectations_html(m: Measured) -> str:
    items = []
    for e in m.expectations:
        css, mark = ("held", "held") if e["held"] else ("not-held", "NOT HELD")
        items.append(
            f'<li><span class="{css}">{mark}</span> <code>{_e(e["check"])}</code> '
            f"(actual {_e(format_value(e['actual']))}) {_e(e.get('why', ''))}</li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def _guide_rows_html(rows: list[GuideRow], measured: dict[str, Measured]) -> list[str]:
    parts = ["<h2>The guide at a glance</h2><table><tr><th>topic</th><th>usual claim</th>"]
    parts.append("<th>verdict after measurement</th><th>scenarios</th></tr>")
    for row in rows:
        parts.append(
            f'<tr><td><a href="#{_e(row.id)}">{_e(row.topic)}</a></td><td>{_e(row.claim)}</td>'
            f'<td class="verdict">{_e(row.verdict)}</td><td>{_links_html(row.scenarios)}</td></tr>'
        )
    parts.append("</table>")
    for row in rows:
        parts.append(f'<section id="{_e(row.id)}"><h2>{_e(row.topic)}</h2>')
        parts.append(f"<p><b>Usual claim.</b> {_e(row.claim)}</p>")
        parts.append(f'<p><b>Verdict.</b> <span class="verdict">{_e(row.verdict)}</span></p>')
        parts.append(f"<p><b>What the runs show.</b> {_e(row.finding)}</p>")
        parts.append(row_table(row, measured).to_html(index=False, escape=True, border=0))
        claims = [
            f"{_e(n)}: {held_count(measured[n])[0]}/{held_count(measured[n])[1]}"
            for n in row.scenarios
        ]
        parts.append(f"<p>Claims held in this run: {'; '.join(claims)}. ")
        parts.append(f"Lessons: {_links_html(row.scenarios)}.</p>")
        if row.missing:
            parts.append(f'<p class="missing"><b>Not backed yet.</b> {_e(row.missing)}</p>')
        parts.append("</section>")
    return parts


def render_html(
    rows: list[GuideRow], measured: dict[str, Measured], prices: Prices, *, ci: bool, seed: int
) -> str:
    """The whole report as one HTML page (plotly.js embedded once)."""
    from simulator import __version__

    figures = _Figures()
    size = "CI size (small, fast; numbers are indicative)" if ci else "default size"
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        "<title>rksim decision guide: Redis vs Kafka, measured</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Redis vs Kafka: the decision guide, measured</h1>",
        f"<p>rksim {_e(__version__)}, seed {seed}, scenarios at {_e(size)}. Each row states a "
        "claim that is often made, the verdict after running the scenarios that test it, and "
        "the numbers of this run; each scenario's lesson explains the mechanism.</p>",
    ]
    parts += _guide_rows_html(rows, measured)
    costs = cost_table(measured, prices)
    parts.append('<section id="cost"><h2>Memory vs disk: what holding the data costs</h2>')
    parts.append(f"<p>{_e(costs.attrs['note'])}</p>")
    parts.append(costs.to_html(index=False, border=0))
    parts.append(figures.html(_cost_figure(costs)))
    parts.append("</section><h2>Scenarios and their lessons</h2>")
    for m in measured.values():
        parts.append(f'<section id="scenario-{_e(m.name)}"><h3>{_e(m.name)}</h3>')
        parts.append(f"<p><i>{_e(m.spec.scenario.description)}</i></p>")
        parts.append(f'<p class="lesson">{_e(m.spec.scenario.lesson)}</p>')
        if m.descriptions:
            items = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in m.descriptions.items())
            parts.append(f"<p>Variants:</p><ul>{items}</ul>")
        parts.append(f"<p>Expectations in this run:</p>{_expectations_html(m)}")
        parts.append(figures.html(_fates_bars(m)))
        parts.append(figures.html(_latency_bars(m)))
        parts.append(
            f"<p>Run it yourself: <code>rksim {'compare' if m.is_comparison else 'run'} "
            f"{_e(m.name)}{' --ci' if ci else ''}</code></p></section>"
        )
    parts.append("</body></html>")
    return "\n".join(parts)


# Markdown --------------------------------------------------------------------------------------
def _md_table(frame: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(c) for c in frame.columns) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    for _, row in frame.iterrows():
        lines.append("| " + " | ".join(cell(v) for v in row) + " |")
    return "\n".join(lines)


def _md_links(names: list[str]) -> str:
    return ", ".join(f"[{n}](#scenario-{n.replace('_', '-')})" for n in names)


def render_markdown(
    rows: list[GuideRow], measured: dict[str, Measured], prices: Prices, *, ci: bool, seed: int
) -> str:
    """The guide as the Markdown document docs/decision-guide.md."""
    size = "CI size" if ci else "default size"
    out = [
        GENERATED_MARK,
        "# Redis vs Kafka: the decision guide, measured",
        "",
        "Each row states a claim that is often made when choosing between Redis and Kafka, the "
        "verdict after running the scenarios that test it, and the numbers of the last run "
        f"(seed {seed}, scenarios at {size}). Regenerate with "
        "`rksim report --ci --markdown docs/decision-guide.md`; `rksim report` also writes "
        "the HTML version with figures. The rows live in `simulator/guide.toml`.",
        "",
        "| topic | usual claim | verdict | scenarios |",
        "|---|---|---|---|",
    ]
    for row in rows:
        out.append(
            f"| [{row.topic}](#{row.id}) | {row.claim} | **{row.verdict}** | "
            f"{_md_links(row.scenarios)} |"
        )
    for row in rows:
        out += ["", f'<a id="{row.id}"></a>', "", f"## {row.topic}", ""]
        out += [f"**Usual claim.** {row.claim}", "", f"**Verdict.** {row.verdict}", ""]
        out += [f"**What the runs show.** {row.finding}", "", _md_table(row_table(row, measured))]
        held = "; ".join(
            f"{n} {held_count(measured[n])[0]}/{held_count(measured[n])[1]}" for n in row.scenarios
        )
        out += ["", f"Claims held in the last run: {held}. Lessons: {_md_links(row.scenarios)}."]
        if row.missing:
            out += ["", f"*Not backed yet:* {row.missing}"]
    costs = cost_table(measured, prices)
    out += ["", '<a id="cost"></a>', "", "## Memory vs disk: what holding the data costs", ""]
    out += [costs.attrs["note"], "", _md_table(costs), "", "## Scenarios and their lessons"]
    for m in measured.values():
        out += ["", f'<a id="scenario-{m.name.replace("_", "-")}"></a>', "", f"### {m.name}", ""]
        out += [f"*{m.spec.scenario.description}* ([TOML](../simulator/scenarios/{m.name}.toml))"]
        out += ["", m.spec.scenario.lesson.strip(), ""]
        for e in m.expectations:
            mark = "held" if e["held"] else "**NOT HELD**"
            out.append(f"- {mark}: `{e['check']}` (actual {format_value(e['actual'])})")
    return "\n".join(out) + "\n"
