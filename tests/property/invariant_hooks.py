"""Until the models call their `invariants.check` from `check_invariants`, the tests wire it in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any
from unittest import mock

from models.kafka import invariants as kafka_invariants
from models.kafka.cluster import KafkaModel
from models.redis import invariants as redis_invariants
from models.redis.model import RedisModel
from simulator.model import SystemModel


def _chained(model_class: type[SystemModel], check: Any) -> Any:
    original = model_class.check_invariants

    def check_invariants(self: Any) -> None:
        original(self)
        check(self)

    return check_invariants


@contextmanager
def model_invariants_wired() -> Iterator[None]:
    """Every Kafka and Redis run inside also checks models/<kind>/invariants.py."""
    with ExitStack() as stack:
        for model_class, module in (
            (KafkaModel, kafka_invariants),
            (RedisModel, redis_invariants),
        ):
            stack.enter_context(
                mock.patch.object(
                    model_class, "check_invariants", _chained(model_class, module.check)
                )
            )
        yield
