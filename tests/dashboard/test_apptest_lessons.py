"""The Lessons page in AppTest: the library as a list, a lesson's claims, a one-click run."""

from __future__ import annotations

from dashboard_helpers import SCENARIO, assert_ok, chart, errors, open_app, query, titles

from simulator.scenario import builtin_names, load_scenario


def test_every_builtin_scenario_is_listed_and_the_first_one_shows_its_claims() -> None:
    at = open_app("lessons")
    assert at.title[0].value == "Lessons"
    listed = at.radio(key="lessons.name").options
    assert [option.split("**")[1] for option in listed] == builtin_names()
    chosen = str(at.radio(key="lessons.name").value)
    spec = load_scenario(chosen)
    assert at.header[0].value == chosen
    (claims,) = [t.value for t in at.dataframe if "why" in t.value.columns]
    assert list(claims["check"]) == [e.check for e in spec.expect]
    assert list(claims["why"]) == [e.why for e in spec.expect]
    assert query(at) == {"lesson": [chosen]}
    assert not titles(at)  # nothing runs before the click


def test_one_click_runs_the_lesson_and_marks_its_claims_held_or_not() -> None:
    at = open_app("lessons", query={"lesson": SCENARIO})
    at.button[0].click().run()  # "Run this lesson"
    assert_ok(at)
    assert not errors(at)
    assert titles(at) == [
        "What happened to every message",
        "Produce -> ack latency by intended send time",
    ]
    assert [m.label for m in at.metric] == ["produced", "delivered", "lost", "duplicates"]
    (marks,) = [t.value for t in at.dataframe if "held" in t.value.columns]
    assert list(marks["check"]) == [e.check for e in load_scenario(SCENARIO).expect]
    assert set(marks["held"]) <= {"held", "NOT HELD"}
    # the run stays on display while the reader switches the latency kind
    at.radio(key="lessons.latency_kind").set_value("end_to_end").run()
    assert chart(at, "Produce -> delivery latency")


def test_search_filters_the_list_and_says_when_nothing_matches() -> None:
    at = open_app("lessons")
    at.text_input(key="lessons.search").input("no-such-lesson-anywhere").run()
    assert_ok(at)
    assert "No lesson matches" in at.info[0].value
    at.text_input(key="lessons.search").input("queue").run()
    assert SCENARIO in " ".join(at.radio(key="lessons.name").options)
