"""Fuzzing the inputs: any document either validates or raises ScenarioError with readable lines.

Never another exception, never a hang. Values are drawn around the schema (right keys with wild
values, wrong keys, wrong types, nested garbage) so that most examples hit validation paths.
"""

from __future__ import annotations

import tomli_w
from hypothesis import given
from hypothesis import strategies as st

from simulator.scenario import ScenarioError, load_scenario, loads, scenario_model

SECTIONS = ["scenario", "system", "workload", "network", "disk", "checker", "nemesis", "queue"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def documents(draw: st.DrawFn) -> dict:
    model = scenario_model()
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from([*SECTIONS, "bogus"]), max_size=4, unique=True)):
        sub = model.model_fields.get(section)
        keys: list[str] = []
        if sub is not None and hasattr(sub.annotation, "model_fields"):
            keys = list(sub.annotation.model_fields)
        elif section == "queue":
            keys = ["service", "service_ms", "servers"]
        names = st.sampled_from([*keys, "nope"]) if keys else st.just("nope")
        doc[section] = draw(st.dictionaries(names, values, max_size=4))
    if draw(st.booleans()):
        doc["faults"] = draw(
            st.lists(
                st.fixed_dictionaries(
                    {
                        "at_s": values,
                        "kind": st.sampled_from(["crash", "pause", "meteor"]),
                        "target": scalars,
                    }
                ),
                max_size=2,
            )
        )
    return doc


def _check(doc: dict) -> None:
    try:
        load_scenario(doc)
    except ScenarioError as exc:
        assert exc.problems, "a ScenarioError must say what is wrong"
        for line in exc.problems:
            assert isinstance(line, str) and line.strip()
            assert "Traceback" not in line


@given(documents())
def test_random_documents_validate_or_raise_scenario_error(doc: dict) -> None:
    _check(doc)


@given(st.text(max_size=200))
def test_random_text_is_never_a_crash(text: str) -> None:
    try:
        loads(text)
    except ScenarioError as exc:
        assert exc.problems


@given(documents())
def test_valid_documents_survive_a_toml_round_trip(doc: dict) -> None:
    try:
        spec = load_scenario(doc)
    except ScenarioError:
        return
    assert loads(tomli_w.dumps(spec.to_dict())) == spec
