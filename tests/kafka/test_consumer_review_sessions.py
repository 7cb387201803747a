"""A member's session is the time since its last heartbeat, whatever froze it before.

consumer0 (partitions 0 and 1) is paused at 3 s for 0.5 s, well within session.timeout.ms
(6 s): it thaws, heartbeats again and stays in the group. What happens to it later must not be
judged against the session that stopped at that pause.
"""

from __future__ import annotations

import json
from typing import Any

from kafka_helpers import events, run_kafka, scenario

SHORT_PAUSE = {"at_s": 3.0, "kind": "pause", "target": "a_consumer", "duration_s": 0.5}


def _run(later: dict[str, Any]) -> Any:
    data = scenario([SHORT_PAUSE, later], workload__consumers=2, scenario__duration_s=14.0)
    return run_kafka(data)


def _first_takeover_ms(result: Any) -> float:
    """When consumer1 first gets consumer0's partitions."""
    rebalances = events(result, "rebalance")
    for t_ms, detail in zip(rebalances["t_ms"], rebalances["detail"], strict=True):
        if json.loads(detail)["assignment"].get("consumer1") == [0, 1, 2]:
            return float(t_ms)
    raise AssertionError("consumer1 never took the partitions")


def test_a_crash_after_a_short_pause_expires_once_a_session_after_the_crash() -> None:
    result = _run({"at_s": 5.0, "kind": "consumer_crash", "target": "a_consumer"})
    expired = events(result, "member_expired")
    # heartbeats stopped at the crash (5 s): the session expires at 11 s, once. Before the fix
    # the pause's timer expired it at 9 s, and again at 11 s
    assert list(expired["t_ms"]) == [11_000.0]
    assert _first_takeover_ms(result) >= 11_000.0


def test_a_member_leaving_after_a_short_pause_hands_over_at_once() -> None:
    result = _run({"at_s": 4.0, "kind": "stop", "target": "a_consumer", "duration_s": 5.0})
    # LeaveGroup at 4 s: the rebalance need not wait for anyone. Before the fix the round
    # waited for the session that stopped at the pause (until 9 s): two partitions sat
    # without a consumer for 5 s
    assert _first_takeover_ms(result) < 4_100.0
