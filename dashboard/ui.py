"""Pieces every page shows the same way: a run with progress, fate counts, claims, downloads."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import runs
import streamlit as st

from simulator import plots
from simulator.results import Result
from simulator.scenario import ScenarioBase

HELD_COLORS = {"held": plots.FATE_COLORS["delivered"], "NOT HELD": plots.FATE_COLORS["lost"]}


def run_with_progress(spec: ScenarioBase, what: str = "") -> Result | None:
    """The result of `spec`: cached, or simulated now behind a progress bar; None if it failed
    (the error is shown in place and the page goes on)."""
    result = runs.cached_result(spec)
    if result is not None:
        return result
    prefix = f"{what}: " if what else ""
    bar = st.progress(0.0, text=f"{prefix}simulating…")

    def report(fraction: float) -> None:
        # the runner reports the measured phase; the drain and the checker follow it
        if fraction < 1.0:
            bar.progress(0.9 * fraction, text=f"{prefix}simulating… {fraction:.0%} of the run")
        else:
            bar.progress(0.9, text=f"{prefix}draining consumers and checking every message…")

    try:
        result = runs.run(spec, progress=report)
    except Exception as exc:  # a model bug must not take the page down
        bar.empty()
        st.error(f"The run failed: {type(exc).__name__}: {exc}")
        with st.expander("Traceback"):
            st.exception(exc)
        return None
    bar.empty()
    return result


def problems(title: str, lines: list[str]) -> None:
    """Validation problems, one per line, in an error box next to the input that caused them."""
    st.error(f"**{title}**\n\n" + "\n".join(f"- {line}" for line in lines))


LATENCY_KINDS = {"ack": "produce -> acknowledgement", "end_to_end": "produce -> delivery"}


def fates_and_latency(result: Result, key: str) -> None:
    """The fate chart and the latency chart (ack or end-to-end, the reader's choice)."""
    st.plotly_chart(plots.fates_figure(result), theme=None, key=f"{key}.fates")
    kind = st.radio(
        "Latency",
        list(LATENCY_KINDS),
        format_func=LATENCY_KINDS.__getitem__,
        horizontal=True,
        key=f"{key}.latency_kind",
        help="Measured from the intended send time, so a stalled client does not hide queueing.",
    )
    st.plotly_chart(plots.latency_figure(result, kind=kind), theme=None, key=f"{key}.latency")


def fate_metrics(result: Result) -> None:
    """Produced, delivered, lost and duplicated, with shares and causes on hover."""
    messages = result.summary["messages"]
    produced = messages["produced"]

    def share(count: int) -> str:
        return f"{100.0 * count / produced:.2f}% of produced" if produced else ""

    lost_causes = ", ".join(f"{c}: {n:,}" for c, n in messages.get("lost_by_cause", {}).items())
    dup_causes = ", ".join(
        f"{c}: {n:,}" for c, n in messages.get("duplicates_by_cause", {}).items()
    )
    columns = st.columns(4)
    columns[0].metric("produced", f"{produced:,}", help="Messages the workload sent.")
    columns[1].metric(
        "delivered",
        f"{messages['delivered']:,}",
        help="Processed at least once by a consumer (or present in the final read). "
        f"{share(messages['delivered'])}",
    )
    columns[2].metric(
        "lost",
        f"{messages['lost']:,}",
        help=f"Acknowledged, then gone. {share(messages['lost'])} {lost_causes}".strip(),
    )
    columns[3].metric(
        "duplicates",
        f"{messages['duplicates']:,}",
        help=f"Extra deliveries of the same message. {dup_causes}".strip(),
    )


def readable(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "n/a" if value is None else str(value)


def expectations_frame(expectations: list[dict[str, Any]]) -> pd.DataFrame:
    """Claims, each marked held or not held, with the measured value."""
    return pd.DataFrame(
        [
            {
                "held": "held" if e["held"] else "NOT HELD",
                "check": e["check"],
                "actual": readable(e["actual"]),
                "why": e.get("why", ""),
            }
            for e in expectations
        ],
        columns=["held", "check", "actual", "why"],
    )


def show_expectations(expectations: list[dict[str, Any]], key: str) -> None:
    frame = expectations_frame(expectations)
    held = int((frame["held"] == "held").sum())
    st.markdown(f"**Expectations: {held} of {len(frame)} held**")
    styled = frame.style.map(
        lambda mark: f"color: {HELD_COLORS[mark]}; font-weight: 600", subset=["held"]
    )
    st.dataframe(styled, hide_index=True, key=key)


def parquet_bytes(frame: pd.DataFrame) -> Callable[[], bytes]:
    """Deferred Parquet encoding: done only when the user clicks the download."""

    def encode() -> bytes:
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        return buffer.getvalue()

    return encode


def csv_text(frame: pd.DataFrame) -> Callable[[], str]:
    return lambda: frame.to_csv(index=False)


def download_row(items: list[tuple[str, Any, str, str, str]], key: str) -> None:
    """One row of download buttons: (label, data or a callable making it, file name, MIME type,
    help). Data is made on click only (`on_click="ignore"` keeps the page as it is)."""
    row = st.container(horizontal=True)
    for label, data, file_name, mime, help_ in items:
        row.download_button(
            label,
            data,
            file_name=file_name,
            mime=mime,
            icon=":material/download:",
            on_click="ignore",
            key=f"{key}.download.{label}",
            help=help_ or None,
        )


def downloads(result: Result, spec: ScenarioBase, key: str) -> None:
    """Summary (JSON), time series (CSV, Parquet), events (CSV), resolved scenario (TOML)."""
    stem = runs.file_stem(spec)
    mime = "application/vnd.apache.parquet"
    rerun = "The fully resolved scenario: `rksim run FILE` reruns exactly this."
    items: list[tuple[str, Any, str, str, str]] = [
        ("summary.json", result.summary_json, f"{stem}-summary.json", "application/json", ""),
        ("timeseries.csv", csv_text(result.timeseries), f"{stem}-timeseries.csv", "text/csv", ""),
        (
            "timeseries.parquet",
            parquet_bytes(result.timeseries),
            f"{stem}-timeseries.parquet",
            mime,
            "",
        ),
        ("events.csv", csv_text(result.events), f"{stem}-events.csv", "text/csv", ""),
        ("scenario.toml", result.scenario_toml, f"{stem}.toml", "application/toml", rerun),
    ]
    download_row(items, key)


def initial(key: str, default: Any) -> Any:
    """The value a keyed widget starts from: what session state holds (set by a link, kept from
    an earlier run), else `default`. Always passed to the widget explicitly, so the browser
    shows what Python reads even for a widget it draws for the first time."""
    return st.session_state.get(key, default)


def index_of(options: list[Any], key: str, default: Any) -> int:
    """The `index=` of a keyed selectbox or radio: its session value, else `default`."""
    value = st.session_state.get(key, default)
    if value not in options:
        st.session_state.pop(key, None)
        value = default
    return options.index(value) if value in options else 0
