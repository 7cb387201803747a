"""Redis 7.x model: one single-threaded event loop, RDB and AOF persistence, crash and restart,
maxmemory eviction and TTLs, pub/sub, lists as queues (see docs/redis.md)."""

from __future__ import annotations

from models.redis.config import RedisConfig
from models.redis.model import RedisModel, make_model
from simulator.systems import System

SYSTEM = System(
    kind="redis",
    config=RedisConfig,
    factory=make_model,
    description="Redis 7.x: single-threaded event loop, RDB/AOF persistence, eviction, pub/sub",
)

__all__ = ["SYSTEM", "RedisConfig", "RedisModel"]
