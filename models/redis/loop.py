"""Timing of the single-threaded event loop: which commands share an iteration, and when it ends.

One iteration of Redis's `aeMain` (ae.c, server.c) polls with `epoll_wait`, reads and executes
every command that has arrived, one after another, and in `beforeSleep` writes the AOF buffer
(and fsyncs it with appendfsync always), then writes the replies. Commands that arrive while an
iteration runs wait for the next one (a *gated* batch). So, for rows sorted by arrival:

    P_k = max(E_{k-1}, arrival of the first row of batch k)      poll time
    batch k = every row with arrival <= P_k not taken before
    X_k = P_k + sum(exec + read costs)                            execution done
    E_k = X_k + sum(reply write costs) + per-iteration costs      replies leave

Batch sizes are not given: they emerge from the arrivals (one command per iteration at low
load, hundreds near saturation). With no per-iteration cost the start times reduce to Lindley's
recursion of a FIFO single-server queue (M/G/1), while replies leave at the end of the batch.

`plan` computes many iterations at once with numpy: guess the batch heads, compute every
iteration's times with the vectorized Lindley form `E = C + cummax(a - C_prev)`, recompute the
heads from the poll times, and repeat until nothing changes (Jacobi iteration of a causal
recursion: each pass fixes at least the next undecided head, in practice all of them within a
few passes). Whatever is still undecided after a few passes is finished by an exact loop over
iterations, which is cheap exactly where it is needed: near saturation, where batches are big.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from itertools import accumulate

import numpy as np

from models.redis.commands import IS_WRITE
from models.redis.requests import Rows

# Below this many rows plain Python lists beat numpy calls (closed-loop clients and consumers
# commit one command at a time).
SMALL_ROWS = 16
_VECTORIZED_ROWS = 48  # from this many rows `plan` computes iterations with numpy


@dataclass(frozen=True)
class LoopCosts:
    """Per-iteration costs (ms) and the I/O threads that share socket work."""

    iteration_ms: float  # epoll_wait + beforeSleep
    aof_write_ms: float  # write() of the AOF buffer in beforeSleep (0 when not writing)
    io_threads: int = 1
    io_reads: bool = False


@dataclass
class Plan:
    """Iterations computed for the first rows of the queue (arrays, one entry per batch)."""

    start: np.ndarray  # index of the batch's first row
    end: np.ndarray  # index after its last row
    poll: np.ndarray  # P: epoll_wait returned
    exec_end: np.ndarray  # X: commands executed, beforeSleep begins
    end_ms: np.ndarray  # E: replies written, next poll possible
    has_write: np.ndarray
    _row_batch: np.ndarray | None = field(default=None, repr=False, compare=False)

    def row_batch(self) -> np.ndarray:
        """The batch of each planned row (computed once: committing and statistics need it)."""
        if self._row_batch is None:
            self._row_batch = np.repeat(np.arange(len(self)), self.end - self.start)
        return self._row_batch

    def __len__(self) -> int:
        return int(self.start.size)

    def head(self, k: int) -> Plan:
        """The first `k` batches (the plan itself when that is all of them)."""
        if k == len(self):
            return self
        return Plan(
            self.start[:k],
            self.end[:k],
            self.poll[:k],
            self.exec_end[:k],
            self.end_ms[:k],
            self.has_write[:k],
        )

    @property
    def rows(self) -> int:
        return int(self.end[-1]) if len(self) else 0


_EMPTY = Plan(
    np.zeros(0, dtype=np.int64),
    np.zeros(0, dtype=np.int64),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0),
    np.zeros(0, dtype=bool),
)


def _durations(
    heads: np.ndarray, rows: Rows, is_write: np.ndarray, costs: LoopCosts
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(execute time, total time, has-write, end index) of each batch starting at `heads`."""
    cost, rcost, wcost = rows["cost"], rows["rcost"], rows["wcost"]
    io = costs.io_threads
    if heads.size == cost.size:
        # one command per request (no pipelining): each batch is one row, nothing to sum, and
        # a single request never turns threaded I/O on
        run_ms = cost + rcost
        total = run_ms + wcost + costs.iteration_ms + is_write * costs.aof_write_ms
        return run_ms, total, is_write, np.arange(1, cost.size + 1)
    exec_ms = np.add.reduceat(cost, heads)
    read_ms = np.add.reduceat(rcost, heads)
    write_ms = np.add.reduceat(wcost, heads)
    has_write = np.logical_or.reduceat(is_write, heads)
    if io > 1:
        # threaded I/O only kicks in with enough clients to serve (stopThreadedIOIfNeeded)
        requests = np.add.reduceat(rows["first"].astype(np.int32), heads)
        threaded = requests >= 2 * io
        write_ms = np.where(threaded, write_ms / io, write_ms)
        if costs.io_reads:
            read_ms = np.where(threaded, read_ms / io, read_ms)
    run_ms = exec_ms + read_ms
    total = run_ms + write_ms + costs.iteration_ms + has_write * costs.aof_write_ms
    ends = np.empty_like(heads)
    ends[:-1] = heads[1:]
    ends[-1] = cost.size
    return run_ms, total, has_write, ends


def _times(
    arrival_heads: np.ndarray, total: np.ndarray, free_ms: float
) -> tuple[np.ndarray, np.ndarray]:
    """Poll and end times of consecutive batches: the vectorized Lindley recursion."""
    cum = np.cumsum(total)
    prev = np.empty_like(cum)
    prev[0] = 0.0
    prev[1:] = cum[:-1]
    z = arrival_heads - prev
    if z[0] < free_ms:
        z[0] = free_ms
    end = cum + np.maximum.accumulate(z)
    return end - total, end


def plan(rows: Rows, free_ms: float, costs: LoopCosts) -> Plan:
    """Iterations for `rows` (sorted by arrival) when the loop is free from `free_ms` on.

    Only the rows given are considered: the caller passes the rows that arrived before the time
    it is interested in and keeps the batches that polled before that time.
    """
    arrival = rows["arrival"]
    n = arrival.size
    if n == 0:
        return _EMPTY
    is_write = IS_WRITE[rows["op"]]
    if n < _VECTORIZED_ROWS:
        return _exact(rows, 0, free_ms, is_write, costs, np.inf)  # numpy does not pay off
    # Pessimistic pass: every request is its own iteration. Nothing ends later than that, so a
    # request arriving after the pessimistic end of everything before it finds the loop idle:
    # it starts a busy period, and busy periods are independent of each other.
    first = rows["first"]
    if first.all():
        heads = np.arange(n)
        arrival_heads = arrival
    else:
        first = first.copy()
        first[0] = True
        heads = np.flatnonzero(first)
        arrival_heads = arrival[heads]
    run_ms, total, has_write, ends = _durations(heads, rows, is_write, costs)
    poll, end = _times(arrival_heads, total, free_ms)
    opens = np.empty(heads.size, dtype=bool)
    opens[0] = True
    np.greater_equal(arrival_heads[1:], end[:-1], out=opens[1:])
    period = np.cumsum(opens) - 1
    period_sizes = np.bincount(period)
    alone = period_sizes[period] == 1  # a request alone in its busy period: pessimism is exact
    parts: list[tuple[np.ndarray, ...]] = [
        (
            heads[alone],
            ends[alone],
            poll[alone],
            (poll + run_ms)[alone],
            end[alone],
            has_write[alone],
        )
    ]
    if not alone.all():
        period_head = np.flatnonzero(opens)  # request index of each period's first request
        row_start = heads[period_head]
        row_stop = np.append(row_start[1:], n)
        multi = period_sizes > 1
        parts.extend(
            _busy_periods(
                rows, is_write, row_start[multi], row_stop[multi], poll[period_head[multi]], costs
            )
        )
    return _assemble(parts, n)


def _busy_periods(
    rows: Rows,
    is_write: np.ndarray,
    begin: np.ndarray,
    stop: np.ndarray,
    poll: np.ndarray,
    costs: LoopCosts,
) -> list[tuple[np.ndarray, ...]]:
    """The exact iterations of busy periods [begin, stop), all periods advanced in lockstep."""
    arrival = rows["arrival"]
    io = costs.io_threads
    # running sums of execution, read and write costs, writes (and requests, for threaded I/O)
    # as the rows of one array: an iteration gathers them all with one index
    columns = [rows["cost"], rows["rcost"], rows["wcost"], is_write]
    if io > 1:
        columns.append(rows["first"])
    cs = np.empty((len(columns), arrival.size + 1), dtype=np.float64)
    cs[:, 0] = 0.0
    for row, values in zip(cs, columns, strict=True):
        np.cumsum(values, out=row[1:])
    iteration_ms, aof_ms = costs.iteration_ms, costs.aof_write_ms
    parts: list[tuple[np.ndarray, ...]] = []
    h, p = begin, np.maximum(poll, arrival[begin])  # (float noise of the pessimistic pass)
    while h.size:
        if h.size <= 8:
            # a few long busy periods left (near saturation): one iteration at a time
            parts.append(_exact_periods(rows, is_write, h, stop, p, costs))
            break
        # (in place where it changes nothing: each numpy call here costs more than its rows)
        j = arrival.searchsorted(p, "right")
        np.maximum(j, h + 1, out=j)
        np.minimum(j, stop, out=j)
        sums = cs.take(j, axis=1)
        sums -= cs.take(h, axis=1)
        exec_ms, read_ms, write_ms, writes = sums[0], sums[1], sums[2], sums[3]
        if io > 1:
            threaded = sums[4] >= 2 * io
            write_ms = np.where(threaded, write_ms / io, write_ms)
            if costs.io_reads:
                read_ms = np.where(threaded, read_ms / io, read_ms)
        wrote = writes > 0.0
        x = p + exec_ms
        x += read_ms
        e = x + write_ms
        e += iteration_ms
        if aof_ms:
            e += wrote * aof_ms
        parts.append((h, j, p, x, e, wrote))
        more = j < stop
        if more.all():
            h, p = j, np.maximum(e, arrival.take(j))
            continue
        h, stop = j.compress(more), stop.compress(more)
        p = np.maximum(e.compress(more), arrival.take(h))
    return parts


def _exact_periods(
    rows: Rows,
    is_write: np.ndarray,
    head: np.ndarray,
    stop: np.ndarray,
    poll: np.ndarray,
    costs: LoopCosts,
) -> tuple[np.ndarray, ...]:
    """The rest of several busy periods [head, stop), each resuming at its known poll time."""
    index = _ranges(head, stop)
    sub = {k: rows[k][index] for k in ("arrival", "cost", "rcost", "wcost", "first")}
    lengths = stop - head
    starts = np.cumsum(lengths) - lengths
    arrival = sub["arrival"].copy()
    arrival[starts] = poll  # each period continues at its own poll time
    sub["arrival"] = arrival
    out = _exact(sub, 0, -np.inf, is_write[index], costs, np.inf)
    return (
        index[out.start],
        index[out.end - 1] + 1,
        out.poll,
        out.exec_end,
        out.end_ms,
        out.has_write,
    )


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenated aranges [starts[i], stops[i])."""
    lengths = stops - starts
    return np.repeat(stops - lengths.cumsum(), lengths) + np.arange(int(lengths.sum()))


def _assemble(parts: list[tuple[np.ndarray, ...]], n: int) -> Plan:
    """Batches from several parts, in row order (scatter by first row instead of sorting)."""
    columns = [np.concatenate(c) for c in zip(*parts, strict=True)]
    marks = np.zeros(n, dtype=np.int64)
    marks[columns[0]] = np.arange(1, columns[0].size + 1)
    order = marks[marks > 0] - 1
    return Plan(*(c[order] for c in columns))


def plan_one(rows: Rows, free_ms: float, costs: LoopCosts) -> Plan:
    """Just the next iteration (exact): everything that arrived by its poll time."""
    arrival = rows["arrival"]
    if arrival.size == 0:
        return _EMPTY
    poll = max(free_ms, float(arrival[0]))
    j = max(1, int(np.searchsorted(arrival, poll, side="right")))
    if j == 1:  # one command (the usual next iteration below saturation): no sums
        read_ms = float(rows["rcost"][0])
        write_ms = float(rows["wcost"][0])
        has_write = bool(IS_WRITE[rows["op"][0]])
        exec_ms = float(rows["cost"][0])
    else:
        read_ms = float(rows["rcost"][:j].sum())
        write_ms = float(rows["wcost"][:j].sum())
        has_write = bool(IS_WRITE[rows["op"][:j]].any())
        exec_ms = float(rows["cost"][:j].sum())
    io = costs.io_threads
    if io > 1 and int(rows["first"][:j].sum()) >= 2 * io:
        write_ms /= io
        if costs.io_reads:
            read_ms /= io
    x = poll + exec_ms + read_ms
    e = x + write_ms + costs.iteration_ms + (costs.aof_write_ms if has_write else 0.0)
    return Plan(
        np.array([0]),
        np.array([j]),
        np.array([poll]),
        np.array([x]),
        np.array([e]),
        np.array([has_write]),
    )


def head_and_plan(rows: Rows, free_ms: float, costs: LoopCosts) -> tuple[Plan, Plan | None]:
    """`plan_one` and, below the vectorized sizes, `plan` of the same rows (None: not computed).

    The exact loop computes a first iteration of one row with `plan_one`'s very arithmetic,
    so that iteration serves as the head; a first iteration of several rows sums them in
    another order than `plan_one`, which is then computed on its own.
    """
    n = rows["arrival"].size
    if n == 1:
        head = plan_one(rows, free_ms, costs)
        return head, head
    if n >= _VECTORIZED_ROWS:
        return plan_one(rows, free_ms, costs), None
    full = plan(rows, free_ms, costs)
    if full.end[0] == 1:
        return full.head(1), full
    return plan_one(rows, free_ms, costs), full


def _exact(
    rows: Rows,
    begin: int,
    free_ms: float,
    is_write: np.ndarray,
    costs: LoopCosts,
    until_poll: float,
    max_batches: int | None = None,
) -> Plan:
    """The iteration recursion, one iteration at a time, from row `begin` (plain Python)."""
    arrival = rows["arrival"]
    n = arrival.size
    if begin >= n:
        return _EMPTY

    small = n - begin <= SMALL_ROWS

    def cum(values: np.ndarray) -> list[float]:
        if small:  # a sequential running sum, as np.cumsum's, without its call overhead
            return list(accumulate(values.tolist(), initial=0.0))
        out = np.empty(values.size + 1, dtype=np.float64)
        out[0] = 0.0
        np.cumsum(values, out=out[1:])
        return out.tolist()

    arr = arrival[begin:].tolist()
    cs_exec = cum(rows["cost"][begin:])
    cs_read = cum(rows["rcost"][begin:])
    cs_write = cum(rows["wcost"][begin:])
    cs_w = cum(is_write[begin:])
    io = costs.io_threads
    cs_req = cum(rows["first"][begin:]) if io > 1 else None
    iteration_ms, aof_ms, io_reads = costs.iteration_ms, costs.aof_write_ms, costs.io_reads
    starts, ends, polls, xs, es, ws = [], [], [], [], [], []
    i, m, free = 0, n - begin, free_ms
    while i < m:
        a = arr[i]
        p = free if free > a else a
        if p >= until_poll:
            break
        j = bisect.bisect_right(arr, p, i + 1)
        read_ms = cs_read[j] - cs_read[i]
        write_ms = cs_write[j] - cs_write[i]
        if cs_req is not None and cs_req[j] - cs_req[i] >= 2 * io:
            write_ms /= io
            if io_reads:
                read_ms /= io
        has_write = cs_w[j] > cs_w[i]
        x = p + cs_exec[j] - cs_exec[i] + read_ms
        e = x + write_ms + iteration_ms + (aof_ms if has_write else 0.0)
        starts.append(i)
        ends.append(j)
        polls.append(p)
        xs.append(x)
        es.append(e)
        ws.append(has_write)
        free, i = e, j
        if max_batches is not None and len(starts) >= max_batches:
            break
    return Plan(
        np.asarray(starts, dtype=np.int64) + begin,
        np.asarray(ends, dtype=np.int64) + begin,
        np.asarray(polls),
        np.asarray(xs),
        np.asarray(es),
        np.asarray(ws, dtype=bool),
    )


def exec_starts(rows: Rows, p: Plan, costs: LoopCosts) -> np.ndarray:
    """When each row of the planned batches began executing (for loop statistics)."""
    n = p.rows
    batch = p.row_batch()
    read = rows["rcost"][:n]
    if costs.io_threads > 1 and costs.io_reads:
        requests = np.add.reduceat(rows["first"][:n].astype(np.int32), p.start)
        factor = np.where(requests >= 2 * costs.io_threads, 1.0 / costs.io_threads, 1.0)
        read = read * factor[batch]
    unit = rows["cost"][:n] + read
    prior = np.cumsum(unit) - unit  # work of the rows before each one in the span
    return p.poll[batch] + (prior - prior[p.start][batch]) + read
