"""Review regression: when Sentinel declares the master subjectively down (SDOWN).

sentinel.c `sentinelCheckSubjectivelyDown` counts from the oldest unanswered PING
(`act_ping_time`), sent every second, or every down-after-milliseconds if that is shorter: a
master cut off at t is SDOWN between t + down-after and t + down-after + one PING period, never
sooner (the Sentinel docs: the time an instance should not be reachable before a Sentinel thinks
it is down). Each seed draws other PING phases for the three sentinels.
"""

from __future__ import annotations

import pytest
from redis_support import events_of, run_redis, spec

CUT_MS = 1000.0


@pytest.mark.parametrize("down_after_ms", [200.0, 1000.0, 1500.0])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_sentinel_sees_the_master_down_only_after_down_after_milliseconds(
    down_after_ms: float, seed: int
) -> None:
    redis = {
        "replicas": 1,
        "sentinel": {"count": 3, "quorum": 2, "down_after_milliseconds": down_after_ms},
    }
    faults = [{"at_s": CUT_MS / 1000, "kind": "partition", "target": "primary", "duration_s": 3.0}]
    w = {"rate_per_s": 200.0, "producers": 1, "keys": 100}
    result = run_redis(spec(redis=redis, workload=w, faults=faults, duration_s=4.5, seed=seed))
    sdown = [t for t, _detail in events_of(result, "sdown")]
    assert len(sdown) == 3
    period = min(1000.0, down_after_ms)
    # (it used to be as early as ~0.1 s after the cut: counted from the last answered PING)
    assert all(CUT_MS + down_after_ms <= t <= CUT_MS + down_after_ms + period for t in sdown)
    # (ODOWN waits for a second sentinel's own check, the election up to 1 s more: a failover,
    # if the cut lasts long enough for one, comes later still)
    assert all(t >= CUT_MS + down_after_ms for t, _detail in events_of(result, "failover"))
