"""Functions the spawned worker processes of the sweep tests import by name."""

from __future__ import annotations

import os
import uuid
from typing import Any

# ~30 ms per run: a real simulation, small enough for dozens per test
SMALL = ["scenario.duration_s=2", "scenario.warmup_s=0", "scenario.drain_s=1"]


def square_or_fail(i: int) -> int:
    """i * i; i == 3 kills its worker process, i == 1 raises."""
    if i == 3:
        os._exit(17)  # what the OOM killer or a crash in native code looks like to the pool
    if i == 1:
        raise ValueError("one bad call")
    return i * i


def fresh_token(_value: Any, _fingerprint: Any = None) -> str:
    """A different answer on every call: merged calls would return the same token."""
    return uuid.uuid4().hex
