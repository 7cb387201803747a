"""Helpers of the dashboard's AppTest tests: open a page (with a URL), read its figures."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
from streamlit.testing.v1 import AppTest
from support import REPO_ROOT

APP = REPO_ROOT / "dashboard" / "app.py"
SCENARIO = "queue_mm1"
# A fault schedule for the queue model, as a link carries it (TOML inline tables).
CRASH = '{at_s = 3, kind = "crash", target = "primary", duration_s = 1}'
PARTITION = '{at_s = 6, kind = "partition", target = "server", duration_s = 1.5}'


def open_app(
    page: str | None = None, query: Mapping[str, str | list[str]] | None = None
) -> AppTest:
    """Run the app once on `page` (views/<page>.py; default: the Playground) with a URL query."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if page is not None:
        at.switch_page(f"views/{page}.py")
    at.run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, at.exception


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures on the page, as the JSON the browser receives."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def titles(at: AppTest) -> list[str]:
    return [figure["layout"]["title"]["text"] for figure in charts(at)]


def chart(at: AppTest, title_start: str) -> dict[str, Any]:
    found = [f for f in charts(at) if f["layout"]["title"]["text"].startswith(title_start)]
    assert found, f"no figure titled {title_start!r}; have {titles(at)}"
    return found[0]


def trace_names(figure: dict[str, Any]) -> list[str]:
    return [trace.get("name", "") for trace in figure["data"]]


def values(array: Any) -> list[Any]:
    """A plotly data array from figure JSON (plotly >= 6 sends numbers as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def metrics(at: AppTest) -> dict[str, int]:
    return {m.label: int(m.value.replace(",", "")) for m in at.metric}


def caption_starting(at: AppTest, prefix: str) -> str:
    found = [c.value for c in at.caption if c.value.startswith(prefix)]
    assert found, f"no caption starting with {prefix!r}"
    return found[0]


def query(at: AppTest) -> dict[str, list[str]]:
    """The URL query the page wrote, every value as a list."""
    return {k: v if isinstance(v, list) else [v] for k, v in at.query_params.items()}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]
