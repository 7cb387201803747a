"""Fixtures of the sweep tests: small experiments on the queue model, a second system kind."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from simulator import scenario, systems


@pytest.fixture
def second_system(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The queue model registered again as kind `queue_b` (in this process only)."""
    from models.queue import SYSTEM

    monkeypatch.setitem(systems._registered, "queue_b", dataclasses.replace(SYSTEM, kind="queue_b"))
    scenario.scenario_model.cache_clear()
    yield "queue_b"
    monkeypatch.delitem(systems._registered, "queue_b")
    scenario.scenario_model.cache_clear()
