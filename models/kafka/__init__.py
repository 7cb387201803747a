"""Apache Kafka 4.0 (KRaft) model: brokers, the replicated log, ISR and high watermark, leader
election by the controller, producers with batching, retries and idempotence, a consumer group.

See docs/kafka.md for what is modelled, the defaults and what is simplified.
"""

from __future__ import annotations

from models.kafka.cluster import KafkaModel
from models.kafka.config import KafkaConfig
from simulator.systems import System

SYSTEM = System(
    kind="kafka",
    config=KafkaConfig,
    factory=KafkaModel,
    description="Apache Kafka 4.0 (KRaft): replicated partitions, ISR, acks, elections, producers",
)

__all__ = ["SYSTEM", "KafkaConfig", "KafkaModel"]
