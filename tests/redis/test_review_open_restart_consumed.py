"""Review regression: a server restart does not count as lost the list items and stream entries
a consumer took before the crash and is still processing (they are outside Redis).

Sizes: 200 writes/s for 3 s, one consumer slower than the producers (10 ms an item), so it is
always busy with something when the server restarts at 1 s; persistence off, so the restart
drops the whole backlog (`no_persistence`) but not what the consumer holds.
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_support import run_redis, spec

NO_PERSISTENCE = {"appendonly": False, "save": ""}
SLOW_CONSUMER = {"consumers": 1, "processing_ms": 10.0, "rate_per_s": 200.0}


@pytest.mark.parametrize("workload", ["list", "stream"])
@pytest.mark.parametrize("seed", [1, 2])
def test_a_restart_loses_the_backlog_but_not_what_the_consumer_is_processing(
    workload: str, seed: int
) -> None:
    redis: dict[str, Any] = {"workload": workload, **NO_PERSISTENCE}
    faults = [{"at_s": 1.0, "kind": "restart", "target": "redis"}]
    result = run_redis(spec(redis=redis, workload=SLOW_CONSUMER, faults=faults, seed=seed))
    m = result.summary["messages"]
    assert m["lost_by_cause"]["no_persistence"] > 0  # the backlog in Redis's memory
    assert set(m["lost_by_cause"]) == {"no_persistence"}
    # what the consumer held was processed: delivered, never counted lost first (it used to be
    # counted lost at the restart, then delivered: resurrected)
    assert m["anomalies"]["resurrected"] == 0
    assert m["in_flight"] == 0
