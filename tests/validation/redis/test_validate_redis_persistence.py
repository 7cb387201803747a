"""Acknowledged writes after a process crash (SIGKILL) and restart, per persistence setting.

Sources: Redis "Persistence" documentation and redis.conf (APPEND ONLY MODE, SNAPSHOTTING); the
project's semantics R4/R5. A SIGKILL is a *process* crash: the kernel keeps every page the
process had written into the page cache, so whatever reached `write()` survives, fsynced or not
(power loss, where `appendfsync` matters, is not something a test can do to a real machine).

Each case runs twice with the same redis.conf settings: against a real redis-server
(`real_redis`) and through the simulator (`redis_sim`), asserting the same outcome.
"""

from __future__ import annotations

import pytest
from redis_cases import crash_restart_loss, rdb_crash_loss
from redis_server import RedisFactory
from redis_sim import sim_crash_loss

NO_PERSISTENCE = {"save": "", "appendonly": "no"}
RDB_ONLY = {"save": "5 1", "appendonly": "no"}
AOF = {
    policy: {"save": "", "appendonly": "yes", "appendfsync": policy}
    for policy in ("always", "everysec", "no")
}
WRITES = 500


@pytest.mark.real_redis
def test_without_persistence_a_crash_loses_every_acknowledged_write(
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory(NO_PERSISTENCE)
    outcome = crash_restart_loss(server, WRITES)
    assert len(outcome.acknowledged) == WRITES
    # R4: the restarted server has nothing to load, so it comes back empty
    assert len(outcome.lost) == WRITES
    assert server.info("keyspace") == {}


def test_simulated_without_persistence_a_crash_loses_every_acknowledged_write() -> None:
    outcome = sim_crash_loss(NO_PERSISTENCE)
    assert len(outcome.acknowledged) > 1000
    assert sorted(outcome.lost) == sorted(outcome.acknowledged)
    assert outcome.notes["causes"] == ["no_persistence"]


@pytest.mark.real_redis
def test_rdb_only_loses_the_writes_after_the_last_completed_snapshot(
    redis_factory: RedisFactory,
) -> None:
    server = redis_factory(RDB_ONLY)
    outcome = rdb_crash_loss(server, before=200, after=200)
    notes = outcome.notes
    # precondition: the kill came before the next snapshot (save 5 1: 5 s after the last one)
    assert notes["same_snapshot"] and not notes["bgsave_at_kill"], notes
    assert notes["changes_at_kill"] == len(notes["uncovered"])
    # R5 (RDB): exactly the writes since the last completed snapshot are gone
    assert sorted(outcome.lost) == sorted(notes["uncovered"])


def test_simulated_rdb_only_loses_the_writes_after_the_last_completed_snapshot() -> None:
    outcome = sim_crash_loss(RDB_ONLY, crash_at_s=8.0)
    fork_ms = outcome.notes["last_fork_ms"]
    assert fork_ms is not None, "save 5 1 took a snapshot before the crash at 8 s"
    messages = outcome.notes["messages"]
    lost = messages["fate"] == "lost"
    # acknowledged before the snapshot's fork: in the snapshot; sent after it: gone
    assert not lost[messages["ack_ms"] <= fork_ms].any()
    assert lost[messages["intended_ms"] >= fork_ms].all()
    assert 0 < len(outcome.lost) < len(outcome.acknowledged)
    assert outcome.notes["causes"] == ["after_last_snapshot"]


@pytest.mark.real_redis
@pytest.mark.parametrize("appendfsync", ["always", "everysec", "no"])
def test_aof_keeps_acknowledged_writes_through_a_process_crash(
    redis_factory: RedisFactory, appendfsync: str
) -> None:
    server = redis_factory(AOF[appendfsync])
    outcome = crash_restart_loss(server, WRITES)
    assert len(outcome.acknowledged) == WRITES
    pending = outcome.notes["aof_buffer_length"]
    if appendfsync in ("always", "no"):
        # always: written and fsynced before the reply; no: written before the reply, never
        # postponed (there is no background fsync to wait for)
        assert pending == 0
    if pending == 0:
        # every acknowledged write had reached write(): the page cache outlives the process
        assert outcome.lost == []
    else:
        # everysec postponed the write() while last second's fsync ran (aof.c): only the
        # newest writes, those still in the AOF buffer (each SET is > 100 bytes of RESP), can
        # be gone
        newest = outcome.acknowledged[-(int(pending) // 100 + 1) :]
        assert set(outcome.lost) <= set(newest)


@pytest.mark.parametrize("appendfsync", ["always", "everysec", "no"])
def test_simulated_aof_keeps_acknowledged_writes_through_a_process_crash(
    appendfsync: str,
) -> None:
    outcome = sim_crash_loss(AOF[appendfsync])
    assert len(outcome.acknowledged) > 1000
    assert outcome.lost == []
