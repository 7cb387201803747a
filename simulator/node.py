"""Base of every server and client: crash, power loss, graceful stop, restart, pause, slowdown.

A node owns SimPy processes started with `spawn`. `crash` interrupts them all (their generators
stop at their current yield, like a killed process) and bumps `incarnation`, so callbacks
scheduled by the dead incarnation can see they are stale. `pause` freezes the node (a long GC or
SIGSTOP): timers taken with `sleep` do not advance while paused. `stop` is graceful: the model's
`on_stop` runs first (flush, save, hand over leadership). `restart` rebuilds from what the
node's disks kept, through the model's `on_restart`.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import simpy

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.disk import Disk

UP, CRASHED, STOPPED, PAUSED, LOADING = "up", "crashed", "stopped", "paused", "loading"


class NodeDown(Exception):
    """Raised into a node's processes when it crashes or stops."""


class Node:
    """A named participant of the run (server, broker, controller, sentinel, client)."""

    def __init__(self, ctx: RunContext, name: str, role: str = "server"):
        self.ctx = ctx
        self.env = ctx.env
        self.name = name
        self.role = role
        self.state = UP
        self.incarnation = 0
        self.slowdown = 1.0  # slow_consumer: multiplies processing time
        self.down_kind = ""  # "crash", "power_loss" or "stop" while down
        self.disks: list[Disk] = []
        self._processes: list[simpy.Process] = []
        self._paused_total = 0.0
        self._paused_since: float | None = None
        self._resumed = ctx.env.event()
        self._up_event = ctx.env.event()
        self._up_event.succeed()
        ctx.add_node(self)
        if ctx.network is not None:
            ctx.network.add_node(name, role)

    # --- state ------------------------------------------------------------------
    @property
    def is_up(self) -> bool:
        """Serving (not crashed, stopped or paused)."""
        return self.state in (UP, LOADING)

    @property
    def is_running(self) -> bool:
        """The process exists (may be paused or loading)."""
        return self.state in (UP, LOADING, PAUSED)

    @property
    def is_paused(self) -> bool:
        return self._paused_since is not None

    def resumed(self) -> simpy.Event:
        """An event that fires when the node is no longer paused (now if it is not)."""
        if self._paused_since is None:
            ev = self.env.event()
            ev.succeed()
            return ev
        return self._resumed

    def paused_clock(self) -> float:
        """Total time this node has spent paused up to now."""
        extra = self.env.now - self._paused_since if self._paused_since is not None else 0.0
        return self._paused_total + extra

    # --- processes ----------------------------------------------------------------
    def spawn(self, generator: Generator[Any, Any, Any]) -> simpy.Process:
        """Start a process that dies with this node."""
        proc = self.env.process(self._guard(generator))
        self._processes.append(proc)
        if len(self._processes) > 64:
            self._processes = [p for p in self._processes if p.is_alive]
        return proc

    def _guard(self, generator: Generator[Any, Any, Any]) -> Generator[Any, Any, Any]:
        try:
            return (yield from generator)
        except simpy.Interrupt as interrupt:
            if isinstance(interrupt.cause, NodeDown):
                return None
            raise

    def sleep(self, ms: float) -> Generator[simpy.Event, Any, None]:
        """Wait `ms` of this node's own running time: a pause stops the timer."""
        start_active = self.env.now - self.paused_clock()
        while True:
            if self._paused_since is not None:
                yield self._resumed
                continue
            remaining = ms - ((self.env.now - self.paused_clock()) - start_active)
            if remaining <= 1e-9:
                return
            yield self.env.timeout(remaining)

    def _kill_processes(self, reason: str) -> None:
        current = self.env.active_process
        for proc in self._processes:
            if proc.is_alive and proc is not current:
                proc.interrupt(NodeDown(reason))
        self._processes = []

    # --- faults (the core calls these; models override the on_* hooks) -------------
    def crash(self) -> None:
        """Kill the process: memory is gone, the page cache survives."""
        if not self.is_running:
            return
        self.before_down("crash")
        self._end_pause()
        self.down_kind = "crash"
        self.state = CRASHED
        self.incarnation += 1
        self._kill_processes("crash")
        self.ctx.event("crash", self.name)
        self.on_crash()

    def power_loss(self) -> None:
        """Lose power: the process dies and every disk drops what was not durable."""
        was_running = self.is_running
        if was_running:
            self.before_down("power_loss")
            self.down_kind = "power_loss"
            self._end_pause()
            self.state = CRASHED
            self.incarnation += 1
            self._kill_processes("power_loss")
        self.ctx.event("power_loss", self.name)
        lost = {disk.name: disk.power_loss() for disk in self.disks}
        if was_running:
            self.on_crash()
        self.on_power_loss(lost)

    def stop(self) -> None:
        """Graceful shutdown: the model flushes and hands over first."""
        if not self.is_running:
            return
        self.before_down("stop")
        self._end_pause()
        self.down_kind = "stop"
        self.on_stop()
        self.state = STOPPED
        self.incarnation += 1
        self._kill_processes("stop")
        self.ctx.event("stop", self.name)

    def restart(self) -> None:
        """Start the process again from what its disks kept."""
        if self.is_running:
            return
        self.state = UP
        self.down_kind = ""
        self.incarnation += 1
        self.ctx.event("restart", self.name)
        self.on_restart()

    def pause(self, duration_ms: float | None) -> None:
        """Freeze the node (stop-the-world): no processing, timers stopped."""
        if not self.is_running or self._paused_since is not None:
            return
        self._paused_since = self.env.now
        self._resumed = self.env.event()
        self._state_before_pause = self.state
        self.state = PAUSED
        self.ctx.event("pause", self.name)
        self.on_pause()
        if duration_ms is not None:
            timer = self.env.timeout(duration_ms)
            incarnation = self.incarnation
            timer.callbacks.append(lambda _ev: self._timed_resume(incarnation))

    def _timed_resume(self, incarnation: int) -> None:
        if self.incarnation == incarnation:
            self.resume()

    def resume(self) -> None:
        if self._paused_since is None:
            return
        self.state = self._state_before_pause
        self._end_pause()
        self.ctx.event("resume", self.name)
        self.on_resume()

    def _end_pause(self) -> None:
        if self._paused_since is None:
            return
        self._paused_total += self.env.now - self._paused_since
        self._paused_since = None
        self._resumed.succeed()

    # --- hooks for models ---------------------------------------------------------
    def before_down(self, kind: str) -> None:
        """Called first when the node goes down ("crash", "power_loss", "stop"), while its state,
        processes and disks are still intact: a model that advances in spans catches up here."""

    def on_crash(self) -> None:
        """Drop in-memory state (called after the processes are interrupted)."""

    def on_power_loss(self, lost: dict[str, Any]) -> None:
        """Attribute what the disks dropped (called after on_crash)."""

    def on_stop(self) -> None:
        """Flush and hand over before a graceful shutdown."""

    def on_restart(self) -> None:
        """Rebuild state from disk and spawn processes again."""

    def on_pause(self) -> None:
        """Called when a pause begins."""

    def on_resume(self) -> None:
        """Called when a pause ends."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.state})"
