"""maxmemory, eviction policies, TTLs and the cache workload: superseded by design, not lost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_support import loop_stats, run_redis, spec

from models.redis.config import RedisConfig
from models.redis.key_index import PresentKeys
from models.redis.memory import BASELINE_BYTES, Memory

# 10 000 keys x (100-byte values + ~88 bytes of key overhead): ~1.9 MB when all are present
WORKLOAD = {"keys": 10_000, "value_bytes": 100, "rate_per_s": 4000}
LIMIT = f"{(BASELINE_BYTES + 500_000) // 1000}k"  # room for about 2700 keys


def test_noeviction_at_maxmemory_refuses_writes_with_oom() -> None:
    redis = {"save": "", "maxmemory": LIMIT, "maxmemory_policy": "noeviction"}
    result = run_redis(spec(redis, WORKLOAD, duration_s=2.0))
    m = result.summary["messages"]
    assert m["failed"] > 0.5 * m["produced"]  # once full, every write to a new key is refused
    assert m["lost"] == 0
    assert loop_stats(result)["evicted_keys"] == 0
    assert loop_stats(result)["used_memory"] <= RedisConfig(maxmemory=LIMIT).maxmemory_bytes + 200


def test_allkeys_lru_evicts_instead_of_failing() -> None:
    redis = {"save": "", "maxmemory": LIMIT, "maxmemory_policy": "allkeys-lru"}
    result = run_redis(spec(redis, WORKLOAD, duration_s=2.0))
    m = result.summary["messages"]
    assert m["failed"] == 0
    assert m["lost"] == 0
    assert m["superseded_by_cause"]["evicted"] > 0
    stats = loop_stats(result)
    assert stats["evicted_keys"] > 1000
    # Redis evicts before a write runs: the write itself may leave one value above the limit
    assert stats["used_memory"] <= RedisConfig(maxmemory=LIMIT).maxmemory_bytes + 200


def test_lru_sampling_prefers_the_idlest_keys() -> None:
    config = RedisConfig(maxmemory="10mb", maxmemory_policy="allkeys-lru", maxmemory_samples=5)
    memory = Memory(config, 1000, np.random.default_rng(3))
    memory.background_keys = 0
    assert memory.last_access is not None
    memory.last_access[:] = np.arange(1000.0)  # key k was last used at time k
    keys = np.arange(1000)
    memory.set_values(keys, np.full(1000, 100), np.zeros(1000, dtype=bool))  # every key present
    victims = [memory.pick_victim(keys, np.full(1000, np.inf), 2000.0) for _ in range(2000)]
    # the best of 5 uniform samples: its expected rank is 1/6 of the key space (~167)
    assert np.mean(victims) == pytest.approx(1000 / 6, rel=0.1)


@settings(max_examples=60, deadline=None)
@given(
    n_keys=st.integers(1, 300),
    changes=st.lists(
        st.tuples(st.booleans(), st.lists(st.integers(0, 299), min_size=1, max_size=100)),
        max_size=30,
    ),
)
def test_the_present_key_index_finds_the_same_keys_as_a_scan(
    n_keys: int, changes: list[tuple[bool, list[int]]]
) -> None:
    index = PresentKeys(n_keys)
    present = np.zeros(n_keys, dtype=bool)
    for add, key_list in changes:
        keys = np.array(key_list) % n_keys
        (index.add if add else index.remove)(keys)
        present[keys] = add
        scanned = np.flatnonzero(present)
        assert index.count == scanned.size
        assert [index.kth(d) for d in range(index.count)] == scanned.tolist()


def test_cache_aside_hit_ratio_grows_with_key_popularity() -> None:
    ratios = {}
    for distribution in ("uniform", "zipf"):
        workload = {**WORKLOAD, "key_distribution": distribution, "rate_per_s": 5000}
        redis = {
            "workload": "cache",
            "save": "",
            "maxmemory": LIMIT,
            "maxmemory_policy": "allkeys-lru",
            "ops": {"ttl_s": 60},
        }
        result = run_redis(spec(redis, workload, duration_s=1.0))
        stats = loop_stats(result)
        ratios[distribution] = stats["keyspace_hits"] / (
            stats["keyspace_hits"] + stats["keyspace_misses"]
        )
        assert "hit_ratio" in result.timeseries.columns
        m = result.summary["messages"]
        assert m["lost"] == 0 and m["failed"] == 0
    # a cache holding ~27% of the keys: hits follow popularity (zipf s=1.1 concentrates reads)
    assert ratios["zipf"] > ratios["uniform"] + 0.2


def test_expired_values_are_superseded_and_later_reads_miss() -> None:
    # 2000 reads/s over 20 000 keys, TTL 0.5 s: a value is read again before it expires with
    # probability ~1 - exp(-0.05) = 5%, so most fills expire unread (superseded, not lost)
    redis = {"workload": "cache", "save": "", "ops": {"ttl_s": 0.5}}
    workload = {**WORKLOAD, "keys": 20_000, "rate_per_s": 2000}
    result = run_redis(spec(redis, workload, duration_s=1.5))
    m = result.summary["messages"]
    assert m["superseded_by_cause"]["expired"] > 0.5 * m["produced"]
    assert m["lost"] == 0
    stats = loop_stats(result)
    assert stats["expired_keys"] > 0.5 * m["produced"]
