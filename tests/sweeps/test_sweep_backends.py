"""Local worker processes: a call that raises or kills its worker is reported, the rest run."""

from __future__ import annotations

from typing import Any

from sweep_helpers import square_or_fail

from simulator.sweep_backends import map_processes


def test_a_call_that_kills_its_worker_is_blamed_alone_and_the_others_finish() -> None:
    outcomes: dict[int, tuple[Any, str | None]] = {}

    def on_done(i: int, value: Any, error: str | None) -> None:
        assert i not in outcomes, f"call {i} reported twice"
        outcomes[i] = (value, error)

    map_processes(square_or_fail, [(i,) for i in range(8)], on_done, workers=2)
    assert sorted(outcomes) == list(range(8))
    assert outcomes[3][0] is None and "worker process died" in (outcomes[3][1] or "")
    assert outcomes[1] == (None, "ValueError: one bad call")
    assert {i: v for i, (v, _) in outcomes.items() if i not in (1, 3)} == {
        i: i * i for i in (0, 2, 4, 5, 6, 7)
    }
