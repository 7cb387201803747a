"""The Decision guide page: every row of the guide, and a row measured from its scenarios."""

from __future__ import annotations

from dashboard_helpers import assert_ok, errors, open_app

from simulator import report


def test_every_guide_row_is_listed_with_its_claim_and_verdict() -> None:
    at = open_app("guide")
    assert_ok(at)
    assert at.title[0].value == "Decision guide"
    topics = [h.value for h in at.subheader]
    assert topics == [row.topic for row in report.load_guide()]


def test_measuring_one_row_shows_its_numbers_and_claims() -> None:
    at = open_app("guide")
    row = next(r for r in report.load_guide() if r.id == "pubsub")
    at = at.multiselect(key="guide.rows").set_value([row.id]).run()
    at.button(key="FormSubmitter:guide.form-Measure").click().run()
    assert_ok(at)
    assert not errors(at)
    tables = [t.value for t in at.dataframe if "scenario" in t.value.columns]
    assert len(tables) == 1
    table = tables[0]
    assert set(row.scenarios) == set(table["scenario"])
    assert set(row.keys) <= set(table.columns)
    assert any("Claims held in this run" in c.value for c in at.caption)
