"""Asynchronous replication: acknowledged writes lost in a failover, with and without WAIT.

Sources: Redis "Replication" documentation (replication is asynchronous: the primary replies
before any replica has the write), the WAIT command page ("WAIT does not make Redis a strongly
consistent store": it only reports how many replicas acknowledged; semantics R2, R3) and the
Sentinel documentation on promoted replicas. The replica is frozen with SIGSTOP, as a long GC or
VM pause would, so it lags deterministically; the primary is then killed and the replica
promoted with REPLICAOF NO ONE, as Sentinel would.
"""

from __future__ import annotations

import pytest
from redis_cases import replication_failover_loss, wait_until
from redis_server import RedisFactory, RedisServer
from redis_sim import sim_replication_failover_loss

pytestmark = pytest.mark.real_redis

BEFORE, DURING = 50, 20


def primary_and_replica(redis_factory: RedisFactory) -> tuple[RedisServer, RedisServer]:
    no_persistence = {"save": "", "appendonly": "no"}
    # repl-diskless-sync-delay 0: start the first full sync at once instead of after 5 s
    primary = redis_factory({**no_persistence, "repl-diskless-sync-delay": 0}, name="primary")
    replica = redis_factory(
        {**no_persistence, "replicaof": f"127.0.0.1 {primary.port}"}, name="replica"
    )
    wait_until(
        lambda: replica.info("replication").get("master_link_status") == "up",
        20,
        "the replica's first sync",
    )
    return primary, replica


def test_failover_loses_acknowledged_writes_the_replica_had_not_received(
    redis_factory: RedisFactory,
) -> None:
    primary, replica = primary_and_replica(redis_factory)
    outcome = replication_failover_loss(
        primary, replica, before=BEFORE, during=DURING, wait_timeout_ms=None
    )
    assert outcome.notes["promoted_role"] == "master"
    assert len(outcome.acknowledged) == BEFORE + DURING and not outcome.indeterminate
    # every write acknowledged while the replica was frozen was still in the primary's memory
    # (the precondition `backlog_at_kill` >= 1 MiB) and died with it: lost, though acknowledged
    assert outcome.notes["backlog_at_kill"] >= 1 << 20, outcome.notes
    assert sorted(outcome.lost) == sorted(f"during:{i}" for i in range(DURING))


def test_with_wait_no_write_acknowledged_by_a_replica_is_lost(
    redis_factory: RedisFactory,
) -> None:
    primary, replica = primary_and_replica(redis_factory)
    outcome = replication_failover_loss(
        primary, replica, before=BEFORE, during=DURING, wait_timeout_ms=50
    )
    assert outcome.notes["promoted_role"] == "master"
    # while the replica runs, WAIT 1 returns 1: these writes are acknowledged ...
    assert sorted(outcome.acknowledged) == sorted(f"before:{i}" for i in range(BEFORE))
    # ... and none of them is lost in the failover
    assert outcome.lost == []
    # while it is frozen WAIT returns 0 after its timeout: indeterminate, not acknowledged
    # (R3: the primary had still applied and replied OK to each of them)
    assert sorted(outcome.indeterminate) == sorted(f"during:{i}" for i in range(DURING))


# --- the same two cases through the model (no redis-server needed) ------------------------------
def _phase(labels: list[str], phase: str) -> list[str]:
    return [label for label in labels if label.startswith(f"{phase}:")]


def test_sim_failover_loses_the_acknowledged_writes_the_replica_had_not_received() -> None:
    outcome = sim_replication_failover_loss(wait_timeout_ms=None)
    assert len(outcome.notes["failover_ms"]) == 1, outcome.notes  # the replica was promoted
    sent = outcome.notes["sent"]
    assert sent["before"] > 0 and sent["during"] > 0, sent
    # as on the real server: every write is acknowledged (no WAIT), those the replica had
    # before the cut survive, and every one acknowledged after it dies with the primary
    assert not outcome.indeterminate
    assert _phase(outcome.lost, "before") == []
    assert sorted(outcome.lost) == sorted(_phase(outcome.acknowledged, "during"))
    assert len(_phase(outcome.acknowledged, "during")) == sent["during"]
    assert outcome.notes["causes"] == ["discarded_on_failover"]


def test_sim_with_wait_no_write_acknowledged_by_a_replica_is_lost() -> None:
    outcome = sim_replication_failover_loss(wait_timeout_ms=50)
    assert len(outcome.notes["failover_ms"]) == 1, outcome.notes
    sent = outcome.notes["sent"]
    # while the replica follows, WAIT 1 returns 1: acknowledged, and none of them is lost
    assert sorted(outcome.acknowledged) == sorted(_phase(outcome.acknowledged, "before"))
    assert len(outcome.acknowledged) == sent["before"]
    assert outcome.lost == []
    # while the replica is cut off WAIT returns 0 after its timeout: indeterminate
    assert len(_phase(outcome.indeterminate, "during")) == sent["during"]
