"""Reference model: one FIFO service station (M/M/c or M/D/c) registered as system kind `queue`.

It exists so the core is tested against queueing theory before the Redis and Kafka models: with
Poisson arrivals and exponential service, the mean time in system of one server is
W = 1 / (mu - lambda) (M/M/1); with deterministic service, Pollaczek-Khinchine gives
Wq = rho * S / (2 (1 - rho)) (M/D/1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from typing import Any, Literal

import numpy as np
from pydantic import Field

from simulator.model import SystemModel
from simulator.node import Node
from simulator.systems import System, SystemConfig
from simulator.workload import make_workload


class QueueConfig(SystemConfig):
    """a single FIFO service station"""

    service: Literal["exponential", "deterministic"] = Field(
        "exponential", description="Service time distribution."
    )
    service_ms: float = Field(1.0, gt=0, le=3_600_000, description="Mean service time.")
    servers: int = Field(1, ge=1, le=1024, description="Parallel servers sharing the queue.")

    def node_names(self) -> list[str]:
        return ["server", "client"]

    def roles(self) -> list[str]:
        return ["all_servers", "primary", "leader", "a_consumer", "consumers"]


class QueueServer(Node):
    """The station: a FIFO queue in front of `servers` identical servers."""

    def __init__(self, model: QueueModel):
        super().__init__(model.ctx, "server", role="server")
        self.model = model
        self.waiting: deque[tuple[int, float]] = deque()
        self.in_service: set[int] = set()
        self._wake: Any = None
        # completions are recorded in batches: per-message numpy calls would dominate the run
        self._done_ids: list[int] = []
        self._done_ms: list[float] = []
        self.waiters: dict[int, Any] = {}  # closed-loop clients waiting for their reply

    def flush(self) -> None:
        """Record the replies (= deliveries) completed since the last flush."""
        if not self._done_ids:
            return
        ids = np.asarray(self._done_ids, dtype=np.int64)
        times = np.asarray(self._done_ms)
        self.ctx.history.ack(ids, times)
        self.ctx.history.deliver(ids, times)
        self._done_ids.clear()
        self._done_ms.clear()

    def start(self) -> None:
        for i in range(self.model.config.servers):
            self.spawn(self._serve(i))

    def enqueue(self, first_id: int, times: np.ndarray) -> None:
        self.waiting.extend(
            zip(range(first_id, first_id + times.size), times.tolist(), strict=True)
        )
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def _serve(self, index: int) -> Generator[Any, Any, None]:
        env = self.env
        draw = self.model.service_time
        done_ids, done_ms = self._done_ids, self._done_ms
        while True:
            if not self.waiting:
                if self._wake is None or self._wake.triggered:
                    self._wake = env.event()
                yield self._wake
                continue
            msg_id, arrival = self.waiting[0]
            if arrival > env.now:
                # the head customer has not arrived yet (arrivals are generated ahead of time)
                wait = env.timeout(arrival - env.now)
                yield wait
                continue
            self.waiting.popleft()
            self.in_service.add(msg_id)
            yield from self.sleep(draw())
            self.in_service.discard(msg_id)
            done_ids.append(msg_id)
            done_ms.append(env.now)
            waiter = self.waiters.pop(msg_id, None)
            if waiter is not None:
                waiter.succeed()

    def on_crash(self) -> None:
        # a crashed station forgets its queue: clients see their connection reset
        self.flush()
        history = self.ctx.history
        dropped = [i for i, _t in self.waiting if _t <= self.env.now] + sorted(self.in_service)
        future = [(i, t) for i, t in self.waiting if t > self.env.now]
        for i in dropped:
            history.indeterminate(i, self.env.now)
        self.waiting = deque(future)
        self.in_service.clear()

    def on_restart(self) -> None:
        self.start()


class QueueModel(SystemModel):
    """Poisson (or constant) arrivals from the workload into one FIFO station."""

    def build(self) -> None:
        self.server = QueueServer(self)
        self.client = Node(self.ctx, "client", role="client")
        self._service_rng = self.ctx.rng("queue.service")
        self._service_buf = np.empty(0)
        self._service_pos = 0
        self.workload = make_workload(self.ctx.rng, self.spec.workload, self.ctx.duration_ms)

    def service_time(self) -> float:
        cfg = self.config
        if cfg.service == "deterministic":
            return cfg.service_ms
        if self._service_pos >= self._service_buf.size:
            self._service_buf = self._service_rng.exponential(cfg.service_ms, 4096)
            self._service_pos = 0
        value = float(self._service_buf[self._service_pos])
        self._service_pos += 1
        return value

    def start_workload(self) -> None:
        self.server.start()
        if self.spec.workload.mode == "closed":
            for i in range(self.spec.workload.clients):
                self.client.spawn(self._closed_client(i))
        else:
            self.env.process(self._arrivals())

    def _closed_client(self, index: int) -> Generator[Any, Any, None]:
        """A client that sends one request, waits for the reply, thinks, and sends again."""
        env = self.env
        wl = self.spec.workload
        keys = self.workload.keys
        think = self.ctx.rng(f"queue.think.{index}")
        while env.now < self.ctx.duration_ms and self.ctx.phase == "measured":
            msg_id = self.ctx.history.produce(env.now, keys.draw(1), count=1)
            reply = env.event()
            self.server.waiters[msg_id] = reply
            self.server.enqueue(msg_id, np.array([env.now]))
            yield reply
            if wl.think_time_ms > 0:
                yield env.timeout(float(think.exponential(wl.think_time_ms)))

    def _arrivals(self) -> Generator[Any, Any, None]:
        env = self.env
        chunk_ms = 100.0
        while not self.workload.exhausted:
            self.server.flush()
            batch = self.workload.next_batch(env.now + chunk_ms)
            if len(batch):
                first = self.ctx.history.produce(batch.intended_ms, batch.keys)
                if self.server.is_running:
                    self.server.enqueue(first, batch.intended_ms)
                else:
                    self.ctx.history.fail(range(first, first + len(batch)), env.now)
            yield env.timeout(chunk_ms)

    def final_read(self) -> None:
        self.server.flush()

    def drained(self) -> bool:
        self.server.flush()
        return not self.server.waiting and not self.server.in_service

    def gauges(self) -> dict[str, float]:
        now = self.env.now
        queued = (
            sum(1 for _i, t in self.server.waiting if t <= now)
            if len(self.server.waiting) < 10_000
            else len(self.server.waiting)
        )
        return {"queue_length": float(queued + len(self.server.in_service))}

    def resolve_target(self, target: str) -> list[str]:
        if target in ("all_servers", "primary", "leader"):
            return ["server"]
        if target in ("a_consumer", "consumers"):
            return ["server"]
        return super().resolve_target(target)


SYSTEM = System(
    kind="queue",
    config=QueueConfig,
    factory=QueueModel,
    description="Reference FIFO station (M/M/c, M/D/c) used to check the core against theory",
)
