"""Generated documentation stays in step with the code."""

from __future__ import annotations

from pathlib import Path

from simulator.docgen import markdown

ROOT = Path(__file__).resolve().parents[1]


def test_scenarios_reference_is_current() -> None:
    current = (ROOT / "docs" / "scenarios.md").read_text(encoding="utf-8")
    assert current == markdown(), (
        "docs/scenarios.md is stale: regenerate it with "
        "`.venv/bin/rksim schema --markdown > docs/scenarios.md`"
    )


def test_scenarios_reference_documents_every_core_section() -> None:
    text = markdown()
    for section in ("scenario", "workload", "network", "disk", "faults", "nemesis", "expect"):
        assert f"`{section}" in text or f"[[{section}]]" in text
