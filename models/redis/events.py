"""Events recorded with the time they happened at, not the time the model computed them.

The event loop is committed lazily (a span of iterations at a time), so what happened inside a
span (a slow command, a client cut off for its output buffer) is known a little later than it
happened. `RunContext.event` stamps the current time; this stamps the real one and keeps the
event list in time order.
"""

from __future__ import annotations

import bisect
from typing import Any

from simulator.context import Event, RunContext


def record_event(ctx: RunContext, t_ms: float, kind: str, node: str = "", **detail: Any) -> None:
    """Insert an event that happened at `t_ms` (<= now) in time order."""
    event = Event(float(t_ms), kind, node, detail)
    events = ctx.events
    if not events or events[-1].t_ms <= event.t_ms:
        events.append(event)
        return
    events.insert(bisect.bisect_right(events, event.t_ms, key=lambda e: e.t_ms), event)
