"""One shard of a Redis Cluster: a master and its replicas, each a Model I event loop.

A shard is what a `RedisServer`, its `Replication` and the clients' per-node connections expect
their model to be (config, costs, the server the clients write to, the replication, hooks), so
the single-server code runs unchanged inside a cluster. The shard's `server` is the node the
clients' cached slot map names for its slots; `master` is the node that really is the master.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np

from models.redis.replication import Replication
from models.redis.server import RedisServer

if TYPE_CHECKING:
    from models.redis.cluster_clients import ShardClients
    from models.redis.cluster_model import ClusterModel
    from models.redis.config import RedisConfig
    from models.redis.model import RedisModel


class Shard:
    """Master `redis<i>`, replicas `redis<i>-replica<j>`; its slots are in the slot map."""

    pubsub = None
    workers = None
    stream_consumers = None
    copies = 1
    consumer_cycle_ms = np.inf

    def __init__(self, cluster: ClusterModel, index: int, config: RedisConfig):
        self.cluster = cluster
        self.index = index
        self.name = f"shard{index}"
        self.ctx = cluster.ctx
        self.env = cluster.env
        self.spec = cluster.spec
        self.config = config
        self.costs = cluster.costs
        self.value_bytes = cluster.value_bytes
        spec = config.cluster
        # a shard offers what a server and its replication use of their model (duck typing)
        model = cast("RedisModel", self)
        self.server = RedisServer(model, spec.master_names()[index])
        replicas = [RedisServer(model, name, role="replica") for name in spec.replica_names(index)]
        self.servers = {srv.name: srv for srv in (self.server, *replicas)}
        self.replication: Replication | None = None
        if replicas:
            self.replication = Replication(model, self.server, replicas)
        self.clients: ShardClients
        self.gate_closed = False  # the node the clients use answers CLUSTERDOWN

    @property
    def master(self) -> RedisServer:
        """The node that is this shard's master now (the clients may not know it yet)."""
        return self.replication.master if self.replication is not None else self.server

    def start(self) -> None:
        for server in self.servers.values():
            server.start()
        if self.replication is not None:
            self.replication.start()

    def settle(self) -> None:
        for server in self.servers.values():
            server.settle()

    def route_to(self, name: str) -> None:
        """The clients' slot map now sends this shard's slots to `name`."""
        self.settle()
        self.server = self.servers[name]
        self.ctx.event("slot_map_refreshed", "clients", shard=self.name, master=name)
        self.clients.network_changed()
        self.cluster.update_gates(self.env.now)
        self.server.poke()

    # --- hooks the server calls ------------------------------------------------------------------
    def on_server_down(self, now: float, server: RedisServer | None = None) -> None:
        self.cluster.on_server_down(self, now)

    def on_server_restart(self, now: float) -> None:
        """A restarted master loads its data; the cluster bus notices it is back."""

    def on_worker_replies(self, *_args: Any) -> None:
        """No BRPOP workers or subscribers in a cluster (workload = kv)."""

    def carried_away(self, ids: np.ndarray) -> np.ndarray:
        """Which of the values `ids` (written here) belong to keys a MIGRATE carried to another
        master: a journal of this shard that a crash or failover drops does not take them. The
        last value of such a key lives on the target (in its journal); the earlier ones were
        overwritten (superseded at the final read), not lost."""
        resharding = self.cluster.resharding
        if resharding is None or not ids.size:
            return np.zeros(ids.size, dtype=bool)
        keys = self.ctx.history.key[ids]
        return np.isin(keys, resharding.carried_from(self.index))

    # --- observations ----------------------------------------------------------------------------
    def drained(self) -> bool:
        server = self.server
        if server is not self.master or server.serving != "serving" or len(server.queue):
            return False
        if self.clients.held() or self.clients.gated_rows():
            return False
        replication = self.replication
        return replication is None or not any(
            self.servers[name].is_running for name in replication.stale
        )
