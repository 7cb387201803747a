"""Where a partition's replicas live: the same placement for the topic and __consumer_offsets,
in both engines (cluster.py, steady.py)."""

from __future__ import annotations


def replicas_of(partition: int, brokers: int, replication_factor: int) -> list[int]:
    """Brokers (p + i) % brokers for i < replication_factor; the first is the preferred leader
    (leader at cluster creation)."""
    return [(partition + i) % brokers for i in range(replication_factor)]
