"""The Compare page in AppTest: composed and built-in comparisons, the verdict, the claims."""

from __future__ import annotations

import shutil
from pathlib import Path

import links
import pytest
import runs
from dashboard_helpers import SCENARIO, assert_ok, chart, errors, open_app, query, titles
from streamlit.testing.v1 import AppTest

import simulator.scenario
from simulator.scenario import load_scenario

RUN = "FormSubmitter:compare.form-Run"
SHORT = "scenario.duration_s=5"
# A comparison scenario of the queue model: the same load on one server and on two.
SERVERS = """
[scenario]
name = "queue_servers"
description = "One server or two at 90% load"
duration_s = 5.0
seed = 3
warmup_s = 0.0
drain_s = 5.0

[system]
kind = "queue"

[workload]
rate_per_s = 900.0

[[compare.variants]]
label = "one"
set = ["queue.servers=1"]

[[compare.variants]]
label = "two"
set = ["queue.servers=2"]
description = "a second server"

[[compare.expect]]
check = "two.latency_ms.ack.p99 < one.latency_ms.ack.p99"
why = "A second server halves the utilization and most of the queueing."
"""


def verdict(at: AppTest) -> list[str]:
    (table,) = [t.value for t in at.dataframe if {"variant", "lost"} <= set(t.value.columns)]
    return list(table["variant"])


def claims(at: AppTest) -> list[tuple[str, str]]:
    (table,) = [t.value for t in at.dataframe if "held" in t.value.columns]
    return list(zip(table["held"], table["check"], strict=True))


COMPOSE = "Compose variants of a built-in"


def compose_mode(at: AppTest) -> AppTest:
    """Switch to composing variants (the default is a built-in comparison when there is one)."""
    return at.radio(key="compare.mode").set_value(COMPOSE).run()


def test_the_default_composes_the_scenario_under_two_loads_and_checks_a_claim() -> None:
    at = compose_mode(open_app("compare"))
    assert at.title[0].value == "Compare"
    assert "press **Run**" in at.info[0].value
    at.button(key=RUN).click().run()
    assert_ok(at)
    assert not errors(at)
    assert verdict(at) == ["baseline", "heavier_load"]
    # at 1.8x the load (utilization 0.9) the M/M/1 p99 is several times higher
    assert claims(at) == [("held", "heavier_load.latency_ms.ack.p99 > baseline.latency_ms.ack.p99")]
    fates = chart(at, "What happened to every message, by variant")
    assert {trace["name"] for trace in fates["data"]} == {"delivered"}
    assert list(fates["data"][0]["y"]) == ["baseline", "heavier_load"]
    side = chart(at, "Side by side on one time axis")
    # one line per variant in every panel, all on one shared time axis
    panels = [a["text"] for a in side["layout"]["annotations"]]
    assert panels[:2] == ["produce -> ack p99 (ms)", "produce -> delivery p99 (ms)"]
    assert {trace["name"] for trace in side["data"]} == {"baseline", "heavier_load"}
    assert {trace["xaxis"] for trace in side["data"]} == {
        f"x{i}" if i > 1 else "x" for i in range(1, len(panels) + 1)
    }
    assert side["layout"]["xaxis"]["matches"] == f"x{len(panels)}"
    labels = [button.proto.label for button in at.get("download_button")]
    assert labels == [
        "verdict.csv",
        "summaries.json",
        "timeseries.csv",
        "timeseries.parquet",
        "scenario.toml",
    ]
    link = query(at)
    assert link["scenario"] == [SCENARIO] and len(link["variant"]) == 2


def test_a_comparison_link_reproduces_the_verdict() -> None:
    variants = [
        links.toml_value({"label": "calm", "set": [SHORT], "description": ""}),
        links.toml_value(
            {"label": "busy", "set": [SHORT, "workload.rate_per_s=900"], "description": ""}
        ),
    ]
    claim = "busy.messages.produced > calm.messages.produced"
    at = open_app(
        "compare", query={"scenario": SCENARIO, "seed": "4", "variant": variants, "claim": claim}
    )
    assert not errors(at)
    assert verdict(at) == ["calm", "busy"]
    assert claims(at) == [("held", claim)]
    assert at.text_area(key="compare.claims").value == claim
    assert at.number_input(key="compare.seed").value == 4


def test_a_claim_about_an_unknown_variant_is_shown_next_to_the_form() -> None:
    at = compose_mode(open_app("compare"))
    at.text_area(key="compare.claims").input("kafka.messages.lost == 0")
    at.button(key=RUN).click().run()
    assert_ok(at)
    (error,) = errors(at)
    assert "compare.expect[0].check" in error and "kafka.messages.lost" in error
    assert not titles(at)
    # the page stays usable: a valid claim runs
    at.text_area(key="compare.claims").input("baseline.messages.lost == 0")
    at.button(key=RUN).click().run()
    assert claims(at) == [("held", "baseline.messages.lost == 0")]


def test_an_invalid_variant_names_the_variant_and_the_field() -> None:
    bad = links.toml_value({"label": "broken", "set": ["workload.rate_per_s=0"]})
    at = open_app("compare", query={"scenario": SCENARIO, "seed": "1", "variant": [bad]})
    (error,) = errors(at)
    assert "compare variant 'broken'" in error and "workload.rate_per_s" in error
    assert not titles(at)


@pytest.fixture
def library_with_a_comparison(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The built-in library plus one comparison scenario (in a copy of the directory)."""
    directory = tmp_path / "scenarios"
    shutil.copytree(simulator.scenario.builtin_dir(), directory)
    (directory / "queue_servers.toml").write_text(SERVERS, encoding="utf-8")
    names = sorted(p.stem for p in directory.glob("*.toml"))
    for module in (simulator.scenario, runs):
        monkeypatch.setattr(module, "builtin_dir", lambda: directory)
    for module in (simulator.scenario, runs, links):
        monkeypatch.setattr(module, "builtin_names", lambda: names)
    return directory


def test_a_builtin_comparison_runs_its_own_variants_and_claims(
    library_with_a_comparison: Path,
) -> None:
    at = open_app("compare", query={"scenario": "queue_servers"})
    assert at.radio(key="compare.mode").value == "A built-in comparison"
    assert at.selectbox(key="compare.builtin").value == "queue_servers"
    assert at.number_input(key="compare.seed").value == 3
    at.button(key=RUN).click().run()
    assert_ok(at)
    assert verdict(at) == ["one", "two"]
    check = load_scenario("queue_servers").compare.expect[0].check
    assert claims(at) == [("held", check)]
    assert query(at) == {"scenario": ["queue_servers"], "seed": ["3"]}
