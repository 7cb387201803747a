"""The validation cases run against a real Redis: each returns what happened, in numbers.

Vocabulary as in the checker (DESIGN "Checker vocabulary"): a write is *acknowledged* when its
reply arrived (with `WAIT 1`, only when WAIT returned at least 1; a WAIT that returned 0 leaves
the write *indeterminate*); it is *lost* when it was acknowledged and is gone from what the
surviving server serves afterwards.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from redis_server import RedisServer

VALUE = "v" * 100  # 100-byte values, the simulator's default `workload.value_bytes`
MIB = 1 << 20


@dataclass
class LossOutcome:
    """Fates of a batch of writes after a fault."""

    acknowledged: list[str] = field(default_factory=list)
    indeterminate: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)


def write_acknowledged(server: RedisServer, prefix: str, count: int) -> list[str]:
    """SET `count` keys one request at a time; the keys whose reply was OK."""
    acknowledged = []
    with server.client() as client:
        for i in range(count):
            key = f"{prefix}:{i}"
            if client.set(key, VALUE):
                acknowledged.append(key)
    return acknowledged


def lost_after_restart(server: RedisServer, acknowledged: list[str]) -> list[str]:
    present = server.present(acknowledged)
    return [key for key in acknowledged if key not in present]


# --- persistence: SIGKILL and restart --------------------------------------------------------


def crash_restart_loss(server: RedisServer, writes: int) -> LossOutcome:
    """Write, SIGKILL right after the last acknowledgement, restart, count what is gone.

    `aof_buffer_length` (INFO persistence) just before the kill says whether any acknowledged
    write was still only in Redis's memory: with `appendfsync everysec` a write is postponed
    (up to 2 s) while the background fsync of the previous second is still running (aof.c
    flushAppendOnlyFile), and its reply is sent anyway.
    """
    outcome = LossOutcome(acknowledged=write_acknowledged(server, "crash", writes))
    outcome.notes["aof_buffer_length"] = int(server.info("persistence").get("aof_buffer_length", 0))
    server.kill()
    outcome.notes["restart_s"] = server.restart_after_crash()
    outcome.lost = lost_after_restart(server, outcome.acknowledged)
    return outcome


def wait_for_snapshot(server: RedisServer, timeout_s: float = 20.0) -> dict[str, int]:
    """Wait until a BGSAVE has completed that covers every write so far."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = server.info("persistence")
        if (
            info["rdb_changes_since_last_save"] == 0
            and not info["rdb_bgsave_in_progress"]
            and info["rdb_last_bgsave_status"] == "ok"
        ):
            return info
        time.sleep(0.02)
    raise AssertionError(f"no completed snapshot after {timeout_s} s: {server.info('persistence')}")


def rdb_crash_loss(server: RedisServer, before: int, after: int) -> LossOutcome:
    """`save 5 1`: writes, wait for the snapshot, more writes, SIGKILL before the next one."""
    covered = write_acknowledged(server, "snapshotted", before)
    snapshot = wait_for_snapshot(server)
    uncovered = write_acknowledged(server, "unsnapshotted", after)
    info = server.info("persistence")
    outcome = LossOutcome(acknowledged=covered + uncovered)
    # the precondition of the documented outcome: no newer snapshot started or finished
    outcome.notes.update(
        covered=covered,
        uncovered=uncovered,
        changes_at_kill=info["rdb_changes_since_last_save"],
        bgsave_at_kill=info["rdb_bgsave_in_progress"],
        same_snapshot=info["rdb_last_save_time"] == snapshot["rdb_last_save_time"],
    )
    server.kill()
    outcome.notes["restart_s"] = server.restart_after_crash()
    outcome.lost = lost_after_restart(server, outcome.acknowledged)
    return outcome


# --- head-of-line blocking -------------------------------------------------------------------


@dataclass
class BlockingOutcome:
    baseline_get_s: float  # median GET latency with nothing in the way
    blocked_get_s: float  # GET latency while DEBUG SLEEP runs
    sleep_s: float
    sent_after_s: float  # how long after the DEBUG SLEEP was sent the GET was sent
    slow_command_s: float  # DEBUG SLEEP's own latency

    @property
    def lower_bound_s(self) -> float:
        """The GET cannot be answered before the sleep ends: sleep - (GET send - SLEEP send)."""
        return self.sleep_s - self.sent_after_s


def head_of_line_blocking(server: RedisServer, sleep_s: float = 0.5) -> BlockingOutcome:
    """GET latency on one connection while another runs `DEBUG SLEEP sleep_s`.

    Both are sent from this thread, in order: the DEBUG SLEEP is written to its socket
    (send_command returns once it is), 50 ms later the GET, and only then is either reply read.
    (A thread sending the DEBUG SLEEP could be descheduled between noting the time and sending,
    on a loaded machine: the GET would then reach the server first and not be blocked at all.)
    """
    with server.client() as probe, server.client() as blocker:
        probe.set("probe", VALUE)
        samples = []
        for _ in range(50):
            started = time.perf_counter()
            probe.get("probe")
            samples.append(time.perf_counter() - started)
        connection = blocker.connection_pool.get_connection()
        try:
            sent_at = time.perf_counter()  # before the send: the sleep cannot start earlier
            connection.send_command("DEBUG", "SLEEP", str(sleep_s))
            time.sleep(0.05)  # the DEBUG SLEEP is in the server's socket before the GET
            get_sent = time.perf_counter()
            probe.get("probe")
            blocked = time.perf_counter() - get_sent
            connection.read_response()
            slow = time.perf_counter() - sent_at
        finally:
            blocker.connection_pool.release(connection)
    return BlockingOutcome(
        baseline_get_s=statistics.median(samples),
        blocked_get_s=blocked,
        sleep_s=sleep_s,
        sent_after_s=get_sent - sent_at,
        slow_command_s=slow,
    )


# --- fsync policy and latency ----------------------------------------------------------------


def set_latencies_interleaved(
    servers: dict[str, RedisServer], rounds: int, per_round: int
) -> dict[str, list[list[float]]]:
    """Per server, `rounds` lists of SET latencies (s); rounds alternate between the servers, in
    a rotating order, so that a noisy moment of the machine (and going first or last) hits all
    of them alike. One warm-up round is dropped."""
    clients = {name: server.client() for name, server in servers.items()}
    latencies: dict[str, list[list[float]]] = {name: [] for name in servers}
    names = list(clients)
    try:
        for round_index in range(rounds + 1):
            shift = round_index % len(names)
            for name in names[shift:] + names[:shift]:
                client = clients[name]
                samples = []
                for i in range(per_round):
                    started = time.perf_counter()
                    client.set(f"latency:{round_index}:{i}", VALUE)
                    samples.append(time.perf_counter() - started)
                if round_index:
                    latencies[name].append(samples)
    finally:
        for client in clients.values():
            client.close()
    return latencies


# --- asynchronous replication ----------------------------------------------------------------


def wait_until(
    condition: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def replica_output_bytes(primary: RedisServer) -> int:
    """Bytes of replication stream the primary holds for its replica (CLIENT LIST omem)."""
    with primary.client() as client:
        replicas = client.client_list(_type="replica")
    return int(replicas[0]["omem"]) if replicas else 0


def replication_failover_loss(
    primary: RedisServer,
    replica: RedisServer,
    *,
    before: int,
    during: int,
    wait_timeout_ms: int | None,
    backlog_bytes: int = MIB,
    filler_limit_bytes: int = 128 * MIB,
) -> LossOutcome:
    """Acknowledged writes lost when the primary dies while its replica lags, after failover.

    1. `before` writes while the replica follows (with WAIT: acknowledged by WAIT >= 1, with
       a timeout long enough that a loaded machine cannot make the replica miss it);
    2. SIGSTOP the replica. Its kernel keeps accepting the stream until its socket buffers are
       full, so the primary first writes 1 MiB filler values until `backlog_bytes` of stream
       wait in the primary's own memory (CLIENT LIST omem): from then on every write stays
       there, deterministically, instead of in a socket buffer;
    3. `during` writes (with WAIT: WAIT returns 0, the replica cannot answer: indeterminate);
    4. SIGKILL the primary, SIGCONT the replica, let it read what reached it, promote it with
       REPLICAOF NO ONE, and read every key from it.
    """
    outcome = LossOutcome()
    with primary.client() as client:

        def write(key: str, timeout_ms: int | None) -> None:
            if not client.set(key, VALUE):
                return
            if timeout_ms is None or client.wait(1, timeout_ms) >= 1:
                outcome.acknowledged.append(key)
            else:
                outcome.indeterminate.append(key)

        # While the replica follows, WAIT returns as soon as it acknowledges (about one round
        # trip); the long timeout only matters on a loaded machine, where a 50 ms WAIT can
        # expire before the replica is scheduled and would make a followed write look lost.
        follow_timeout = None if wait_timeout_ms is None else max(wait_timeout_ms, 10_000)
        for i in range(before):
            write(f"before:{i}", follow_timeout)
        offset = int(client.info("replication")["master_repl_offset"])
        wait_until(
            lambda: int(replica.info("replication").get("slave_repl_offset", -1)) >= offset,
            10,
            "the replica to catch up",
        )
        replica.pause()
        filler = "f" * MIB
        fillers = 0
        while replica_output_bytes(primary) < backlog_bytes:
            if fillers * MIB >= filler_limit_bytes:
                raise AssertionError(
                    f"replica stream not backed up after {fillers} MiB of filler: "
                    f"{replica_output_bytes(primary)} bytes in the primary's buffer"
                )
            client.set(f"filler:{fillers}", filler)
            fillers += 1
        for i in range(during):
            write(f"during:{i}", wait_timeout_ms)
        outcome.notes["filler_mib"] = fillers
        outcome.notes["backlog_at_kill"] = replica_output_bytes(primary)
    primary.kill()
    replica.resume()
    with replica.client() as client:
        wait_until(
            lambda: client.info("replication").get("master_link_status") != "up",
            10,
            "the replica to see its primary gone",
        )
        time.sleep(0.2)  # let it apply what was already in its socket buffer
        client.replicaof("NO", "ONE")
        outcome.notes["promoted_role"] = client.info("replication")["role"]
    present = replica.present(outcome.acknowledged + outcome.indeterminate)
    outcome.lost = [key for key in outcome.acknowledged if key not in present]
    outcome.notes["indeterminate_present"] = sum(k in present for k in outcome.indeterminate)
    return outcome
