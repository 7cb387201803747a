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

from models.redis.clients import Clients
from models.redis.commands import CostModel
from models.redis.pubsub import PubSub
from models.redis.server import DOWN, SERVING, RedisServer
from models.redis.workers import Workers
from simulator import history as hist
from simulator.model import SystemModel

if TYPE_CHECKING:
    from models.redis.requests import Rows
    from simulator.scenario import Fault

SERVER_TARGETS = ("redis", "primary", "leader", "all_servers")
CLIENT_TARGETS = ("clients", "all_clients", "client_link")
ONE_CONSUMER = ("a_consumer", "a_subscriber", "a_worker")
ALL_CONSUMERS = ("consumers", "subscribers", "workers")


class RedisModel(SystemModel):
    """One Redis server, its clients, and the workers or subscribers of the workload."""

    def build(self) -> None:
        ctx, config = self.ctx, self.config
        spec = self.spec.workload
        self.value_bytes = spec.value_bytes
        kind = config.workload
        consumers = spec.consumers if kind in ("list", "pubsub") else 0
        self.copies = max(1, spec.consumers) if kind == "pubsub" else 1
        self.costs = CostModel(config, subscribers=consumers if kind == "pubsub" else 0)
        self.server = RedisServer(self)
        self.clients = Clients(self)
        self.pubsub = PubSub(self, consumers) if kind == "pubsub" else None
        self.workers = Workers(self, consumers) if kind == "list" else None
        if ctx.network is not None:
            ctx.network.connect_all(list(ctx.nodes))
        self._reserve_history()
        self.server.start()
        if self.pubsub is not None:
            self.pubsub.start()
        if self.workers is not None:
            self.workers.start()

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
        if self.workers is not None and (server.store.items or self.workers.in_progress()):
            return False
        return not (self.pubsub is not None and self.pubsub.backlog())

    def settle(self) -> None:
        """Commit the server up to now and record what consumers finished by now."""
        self.server.settle()
        now = self.env.now
        if self.workers is not None:
            self.workers.flush(now)
        if self.pubsub is not None:
            self.pubsub.flush(min(now, self.server.free_ms if self.server.serving != DOWN else now))

    def final_read(self) -> None:
        """Read the whole dataset: what is there is delivered; what a later write replaced is
        superseded (`overwritten`)."""
        self.settle()
        if self.pubsub is not None:
            self.pubsub.flush(self.env.now)
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
        if self.workers is not None:
            out["consumer_lag"] = float(len(store.items) + self.workers.in_progress())
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
            return ["redis"]
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
        if fault.kind in ("partition", "heal", "delay", "packet_loss"):
            self.env.timeout(0).callbacks.append(lambda _ev: self._network_changed())
            if fault.duration_s is not None and fault.kind != "heal":
                # runs just before the core's own end-of-fault timer (created after this one)
                end = self.env.timeout(fault.duration_s * 1000.0)
                end.callbacks.append(lambda _ev: self._fault_ends())
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

    # --- hooks from the server ----------------------------------------------------------------------
    def on_server_down(self, now: float) -> None:
        if self.workers is not None:
            self.workers.server_down(list(self.server.store.blocked))
        if self.pubsub is not None:
            self.pubsub.server_down(now)

    def on_server_restart(self, now: float) -> None:
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
