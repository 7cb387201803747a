"""Statistics of the event loop over a run: waits, reply delays, iteration sizes, slowlog.

They are reported once, as the `event_loop_stats` event of the final read, and are what the
queueing-theory tests compare with Pollaczek-Khinchine and with a gated server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from models.redis import loop
from models.redis.commands import OP_NAMES
from models.redis.events import record_event

if TYPE_CHECKING:
    from models.redis.config import RedisConfig
    from models.redis.requests import Rows
    from simulator.context import RunContext

STALL_CONN = -2  # synthetic row that stretches an iteration (a pause): no reply, not counted


@dataclass
class LoopStats:
    """Running sums over executed commands (the `event_loop_stats` event)."""

    commands: int = 0
    iterations: int = 0
    wait_sum_ms: float = 0.0  # arrival -> start of execution
    wait_sq_sum: float = 0.0
    reply_sum_ms: float = 0.0  # arrival -> replies written (end of the iteration)
    busy_ms: float = 0.0
    max_batch: int = 0

    def _record_one(
        self, ctx: RunContext, rows: Rows, plan: loop.Plan, end_row: np.ndarray, config: RedisConfig
    ) -> None:
        """`record` for one command in one iteration (closed-loop clients and consumers commit
        one command at a time): the same sums with Python floats instead of array calls."""
        self.iterations += 1
        self.busy_ms += float(plan.end_ms[0]) - float(plan.poll[0])
        self.max_batch = max(self.max_batch, 1)
        read = float(rows["rcost"][0])
        start = float(plan.poll[0]) + read  # exec_starts of a lone row: poll + its read
        cost = float(rows["cost"][0])
        if int(rows["conn"][0]) != STALL_CONN:
            arrival = float(rows["arrival"][0])
            wait = start - arrival
            self.commands += 1
            self.wait_sum_ms += wait
            self.wait_sq_sum += wait * wait
            self.reply_sum_ms += float(end_row[0]) - arrival
            if cost > config.slowlog_log_slower_than / 1000.0:
                record_event(
                    ctx,
                    start,
                    "slowlog",
                    "redis",
                    duration_us=cost * 1000.0,
                    command=OP_NAMES[int(rows["op"][0])],
                )

    def summary(self, elapsed_ms: float) -> dict[str, float]:
        n = max(self.commands, 1)
        return {
            "commands": self.commands,
            "iterations": self.iterations,
            "commands_per_iteration": self.commands / max(self.iterations, 1),
            "mean_wait_before_exec_ms": self.wait_sum_ms / n,
            "var_wait_before_exec_ms2": self.wait_sq_sum / n - (self.wait_sum_ms / n) ** 2,
            "mean_reply_delay_ms": self.reply_sum_ms / n,
            "utilization": self.busy_ms / elapsed_ms if elapsed_ms > 0 else 0.0,
            "max_commands_per_iteration": self.max_batch,
        }

    def record(
        self,
        ctx: RunContext,
        rows: Rows,
        plan: loop.Plan,
        end_row: np.ndarray,
        costs: loop.LoopCosts,
        config: RedisConfig,
    ) -> None:
        """Add the commands of committed iterations; slow ones go to the slowlog."""
        if rows["arrival"].size == 1:
            self._record_one(ctx, rows, plan, end_row, config)
            return
        starts = loop.exec_starts(rows, plan, costs)
        arrival = rows["arrival"]
        stalls = rows["conn"] == STALL_CONN
        real = ~stalls if stalls.any() else slice(None)
        wait = (starts - arrival)[real]
        self.commands += int(wait.size)
        self.iterations += len(plan)
        self.wait_sum_ms += float(wait.sum())
        self.wait_sq_sum += float(np.dot(wait, wait))
        self.reply_sum_ms += float(end_row[real].sum() - arrival[real].sum())
        self.busy_ms += float(plan.end_ms.sum() - plan.poll.sum())
        self.max_batch = max(self.max_batch, int((plan.end - plan.start).max()))
        slowlog_ms = config.slowlog_log_slower_than / 1000.0  # slowlog-log-slower-than (µs)
        if rows["cost"].max() > slowlog_ms:
            for i in np.flatnonzero((rows["cost"] > slowlog_ms) & ~stalls):
                record_event(
                    ctx,
                    float(starts[i]),
                    "slowlog",
                    "redis",
                    duration_us=float(rows["cost"][i] * 1000.0),
                    command=OP_NAMES[int(rows["op"][i])],
                )
