"""The `[redis.cluster]` section: Redis Cluster (redis.conf 7.x `cluster-*` names and defaults).

`cluster-node-timeout` (15000 ms) and `cluster-require-full-coverage` (yes) are redis.conf
settings; the number of masters and of replicas per master are what `redis-cli --cluster create
--cluster-replicas <n>` sets up. Node names: `redis<i>` is the first master of shard i and
`redis<i>-replica<j>` its replicas (roles move on failover; the names stay).

`[redis.cluster.reshard]` is one `redis-cli --cluster reshard` run (`--cluster-from`,
`--cluster-to`, `--cluster-slots`, `--cluster-pipeline`), started at `at_s`; see
`models.redis.cluster_resharding`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models.redis.cluster_slots import HASH_SLOTS, initial_ranges


class ReshardConfig(BaseModel):
    """`redis-cli --cluster reshard`: move slots from one master to another, one at a time."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    slots: int = Field(
        0,
        ge=0,
        le=HASH_SLOTS,
        description="--cluster-slots: how many hash slots to move (0 = no resharding). "
        "redis-cli takes the source's lowest-numbered slots first.",
    )
    from_shard: int = Field(
        0, ge=0, le=63, description="--cluster-from: the shard whose master gives the slots."
    )
    to_shard: int = Field(
        1, ge=0, le=63, description="--cluster-to: the shard whose master receives them."
    )
    at_s: float = Field(
        1.0,
        ge=0,
        le=86_400,
        description="Model parameter: when redis-cli starts, seconds into the measured phase.",
    )
    pipeline: int = Field(
        10,
        ge=1,
        le=100_000,
        description="--cluster-pipeline: keys per CLUSTER GETKEYSINSLOT and MIGRATE call.",
    )


class ClusterConfig(BaseModel):
    """Redis Cluster: slots split over `shards` masters, each with its replicas."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    enabled: bool = Field(
        False,
        description="cluster-enabled: run a Redis Cluster of `shards` masters instead of one "
        "server (workload = kv).",
    )
    shards: int = Field(
        3,
        ge=1,
        le=64,
        description="Model parameter: masters; the 16384 hash slots are split evenly over them. "
        "A failover needs a majority of masters, so at least 3 are needed to survive one.",
    )
    replicas_per_shard: int = Field(
        1,
        ge=0,
        le=4,
        description="Model parameter: replicas of each master (redis-cli --cluster-replicas).",
    )
    node_timeout_ms: float = Field(
        15000.0,
        ge=1,
        le=3_600_000,
        description="cluster-node-timeout, ms: a node unreachable this long is PFAIL for its "
        "peers; a majority of masters agreeing makes it FAIL and starts the replica election.",
    )
    require_full_coverage: bool = Field(
        True,
        description="cluster-require-full-coverage: yes = while any slot is uncovered (its "
        "master FAIL and not yet replaced) every node answers CLUSTERDOWN; no = only the "
        "uncovered slots are unavailable.",
    )

    allow_reads_when_down: bool = Field(
        False,
        description="cluster-allow-reads-when-down: yes = while the cluster is down its nodes "
        "still serve reads (GET) for the slots they hold; writes get CLUSTERDOWN.",
    )

    key_hash_tags: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Model parameter: 0 = workload key n is named key:<n>; k > 0 = "
        "{tag<n mod k>}:key:<n>, so the keys of one hash tag share a slot (what multi-key "
        "commands and transactions need) and a few tags concentrate the load on few masters.",
    )

    empty_masters: int = Field(
        0,
        ge=0,
        le=63,
        description="Model parameter: the last N masters joined with `redis-cli --cluster "
        "add-node` and own no slots (the slots are split over the others) until a reshard "
        "moves some to them.",
    )
    reshard: ReshardConfig = Field(
        default_factory=ReshardConfig,
        description="One `redis-cli --cluster reshard` run during the measured phase (live "
        "resharding: MIGRATING/IMPORTING slots, MIGRATE, -ASK and -MOVED redirects).",
    )

    @model_validator(mode="after")
    def _check_layout(self) -> ClusterConfig:
        shards = self.shards
        if self.empty_masters >= shards:
            raise ValueError(
                f"redis.cluster.empty_masters: {self.empty_masters} leaves no master with "
                f"slots; allowed: 0..{shards - 1} (shards = {shards})"
            )
        reshard = self.reshard
        if reshard.slots == 0:
            return self
        for name in ("from_shard", "to_shard"):
            value = getattr(reshard, name)
            if value >= shards:
                raise ValueError(
                    f"redis.cluster.reshard.{name}: {value} is not a shard; allowed: "
                    f"0..{shards - 1} (shards = {shards})"
                )
        if reshard.from_shard == reshard.to_shard:
            raise ValueError(
                f"redis.cluster.reshard.to_shard: {reshard.to_shard} is also from_shard; "
                "allowed: another shard"
            )
        owned = self.slots_of(reshard.from_shard)
        if reshard.slots > owned:
            raise ValueError(
                f"redis.cluster.reshard.slots: {reshard.slots} is more than shard "
                f"{reshard.from_shard} owns; allowed: 0..{owned}"
            )
        return self

    def slots_of(self, shard: int) -> int:
        """How many slots shard `shard` owns at the start."""
        first, last = initial_ranges(self.shards, self.empty_masters)[shard]
        return last - first + 1

    def master_names(self) -> list[str]:
        return [f"redis{i}" for i in range(self.shards)]

    def replica_names(self, shard: int) -> list[str]:
        return [f"redis{shard}-replica{j + 1}" for j in range(self.replicas_per_shard)]

    def node_names(self) -> list[str]:
        names = []
        for shard, master in enumerate(self.master_names()):
            names += [master, *self.replica_names(shard)]
        return names

    def roles(self) -> list[str]:
        """`shard_<i>`: the current master of shard i."""
        return [f"shard_{i}" for i in range(self.shards)]
