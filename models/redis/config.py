"""The `[redis]` scenario section: redis.conf names and Redis 7.x defaults, plus model parameters.

Real configuration names keep their meaning and default (redis.conf of Redis 7.2, hyphens become
underscores: `client-output-buffer-limit pubsub` is `client_output_buffer_limit_pubsub`). Model
parameters (costs of fork and load, the initial dataset, the workload mapping, client library
behaviour) are not Redis settings; their descriptions say so and give units.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.redis.cluster_config import ClusterConfig
from simulator.systems import SystemConfig

GB = 1024**3

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(k|kb|m|mb|g|gb)?\s*$", re.IGNORECASE)
# redis.conf memory units: 1k = 1000 bytes, 1kb = 1024 bytes (case insensitive).
_UNITS = {
    None: 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}


def memory_bytes(value: int | str) -> int:
    """A redis.conf memory size ("64mb", "1gb", 100000) in bytes."""
    if isinstance(value, int):
        return value
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a redis.conf memory size (e.g. 100mb, 1gb, 1048576)")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.lower() if unit else None])


def save_rules(text: str) -> list[tuple[float, int]]:
    """`save "3600 1 300 100"` -> [(3600 s, 1 change), (300 s, 100 changes)]; "" disables RDB."""
    parts = text.split()
    if len(parts) % 2:
        raise ValueError(f"save {text!r}: expected pairs of <seconds> <changes>")
    rules = []
    for seconds, changes in zip(parts[::2], parts[1::2], strict=True):
        if not (seconds.isdigit() and changes.isdigit()):
            raise ValueError(f"save {text!r}: seconds and changes must be integers")
        rules.append((float(seconds), int(changes)))
    return rules


def output_buffer_limit(text: str) -> tuple[int, int, float]:
    """`"32mb 8mb 60"` -> (hard bytes, soft bytes, soft seconds)."""
    parts = text.split()
    if len(parts) != 3:
        raise ValueError(f"{text!r}: expected '<hard limit> <soft limit> <soft seconds>'")
    return memory_bytes(parts[0]), memory_bytes(parts[1]), float(parts[2])


# Workloads whose data replicates: key-value writes, stream entries with their consumer group,
# list items (what XADD / XREADGROUP / XACK / LPUSH / BRPOP change is propagated like any write).
REPLICATED_WORKLOADS = ("kv", "stream", "list")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


class OpsConfig(_Section):
    """What the clients send, per workload (model parameters, not redis.conf)."""

    read_ratio: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="kv: fraction of arriving commands that are GETs (reads are load, not "
        "messages); the rest are writes, one message each.",
    )
    write_command: Literal["SET", "INCR"] = Field(
        "SET",
        description="kv: SET overwrites (idempotent: a retried SET is harmless); INCR adds (a "
        "retried INCR whose first attempt was applied counts twice: a duplicate).",
    )
    ttl_s: float = Field(
        60.0, gt=0, description="cache: TTL of a value set after a miss (SET key value EX ttl), s."
    )
    stream_maxlen: int = Field(
        0,
        ge=0,
        description="stream: XADD MAXLEN ~ <n> (0: no trimming); trims whole nodes of "
        "stream-node-max-entries (100) entries.",
    )
    xreadgroup_count: int = Field(
        10, ge=1, description="stream: XREADGROUP COUNT; the consumer XACKs the batch at its end."
    )
    xautoclaim_min_idle_ms: float = Field(
        5000.0, gt=0, description="stream: XAUTOCLAIM min-idle-time, ms."
    )
    xautoclaim_every_ms: float = Field(
        1000.0, ge=1, description="stream: each consumer runs XAUTOCLAIM this often, ms."
    )
    slow_command: Literal["", "KEYS", "LRANGE", "SORT", "EVAL"] = Field(
        "",
        description="A slow command an admin connection sends now and then (empty: none). KEYS "
        "scans every key, LRANGE/SORT touch slow_command_count elements, EVAL runs for "
        "slow_command_ms.",
    )
    slow_command_every_ms: float = Field(
        1000.0,
        ge=1.0,
        description="Period of the slow command, ms (first one at this time); at least 1 ms.",
    )
    slow_command_ms: float | None = Field(
        None,
        gt=0,
        description="Cost of one slow command, ms; None derives it from the cost model and the "
        "dataset (KEYS: every key; LRANGE/SORT: slow_command_count elements).",
    )
    slow_command_count: int = Field(
        100_000,
        ge=1,
        le=1_000_000_000,
        description="Elements an LRANGE or SORT slow command touches.",
    )


class ClientConfig(_Section):
    """Client library behaviour (model parameters; Jedis-like defaults)."""

    timeout_ms: float = Field(
        2000.0,
        ge=0,
        description="Request (socket read) timeout, ms; an unanswered request is then "
        "indeterminate. 0 = wait forever. Jedis default 2000 ms; redis-py has none.",
    )
    retries: int = Field(
        0,
        ge=0,
        le=100,
        description="Retries after a timeout, a connection error or a LOADING reply (not after "
        "OOM/MISCONF errors). A retried non-idempotent command may apply twice.",
    )
    retry_backoff_ms: float = Field(100.0, ge=0, description="Wait before each retry, ms.")
    reconnect: bool = Field(
        True, description="Reconnect (and resubscribe, re-issue BRPOP) after a disconnect."
    )
    reconnect_delay_ms: float = Field(
        100.0, ge=0, description="Wait before reconnecting after a disconnect, ms."
    )
    sentinel_lookup_ms: float = Field(
        1000.0,
        gt=0,
        description="With Sentinel: how often the client asks a reachable sentinel for the "
        "current master (SENTINEL get-master-addr-by-name), ms.",
    )
    wait_replicas: int = Field(
        0,
        ge=0,
        description="WAIT numreplicas after each write (0: no WAIT). The write is acknowledged "
        "only if WAIT returned at least this many replicas, else it is indeterminate.",
    )
    wait_timeout_ms: float = Field(
        1000.0, ge=0, description="WAIT timeout, ms (0 = block until enough replicas acked)."
    )
    read_from: Literal["master", "replicas"] = Field(
        "master",
        description="kv: where GETs go (a client library's read-from setting: Lettuce ReadFrom "
        "UPSTREAM / REPLICA, redis-py Sentinel master_for / slave_for): master, or a replica "
        "picked at random per read (read-only replicas, possibly stale; an unreachable replica's "
        "read goes to the master). With replicas, every read's staleness is measured.",
    )


class SentinelConfig(_Section):
    """Redis Sentinel (sentinel.conf 7.x names and defaults); count 0 = no Sentinel."""

    count: int = Field(0, ge=0, le=9, description="Model parameter: sentinel nodes (sentinel1..).")
    quorum: int = Field(
        2,
        ge=1,
        description="sentinel monitor <name> <ip> <port> <quorum>: agreeing sentinels "
        "needed for ODOWN (a failover also needs a majority of all sentinels to elect a leader).",
    )
    down_after_milliseconds: float = Field(
        30000.0, ge=1, description="down-after-milliseconds: no valid PING reply this long = SDOWN."
    )
    failover_timeout: float = Field(
        180000.0, ge=1, description="failover-timeout, ms: wait before retrying a failed failover."
    )


class RedisConfig(SystemConfig):
    """one Redis 7.x server (single-threaded event loop, RDB, AOF, eviction, pub/sub)"""

    # --- persistence (redis.conf: SNAPSHOTTING, APPEND ONLY MODE) ---------------------------
    appendonly: bool = Field(False, description="appendonly: log every write to the AOF.")
    appendfsync: Literal["always", "everysec", "no"] = Field(
        "everysec",
        description="appendfsync: fsync the AOF after every loop iteration with writes "
        "(always), once a second in a background thread (everysec), or never (no: the kernel "
        "writes back after vm.dirty_expire_centisecs).",
    )
    save: str = Field(
        "3600 1 300 100 60 10000",
        description='save: RDB snapshot rules "<seconds> <changes> ..." (BGSAVE when at least '
        'changes writes happened within seconds); "" disables snapshots.',
    )
    stop_writes_on_bgsave_error: bool = Field(
        True,
        description="stop-writes-on-bgsave-error: refuse writes (MISCONF) after a failed save.",
    )
    auto_aof_rewrite_percentage: int = Field(
        100, ge=0, description="auto-aof-rewrite-percentage: rewrite when the AOF grew this much %."
    )
    auto_aof_rewrite_min_size: int | str = Field(
        "64mb", description="auto-aof-rewrite-min-size: no automatic rewrite below this size."
    )
    no_appendfsync_on_rewrite: bool = Field(
        False,
        description="no-appendfsync-on-rewrite: skip AOF fsyncs while a BGSAVE or rewrite child "
        "runs (less latency, a longer loss window).",
    )
    aof_use_rdb_preamble: bool = Field(
        True, description="aof-use-rdb-preamble: the rewritten AOF base is an RDB image."
    )
    # --- event loop (GENERAL, THREADED I/O) -----------------------------------------------
    hz: int = Field(10, ge=1, le=500, description="hz: serverCron runs hz times per second.")
    io_threads: int = Field(
        1, ge=1, le=128, description="io-threads: threads for socket writes (1 = main thread)."
    )
    io_threads_do_reads: bool = Field(
        False, description="io-threads-do-reads: also offload socket reads and parsing."
    )
    slowlog_log_slower_than: int = Field(
        10_000, description="slowlog-log-slower-than: commands slower than this (µs) are logged."
    )
    # --- memory (MEMORY MANAGEMENT) ---------------------------------------------------------
    maxmemory: int | str = Field(0, description="maxmemory: 0 = no limit; e.g. 100mb.")
    maxmemory_policy: Literal[
        "noeviction",
        "allkeys-lru",
        "allkeys-lfu",
        "allkeys-random",
        "volatile-lru",
        "volatile-lfu",
        "volatile-random",
        "volatile-ttl",
    ] = Field("noeviction", description="maxmemory-policy: what to do at maxmemory.")
    maxmemory_samples: int = Field(
        5, ge=1, le=64, description="maxmemory-samples: keys sampled per eviction."
    )
    lfu_log_factor: int = Field(10, ge=0, description="lfu-log-factor: LFU counter growth.")
    lfu_decay_time: int = Field(1, ge=0, description="lfu-decay-time: minutes per LFU decrement.")
    client_output_buffer_limit_pubsub: str = Field(
        "32mb 8mb 60",
        description="client-output-buffer-limit pubsub <hard> <soft> <soft seconds>: a "
        "subscriber whose output buffer passes hard, or stays above soft that long, is "
        "disconnected.",
    )
    # --- replication (REPLICATION) ------------------------------------------------------------
    replicas: int = Field(
        0, ge=0, le=8, description="Model parameter: replicas (replica1.., `replicaof redis`)."
    )
    repl_backlog_size: int | str = Field(
        "1mb",
        description="repl-backlog-size: a replica that reconnects within this much of the stream "
        "does a partial resync, else a full resync (RDB transfer).",
    )
    min_replicas_to_write: int = Field(
        0, ge=0, le=8, description="min-replicas-to-write: refuse writes with fewer good replicas."
    )
    min_replicas_max_lag: int = Field(
        10,
        ge=0,
        le=86_400,
        description="min-replicas-max-lag: a good replica acked within this many s.",
    )
    repl_timeout: int = Field(
        60,
        ge=1,
        le=86_400,
        description="repl-timeout, s: a replica whose master link carried no data and no PING "
        "this long drops it (master_link_status down; -MASTERDOWN with "
        "replica-serve-stale-data no) and reconnects with PSYNC once it can. A silent cut "
        "shorter than this keeps the connection: the replica catches up when it heals, "
        "without a resync. A closed connection (a killed process) is noticed at once.",
    )
    replica_serve_stale_data: bool = Field(
        True,
        description="replica-serve-stale-data: a replica whose link to the master is down (or "
        "in a full resync) still answers reads with the data it has (yes), or -MASTERDOWN (no).",
    )
    replica_priority: int = Field(
        100, ge=0, description="replica-priority: lower is preferred by Sentinel; 0 = never."
    )
    repl_sync_mb_s: float = Field(
        100.0,
        gt=0,
        description="Model parameter: speed of a full resync (RDB made, sent and loaded), MB/s.",
    )
    sentinel: SentinelConfig = Field(default_factory=SentinelConfig, description="Sentinel.")
    cluster: ClusterConfig = Field(
        default_factory=ClusterConfig, description="Redis Cluster (cluster-enabled)."
    )
    # --- model parameters -------------------------------------------------------------------
    workload: Literal["kv", "list", "pubsub", "cache", "stream"] = Field(
        "kv",
        description="Model parameter. kv: SET/INCR writes (+ GET reads), delivered = present in "
        "the final read; list: LPUSH producers, BRPOP workers; pubsub: PUBLISH to subscribers; "
        "cache: GET, on a miss SET with a TTL; stream: XADD producers, a consumer group "
        "(XREADGROUP >, XACK, XAUTOCLAIM).",
    )
    ops: OpsConfig = Field(default_factory=OpsConfig, description="Command mix (model).")
    client: ClientConfig = Field(default_factory=ClientConfig, description="Client behaviour.")
    dataset_keys: int = Field(
        0,
        ge=0,
        le=2_000_000_000,
        description="Model parameter: keys loaded before the run besides the workload's keys "
        "(they make fork, snapshot, KEYS and load time realistic).",
    )
    dataset_value_bytes: int = Field(
        100, ge=0, description="Model parameter: value size of each initial-dataset key, bytes."
    )
    key_overhead_bytes: int = Field(
        72,
        ge=0,
        description="Model parameter: memory per key besides its value (dictEntry, robj, key "
        "sds, expires entry), bytes; about 50-90 on 64-bit builds.",
    )
    fork_ms_per_gb: float = Field(
        10.0,
        ge=0,
        description="Model parameter: main-thread stall of fork() per GB of used memory, ms "
        "(Redis latency docs: 9-13 ms/GB on physical hosts and modern VMs, 239 ms/GB on old "
        "Xen).",
    )
    load_ms_per_gb: float = Field(
        8000.0,
        gt=0,
        description="Model parameter: time to load one GB of RDB at restart, ms (order of "
        "100-200 MB/s for small keys).",
    )
    aof_load_us_per_command: float = Field(
        1.5, gt=0, description="Model parameter: replay cost of one AOF command at restart, µs."
    )
    rdb_save_mb_s: float = Field(
        300.0,
        gt=0,
        description="Model parameter: CPU speed of the child serializing a snapshot, MB/s.",
    )
    cpu_speed: float = Field(
        1.0, gt=0, description="Model parameter: CPU speed factor (2 = every cost halves)."
    )
    per_iteration_overhead: bool = Field(
        True,
        description="Model parameter: charge epoll/beforeSleep and reply writes per loop "
        "iteration (true, realistic); false puts every cost on its command (theory tests).",
    )
    command_cost_distribution: Literal["fixed", "exponential"] = Field(
        "fixed",
        description="Model parameter: each command costs exactly its table cost (fixed) or an "
        "exponential amount with that mean (for M/M/1 checks).",
    )
    socket_buffer_bytes: int = Field(
        262_144,
        ge=0,
        description="Model parameter: bytes the kernel socket buffers hold between Redis and a "
        "client (sent but not read); they survive a disconnect and are not in the output buffer.",
    )

    @model_validator(mode="after")
    def _check_replication(self) -> RedisConfig:
        if (self.replicas or self.sentinel.count) and self.workload not in REPLICATED_WORKLOADS:
            # pub/sub messages are not data: a subscriber of the new master gets only what is
            # published after it resubscribed (not modelled); cache: not modelled
            allowed = ", ".join(repr(w) for w in REPLICATED_WORKLOADS)
            raise ValueError(
                f"workload: {self.workload!r} is not modelled with replication (replicas = "
                f"{self.replicas}, sentinel.count = {self.sentinel.count}); allowed with "
                f"replicas: {allowed}"
            )
        if self.sentinel.count and not self.replicas:
            raise ValueError("sentinel.count > 0 needs replicas > 0 (something to fail over to)")
        if self.sentinel.count and self.sentinel.quorum > self.sentinel.count:
            raise ValueError("sentinel.quorum cannot exceed sentinel.count")
        if self.client.wait_replicas > self.replicas and not self.cluster.enabled:
            raise ValueError("client.wait_replicas cannot exceed replicas")
        reads_elsewhere = self.workload != "kv" or self.cluster.enabled or not self.replicas
        if self.client.read_from == "replicas" and reads_elsewhere:
            raise ValueError(
                "client.read_from = 'replicas' needs workload = 'kv' and replicas >= 1 "
                f"(got workload {self.workload!r}, replicas {self.replicas}, "
                f"cluster.enabled {self.cluster.enabled}); allowed otherwise: 'master'"
            )
        if self.cluster.enabled:
            self._check_cluster()
        return self

    def _check_cluster(self) -> None:
        cluster = self.cluster
        if self.workload != "kv":
            raise ValueError(
                f"cluster.enabled: workload {self.workload!r} is not modelled in a cluster; "
                "allowed: 'kv'"
            )
        if self.replicas or self.sentinel.count:
            raise ValueError(
                "cluster.enabled: replicas and sentinel.count must be 0 (a cluster has "
                "cluster.replicas_per_shard and fails over without Sentinel)"
            )
        if self.client.wait_replicas > cluster.replicas_per_shard:
            raise ValueError("client.wait_replicas cannot exceed cluster.replicas_per_shard")
        if self.ops.slow_command:
            raise ValueError("cluster.enabled: ops.slow_command is not modelled in a cluster")

    @field_validator("save")
    @classmethod
    def _check_save(cls, value: str) -> str:
        save_rules(value)
        return value

    @field_validator("maxmemory", "auto_aof_rewrite_min_size", "repl_backlog_size")
    @classmethod
    def _check_memory(cls, value: int | str) -> int | str:
        if memory_bytes(value) < 0:
            raise ValueError("must not be negative")
        return value

    @field_validator("client_output_buffer_limit_pubsub")
    @classmethod
    def _check_obl(cls, value: str) -> str:
        output_buffer_limit(value)
        return value

    # --- derived -----------------------------------------------------------------------------
    @property
    def maxmemory_bytes(self) -> int:
        return memory_bytes(self.maxmemory)

    @property
    def aof_rewrite_min_bytes(self) -> int:
        return memory_bytes(self.auto_aof_rewrite_min_size)

    @property
    def save_rules(self) -> list[tuple[float, int]]:
        return save_rules(self.save)

    @property
    def pubsub_limits(self) -> tuple[int, int, float]:
        return output_buffer_limit(self.client_output_buffer_limit_pubsub)

    # --- fault targets -------------------------------------------------------------------------
    @property
    def repl_backlog_bytes(self) -> int:
        return memory_bytes(self.repl_backlog_size)

    def replica_names(self) -> list[str]:
        return [f"replica{i + 1}" for i in range(self.replicas)]

    def sentinel_names(self) -> list[str]:
        return [f"sentinel{i + 1}" for i in range(self.sentinel.count)]

    def node_names(self) -> list[str]:
        if self.cluster.enabled:
            return [*self.cluster.node_names(), "clients"]
        return ["redis", *self.replica_names(), *self.sentinel_names(), "clients"]

    def roles(self) -> list[str]:
        cluster = self.cluster.roles() if self.cluster.enabled else []
        return [
            *cluster,
            "primary",
            "leader",
            "a_replica",
            "replicas",
            "a_follower",
            "followers",
            "a_sentinel",
            "sentinels",
            "all_servers",
            "a_consumer",
            "consumers",
            "a_subscriber",
            "subscribers",
            "a_worker",
            "workers",
            "client_link",
            "all_clients",
        ]
