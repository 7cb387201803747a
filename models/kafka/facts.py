"""What the Kafka model tells the history: buffered acknowledgements and deliveries, loss causes.

Why a buffer: one `History.ack` / `History.deliver` call costs tens of microseconds of numpy
overhead, and a produce response or a consumer poll carries only tens of records. Facts that
already happened (their time is <= now) are collected here and handed over in large vectorized
calls, in the order they were recorded (per key that is the consumer's processing order, which is
what the out-of-order count needs).

Why deferred loss: a record that a mechanism drops (a follower truncating its log, a power loss
wiping the page cache, retention deleting a segment) is lost only if no replica still holds it,
no retry of the producer brings it back, and it was never delivered. The mechanism records a
*candidate* with its cause and time at the moment it drops the record; at the end of the run
(`resolve`) every candidate still absent from every log and never delivered is recorded as lost,
with the cause and time of the last drop. So the cause is the mechanism's, and "lost" is final.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.kafka.log import ReplicaLog
    from simulator.history import History

FLUSH_AT = 262_144  # records buffered before a flush (about 2-3 MB of arrays)
SPAN_PER_ID = 4  # id_order sorts by counting when the ids span at most this many per id

# Loss causes of the Kafka model (all built into simulator.history).
LEADER_FAILED = "leader_failed_before_replication"
UNCLEAN_TRUNCATION = "unclean_election_truncation"
NOT_FSYNCED = "not_fsynced_at_power_loss"
RETENTION = "deleted_by_retention"
NEVER_ARRIVED = "never_arrived"
DROPPED = "dropped_by_server"
# Cause of a duplicate delivery: the same record appended twice after a producer retry.
DUP_PRODUCER_RETRY = "producer_retry"
# Causes of a redelivery by the consumer group: the new owner of a partition resumes at the
# committed offset, below what the previous owner had processed.
DUP_CONSUMER_CRASH = "redelivered_after_consumer_crash"
DUP_REBALANCE = "redelivered_after_rebalance"
# Skip causes (records left in the log that the group moved past).
COMMITTED_BEFORE_PROCESSING = "committed_before_processing"
OFFSET_RESET_LATEST = "offset_reset_latest"
WRITTEN_BELOW_POSITION = "written_below_position"


class Facts:
    """Acknowledgements and deliveries on their way to the history, plus loss candidates."""

    def __init__(self, history: History, stream_of_key: np.ndarray | None = None):
        """`stream_of_key`: for each key, the only stream its records travel in (producer x
        partition), if there is one; lets deliveries reach the history in id order."""
        self.history = history
        self.stream_of_key = stream_of_key
        self._ack_ids: list[np.ndarray] = []
        self._ack_t: list[np.ndarray | float] = []
        self._ack_n = 0
        self._dlv_ids: list[np.ndarray] = []
        self._dlv_t: list[np.ndarray | float] = []
        self._dlv_n = 0
        self._dlv_cause = DUP_PRODUCER_RETRY
        # (time, cause, ids, check_presence) in the order the mechanisms dropped records
        self.candidates: list[tuple[float, str, np.ndarray, bool]] = []

    # --- acknowledgements and deliveries ------------------------------------------------------
    def ack(self, ids: np.ndarray, t_ms: float) -> None:
        self._ack_ids.append(ids)
        self._ack_t.append(t_ms)
        self._ack_n += ids.shape[0]
        if self._ack_n >= FLUSH_AT:
            self._flush_acks()

    def deliver(
        self, ids: np.ndarray, t_ms: np.ndarray | float, dup_cause: str = DUP_PRODUCER_RETRY
    ) -> None:
        """Processed records; `dup_cause` names why a record delivered before comes again."""
        if dup_cause != self._dlv_cause:
            # keep the recording order: flush what was buffered under the other cause first
            self._flush_deliveries()
            self._dlv_cause = dup_cause
        self._dlv_ids.append(ids)
        self._dlv_t.append(t_ms)
        self._dlv_n += ids.shape[0]
        if self._dlv_n >= FLUSH_AT:
            self._flush_deliveries()

    def fail(self, ids: np.ndarray, t_ms: float) -> None:
        """The client got an error (order with acks does not matter: an ack always wins)."""
        self.history.fail(ids, t_ms)

    def indeterminate(self, ids: np.ndarray, t_ms: float) -> None:
        self.history.indeterminate(ids, t_ms)

    def flush(self) -> None:
        self._flush_acks()
        self._flush_deliveries()

    def _flush_acks(self) -> None:
        if not self._ack_ids:
            return
        ids, times = _concat(self._ack_ids, self._ack_t)
        self._ack_ids, self._ack_t, self._ack_n = [], [], 0
        self.history.ack(ids, times)

    def _flush_deliveries(self) -> None:
        if not self._dlv_ids:
            return
        ids, times = _concat(self._dlv_ids, self._dlv_t)
        self._dlv_ids, self._dlv_t, self._dlv_n = [], [], 0
        streams = self.stream_of_key
        if streams is not None and ids.shape[0] > 1 and not bool((ids[1:] > ids[:-1]).all()):
            keys = self.history.key[ids]
            if int(keys.max()) < streams.shape[0]:
                order = id_order(ids, streams[keys])
                if order is not None:
                    ids, times = ids[order], times[order]
        self.history.deliver(ids, times, dup_cause=self._dlv_cause)

    # --- loss ---------------------------------------------------------------------------------
    def dropped(
        self, ids: np.ndarray, cause: str, t_ms: float, check_presence: bool = True
    ) -> None:
        """A mechanism dropped these records (maybe the last copy): a loss candidate."""
        if ids.shape[0]:
            self.candidates.append((t_ms, cause, ids, check_presence))

    def resolve(self, present: Callable[[], np.ndarray]) -> None:
        """Record as lost every candidate never delivered and (if asked) absent from every log.

        `present()` gives a boolean mask over message ids of records some replica still holds.
        The last drop of a record names its cause (candidates are walked newest first and the
        history keeps the first cause it is given).
        """
        self.flush()
        if not self.candidates:
            return
        history = self.history
        mask: np.ndarray | None = None
        for t_ms, cause, ids, check_presence in reversed(self.candidates):
            keep = history.deliveries[ids] == 0
            if check_presence:
                if mask is None:
                    mask = present()
                keep &= ~mask[ids]
            chosen = ids[keep]
            if chosen.shape[0]:
                history.lose(chosen.astype(np.int64), cause, t_ms)
        self.candidates = []


def undelivered(history: History, log: ReplicaLog, start: int, end: int) -> np.ndarray:
    """Ids of the records at offsets [start, end) of `log` never delivered: what a skip may
    label (a record the group read keeps its delivery, and needs no skip cause)."""
    ids = np.asarray(log.ids(log.pieces(start, end))).astype(np.int64)
    return ids[history.deliveries[ids] == 0]


def _concat(
    ids: list[np.ndarray], times: list[np.ndarray | float]
) -> tuple[np.ndarray, np.ndarray]:
    all_ids = np.concatenate(ids) if len(ids) > 1 else ids[0]
    if not any(isinstance(t, np.ndarray) for t in times):
        # one time per chunk (answers): one repeat instead of an array per chunk
        lengths = [i.shape[0] for i in ids]
        all_t = np.repeat(np.array(times, dtype=np.float64), lengths)
    else:
        parts = [
            np.asarray(t, dtype=np.float64) if isinstance(t, np.ndarray) else np.full(i.shape[0], t)
            for i, t in zip(ids, times, strict=True)
        ]
        all_t = np.concatenate(parts) if len(parts) > 1 else parts[0]
    return all_ids.astype(np.int64, copy=False), all_t


def id_order(ids: np.ndarray, streams: np.ndarray) -> np.ndarray | None:
    """A permutation putting `ids` in increasing order, if it keeps the order within every stream.

    Why: the history records a batch of deliveries whose ids increase in one cheap pass; in any
    other order it groups them by key to count out-of-order deliveries (a sort per flush).
    Reordering across streams changes nothing it counts when every key belongs to one stream
    (a producer's records of one partition) and each stream's ids already increase: then no
    key is out of order inside the batch either way. Returns None otherwise (repeated ids, or a
    stream out of order): the history then sees the recording order.
    """
    n = ids.shape[0]
    low = int(ids.min())
    span = int(ids.max()) - low + 1
    if span > SPAN_PER_ID * n:
        return None  # ids too scattered for a counting sort (not the case of a flush)
    # counting sort: each id marks its slot with its position; a repeated id leaves fewer marks
    slots = np.full(span, -1, dtype=np.int64)
    slots[ids - low] = np.arange(n, dtype=np.int64)
    order = slots[slots >= 0]
    if order.shape[0] != n:
        return None
    in_id_order = streams[order]
    by_stream = np.argsort(in_id_order, kind="stable")
    positions = order[by_stream]
    grouped = in_id_order[by_stream]
    ok = (positions[1:] > positions[:-1]) | (grouped[1:] != grouped[:-1])
    return order if bool(ok.all()) else None
