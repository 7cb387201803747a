"""The Kafka model's planning engine: a run without faults, planned in spans with numpy.

Why: the event engine (cluster.py) spends about 100 us of Python per produce request on the
objects and callbacks that make faults possible: a broker that can die between any two events.
Without faults the steady state is a set of recurrences over arrival times (the sender's linger
clock, the follower's fetch loop over the leader's appends, the consumer's fetch loop over the
high watermark), which numpy and short Python loops over requests compute in a few microseconds
per request. The mechanisms and the defaults are the same (steady_plan.py says how each stage
follows the event engine); what differs is that random delays come in another order, so runs
agree in distribution, not draw for draw.

When: `kafka.engine = "auto"` (the default), no fault and no nemesis in the scenario, no
invariant checking, an open-loop workload, the default (key hash) partitioner, no
transactions, no compaction, no fsync setting, retention longer than the run, acks=all with
enough replicas for min.insync.replicas, a processing time only when each consumer owns at
most one partition, and `fetch.min.bytes` 1. With invariant checks on, the planner checks its
own (`check_invariants`). While planning, every assumption of the steady state
is checked (steady_plan.py); the first that fails raises `Fallback` and the runner simulates the
scenario event by event from the start (its manifest says why), so a result is always either
the planner's or exactly the event engine's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from models.kafka.cluster import FEED_MS, KEY_BYTES
from models.kafka.compaction import cleaner_summary
from models.kafka.group import COOPERATIVE, offsets_replicas
from models.kafka.group_assignors import assign
from models.kafka.placement import replicas_of
from models.kafka.steady_plan import Planner
from models.kafka.store import RECORD_OVERHEAD_BYTES
from models.kafka.transactions import transactions_summary
from simulator.model import InvariantViolation, SystemModel
from simulator.node import Node
from simulator.workload import make_workload

if TYPE_CHECKING:
    from models.kafka.config import KafkaConfig
    from simulator.context import RunContext

SPAN_MS = 2000.0  # the planner wakes this often ...
AHEAD_MS = 4000.0  # ... and plans the records sent up to this far ahead


def plan_refusal(ctx: RunContext) -> str | None:
    """Why this run cannot be planned (None: it can)."""
    spec = ctx.spec
    cfg: KafkaConfig = spec.system_config
    topic, producer, consumer, broker = cfg.topic, cfg.producer, cfg.consumer, cfg.broker
    workload = spec.workload
    checks = [
        (cfg.engine != "auto", "kafka.engine is events"),
        (bool(spec.faults), "the scenario has faults"),
        (spec.nemesis.enabled, "the scenario has a nemesis"),
        (workload.mode != "open", "a closed-loop workload"),
        (producer.partitioner != "default", "the sticky partitioner"),
        (topic.cleanup_policy != "delete", "a compacted topic"),
        (consumer.exactly_once, "transactions (exactly_once)"),
        (broker.log_flush_interval_messages is not None, "log.flush.interval.messages is set"),
        (
            producer.acks == "all" and topic.replication_factor < topic.min_insync_replicas,
            "acks=all with fewer replicas than min.insync.replicas",
        ),
        (consumer.fetch_min_bytes > 1, "fetch.min.bytes above 1"),
        (topic.retention_bytes is not None, "retention.bytes is set"),
        (
            topic.retention_ms <= ctx.duration_ms + spec.scenario.drain_s * 1000.0 + ctx.warmup_ms,
            "retention.ms shorter than the run",
        ),
        (
            workload.processing_ms > 0 and workload.consumers < topic.partitions,
            "a processing time with consumers owning several partitions",
        ),
    ]
    for refused, reason in checks:
        if refused:
            return reason
    return None


class SteadyKafka(SystemModel):
    """Kafka without faults: the steady state planned in spans (see the module docstring)."""

    config: KafkaConfig
    engine = "planned"

    def __init__(self, ctx: RunContext):
        super().__init__(ctx)
        self.owner: dict[int, int] = {}
        self._started = False
        self._stopped = False
        self._sample_ms = ctx.env.now
        self._fed = 0.0  # the workload is taken up to here

    def build(self) -> None:
        cfg = self.config
        spec = self.spec
        ctx = self.ctx
        n_brokers = cfg.brokers
        self.workload = make_workload(ctx.rng, spec.workload, ctx.duration_ms)
        expected = min(self.workload.profile.total, spec.workload.max_messages)
        ctx.history.reserve(int(expected + 6.0 * expected**0.5) + 1024)
        n_producers = spec.workload.producers
        # the same nodes as the event engine, in the same order
        for b in range(n_brokers):
            Node(ctx, f"broker{b}", role="server")
        Node(ctx, "controller", role="controller")
        for i in range(n_producers):
            Node(ctx, f"producer{i}", role="client")
        consumers = [f"consumer{i}" for i in range(spec.workload.consumers)]
        for name in consumers:
            Node(ctx, name, role="consumer")
        net: Any = ctx.network
        net.connect_all([n.name for n in ctx.nodes.values()])
        partitions = list(range(cfg.topic.partitions))
        rf = cfg.topic.replication_factor
        # cluster creation: the preferred replicas lead (controller.bootstrap)
        for b in range(n_brokers):
            for p in partitions:
                if replicas_of(p, n_brokers, rf)[0] == b:
                    ctx.event("became_leader", f"broker{b}", partition=p, epoch=0)
        # the group's initial assignment at t = 0 (group.start)
        strategy = cfg.consumer.partition_assignment_strategy
        target = assign(strategy, partitions, consumers, dict.fromkeys(partitions))
        self.owner = {p: int(name.removeprefix("consumer")) for p, name in target.items()}
        ctx.event(
            "rebalance",
            f"broker{offsets_replicas(cfg)[0]}",  # the coordinator (every broker is up)
            generation=1,
            reason="initial",
            protocol="cooperative" if strategy == COOPERATIVE else "eager",
            assignment={c: sorted(p for p, n in target.items() if n == c) for c in consumers},
            paused_partitions=sorted(target),
            unowned_partition_ms=0.0,
        )
        self.planner = Planner(self)
        self.env.process(self._plan())

    # --- the workload -----------------------------------------------------------------------------
    def start_workload(self) -> None:
        self._started = True
        self._step()  # plan ahead of the measured phase's first sample

    def _plan(self) -> Any:
        while not self._stopped:
            self._step()
            yield self.env.timeout(SPAN_MS)

    def _step(self) -> None:
        """Take the records sent up to AHEAD_MS from now and plan what they decide."""
        now = self.env.now
        if self._started:
            self._pull(now + AHEAD_MS)
        until = min(now + AHEAD_MS, self.ctx.duration_ms) if self._started else now
        self.planner.advance(until, final=False)

    def _known_until(self, t: float) -> None:
        """Gauges at `t` read facts up to `t`: plan further if they are not all known."""
        if not self._stopped and t > self.planner.H:
            self._step()

    def _pull(self, until: float) -> None:
        """The records sent up to `until`, taken from the workload in the event engine's feed
        chunks (cluster.FEED_MS), so both engines run the very same messages."""
        chunks = []
        while self._fed < until and not self.workload.exhausted:
            self._fed += FEED_MS
            batch = self.workload.next_batch(self._fed)
            if len(batch):
                chunks.append(batch)
        if not chunks:
            return
        times = np.concatenate([b.intended_ms for b in chunks])
        keys = np.concatenate([b.keys for b in chunks])
        # one registration for the pull: the same consecutive ids as one per chunk
        first = self.ctx.history.produce(times, keys, times.shape[0])
        sizes = None
        if self.planner.record_bytes is None:
            sizes = np.concatenate([b.sizes for b in chunks]) + float(
                KEY_BYTES + RECORD_OVERHEAD_BYTES
            )
        self.planner.add_records(first, times, keys, sizes)

    def stop_workload(self) -> None:
        """The producers flush (close()) what they hold; everything left is planned."""
        now = self.env.now
        self._stopped = True
        self._pull(self.ctx.duration_ms)
        self.planner.advance(now, final=True, flush_at=now)

    def drained(self) -> bool:
        return self.env.now >= self.planner.done_at

    def final_read(self) -> None:
        self.planner.flush()

    # --- reports ------------------------------------------------------------------------------------
    def gauges(self) -> dict[str, float]:
        now = self.env.now
        self._known_until(now)
        planner = self.planner
        span_s = max(1e-9, (now - self._sample_ms) / 1000.0)
        prev, self._sample_ms = self._sample_ms, now
        rf = float(self.config.topic.replication_factor)
        queue_ms = 0.0
        for waits, handled in zip(planner.queue_wait, planner.handled, strict=True):
            count = handled.take(prev, now)
            if count:
                queue_ms = max(queue_ms, waits.take(prev, now) / count)
        p0 = planner.parts[0]
        lag = 0.0
        if self.owner:
            for loop in planner.loops:
                part = planner.parts[loop.partition]
                lag += max(0.0, part.hw.at(now) - part.delivered.at(now))
        return {
            "under_replicated_partitions": 0.0,
            "offline_partitions": 0.0,
            "isr_size_min": rf,
            "isr_size_p0": rf,
            "leader_p0": float(planner.replicas[0][0]),
            "leo_p0": p0.leo.at(now),
            "hw_p0": p0.hw.at(now),
            "consumer_lag": lag,
            "request_queue_time_ms": queue_ms,
            "bytes_in_per_s": planner.bytes_in.take(prev, now) / span_s,
            "bytes_out_per_s": planner.bytes_out.take(prev, now) / span_s,
            "produce_requests_per_s": planner.produce_count.take(prev, now) / span_s,
        }

    def check_invariants(self) -> None:
        """What the planned facts must satisfy at every sample: per partition, the high
        watermark never passes the log end and a consumer's position never passes the high
        watermark (consumers see committed records only)."""
        now = self.env.now
        planner = self.planner
        for p, part in enumerate(planner.parts):
            leo, hw = part.leo.at(now), part.hw.at(now)
            if hw > leo:
                raise InvariantViolation(
                    now,
                    f"broker{planner.replicas[p][0]}",
                    "high watermark <= log end offset",
                    {"partition": p, "hw": hw, "leo": leo},
                )
            if p in self.owner:
                position = part.delivered.at(now)
                if position > hw:
                    raise InvariantViolation(
                        now,
                        f"consumer{self.owner[p]}",
                        "a consumer reads below the high watermark",
                        {"partition": p, "position": position, "hw": hw},
                    )

    def resolve_target(self, target: str) -> list[str]:
        """The event engine's roles, in the steady state (preferred leaders, full ISRs)."""
        replicas = self.planner.replicas[0]
        if target in self.ctx.nodes:
            return [target]
        if target in ("leader", "primary"):
            return [f"broker{replicas[0]}"]
        if target in ("a_follower", "a_replica", "followers", "replicas"):
            names = [f"broker{r}" for r in replicas[1:]]
            return names if target in ("followers", "replicas") else names[:1]
        if target in ("all_servers", "all_brokers"):
            return [f"broker{b}" for b in range(self.config.brokers)]
        consumers = [f"consumer{i}" for i in range(self.spec.workload.consumers)]
        producers = [f"producer{i}" for i in range(self.spec.workload.producers)]
        if target == "a_consumer":
            return consumers[:1]
        if target == "consumers":
            return consumers
        if target == "producers":
            return producers
        if target in ("clients", "client_link"):
            return producers + consumers
        return super().resolve_target(target)

    def summary(self) -> dict[str, float | int | str | None]:
        return {
            "rebalances": 0,
            "unowned_partition_ms": 0.0,
            "offset_commits_failed": 0,
            **transactions_summary(None),
            **cleaner_summary(None),
        }
