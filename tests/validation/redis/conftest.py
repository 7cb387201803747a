"""Fixtures of the real-Redis validation: servers on loopback ports with data on a real disk."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from redis_server import RedisFactory, RedisServer, real_disk_dir
from support import ProcessGroup, require_binary, require_module


@pytest.fixture
def redis_factory(process_group: ProcessGroup, artifacts_dir: Path) -> RedisFactory:
    """`make(config, name=...)` -> a started RedisServer; every one is killed at teardown."""
    executable = require_binary("redis-server", "validation against a real Redis")
    require_module("redis", "driving the real Redis (redis-py)")
    root = real_disk_dir(artifacts_dir, artifacts_dir.name)

    def make(config: Mapping[str, str | int] | None = None, *, name: str = "redis") -> RedisServer:
        server = RedisServer(
            process_group, root / name / "data", config, executable=executable, name=name
        )
        server.start()
        return server

    return make
