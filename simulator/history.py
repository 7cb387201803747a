"""Per-message facts in numpy arrays: produced, acknowledged/failed, delivered, lost with a cause.

Models record raw facts through the vectorized methods below (ids are numpy arrays, `range`s or
slices); the checker turns them into fates. One message costs about 40 bytes here, whatever the
model (DESIGN rule 6). Causes are small integers; `CAUSES` maps them to (fate, name).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, ClassVar

import numpy as np

# Status of the producing client's request.
PENDING, ACKED, FAILED, INDETERMINATE = 0, 1, 2, 3
STATUS_NAMES = ("pending", "acked", "failed", "indeterminate")

# Fate categories a cause belongs to.
LOST, SKIPPED, SUPERSEDED = "lost", "skipped", "superseded"

# Known causes (models may add their own with `register_cause`). Code 0 = no cause.
_BUILTIN_CAUSES: list[tuple[str, str]] = [
    (LOST, "not_fsynced_at_power_loss"),
    (LOST, "after_last_snapshot"),
    (LOST, "no_persistence"),
    (LOST, "aof_write_postponed"),
    (LOST, "unclean_election_truncation"),
    (LOST, "leader_failed_before_replication"),
    (LOST, "discarded_on_failover"),
    (LOST, "deleted_by_retention"),
    (LOST, "trimmed_before_read"),
    (LOST, "pubsub_not_connected"),
    (LOST, "pubsub_output_buffer_limit"),
    (LOST, "popped_not_processed"),
    (LOST, "never_arrived"),
    (LOST, "connection_reset"),
    (LOST, "dropped_by_server"),
    (SKIPPED, "committed_before_processing"),
    (SKIPPED, "offset_reset_latest"),
    (SKIPPED, "offset_reset"),
    (SUPERSEDED, "overwritten"),
    (SUPERSEDED, "compacted"),
    (SUPERSEDED, "expired"),
    (SUPERSEDED, "evicted"),
    (SKIPPED, "written_below_position"),
]
CAUSES: dict[int, tuple[str, str]] = {}
CAUSE_CODES: dict[str, int] = {}


def register_cause(category: str, name: str) -> int:
    """The code of a cause, registering it on first use. Codes are stable within a process."""
    if category not in (LOST, SKIPPED, SUPERSEDED):
        raise ValueError(f"cause category must be lost, skipped or superseded, not {category!r}")
    if name in CAUSE_CODES:
        code = CAUSE_CODES[name]
        if CAUSES[code][0] != category:
            raise ValueError(f"cause {name!r} already registered as {CAUSES[code][0]}")
        return code
    code = len(CAUSES) + 1
    CAUSES[code] = (category, name)
    CAUSE_CODES[name] = code
    return code


for _category, _name in _BUILTIN_CAUSES:
    register_cause(_category, _name)

IdsLike = np.ndarray | range | slice | int


def _allocate(capacity: int, dtype: Any) -> np.ndarray:
    """Zeroed capacity that costs no resident memory until written.

    Large zeroed arrays come from fresh anonymous pages (calloc / mmap): the kernel maps a page
    on its first write, and reading an untouched one maps the shared zero page. Capacity reserved
    for messages never produced, and fields a run never writes (deliveries when nothing is
    consumed), then cost no RSS (`np.full` would write, and so map, every page).
    """
    return np.zeros(capacity, dtype=dtype)


def _latency(times: np.ndarray | float, intended_ms: np.ndarray) -> np.ndarray:
    """`times - intended_ms` rounded to float32 before it is stored: the same bits as storing
    the float64 difference into the float32 field, and a much cheaper scatter."""
    return np.subtract(times, intended_ms).astype(np.float32)


class History:
    """Growable per-message arrays, indexed by message id (0, 1, 2, ... in production order)."""

    # Times of answers and deliveries are kept as float32 latencies from the intended send time
    # (NaN = none yet): 4 bytes instead of 8, exact to well under a microsecond for any latency
    # below minutes, and the checker reads latencies without computing them. 25 bytes a message.
    _FIELDS: ClassVar[dict[str, tuple[Any, Any]]] = {
        "intended_ms": (np.float64, np.nan),
        "key": (np.int32, 0),
        "ack_lat": (np.float32, np.nan),
        "status": (np.int8, PENDING),
        "cause": (np.int16, 0),
        "deliver_lat": (np.float32, np.nan),
        "deliveries": (np.uint16, 0),
    }

    # (intended_ms and key are written by `produce` itself; the other fields start at 0)
    _FILLED_AT_PRODUCE: ClassVar[tuple[str, ...]] = ("ack_lat", "deliver_lat")

    _intended_ms: np.ndarray
    _key: np.ndarray
    _ack_lat: np.ndarray
    _status: np.ndarray
    _cause: np.ndarray
    _deliver_lat: np.ndarray
    _deliveries: np.ndarray

    def __init__(self, n_keys: int = 1, capacity: int = 1024):
        self.n = 0
        self._cap = max(16, capacity)
        for name, (dtype, _fill) in self._FIELDS.items():
            setattr(self, "_" + name, _allocate(self._cap, dtype))
        self.duplicates_by_cause: Counter[str] = Counter()
        self.out_of_order = 0
        self._max_delivered_id = np.full(max(1, n_keys), -1, dtype=np.int64)
        self._max_delivered_any = -1  # the highest id delivered so far, whatever its key
        self.cause_ms: dict[int, float] = {}
        self.resurrected = 0

    # views of the filled part -------------------------------------------------
    @property
    def intended_ms(self) -> np.ndarray:
        return self._intended_ms[: self.n]

    @property
    def key(self) -> np.ndarray:
        return self._key[: self.n]

    @property
    def ack_ms(self) -> np.ndarray:
        """Time of the first positive answer (NaN if none); computed, 8 bytes per message."""
        return self._intended_ms[: self.n] + self._ack_lat[: self.n]

    @property
    def ack_latency_ms(self) -> np.ndarray:
        """Intended send -> first positive answer (NaN if none); a view, no copy."""
        return self._ack_lat[: self.n]

    @property
    def status(self) -> np.ndarray:
        return self._status[: self.n]

    @property
    def cause(self) -> np.ndarray:
        return self._cause[: self.n]

    @property
    def deliver_ms(self) -> np.ndarray:
        """Time of the first delivery (NaN if none); computed, 8 bytes per message."""
        return self._intended_ms[: self.n] + self._deliver_lat[: self.n]

    @property
    def deliver_latency_ms(self) -> np.ndarray:
        """Intended send -> first delivery (NaN if none); a view, no copy."""
        return self._deliver_lat[: self.n]

    @property
    def deliveries(self) -> np.ndarray:
        return self._deliveries[: self.n]

    def nbytes(self) -> int:
        return sum(getattr(self, "_" + f).nbytes for f in self._FIELDS)

    # recording ----------------------------------------------------------------
    def reserve(self, count: int) -> None:
        """Make room for exactly `count` messages at once (no repeated growth, lower peak memory)."""
        if count > self._cap:
            self._resize(count)

    def _grow(self, need: int) -> None:
        if need <= self._cap:
            return
        cap = self._cap
        while cap < need:
            cap = cap * 2 if cap < 1 << 22 else cap + (cap >> 1)
        self._resize(cap)

    def _resize(self, cap: int) -> None:
        for name, (dtype, _fill) in self._FIELDS.items():
            old = getattr(self, "_" + name)
            new = _allocate(cap, dtype)
            new[: self.n] = old[: self.n]
            setattr(self, "_" + name, new)
        self._cap = cap

    def produce(
        self, intended_ms: np.ndarray | float, keys: np.ndarray | int, count: int | None = None
    ) -> int:
        """Register `count` new messages (ids first .. first+count-1); returns the first id."""
        if count is None:
            count = int(np.size(intended_ms))
        first = self.n
        self._grow(first + count)
        end = first + count
        self._intended_ms[first:end] = intended_ms
        self._key[first:end] = keys
        # the capacity is allocated untouched (zero pages, see _allocate): fields whose initial
        # value is not 0 get it here, when their messages are produced
        for name in self._FILLED_AT_PRODUCE:
            getattr(self, "_" + name)[first:end] = self._FIELDS[name][1]
        self.n = end
        return first

    def _ids(self, ids: IdsLike) -> Any:
        if isinstance(ids, range):
            return slice(ids.start, ids.stop)
        if isinstance(ids, int | np.integer):
            return slice(int(ids), int(ids) + 1)
        return ids

    def ack(self, ids: IdsLike, t_ms: float | np.ndarray) -> None:
        """The producing client got a positive answer (first answer counts)."""
        idx = self._ids(ids)
        status = self._status[idx]
        fresh = status != ACKED
        if fresh.all():  # nothing answered before (the common case): no selection to copy
            self._ack_lat[idx] = _latency(np.asarray(t_ms), self._intended_ms[idx])
            self._status[idx] = ACKED
            return
        idx = (
            np.arange(idx.start, idx.stop)[fresh]
            if isinstance(idx, slice)
            else np.asarray(idx)[fresh]
        )
        times = t_ms if np.ndim(t_ms) == 0 else np.asarray(t_ms)[fresh]
        self._ack_lat[idx] = _latency(times, self._intended_ms[idx])
        self._status[idx] = ACKED

    def fail(self, ids: IdsLike, t_ms: float) -> None:
        """The client got an error (kept unless the message was acknowledged)."""
        idx = self._ids(ids)
        st = self._status[idx]
        self._status[idx] = np.where(st == ACKED, ACKED, FAILED)

    def indeterminate(self, ids: IdsLike, t_ms: float) -> None:
        """No answer (timeout, connection reset, crash mid-request)."""
        idx = self._ids(ids)
        st = self._status[idx]
        self._status[idx] = np.where(st == PENDING, INDETERMINATE, st)

    def deliver(self, ids: IdsLike, t_ms: float | np.ndarray, dup_cause: str = "unknown") -> None:
        """The consuming application processed these ids at `t_ms` (in this order)."""
        idx = self._ids(ids)
        if isinstance(idx, slice):
            idx = np.arange(idx.start, idx.stop, dtype=np.int64)
        idx = np.asarray(idx, dtype=np.int64)
        if idx.size == 0:
            return
        times = np.broadcast_to(np.asarray(t_ms, dtype=np.float64), idx.shape)
        before = self._deliveries[idx]
        increasing = idx.size == 1 or bool((idx[1:] > idx[:-1]).all())
        if increasing:
            # ids of one batch are usually increasing (a log, a queue): no repeats inside it
            self._deliveries[idx] = np.minimum(before, np.uint16(65534)) + np.uint16(1)
            first = before == 0
        else:
            np.add.at(self._deliveries, idx, 1)
            first = before == 0
            # repeated ids inside one batch: only the first occurrence is a first delivery
            if first.any():
                fidx = idx[first]
                _, pos = np.unique(fidx, return_index=True)
                if pos.size != fidx.size:
                    keep = np.zeros(fidx.size, dtype=bool)
                    keep[pos] = True
                    sel = np.flatnonzero(first)
                    first[sel[~keep]] = False
        n_first = int(np.count_nonzero(first))
        dups = int(idx.size - n_first)
        if dups:
            self.duplicates_by_cause[dup_cause] += dups
        if not n_first:
            return
        fidx = idx if n_first == idx.size else idx[first]
        ftimes = times if n_first == idx.size else times[first]
        self._deliver_lat[fidx] = _latency(ftimes, self._intended_ms[fidx])
        causes = self._cause[fidx]
        if causes.any():
            lost_codes = [c for c, (cat, _) in CAUSES.items() if cat == LOST]
            self.resurrected += int(np.count_nonzero(np.isin(causes, lost_codes)))
        self._count_out_of_order(fidx, increasing)

    def _count_out_of_order(self, ids: np.ndarray, increasing: bool = False) -> None:
        """A first delivery of an id lower than one already delivered for its key is out of order."""
        keys = self._key[ids].astype(np.int64)
        if keys.max(initial=0) >= self._max_delivered_id.size:
            grown = np.full(int(keys.max()) + 1, -1, dtype=np.int64)
            grown[: self._max_delivered_id.size] = self._max_delivered_id
            self._max_delivered_id = grown
        if increasing:
            # ids rise through the batch, so only earlier batches can hold a higher id of a key,
            # and none holds one above the highest id they delivered
            older = int(np.searchsorted(ids, self._max_delivered_any, side="right"))
            if older:
                prior = self._max_delivered_id[keys[:older]]
                self.out_of_order += int(np.count_nonzero(ids[:older] < prior))
            np.maximum.at(self._max_delivered_id, keys, ids)
            self._max_delivered_any = max(self._max_delivered_any, int(ids[-1]))
            return
        order = np.argsort(keys, kind="stable")
        k = keys[order]
        i = ids[order]
        # running max of ids within each key group: offset groups so one cumulative max works
        big = np.int64(self.n + 1)
        running = np.maximum.accumulate(k * big + i) - k * big
        prev_in_batch = np.empty_like(running)
        prev_in_batch[0] = -1
        prev_in_batch[1:] = running[:-1]
        new_group = np.empty(k.size, dtype=bool)
        new_group[0] = True
        new_group[1:] = k[1:] != k[:-1]
        prev_in_batch[new_group] = -1
        prior = np.maximum(prev_in_batch, self._max_delivered_id[k])
        self.out_of_order += int(np.count_nonzero(i < prior))
        last = np.flatnonzero(np.r_[k[1:] != k[:-1], True])
        self._max_delivered_id[k[last]] = np.maximum(self._max_delivered_id[k[last]], running[last])
        self._max_delivered_any = max(self._max_delivered_any, int(running[last].max()))

    def _set_cause(self, ids: IdsLike, category: str, cause: str, t_ms: float | None) -> int:
        code = register_cause(category, cause)
        idx = self._ids(ids)
        current = self._cause[idx]
        self._cause[idx] = np.where(current == 0, code, current)
        if t_ms is not None:
            self.cause_ms.setdefault(code, t_ms)
        return code

    def lose(self, ids: IdsLike, cause: str, t_ms: float | None = None) -> None:
        """These messages left the system by `cause` (first recorded cause wins)."""
        self._set_cause(ids, LOST, cause, t_ms)

    def skip(self, ids: IdsLike, cause: str, t_ms: float | None = None) -> None:
        """A consumer moved past these messages without processing them."""
        self._set_cause(ids, SKIPPED, cause, t_ms)

    def supersede(self, ids: IdsLike, cause: str, t_ms: float | None = None) -> None:
        """Replaced by design (overwritten, compacted, expired, evicted): not a loss."""
        self._set_cause(ids, SUPERSEDED, cause, t_ms)

    def clear_cause(self, ids: IdsLike) -> None:
        """Undo a provisional cause (e.g. a record thought gone that a replica still held)."""
        self._cause[self._ids(ids)] = 0
