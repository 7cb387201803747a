"""Redis Cluster as a system model: N shards, slot-routing clients, the cluster bus.

Built instead of the single server when `redis.cluster.enabled` (see `models.redis.model`).
Each shard is a master with its replicas, each node the Model I event loop with its own
persistence and asynchronous replication; the clients route each key by its hash slot; the
cluster bus detects failures and promotes replicas; a `redis-cli --cluster reshard` run
(`cluster_resharding`) moves slots between masters while they serve. Acknowledged and delivered mean what they
mean for one server: the reply reached the client; the value is present in the final read of
the master that serves its slot. Writes a promoted replica never received are lost with cause
`discarded_on_failover` when its old master learns the new configuration, as with Sentinel.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import numpy as np

from models.redis import invariants as redis_invariants
from models.redis.cluster_bus import ClusterBus
from models.redis.cluster_clients import ClusterClients
from models.redis.cluster_resharding import Resharding
from models.redis.cluster_shard import Shard
from models.redis.cluster_slots import SlotMap
from models.redis.commands import CostModel
from models.redis.replies import refresh_around_network_fault
from models.redis.server import SERVING
from simulator import history as hist
from simulator.model import SystemModel
from simulator.scenario import ScenarioError

if TYPE_CHECKING:
    from models.redis.server import RedisServer
    from simulator.scenario import Fault

MASTER_TARGETS = ("primary", "leader")
CLIENT_TARGETS = ("clients", "all_clients", "client_link")
# a cluster runs the key-value workload: no consumer, subscriber or worker to hit
CONSUMER_TARGETS = ("a_consumer", "consumers", "a_subscriber", "subscribers", "a_worker", "workers")


class ClusterModel(SystemModel):
    """Shards `redis<i>` (+ `redis<i>-replica<j>`), the `clients` host and the cluster bus."""

    def build(self) -> None:
        ctx, config = self.ctx, self.config
        spec = self.spec.workload
        if spec.mode == "closed" and config.client.wait_replicas:
            raise ScenarioError(
                [
                    "redis.client.wait_replicas: WAIT with a closed-loop workload is not "
                    "modelled with redis.cluster.enabled; allowed: 0"
                ]
            )
        cluster = config.cluster
        self.value_bytes = spec.value_bytes
        self.costs = CostModel(config, subscribers=0)
        self.slot_map = SlotMap(
            cluster.shards, spec.keys, cluster.key_hash_tags, cluster.empty_masters
        )
        reshard = cluster.reshard
        if reshard.slots and reshard.at_s >= self.spec.scenario.duration_s:
            raise ScenarioError(
                [
                    f"redis.cluster.reshard.at_s: {reshard.at_s} is not before the end of the "
                    f"run; allowed: 0 <= at_s < scenario.duration_s ({self.spec.scenario.duration_s})"
                ]
            )
        shard_config = config.model_copy(
            update={
                "replicas": cluster.replicas_per_shard,
                "dataset_keys": config.dataset_keys // cluster.shards,
            }
        )
        self.shards = [Shard(self, i, shard_config) for i in range(cluster.shards)]
        self.servers: dict[str, RedisServer] = {}
        for shard in self.shards:
            self.servers.update(shard.servers)
        self.resharding: Resharding | None = None
        if reshard.slots:
            self.resharding = Resharding(self, reshard)
        self.clients = ClusterClients(self)
        self.bus = ClusterBus(self)
        # commands served by each master at the marks: workload start, reshard start, reshard
        # end, workload stop (per-shard load before and after the resharding)
        self._load_marks: dict[str, np.ndarray] = {}
        self.orphaned_keys = 0
        self.completion_rate = 0.0
        if ctx.network is not None:
            ctx.network.connect_all(list(ctx.nodes))
        self._reserve_history()
        for shard in self.shards:
            shard.start()
        self.bus.start()
        self.env.process(self._gate_cron())

    def _reserve_history(self) -> None:
        spec = self.spec.workload
        if spec.mode != "open":
            return
        expected = self.clients.workload.profile.total * (1.0 - self.config.ops.read_ratio)
        expected = min(expected + 6.0 * np.sqrt(expected) + 1024, spec.max_messages)
        self.ctx.history.reserve(int(expected))

    # --- phases --------------------------------------------------------------------------------
    def start_workload(self) -> None:
        for server in self.servers.values():
            server._stats_from_ms = self.env.now
        self.clients.start()
        self._mark_load("start")
        if self.resharding is not None:
            self.resharding.start()

    def stop_workload(self) -> None:
        self.clients.stop()
        self.settle()
        self._mark_load("stop")

    def reshard_started(self) -> None:
        self._mark_load("reshard_started")

    def reshard_done(self) -> None:
        self._mark_load("reshard_done")

    def _mark_load(self, mark: str) -> None:
        """Commands served so far by each shard's master (while the workload runs)."""
        if mark.startswith("reshard") and not self.clients.producing:
            return  # the resharding outlived the workload: no load to compare
        self.settle()
        self._load_marks[mark] = np.array(
            [float(shard.master.stats.commands) for shard in self.shards]
        )

    def _busiest_share(self, begin: str, end: str) -> float | None:
        """The busiest master's share of the commands served between two marks."""
        if begin not in self._load_marks or end not in self._load_marks:
            return None
        served = self._load_marks[end] - self._load_marks[begin]
        if served.sum() <= 0:
            return None
        return round(float(served.max() / served.sum()), 6)

    def final_phase(self) -> Generator[Any, Any, None]:
        yield self.env.timeout(0)
        self._network_changed()

    def drained(self) -> bool:
        self.settle()
        if not self.clients.producing:
            # no more traffic to meet an error: the client's next request would refresh the map
            for shard in self.shards:
                if shard.server is not shard.master and not len(shard.server.queue):
                    shard.route_to(shard.master.name)
        if any(shard.gate_closed for shard in self.shards):
            return False
        if self.resharding is not None and self.resharding.running:
            return False
        return all(shard.drained() for shard in self.shards)

    def settle(self) -> None:
        for shard in self.shards:
            shard.settle()

    def final_read(self) -> None:
        """Read every shard's master: present values are delivered, replaced ones superseded."""
        self.settle()
        history = self.ctx.history
        now = self.env.now
        self.completion_rate = self._completion_rate()
        for shard in self.shards:
            if shard.replication is not None:
                shard.replication.discard_stale()
            master = shard.master
            if master.serving != SERVING:
                continue
            values = master.store.live.value
            held = np.flatnonzero(values >= 0)
            # a key in a slot this master does not own cannot be read (-MOVED): not delivered
            owned = self.slot_map.owners(held) == shard.index
            self.orphaned_keys += int((~owned).sum())
            present = np.sort(values[held[owned]])
            history.deliver(present[history.deliveries[present] == 0], now)
        chunk = 1 << 20
        for start in range(0, history.n, chunk):
            part = slice(start, min(start + chunk, history.n))
            replaced = history.status[part] == hist.ACKED
            replaced &= history.cause[part] == 0
            replaced &= history.deliveries[part] == 0
            if replaced.any():
                history.supersede(start + np.flatnonzero(replaced), "overwritten", now)
        stats: dict[str, Any] = dict(self.summary())  # (typed for ctx.event's keywords)
        self.ctx.event("cluster_stats", "clients", **stats)

    def _completion_rate(self) -> float:
        """Acknowledged writes / (last acknowledgement - first send): the rate the cluster
        sustained; with more offered than it can serve, its capacity (the backlog drains at it)."""
        history = self.ctx.history
        if not history.n:
            return 0.0
        ack_ms = history.ack_ms
        acked = np.isfinite(ack_ms)
        if not acked.any():
            return 0.0
        span_ms = float(ack_ms[acked].max()) - max(float(history.intended_ms.min()), 0.0)
        return float(acked.sum()) / max(span_ms / 1000.0, 1e-9)

    def check_invariants(self) -> None:
        for shard in self.shards:
            redis_invariants.check(shard)

    def gauges(self) -> dict[str, float]:
        self.settle()
        out: dict[str, float] = {"cluster_state_ok": 0.0 if self.bus.down else 1.0}
        if self.resharding is not None:
            out["slots_migrated"] = float(self.resharding.slots_migrated)
        masters = [shard.master for shard in self.shards]
        out["event_loop_backlog"] = float(sum(m.backlog() for m in masters))
        out["used_memory_mb"] = sum(m.store.memory.used for m in masters) / 2**20
        lags = []
        for shard in self.shards:
            master = shard.master
            out[f"{shard.name}_backlog"] = float(master.backlog())
            out[f"{shard.name}_master_up"] = 1.0 if master.serving == SERVING else 0.0
            if shard.replication is not None:
                lags.append(shard.replication.lag())
        if lags:
            out["replication_lag_writes"] = float(max(lags))
        return out

    def summary(self) -> dict[str, float | int | str | None]:
        sent = self.clients.commands_per_shard
        total = max(int(sent.sum()), 1)
        out: dict[str, float | int | str | None] = {
            "shards": len(self.shards),
            "failovers": self.bus.failovers,
            "moved_redirects": self.clients.redirects,
            "clusterdown_replies": self.clients.clusterdown_replies,
            "clusterdown_s": round(self.bus.clusterdown_ms / 1000.0, 6),
            "busiest_shard_share": round(float(sent.max()) / total, 6),
            "completion_rate_per_s": round(self.completion_rate, 3),
        }
        if self.resharding is not None:
            out.update(self._reshard_summary())
        return out

    def _reshard_summary(self) -> dict[str, float | int | str | None]:
        """What the resharding did, the redirects it caused, and the load and acknowledgement
        latency (p99, from the intended send time) before, during and after it."""
        resharding = self.resharding
        assert resharding is not None
        clients = self.clients
        out: dict[str, float | int | str | None] = dict(resharding.summary())
        out["ask_redirects"] = clients.ask_redirects
        out["moved_redirects_after_reshard"] = clients.moved_after_reshard
        out["slot_map_refreshes"] = clients.map_refreshes
        out["slot_map_refreshes_after_reshard"] = clients.refreshes_after_reshard
        out["orphaned_keys"] = self.orphaned_keys
        out["busiest_shard_share_before_reshard"] = self._busiest_share("start", "reshard_started")
        out["busiest_shard_share_after_reshard"] = self._busiest_share("reshard_done", "stop")
        history = self.ctx.history
        intended, ack = history.intended_ms, history.ack_ms
        begin = resharding.started_ms if resharding.started_ms is not None else np.inf
        end = resharding.done_ms if resharding.done_ms is not None else np.inf
        windows = {
            "before": (0.0, begin),
            "during": (begin, end),
            "after": (end, self.ctx.duration_ms),
        }
        for name, (lo, hi) in windows.items():
            sel = (intended >= lo) & (intended < hi) & np.isfinite(ack)
            p99 = float(np.percentile(ack[sel] - intended[sel], 99)) if sel.sum() >= 100 else None
            out[f"ack_p99_{name}_reshard_ms"] = None if p99 is None else round(p99, 6)
        return out

    # --- CLUSTERDOWN ---------------------------------------------------------------------------
    def cluster_down(self, shard: Shard) -> bool:
        """Do requests to this shard meet CLUSTERDOWN (a live node that refuses to serve)?"""
        return shard.gate_closed

    def update_gates(self, now: float) -> None:
        """Open or close each shard's gate as its node's view of the cluster state changed."""
        for shard in self.shards:
            closed = self.bus.refuses(shard.server)
            if closed == shard.gate_closed:
                continue
            shard.settle()
            shard.gate_closed = closed
            server = shard.server
            if closed:
                # requests still on their way will meet CLUSTERDOWN
                if len(server.queue):
                    late = server.queue.field("arrival") > now
                    late &= ~shard.clients.passes_when_down(server.queue.view())
                    if late.any():
                        shard.clients.gate(server.queue.remove(late))
            else:
                shard.clients.answer_gated(now, reopen=True)
                server.poke()

    def _gate_cron(self) -> Generator[Any, Any, None]:
        """Answer CLUSTERDOWN to the requests that reached a refusing node (every 10 ms; the
        replies carry their own times)."""
        while True:
            yield self.env.timeout(10.0)
            for shard in self.shards:
                if shard.gate_closed and shard.server.is_up:
                    shard.clients.answer_gated(self.env.now, reopen=False)

    # --- faults --------------------------------------------------------------------------------
    def resolve_target(self, target: str) -> list[str]:
        shards = self.shards
        if target in MASTER_TARGETS:
            return [shards[0].master.name]
        if target.startswith("shard_") and target[6:].isdigit() and int(target[6:]) < len(shards):
            return [shards[int(target[6:])].master.name]
        masters = {shard.master.name for shard in shards}
        replicas = [name for name in self.servers if name not in masters]
        if target in ("a_replica", "a_follower"):
            return replicas[:1]
        if target in ("replicas", "followers"):
            return replicas
        if target == "all_servers":
            return list(self.servers)
        if target in ("a_sentinel", "sentinels") or target in CONSUMER_TARGETS:
            return []
        if target in CLIENT_TARGETS:
            return ["clients"]
        return super().resolve_target(target)

    def apply_fault(self, fault: Fault, nodes: list[str]) -> bool:
        self.settle()
        refresh_around_network_fault(self.env, fault, self.settle, self._network_changed)
        return False

    def _network_changed(self) -> None:
        self.settle()
        self.clients.network_changed()
        for server in self.servers.values():
            server.poke()

    # --- hooks ---------------------------------------------------------------------------------
    def on_server_down(self, shard: Shard, now: float) -> None:
        """A node went down: nothing to tell (the bus notices after node-timeout)."""
