"""Apache Kafka 4.0 (KRaft) model: brokers, the replicated log, ISR and high watermark, leader
election by the controller, producers with batching, retries and idempotence, a consumer group.

See docs/kafka.md for what is modelled, the defaults and what is simplified.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from models.kafka.cluster import KafkaModel
from models.kafka.config import KafkaConfig
from models.kafka.steady import SteadyKafka, plan_refusal
from simulator.systems import System

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.model import SystemModel


def make_model(ctx: RunContext) -> SystemModel:
    """The planning engine for a run it can plan (steady.py), else the event engine."""
    if plan_refusal(ctx) is None:
        return SteadyKafka(ctx)
    return KafkaModel(ctx)


SYSTEM = System(
    kind="kafka",
    config=KafkaConfig,
    factory=make_model,
    description="Apache Kafka 4.0 (KRaft): replicated partitions, ISR, acks, elections, producers",
)

__all__ = ["SYSTEM", "KafkaConfig", "KafkaModel", "SteadyKafka", "make_model"]
