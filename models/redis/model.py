"""The Redis system model: builds the server, clients and consumers, and drives them through a run.

Acknowledged = the command's reply reached the client (PUBLISH included). Delivered = processed
by the consuming application (a BRPOP worker, a subscriber, a cache read that hit the value), or
for key-value workloads present in the final read: every acknowledged write whose value is in
the final dataset is delivered; one that a later write replaced is superseded (`overwritten`);
one that vanished carries the cause the persistence mechanism recorded when it dropped it.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import invariants as redis_invariants
from models.redis.clients import Clients
from models.redis.commands import CostModel
from models.redis.pubsub import PubSub
from models.redis.replication import Replication
from models.redis.replies import refresh_around_network_fault
from models.redis.sentinel import Sentinels
from models.redis.server import DOWN, SERVING, RedisServer
from models.redis.streams import StreamConsumers
from models.redis.workers import Workers
from simulator import history as hist
from simulator.model import SystemModel
from simulator.scenario import ScenarioError

if TYPE_CHECKING:
    from models.redis.requests import Rows
    from simulator.context import RunContext
    from simulator.scenario import Fault

SERVER_TARGETS = ("primary", "leader")
CLIENT_TARGETS = ("clients", "all_clients", "client_link")
ONE_CONSUMER = ("a_consumer", "a_subscriber", "a_worker")
ALL_CONSUMERS = ("consumers", "subscribers", "workers")


class RedisModel(SystemModel):
    """One Redis server, its clients, and the workers or subscribers of the workload."""

    def build(self) -> None:
        ctx, config = self.ctx, self.config
        spec = self.spec.workload
        if spec.mode == "closed" and config.client.read_from == "replicas":
            raise ScenarioError(
                [
                    "redis.client.read_from: 'replicas' with a closed-loop workload (a pipeline "
                    "split between servers) is not modelled; allowed: 'master'"
                ]
            )
        self.value_bytes = spec.value_bytes
        kind = config.workload
        consumers = spec.consumers if kind in ("list", "pubsub", "stream") else 0
        self.copies = max(1, spec.consumers) if kind == "pubsub" else 1
        self.costs = CostModel(config, subscribers=consumers if kind == "pubsub" else 0)
        self.replication: Replication | None = None
        self.server = RedisServer(self)
        replicas = [RedisServer(self, name, role="replica") for name in config.replica_names()]
        self.servers = {srv.name: srv for srv in (self.server, *replicas)}
        if replicas:
            self.replication = Replication(self, self.server, replicas)
        self.clients = Clients(self)
        self.sentinels = Sentinels(self) if config.sentinel.count else None
        self.pubsub = PubSub(self, consumers) if kind == "pubsub" else None
        self.workers = Workers(self, consumers) if kind == "list" else None
        self.stream_consumers = StreamConsumers(self, consumers) if kind == "stream" else None
        if ctx.network is not None:
            ctx.network.connect_all(list(ctx.nodes))
        self._reserve_history()
        for server in self.servers.values():
            server.start()
        if self.replication is not None:
            self.replication.start()
        if self.sentinels is not None:
            self.sentinels.start()
        if self.pubsub is not None:
            self.pubsub.start()
        if self.workers is not None:
            self.workers.start()
        if self.stream_consumers is not None:
            self.stream_consumers.start()

    def _reserve_history(self) -> None:
        """Size the history once for the expected messages (no 1.5x copy while growing)."""
        spec = self.spec.workload
        if spec.mode != "open":
            return
        expected = self.clients.workload.profile.total * self.copies
        if self.config.workload == "kv":
            expected *= 1.0 - self.config.ops.read_ratio
        if self.config.workload == "cache":
            return
        expected = min(expected + 6.0 * np.sqrt(expected) + 1024, spec.max_messages * self.copies)
        self.ctx.history.reserve(int(expected))

    # --- phases ------------------------------------------------------------------------------------
    def start_workload(self) -> None:
        self.server._stats_from_ms = self.env.now
        self.clients.start()

    def stop_workload(self) -> None:
        self.clients.stop()
        self.settle()

    def final_phase(self) -> Generator[Any, Any, None]:
        yield self.env.timeout(0)
        self._network_changed()

    def drained(self) -> bool:
        self.settle()
        server = self.server
        if server.serving != SERVING or len(server.queue) or self.clients.held():
            return False
        if server.replying or any(srv.replies_held() for srv in self.servers.values()):
            return False  # replies not sent yet: an fsync under way, WAIT not returned
        replication = self.replication
        if (
            self.sentinels is not None
            and replication is not None
            and (
                replication.master is not server
                or any(self.servers[name].is_running for name in replication.stale)
            )
        ):
            return False  # clients have not found the new master, or a deposed one is left
        if self.workers is not None and (server.store.items or self.workers.in_progress()):
            return False
        if self.stream_consumers is not None and (
            server.store.stream.backlog() or self.stream_consumers.in_progress()
        ):
            return False
        return not (self.pubsub is not None and self.pubsub.backlog())

    def settle(self) -> None:
        """Commit the servers up to now and record what consumers finished by now."""
        for server in self.servers.values():
            server.settle()
        now = self.env.now
        if self.workers is not None:
            self.workers.flush(now)
        if self.stream_consumers is not None:
            self.stream_consumers.flush(now)
        if self.pubsub is not None:
            self.pubsub.flush(min(now, self.server.free_ms if self.server.serving != DOWN else now))
        if self.replication is not None and self.replication.reads is not None:
            self.replication.reads.evaluate()

    def final_read(self) -> None:
        """Read the whole dataset: what is there is delivered; what a later write replaced is
        superseded (`overwritten`)."""
        self.settle()
        if self.pubsub is not None:
            self.pubsub.flush(self.env.now)
        if self.replication is not None:
            if self.replication.reads is not None:
                self.replication.reads.evaluate()
                self.replication.reads.retire()
            self.replication.discard_stale()
            self.ctx.event(
                "replication_stats", self.replication.master.name, **self.replication.summary()
            )
        history = self.ctx.history
        store = self.server.store
        now = self.env.now
        if self.server.serving == SERVING:
            if store.mode in ("kv", "cache"):
                values = store.live.value
                alive = values >= 0
                if store.mode == "cache":
                    alive &= store.live.expire_at > now
                present = np.sort(values[alive])
                history.deliver(present[history.deliveries[present] == 0], now)
            elif store.mode == "incr":
                applied = store.live.applied
                ids, retry = applied >> 1, (applied & 1) == 1
                history.deliver(ids[~retry], now, dup_cause="client_retry")
                history.deliver(ids[retry], now, dup_cause="client_retry")
        if store.mode in ("kv", "cache") and self.server.serving == SERVING:
            # acknowledged, not in the final read, no loss recorded: a later write replaced it
            # (in chunks: a mask and an index of 6M messages would cost ~10 bytes per message)
            chunk = 1 << 20
            for start in range(0, history.n, chunk):
                part = slice(start, min(start + chunk, history.n))
                replaced = history.status[part] == hist.ACKED
                replaced &= history.cause[part] == 0
                replaced &= history.deliveries[part] == 0
                if replaced.any():
                    history.supersede(start + np.flatnonzero(replaced), "overwritten", now)
        summary = self.server.loop_summary()
        summary.update(
            keyspace_hits=store.keyspace_hits,
            keyspace_misses=store.keyspace_misses,
            expired_keys=store.expired_keys,
            evicted_keys=store.evicted_keys,
            aof_delayed_fsync=self.server.persistence.delayed_fsyncs,
            used_memory=store.memory.used,
        )
        self.ctx.event("event_loop_stats", "redis", **summary)
        self.loop_stats = summary
        # the per-command state is not needed any more: free it before the checker runs
        store.journal = type(store.journal)(store.journal.end)

    def summary(self) -> dict[str, float | int | str | None]:
        """Reads with replicas: stale reads (count, share, versions, staleness percentiles)."""
        reads = self.replication.reads if self.replication is not None else None
        return dict(reads.summary()) if reads is not None else {}

    def check_invariants(self) -> None:
        """A replica's offset never passes its master's; a stream's PEL holds only delivered ids."""
        redis_invariants.check(self)

    def gauges(self) -> dict[str, float]:
        self.settle()
        server = self.server
        store = server.store
        out = {
            "used_memory_mb": store.memory.used / 2**20,
            "event_loop_backlog": float(server.backlog()),
            "aof_unwritten_commands": float(
                server.persistence.exec_pos - server.persistence.written_pos
            )
            if server.persistence.aof_on
            else 0.0,
        }
        if self.replication is not None:
            out["replication_lag_writes"] = self.replication.lag()
            out["replica_staleness_ms"] = self.replication.staleness_ms()
        if self.workers is not None:
            out["consumer_lag"] = float(len(store.items) + self.workers.in_progress())
        if self.stream_consumers is not None:
            out["consumer_lag"] = float(store.stream.backlog())
        if self.pubsub is not None:
            out["consumer_lag"] = float(self.pubsub.backlog())
        ratio = self.clients.take_hit_ratio()
        if ratio is not None:
            out["hit_ratio"] = ratio
        return out

    # --- faults ------------------------------------------------------------------------------------
    def resolve_target(self, target: str) -> list[str]:
        consumers = [n for n, node in self.ctx.nodes.items() if node.role == "consumer"]
        if target in SERVER_TARGETS:
            return [self.replication.master.name if self.replication else "redis"]
        if target == "all_servers":
            return list(self.servers)
        if target in ("a_replica", "replicas", "a_follower", "followers"):
            # (a_follower / followers: Kafka's names, so a comparison can state one fault)
            master = self.replication.master.name if self.replication else "redis"
            replicas = [name for name in self.servers if name != master]
            return replicas[:1] if target in ("a_replica", "a_follower") else replicas
        if target in ("a_sentinel", "sentinels"):
            names = [s.name for s in self.sentinels.nodes] if self.sentinels else []
            return names[:1] if target == "a_sentinel" else names
        if target in CLIENT_TARGETS:
            return ["clients"]
        if target in ONE_CONSUMER:
            return consumers[:1]
        if target in ALL_CONSUMERS:
            return consumers
        return super().resolve_target(target)

    def apply_fault(self, fault: Fault, nodes: list[str]) -> bool:
        """Commit the loop up to the fault first; the core then applies it."""
        self.settle()
        if fault.kind == "slow_consumer":
            self.env.timeout(0).callbacks.append(lambda _ev: self._consumers_retimed())
            if fault.duration_s is not None:
                end = self.env.timeout(fault.duration_s * 1000.0)
                end.callbacks.append(lambda _ev: self._fault_ends())
        refresh_around_network_fault(self.env, fault, self.settle, self._network_changed)
        return False

    def _fault_ends(self) -> None:
        self.settle()
        self.env.timeout(0).callbacks.append(lambda _ev: self._network_changed())

    def _consumers_retimed(self) -> None:
        self.settle()
        if self.workers is not None:
            self.workers.retime(self.env.now)
        if self.pubsub is not None:
            self.pubsub.retime(self.env.now)

    def _network_changed(self) -> None:
        self.settle()
        if self.workers is not None:
            self.workers.retime(self.env.now)
        self.clients.network_changed()
        if self.pubsub is not None:
            self.pubsub.network_changed()
        self.server.poke()

    @property
    def consumer_cycle_ms(self) -> float:
        """Lower bound of (batch received -> the consumer's next request)."""
        consumers = self.workers or self.stream_consumers
        return consumers.min_cycle_ms if consumers is not None else np.inf

    def switch_master(self, name: str) -> None:
        """The clients learned a new master from Sentinel: new requests go there."""
        self.settle()
        self.server = self.servers[name]
        self.ctx.event("clients_switched", "clients", master=name)
        self._network_changed()

    # --- hooks from the server ----------------------------------------------------------------------
    def on_server_down(self, now: float, server: RedisServer | None = None) -> None:
        """`server` (default: the master the clients use) died: its blocked clients are reset."""
        server = self.server if server is None else server
        replication = self.replication
        reads = replication.reads if replication is not None else None
        if reads is not None and replication is not None and server is replication.master:
            # the reads served so far are judged against this journal before it goes
            for other in self.servers.values():
                if other is not server:
                    other.settle()
            reads.evaluate()
        self.unblock(server)
        if self.pubsub is not None and server is self.server:
            self.pubsub.server_down(now)

    def unblock(self, server: RedisServer) -> None:
        """Consumers blocked on `server` (BRPOP, XREADGROUP BLOCK) lose their connection, or
        get -UNBLOCKED when it becomes a replica (replicationSetMaster), and ask again."""
        if self.stream_consumers is not None:
            self.stream_consumers.server_down(server.store.stream)
        if self.workers is not None:
            self.workers.server_down(list(server.store.blocked))
            server.store.blocked.clear()

    def carried_away(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` another server holds (a cluster's MIGRATE; none on one server)."""
        return np.zeros(ids.size, dtype=bool)

    def processing(self, ids: np.ndarray) -> np.ndarray:
        """Which of `ids` a consumer (stream consumer, BRPOP worker) holds and is processing."""
        consumers = self.stream_consumers or self.workers
        if consumers is None or not ids.size:
            return np.zeros(ids.size, dtype=bool)
        return consumers.processing(ids)

    def group_state_reset(self, cause: str) -> None:
        """The master's group or list state went back in time (restart from older files,
        failover): deliveries it forgot are made again, a duplicate of this cause."""
        if self.stream_consumers is not None:
            self.stream_consumers.redelivery_cause = cause
        if self.workers is not None:
            self.workers.redelivery_cause = cause

    @property
    def streams(self) -> dict[str, Any]:
        """The streams of the current master, by name (for the invariant checker)."""
        if self.stream_consumers is None:
            return {}
        return {"stream": self.server.store.stream}

    def on_server_restart(self, now: float) -> None:
        self.group_state_reset("redelivered_after_restart")
        if self.pubsub is not None:
            self.pubsub.server_back(now)

    def on_worker_replies(
        self,
        rows: Rows,
        reply_at: np.ndarray,
        end_row: np.ndarray,
        status: np.ndarray,
        aux: np.ndarray,
    ) -> None:
        if self.workers is not None:
            self.workers.on_replies(rows, reply_at, status, aux)
        if self.stream_consumers is not None:
            self.stream_consumers.on_replies(rows, reply_at, status, aux)


def make_model(ctx: RunContext) -> SystemModel:
    """The single server (with its replicas and sentinels), or a Redis Cluster when
    `redis.cluster.enabled`."""
    if ctx.spec.system_config.cluster.enabled:
        from models.redis.cluster_model import ClusterModel

        return ClusterModel(ctx)
    return RedisModel(ctx)
