"""Is the cost of a message independent of how many there are? (issue #10: linearity)

Wall time should grow linearly with the number of messages: the per-message time at 16M
messages at most 1.2x that at 1M. One repetition runs the same Redis key-value workload (the
`redis_kv_aof_everysec` benchmark's: 50k SET/s, AOF everysec, 50 producers) for 20 and for
320 simulated seconds, 1M and 16M messages, checker included, in the same process one after
the other, and reports `per_message_ratio` = (wall/message at 16M) / (wall/message at 1M).
A ratio above 1 means something grows faster than the run (a sort, a list that is rescanned,
memory pressure). `--quick` uses 100k and 1.6M.

`python -m benchmarks linearity_redis --reps 3` (about a minute per repetition)
"""

from __future__ import annotations

import copy
import time
from typing import Any

from benchmarks.bench_redis import SCENARIO
from benchmarks.harness import benchmark

RATE_PER_S = 50_000.0
SMALL, LARGE = 1_000_000, 16_000_000


def _spec(messages: int) -> Any:
    from simulator import load_scenario

    data = copy.deepcopy(SCENARIO)
    data["scenario"]["duration_s"] = messages / RATE_PER_S
    data["scenario"].pop("ci_set", None)
    return load_scenario(data)


def _setup(*, quick: bool = False) -> None:
    _spec(SMALL // (10 if quick else 1))


@benchmark("linearity_redis", setup=_setup)
def linearity_redis(*, quick: bool = False) -> dict[str, Any]:
    """Redis key-value at 1M and 16M messages: wall time per message, large / small."""
    from simulator import run

    scale = 10 if quick else 1
    per_message: dict[int, float] = {}
    produced: dict[int, int] = {}
    for messages in (SMALL // scale, LARGE // scale):
        spec = _spec(messages)
        start = time.perf_counter()
        result = run(spec, seed=1)
        elapsed = time.perf_counter() - start
        produced[messages] = int(result.summary["messages"]["produced"])
        per_message[messages] = elapsed / produced[messages]
        del result
    small, large = SMALL // scale, LARGE // scale
    return {
        "messages": produced[small] + produced[large],
        "wall_s": per_message[small] * produced[small] + per_message[large] * produced[large],
        "us_per_message_small": 1e6 * per_message[small],
        "us_per_message_large": 1e6 * per_message[large],
        "per_message_ratio": per_message[large] / per_message[small],
    }
