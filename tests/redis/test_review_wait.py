"""Review regression: WAIT without a timeout (`wait_timeout_ms = 0`) while no replica can ack.

The model computes WAIT when the write's iteration ends, from the replicas able to ack then
(docs/redis.md, not modelled): with no timeout and none of them, no reply ever comes, and the
client's own timeout decides (indeterminate). Sizes: 500 writes/s for 2 s; the window of 0.5 s
holds ~250 writes (Poisson, ±50 at 3 sigma).
"""

from __future__ import annotations

from typing import Any

import pytest
from redis_support import run_redis, spec

RATE = 500.0


@pytest.mark.parametrize("kind", ["pause", "crash", "partition"])
def test_wait_forever_with_no_replica_to_ack_leaves_the_write_to_the_client_timeout(
    kind: str,
) -> None:
    redis: dict[str, Any] = {"replicas": 1, "client": {"wait_replicas": 1, "wait_timeout_ms": 0}}
    faults = [{"at_s": 0.5, "kind": kind, "target": "replicas", "duration_s": 0.5}]
    w = {"rate_per_s": RATE, "producers": 1, "keys": 100}
    m = run_redis(spec(redis=redis, workload=w, faults=faults, duration_s=2.0)).summary["messages"]
    # the writes of the window get no answer: indeterminate, not left in flight forever (they
    # were: the master held their replies for a WAIT that could never return)
    assert m["in_flight"] == 0
    assert 0.7 * RATE * 0.5 <= m["indeterminate"] <= 1.3 * RATE * 0.5
    assert m["lost"] == m["failed"] == 0
