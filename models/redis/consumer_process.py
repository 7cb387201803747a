"""A consuming client process (BRPOP worker, subscriber, stream consumer) of a Redis workload.

Its group (workers, subscribers, stream consumers) decides what a death means for the items it
held; the core calls `before_down` while the node is still intact, whatever takes it down.
"""

from __future__ import annotations

from typing import Protocol

from simulator.context import RunContext
from simulator.node import Node


class ConsumerGroup(Protocol):
    ctx: RunContext

    def before_down(self, index: int) -> None: ...


class ConsumerProcess(Node):
    """Node `consumer<index>` whose crash, power loss or stop is settled by its group first."""

    def __init__(self, group: ConsumerGroup, index: int):
        super().__init__(group.ctx, f"consumer{index}", role="consumer")
        self.index = index
        self._group = group

    def before_down(self, kind: str) -> None:
        self._group.before_down(self.index)
