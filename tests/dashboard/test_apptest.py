"""The Playground page in Streamlit's headless AppTest: widgets, a run, its figures and errors."""

from __future__ import annotations

import base64
import json
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from support import REPO_ROOT

from simulator.scenario import builtin_names, load_scenario, parse_value

APP = REPO_ROOT / "dashboard" / "app.py"
SCENARIO = "queue_mm1"
# The page's helper modules sit next to app.py, which Streamlit puts on sys.path.
sys.path.insert(0, str(APP.parent))

import forms  # noqa: E402


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Every test starts without cached runs or scenario lists (and leaves none behind)."""
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    return at


def widget(at: AppTest, path: str, scenario: str = SCENARIO) -> Any:
    """The form widget of a scenario parameter (keys are `<scenario>:<dotted path>`)."""
    key = f"{scenario}:{path}"
    for kind in ("number_input", "selectbox", "checkbox"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no widget for {key}")


def click_run(at: AppTest) -> AppTest:
    at.button(
        key=f"FormSubmitter:playground.form.{at.selectbox(key='playground.scenario').value}-Run"
    ).click()
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at: AppTest) -> list[dict[str, Any]]:
    """The plotly figures on the page, as the JSON the browser receives."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def values(array: Any) -> list[float]:
    """A plotly data array from figure JSON (plotly >= 6 sends numbers as base64 typed arrays)."""
    if isinstance(array, dict) and "bdata" in array:
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"]).tolist()
    return list(array)


def metrics(at: AppTest) -> dict[str, int]:
    return {m.label: int(m.value.replace(",", "")) for m in at.metric}


def test_page_opens_on_the_default_scenario_without_running_it(app: AppTest) -> None:
    assert app.title[0].value == "Playground"
    assert app.selectbox(key="playground.scenario").value == SCENARIO
    assert not charts(app)
    assert "press **Run**" in app.info[0].value


def test_run_shows_fate_counts_fates_and_latency_figures_and_expectations(app: AppTest) -> None:
    click_run(app)
    assert not app.error
    counts = metrics(app)
    assert set(counts) == {"produced", "delivered", "lost", "duplicates"}
    # M/M/1 at 500/s for 20 s: Poisson(10,000) arrivals, sd 100, so +-10% is 10 sd
    assert 9_000 <= counts["produced"] <= 11_000
    assert counts["delivered"] == counts["produced"]
    assert counts["lost"] == counts["duplicates"] == 0

    fates, latency = charts(app)
    assert fates["layout"]["title"]["text"] == "What happened to every message"
    assert [trace["name"] for trace in fates["data"]] == ["delivered"]
    assert values(fates["data"][0]["x"]) == [counts["delivered"]]
    assert latency["layout"]["title"]["text"].startswith("Produce -> ack latency")
    assert [trace["name"] for trace in latency["data"]] == ["p50", "p99"]
    p50, p99 = (values(trace["y"]) for trace in latency["data"])
    assert len(p50) > 10  # one point per time bucket
    # the service time alone is 1 ms on average, and p99 is never below p50
    assert all(high >= low > 0 for low, high in zip(p50, p99, strict=True) if low == low)

    (expectations,) = [t.value for t in app.dataframe if "held" in t.value.columns]
    assert list(expectations["check"]) == [e.check for e in load_scenario(SCENARIO).expect]
    assert set(expectations["held"]) == {"held"}

    downloads = [button.proto.label for button in app.get("download_button")]
    assert downloads == ["summary.json", "scenario.toml"]


def test_latency_switches_to_end_to_end_without_rerunning(app: AppTest) -> None:
    click_run(app)
    caption = app.caption[1].value  # holds the wall time of this very run
    app.radio(key="playground.latency_kind").set_value("end_to_end").run()
    assert not app.exception
    latency = charts(app)[1]
    assert latency["layout"]["title"]["text"].startswith("Produce -> delivery latency")
    assert app.caption[1].value == caption  # same cached Result, not a new simulation


def test_form_is_generated_from_the_system_schema(app: AppTest) -> None:
    spec = load_scenario(SCENARIO)
    config = spec.system_config
    kind = spec.system.kind
    for name, field in type(config).model_fields.items():
        found = forms.scalar_kind(field.annotation)
        if found is None:
            continue
        box = widget(app, f"{kind}.{name}")
        assert box.label == name
        assert box.value == getattr(config, name)  # the scenario's value, not the schema's
        assert field.description and field.description in box.help
        if found[0] == "choice":
            assert box.options == list(found[1])
    assert widget(app, "workload.rate_per_s").value == spec.workload.rate_per_s
    assert widget(app, "scenario.duration_s").value == spec.scenario.duration_s


def test_changed_parameters_reach_the_run_and_the_shown_command_reproduces_it(
    app: AppTest,
) -> None:
    widget(app, "scenario.seed").set_value(7)
    widget(app, "scenario.duration_s").set_value(5.0)
    widget(app, "workload.rate_per_s").set_value(900.0)
    click_run(app)
    assert app.subheader[0].value == f"{SCENARIO} · seed 7"
    # Poisson(4,500) arrivals: sd 67, so +-400 is 6 sd
    assert abs(metrics(app)["produced"] - 4_500) <= 400

    command = app.caption[1].value.split("`")[1]
    assert command.startswith(f"rksim run {SCENARIO} --seed 7 --set ")
    args = shlex.split(command)
    sets = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    rerun = load_scenario(SCENARIO, [*sets, "scenario.seed=7"])
    shown = load_scenario(
        SCENARIO, {"scenario.seed": 7, "scenario.duration_s": 5.0, "workload.rate_per_s": 900.0}
    )
    assert rerun.digest() == shown.digest()


def test_invalid_parameter_shows_the_validation_error_and_the_page_recovers(app: AppTest) -> None:
    widget(app, "workload.rate_per_s").set_value(0.0)
    click_run(app)
    assert len(app.error) == 1
    assert "workload.rate_per_s" in app.error[0].value
    assert not charts(app)

    widget(app, "workload.rate_per_s").set_value(500.0)
    click_run(app)
    assert not app.error
    assert len(charts(app)) == 2


@pytest.mark.parametrize("name", builtin_names())
def test_every_builtin_scenario_renders_its_form(app: AppTest, name: str) -> None:
    app.selectbox(key="playground.scenario").set_value(name).run()
    assert not app.exception, app.exception
    assert not app.error, [e.value for e in app.error]
    spec = load_scenario(name)
    assert widget(app, "workload.rate_per_s", name).value == spec.workload.rate_per_s
    assert app.button(key=f"FormSubmitter:playground.form.{name}-Run")


def test_set_flags_are_read_back_as_the_same_values() -> None:
    overrides = {"a.float": 0.25, "a.int": 3, "a.flag": False, "a.word": "always", "a.big": 1e7}
    args = shlex.split(forms.as_set_flags(overrides))
    assert args[::2] == ["--set"] * len(overrides)
    read_back = {}
    for item in args[1::2]:
        key, _, raw = item.partition("=")
        read_back[key] = parse_value(raw)
    assert read_back == overrides  # 1e7 reads back as the int 10000000: the schema coerces it
