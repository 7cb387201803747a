"""The Playground page in Streamlit's headless AppTest: widgets, a run, its figures, its URL."""

from __future__ import annotations

import shlex
from typing import Any

import forms
import pytest
from dashboard_helpers import (
    CRASH,
    SCENARIO,
    assert_ok,
    caption_starting,
    chart,
    charts,
    errors,
    metrics,
    open_app,
    query,
    titles,
    trace_names,
    values,
)
from streamlit.testing.v1 import AppTest

from simulator.scenario import Fault, builtin_names, load_scenario, parse_value

RUN_BUTTON = "FormSubmitter:playground.form.{}-Run"
# Streamlit's data_editor appends an added row to the (empty, typed) fault grid with .loc, which
# pandas 3 warns about; the row arrives intact.
GRID_ROW_WARNING = "ignore:Setting an item of incompatible dtype:Warning"
FIGURES = [
    "What happened to every message",
    "Produce -> ack latency by intended send time",
    "Throughput",
    "queue_length",
]


@pytest.fixture
def app() -> AppTest:
    return open_app()


def widget(at: AppTest, path: str, scenario: str = SCENARIO) -> Any:
    """The form widget of a scenario parameter (keys are `<scenario>:<dotted path>`)."""
    key = f"{scenario}:{path}"
    for kind in ("number_input", "selectbox", "checkbox"):
        found = [w for w in getattr(at, kind) if w.key == key]
        if found:
            return found[0]
    raise AssertionError(f"no widget for {key}")


def fault_row(**fields: Any) -> dict[str, Any]:
    """A row added to the fault grid: every schema field, unset ones empty."""
    row: dict[str, Any] = {name: None for name in Fault.model_fields}
    row["one_way"] = False
    row.update(fields)
    return row


def click_run(at: AppTest) -> AppTest:
    at.button(key=RUN_BUTTON.format(at.selectbox(key="playground.scenario").value)).click()
    at.run()
    assert_ok(at)
    return at


def test_page_opens_on_the_default_scenario_without_running_it(app: AppTest) -> None:
    assert app.title[0].value == "Playground"
    assert app.selectbox(key="playground.scenario").value == SCENARIO
    assert not charts(app)
    assert "press **Run**" in app.info[0].value
    assert query(app) == {"scenario": [SCENARIO]}


def test_run_shows_fates_latency_throughput_gauges_expectations_and_downloads(
    app: AppTest,
) -> None:
    click_run(app)
    assert not errors(app)
    counts = metrics(app)
    assert set(counts) == {"produced", "delivered", "lost", "duplicates"}
    # M/M/1 at 500/s for 20 s: Poisson(10,000) arrivals, sd 100, so +-10% is 10 sd
    assert 9_000 <= counts["produced"] <= 11_000
    assert counts["delivered"] == counts["produced"]
    assert counts["lost"] == counts["duplicates"] == 0

    assert titles(app) == FIGURES
    fates = chart(app, "What happened")
    assert trace_names(fates) == ["delivered"]
    assert values(fates["data"][0]["x"]) == [counts["delivered"]]
    latency = chart(app, "Produce -> ack latency")
    assert trace_names(latency) == ["p50", "p99"]
    p50, p99 = (values(trace["y"]) for trace in latency["data"])
    assert len(p50) > 10  # one point per time bucket
    # the service time alone is 1 ms on average, and p99 is never below p50
    assert all(high >= low > 0 for low, high in zip(p50, p99, strict=True) if low == low)
    assert trace_names(chart(app, "Throughput")) == ["offered", "acked", "delivered"]
    assert trace_names(chart(app, "queue_length")) == ["queue_length"]

    (expectations,) = [t.value for t in app.dataframe if "held" in t.value.columns]
    assert list(expectations["check"]) == [e.check for e in load_scenario(SCENARIO).expect]
    assert set(expectations["held"]) == {"held"}

    downloads = [button.proto.label for button in app.get("download_button")]
    assert downloads == [
        "summary.json",
        "timeseries.csv",
        "timeseries.parquet",
        "events.csv",
        "scenario.toml",
    ]


def test_latency_switches_to_end_to_end_without_rerunning(app: AppTest) -> None:
    click_run(app)
    caption = caption_starting(app, "From a terminal")  # holds the wall time of this very run
    app.radio(key="playground.latency_kind").set_value("end_to_end").run()
    assert_ok(app)
    assert chart(app, "Produce -> delivery latency")
    assert caption_starting(app, "From a terminal") == caption  # the same cached Result


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


def test_changed_parameters_reach_the_run_the_command_and_the_url(app: AppTest) -> None:
    widget(app, "scenario.seed").set_value(7)
    widget(app, "scenario.duration_s").set_value(5.0)
    widget(app, "workload.rate_per_s").set_value(900.0)
    click_run(app)
    assert app.subheader[0].value == f"{SCENARIO} · seed 7"
    # Poisson(4,500) arrivals: sd 67, so +-400 is 6 sd
    produced = metrics(app)["produced"]
    assert abs(produced - 4_500) <= 400

    command = caption_starting(app, "From a terminal").split("`")[1]
    assert command.startswith(f"rksim run {SCENARIO} --seed 7 --set ")
    args = shlex.split(command)
    sets = [args[i + 1] for i, arg in enumerate(args) if arg == "--set"]
    rerun = load_scenario(SCENARIO, [*sets, "scenario.seed=7"])
    shown = load_scenario(
        SCENARIO, {"scenario.seed": 7, "scenario.duration_s": 5.0, "workload.rate_per_s": 900.0}
    )
    assert rerun.digest() == shown.digest()

    link = query(app)
    assert link == {
        "scenario": [SCENARIO],
        "seed": ["7"],
        "set": ["scenario.duration_s=5", "workload.rate_per_s=900"],
    }
    # the link opened in a new session shows the same run, and the form holds its values
    opened = open_app(query=link)
    assert metrics(opened)["produced"] == produced
    assert widget(opened, "workload.rate_per_s").value == 900.0
    assert widget(opened, "scenario.seed").value == 7


def test_a_link_with_faults_shows_them_shaded_and_their_recovery(app: AppTest) -> None:
    opened = open_app(
        query={"scenario": SCENARIO, "seed": "2", "set": "scenario.duration_s=8", "fault": CRASH}
    )
    assert not errors(opened)
    # the server is down from 3 s to 4 s: what arrives then fails (about 1/8 of 4,000)
    assert "failed" in trace_names(chart(opened, "What happened"))
    latency = chart(opened, "Produce -> ack latency")
    (window,) = latency["layout"]["shapes"]
    assert (window["x0"], window["x1"]) == (3.0, 4.0)
    assert latency["layout"]["annotations"][0]["text"] == "crash"
    (faults,) = [t.value for t in opened.dataframe if "fault" in t.value.columns]
    assert faults[["fault", "target", "from (s)"]].values.tolist() == [["crash", "primary", 3.0]]
    # the fault grid starts from the link's faults
    grid = opened.data_editor(key=f"{SCENARIO}:faults").value
    assert grid[["at_s", "kind", "target", "duration_s"]].values.tolist() == [
        [3.0, "crash", "primary", 1.0]
    ]
    assert caption_starting(opened, "From a terminal").startswith(
        "From a terminal: `rksim run queue_mm1-seed2-"
    )  # edited faults: rerun from the downloaded scenario file


@pytest.mark.filterwarnings(GRID_ROW_WARNING)
def test_faults_added_in_the_grid_reach_the_run_and_the_url(app: AppTest) -> None:
    widget(app, "scenario.duration_s").set_value(8.0)
    app.session_state[f"{SCENARIO}:faults"] = {
        "edited_rows": {},
        "added_rows": [fault_row(at_s=2.0, kind="pause", target="server", duration_s=0.5)],
        "deleted_rows": [],
    }
    click_run(app)
    assert not errors(app)
    assert query(app)["fault"] == [
        '{at_s = 2.0, kind = "pause", target = "server", duration_s = 0.5}'
    ]
    assert chart(app, "Produce -> ack latency")["layout"]["annotations"][0]["text"] == "pause"


def test_invalid_parameter_shows_the_validation_error_and_the_page_recovers(app: AppTest) -> None:
    widget(app, "workload.rate_per_s").set_value(0.0)
    click_run(app)
    assert len(errors(app)) == 1
    assert "workload.rate_per_s" in errors(app)[0]
    assert not charts(app)

    widget(app, "workload.rate_per_s").set_value(500.0)
    click_run(app)
    assert not errors(app)
    assert titles(app) == FIGURES


@pytest.mark.filterwarnings(GRID_ROW_WARNING)
def test_a_fault_after_the_end_of_the_run_names_the_field(app: AppTest) -> None:
    app.session_state[f"{SCENARIO}:faults"] = {
        "edited_rows": {},
        "added_rows": [fault_row(at_s=99.0, kind="crash", target="primary")],
        "deleted_rows": [],
    }
    click_run(app)
    (error,) = errors(app)
    assert "faults[0].at_s" in error
    assert not charts(app)


def test_a_broken_link_says_what_is_wrong_and_the_page_stays_usable() -> None:
    opened = open_app(query={"scenario": SCENARIO, "seed": "x", "set": "workload.rate_per_s=0"})
    (error,) = errors(opened)
    assert "does not describe a valid run" in error and "seed" in error
    assert not charts(opened)
    click_run(opened)  # the default scenario still runs
    assert titles(opened) == FIGURES


def test_every_builtin_scenario_renders_its_form(app: AppTest) -> None:
    for name in builtin_names():
        app.selectbox(key="playground.scenario").set_value(name).run()
        assert_ok(app)
        assert not errors(app), name
        spec = load_scenario(name)
        assert widget(app, "workload.rate_per_s", name).value == spec.workload.rate_per_s
        assert app.button(key=RUN_BUTTON.format(name))
        assert query(app) == {"scenario": [name]}


def test_set_flags_are_read_back_as_the_same_values() -> None:
    overrides = {"a.float": 0.25, "a.int": 3, "a.flag": False, "a.word": "always", "a.big": 1e7}
    args = shlex.split(forms.as_set_flags(overrides))
    assert args[::2] == ["--set"] * len(overrides)
    read_back = {}
    for item in args[1::2]:
        key, _, raw = item.partition("=")
        read_back[key] = parse_value(raw)
    assert read_back == overrides  # 1e7 reads back as the int 10000000: the schema coerces it
