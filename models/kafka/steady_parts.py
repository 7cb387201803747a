"""Pieces of the steady-state planner (steady.py): jitter draws, growable arrays, the per-partition
log and the capacity check.

Everything here works on numpy arrays or plain Python lists: no simulation events.
"""

from __future__ import annotations

from heapq import heapreplace
from typing import TYPE_CHECKING, Any

import numpy as np

from simulator.model import ModelFallback

if TYPE_CHECKING:
    from simulator.network import Link

DRAW_CHUNK = 1024  # jitter factors drawn per refill of one link


class Fallback(ModelFallback):
    """The steady state ended (or never held): the run must be simulated event by event."""

    def __init__(self, reason: str, overrides: dict[str, Any] | None = None):
        super().__init__(reason, overrides or {"kafka.engine": "events"})


class Draws:
    """One link's one-way delays, drawn from the link's own random stream in chunks.

    delay = base x lognormal factor + bytes x serialization, as `Link.sample` (no fault can be
    active in a planned run, so there is no extra delay and no packet loss)."""

    __slots__ = ("_factors", "base", "link", "ms_per_byte")

    def __init__(self, link: Link):
        self.link = link
        self.base = link.base_ms
        self.ms_per_byte = link.ms_per_byte
        self._factors: list[float] = []

    def ensure(self, n: int) -> list[float]:
        """At least `n` factors ready, in the order `pop()` takes them (loops pop them inline
        without checking)."""
        have = len(self._factors)
        if have < n:
            more = self.link.jitter_factors(n - have + DRAW_CHUNK)[::-1].tolist()
            self._factors = more + self._factors
        return self._factors

    def delay(self, nbytes: float) -> float:
        factors = self._factors
        if not factors:
            factors = self._factors = self.link.jitter_factors(DRAW_CHUNK)[::-1].tolist()
        return self.base * factors.pop() + nbytes * self.ms_per_byte

    def delays(self, nbytes: np.ndarray) -> np.ndarray:
        """One delay per message of `nbytes` (the next factors, in the order `delay` takes)."""
        n = nbytes.shape[0]
        factors = self.ensure(n)
        take = factors[len(factors) - n :][::-1]
        del factors[len(factors) - n :]
        return self.base * np.array(take) + nbytes * self.ms_per_byte


class Grow:
    """A growable 1-d array (amortized doubling) with a movable start, for append-only tables
    whose consumed head can be dropped."""

    __slots__ = ("_buf", "base", "end", "start")

    def __init__(self, dtype: type | np.dtype, capacity: int = 1024):
        self._buf = np.empty(capacity, dtype=dtype)
        self.start = 0  # first kept element (absolute index = base + position)
        self.end = 0
        self.base = 0  # absolute index of _buf[0]

    def __len__(self) -> int:
        return self.base + self.end  # absolute length

    def extend(self, values: np.ndarray) -> None:
        n = values.shape[0]
        self.grow(n)
        self._buf[self.end - n : self.end] = values

    def grow(self, n: int) -> None:
        """`n` more elements, not initialized."""
        if self.end + n > self._buf.shape[0]:
            keep = self._buf[self.start : self.end]
            size = max(2 * (keep.shape[0] + n), 1024)
            buf = np.empty(size, dtype=self._buf.dtype)
            buf[: keep.shape[0]] = keep
            self.base += self.start
            self.end = keep.shape[0]
            self.start = 0
            self._buf = buf
        self.end += n

    @property
    def first(self) -> int:
        """The absolute index of the first element kept."""
        return self.base + self.start

    def view(self, lo: int, hi: int) -> np.ndarray:
        """Absolute positions [lo, hi) (lo must not be below the dropped head)."""
        return self._buf[lo - self.base : hi - self.base]

    def drop_before(self, position: int) -> None:
        self.start = max(self.start, position - self.base)


class Steps:
    """A nondecreasing step function of time: how many things happened by `t` (gauges)."""

    __slots__ = ("counts", "done", "times")

    def __init__(self) -> None:
        self.times: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []
        self.done = 0.0  # count before the kept chunks

    def add(self, times: np.ndarray, counts: np.ndarray) -> None:
        """`counts`: the running total after each time (nondecreasing times)."""
        if times.shape[0]:
            self.times.append(times)
            self.counts.append(counts)

    def at(self, t: float) -> float:
        """The count at time `t`; chunks wholly before `t` are folded away (t never decreases)."""
        value = self.done
        while len(self.times) > 1 and self.times[1][0] <= t:
            self.done = float(self.counts[0][-1])
            del self.times[0], self.counts[0]
            value = self.done
        for times, counts in zip(self.times, self.counts, strict=True):
            k = int(np.searchsorted(times, t, side="right"))
            if k == 0:
                break
            value = float(counts[k - 1])
            if k < times.shape[0]:
                break
        return value


class Sums:
    """Amounts at times (bytes in or out, requests), summed over intervals for the gauges."""

    __slots__ = ("chunks",)

    def __init__(self) -> None:
        # (sorted times, running sums, how many were taken, their sum)
        self.chunks: list[list[Any]] = []

    def add(self, times: np.ndarray, amounts: np.ndarray) -> None:
        if not times.shape[0]:
            return
        if times.shape[0] > 1 and not bool((times[1:] >= times[:-1]).all()):
            order = np.argsort(times, kind="stable")
            times, amounts = times[order], amounts[order]
        self.chunks.append([times, np.cumsum(amounts), 0, 0.0])

    def take(self, lo: float, hi: float) -> float:
        """The sum of the amounts at times <= hi not taken before (the caller's previous hi
        was `lo`)."""
        total = 0.0
        keep = []
        for chunk in self.chunks:
            times, cum, taken, taken_sum = chunk
            k = int(times.searchsorted(hi, side="right"))
            if k > taken:
                upto = float(cum[k - 1])
                total += upto - taken_sum
                chunk[2], chunk[3] = k, upto
            if k < times.shape[0]:
                keep.append(chunk)
        self.chunks = keep
        return total


class ThreadCheck:
    """How long requests wait for a pool of `threads` threads (capacity.py's "free at" heap).

    A request waits only when every thread is busy at its start: when `threads` intervals that
    started before it have not ended. Counting those takes two sorts; only when some start
    finds every thread busy is the heap replayed to measure the waits."""

    __slots__ = ("carry_end", "carry_start", "threads")

    def __init__(self, threads: int):
        self.threads = threads
        self.carry_start = np.empty(0)
        self.carry_end = np.empty(0)

    def waits(self, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Intervals all starting at or after those given before: (start, wait) of those that
        wait (empty arrays when none does)."""
        none = (np.empty(0), np.empty(0))
        if not starts.shape[0]:
            return none
        order = np.argsort(starts, kind="stable")
        s = np.concatenate((self.carry_start, starts[order]))
        e = np.concatenate((self.carry_end, ends[order]))
        k = self.threads
        carried = self.carry_start.shape[0]
        keep = max(0, s.shape[0] - 4 * k)
        self.carry_start, self.carry_end = s[keep:], e[keep:]
        if s.shape[0] <= k:
            return none
        # in progress at each start: those before it that have not ended (an interval ending
        # by a start began before it); while nothing waits, ends are as planned
        busy = np.arange(s.shape[0]) - np.searchsorted(np.sort(e), s, side="right")
        if int(busy.max()) < k:
            return none
        # replay the stretches around the busy starts: each begins where no interval was in
        # progress (every thread free), so the heap starts empty there
        idle = np.flatnonzero(busy == 0)
        at: list[float] = []
        waited: list[float] = []
        done_to = 0
        for i in np.flatnonzero(busy >= k).tolist():
            if i < done_to:
                continue
            j = int(idle[np.searchsorted(idle, i, side="right") - 1]) if idle.shape[0] else 0
            stop = (
                int(idle[np.searchsorted(idle, i, side="right")])
                if idle.shape[0] and idle[-1] > i
                else s.shape[0]
            )
            free = [-np.inf] * k
            for m in range(j, stop):
                a, b = float(s[m]), float(e[m])
                first = free[0]
                if first > a:
                    if m >= carried:
                        at.append(a)
                        waited.append(first - a)
                    heapreplace(free, first + (b - a))
                else:
                    heapreplace(free, b)
            done_to = stop
        return np.array(at), np.array(waited)
