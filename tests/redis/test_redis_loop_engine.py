"""The vectorized loop timing equals the one-iteration-at-a-time recursion, whatever the load."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.redis.commands import CACHE_GET, GET, IS_WRITE, SET, CostModel
from models.redis.config import RedisConfig
from models.redis.loop import LoopCosts, _exact, head_and_plan, plan, plan_one
from models.redis.memory import Memory
from models.redis.replies import ClientReplies
from models.redis.requests import empty_rows
from models.redis.store import ERR_OOM, MISS, OK


def make_rows(seed: int, n: int, rate_per_ms: float, pipeline: int) -> dict:
    rng = np.random.default_rng(seed)
    requests = max(1, n // pipeline)
    arrival = np.cumsum(rng.exponential(1.0 / rate_per_ms, requests))
    rows = empty_rows(requests * pipeline)
    index = np.arange(rows["arrival"].size)
    rows["arrival"][:] = np.repeat(arrival, pipeline)
    rows["cost"][:] = 0.0006 + rng.exponential(0.0004, index.size)
    rows["rcost"][:] = np.where(index % pipeline == 0, 0.002, 0.0) + 0.00025
    rows["wcost"][:] = np.where(index % pipeline == pipeline - 1, 0.0025, 0.0)
    rows["first"][:] = index % pipeline == 0
    rows["last"][:] = index % pipeline == pipeline - 1
    rows["op"][:] = rng.integers(0, 2, index.size)  # GET or SET
    return rows


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 3000),
    load=st.floats(0.05, 3.0),
    pipeline=st.sampled_from([1, 1, 2, 16]),
    io_threads=st.sampled_from([1, 4]),
    overhead=st.booleans(),
)
def test_vectorized_plan_equals_the_step_by_step_loop(
    seed: int, n: int, load: float, pipeline: int, io_threads: int, overhead: bool
) -> None:
    # load ~ utilization: a request costs ~5-7 µs, so load / 0.006 requests per ms
    rows = make_rows(seed, n, load / 0.006 / pipeline, pipeline)
    costs = LoopCosts(0.0017 if overhead else 0.0, 0.003 if overhead else 0.0, io_threads, True)
    fast = plan(rows, 0.0, costs)
    slow = _exact(rows, 0, 0.0, IS_WRITE[rows["op"]], costs, np.inf)
    assert np.array_equal(fast.start, slow.start)
    assert np.array_equal(fast.end, slow.end)
    np.testing.assert_allclose(fast.poll, slow.poll, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.exec_end, slow.exec_end, rtol=0, atol=1e-9)
    np.testing.assert_allclose(fast.end_ms, slow.end_ms, rtol=0, atol=1e-9)
    assert np.array_equal(fast.has_write, slow.has_write)
    one = plan_one(rows, 0.0, costs)
    assert one.end[0] == slow.end[0]
    np.testing.assert_allclose(one.end_ms[0], slow.end_ms[0], rtol=0, atol=1e-9)


def test_without_overhead_the_loop_is_lindleys_fifo_queue() -> None:
    rows = make_rows(3, 20_000, 0.7 / 0.0054, 1)
    costs = LoopCosts(0.0, 0.0)
    rows["rcost"][:] = 0.0
    rows["wcost"][:] = 0.0
    p = plan(rows, 0.0, costs)
    # Lindley: each command starts when it arrives or when the previous one finished
    service = rows["cost"]
    finish = np.empty_like(service)
    t = 0.0
    for i, (a, s) in enumerate(zip(rows["arrival"].tolist(), service.tolist(), strict=True)):
        t = max(t, a) + s
        finish[i] = t
    last = p.end - 1
    np.testing.assert_allclose(p.exec_end, finish[last], rtol=0, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    workload=st.sampled_from(["kv", "list", "stream", "cache"]),
    closed=st.booleans(),
    retries=st.sampled_from([0, 2]),
    m=st.integers(1, 40),
    maxmemory=st.sampled_from(["0", "3mb"]),
)
def test_the_scalar_feedback_bound_equals_the_array_one(
    seed: int, workload: str, closed: bool, retries: int, m: int, maxmemory: str
) -> None:
    # closed loops commit a few rows at a time on a plain-Python copy of the bound; both must
    # give the same float for any rows (client connections, workers, gave-up, late replies,
    # cache GETs sure to hit or not)
    from simulator import load_scenario
    from simulator.runner import build

    doc = {
        "system": {"kind": "redis"},
        "workload": {"mode": "closed" if closed else "open", "consumers": 1, "keys": 10},
        "redis": {"workload": workload, "client": {"retries": retries}, "maxmemory": maxmemory},
    }
    _ctx, model = build(load_scenario(doc))
    clients = model.clients
    rng = np.random.default_rng(seed)
    live = model.server.store.live
    live.value[:] = np.where(rng.random(10) < 0.7, 1, -1)
    live.expire_at[:] = rng.choice([0.5, 1.5, np.inf], 10)
    rows = empty_rows(m)
    rows["key"][:] = rng.integers(0, 10, m)
    rows["reply_delay"][:] = rng.exponential(0.1, m)
    rows["deadline"][:] = rng.uniform(0.0, 3.0, m)
    rows["conn"][:] = rng.choice([0, 3, 7, 1_000_000], m)  # clients and a worker connection
    rows["gave_up"][:] = rng.random(m) < 0.2
    rows["op"][:] = np.where(rng.random(m) < 0.5, CACHE_GET, rng.integers(0, int(IS_WRITE.size), m))
    end_row = np.sort(rng.uniform(0.0, 2.0, m))
    # the array path on the same rows, padded with rows that cause nothing (no client's
    # connection, a GET) so that every m takes it (it serves more than 8 rows)
    padded = empty_rows(m + 9)
    for name, values in rows.items():
        padded[name][:m] = values
    padded["conn"][m:] = -1
    padded["op"][m:] = GET
    padded_end = np.concatenate([end_row, np.full(9, 5.0)])
    array = clients.feedback_bound(padded, m + 9, padded_end)
    assert clients._feedback_bound_small(rows, m, end_row) == array


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 8))
def test_the_scalar_all_answered_check_equals_the_array_one(seed: int, m: int) -> None:
    # a few replies are checked with Python lists; padded with replies that are answered in
    # time (which change nothing), the same rows take the array path
    rng = np.random.default_rng(seed)
    reply_at = np.where(rng.random(m) < 0.1, np.inf, rng.uniform(0.0, 2.0, m))
    deadline = np.where(rng.random(m) < 0.3, np.inf, rng.uniform(1.0, 3.0, m))
    gave_up = rng.random(m) < 0.1
    status = np.where(rng.random(m) < 0.7, OK, rng.integers(0, 13, m)).astype(np.int8)
    pad = 9
    array = ClientReplies._all_answered(
        np.r_[reply_at, np.zeros(pad)],
        np.r_[deadline, np.ones(pad)],
        np.r_[gave_up, np.zeros(pad, dtype=bool)],
        np.r_[status, np.full(pad, OK, dtype=np.int8)],
    )
    assert ClientReplies._all_answered(reply_at, deadline, gave_up, status) == array


class _CacheClient(ClientReplies):
    """The cache-aside reactions of `ClientReplies`, recording what they deliver and send."""

    kind = "cache"

    def __init__(self, delivered: np.ndarray):
        self.producing = True
        self.gets = self.hits = 0
        self.spec = SimpleNamespace(value_bytes=100)
        self.log: list[tuple] = []
        log = self.log
        self.history = SimpleNamespace(
            deliveries=delivered,
            deliver=lambda ids, t: log.append(("deliver", ids.tolist(), t.tolist())),
            produce=lambda at, keys: log.append(("produce", at.tolist(), keys.tolist())) or 500,
        )

    def build(self, *columns: np.ndarray, **_options: object) -> dict:
        names = ("op", "msg", "key", "nbytes", "send", "conn", "first")
        return dict(zip(names, columns, strict=True))

    def submit(self, rows: dict, src: str = "clients") -> None:
        self.log.append(("submit", {name: v.tolist() for name, v in rows.items()}))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 8), all_ok=st.booleans())
def test_the_scalar_cache_replies_equal_the_array_ones(seed: int, m: int, all_ok: bool) -> None:
    # hits deliver their fill once, misses SET the value: on Python lists for a few replies,
    # on numpy masks for more (padded with replies that are not GETs, which change nothing)
    rng = np.random.default_rng(seed)
    delivered = (rng.random(20) < 0.5).astype(np.int64)
    rows = empty_rows(m)
    rows["op"][:] = np.where(rng.random(m) < 0.8, CACHE_GET, SET)
    rows["key"][:] = rng.integers(0, 5, m)
    rows["conn"][:] = rng.integers(0, 4, m)
    reply_at = rng.choice([1.0, 1.5, 2.0], m)
    status = rng.choice(np.array([OK, MISS, ERR_OOM], dtype=np.int8), m)
    aux = np.where(status == OK, rng.integers(-1, 20, m), -1)
    ok = None if all_ok else rng.random(m) < 0.8
    small = _CacheClient(delivered)
    small._cache_replies(rows, reply_at, ok, status, aux)
    pad = 9
    padded = empty_rows(m + pad)
    for name, values in rows.items():
        padded[name][:m] = values
    padded["op"][m:] = SET
    array = _CacheClient(delivered)
    array._cache_replies(
        padded,
        np.r_[reply_at, np.ones(pad)],
        None if ok is None else np.r_[ok, np.ones(pad, dtype=bool)],
        np.r_[status, np.full(pad, OK, dtype=np.int8)],
        np.r_[aux, np.full(pad, -1)],
    )
    assert (small.log, small.gets, small.hits) == (array.log, array.gets, array.hits)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 16))
def test_the_scalar_aof_bytes_equal_the_array_ones(seed: int, m: int) -> None:
    # the AOF bytes of a few commands are summed on Python ints; padded with reads (which
    # write nothing) the same rows take the array path
    from simulator import load_scenario
    from simulator.runner import build

    _ctx, model = build(load_scenario({"system": {"kind": "redis"}}))
    rng = np.random.default_rng(seed)
    pad = 17
    rows = empty_rows(m + pad)
    rows["op"][:m] = rng.integers(0, int(IS_WRITE.size), m)
    rows["op"][m:] = GET
    rows["nbytes"][:] = rng.integers(0, 5000, m + pad)
    status = np.where(rng.random(m + pad) < 0.8, OK, ERR_OOM).astype(np.int8)
    small = model.server._aof_bytes({k: v[:m] for k, v in rows.items()}, status[:m])
    assert small == model.server._aof_bytes(rows, status)


@settings(max_examples=60, deadline=None)
@given(
    op=st.integers(0, int(IS_WRITE.size) - 1),
    nbytes=st.integers(0, 100_000),
    first=st.booleans(),
    last=st.booleans(),
    appendonly=st.booleans(),
    overhead=st.booleans(),
)
def test_one_command_costs_equal_the_array_ones(
    op: int, nbytes: int, first: bool, last: bool, appendonly: bool, overhead: bool
) -> None:
    # one-command requests take memoized costs; the same command as the first row of two
    # takes the array path, and both (the memo's first and second use) give the same floats
    costs = CostModel(RedisConfig(appendonly=appendonly, per_iteration_overhead=overhead))
    pair = costs.row_costs(
        np.array([op, GET], dtype=np.int8),
        np.array([nbytes, 0], dtype=np.int32),
        np.array([first, True]),
        np.array([last, True]),
    )
    for _use in range(2):
        one = costs.row_costs(
            np.array([op], dtype=np.int8),
            np.array([nbytes], dtype=np.int32),
            np.array([first]),
            np.array([last]),
        )
        assert [c.tolist() for c in one] == [[c[0]] for c in (p.tolist() for p in pair)]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 8))
def test_the_scalar_next_deadline_equals_the_array_one(seed: int, m: int) -> None:
    # a few queued closed-loop requests are scanned on Python lists; with the threshold at
    # zero the same queue takes the array path
    from models.redis import feedback
    from models.redis.requests import RequestQueue
    from simulator import load_scenario
    from simulator.runner import build

    doc = {"system": {"kind": "redis"}, "workload": {"mode": "closed"}}
    _ctx, model = build(load_scenario(doc))
    rng = np.random.default_rng(seed)
    rows = empty_rows(m)
    rows["arrival"][:] = np.sort(rng.uniform(0.0, 1.0, m))
    rows["deadline"][:] = rng.uniform(1.0, 3.0, m)
    rows["conn"][:] = rng.choice([0, 3, 1_000_000, -2], m)
    rows["gave_up"][:] = rng.random(m) < 0.3
    queue = RequestQueue()
    queue.push(rows)
    small = model.clients.next_deadline(queue)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(feedback, "SMALL_ROWS", 0)
        assert small == model.clients.next_deadline(queue)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), m=st.integers(1, 8))
def test_per_key_memory_accounting_equals_the_array_one(seed: int, m: int) -> None:
    from models.redis import memory as memory_module

    rng = np.random.default_rng(seed)
    config = RedisConfig(maxmemory="10mb", maxmemory_policy="allkeys-lru")
    keys = rng.choice(50, m, replace=False)
    nbytes = rng.integers(0, 5000, m)
    present = rng.random(m) < 0.5
    per_key = Memory(config, 50, np.random.default_rng(0))
    per_key.set_values(keys, nbytes, present)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(memory_module, "_FEW_KEYS", 0)
        array = Memory(config, 50, np.random.default_rng(0))
        array.set_values(keys, nbytes, present)
    assert per_key.workload_bytes == array.workload_bytes
    assert per_key.size.tolist() == array.size.tolist()
    assert per_key.present is not None and array.present is not None
    assert per_key.present.count == array.present.count


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 60),
    load=st.floats(0.05, 3.0),
    pipeline=st.sampled_from([1, 2, 3]),
    free_ms=st.sampled_from([0.0, 0.5]),
    io_threads=st.sampled_from([1, 4]),
)
def test_the_head_taken_from_the_plan_equals_plan_one(
    seed: int, n: int, load: float, pipeline: int, free_ms: float, io_threads: int
) -> None:
    # the loop checks the next iteration before committing: taken from the exact plan when it
    # holds one row, it must be plan_one's bit for bit (and the plan the full one)
    rows = make_rows(seed, n, load / 0.006 / pipeline, pipeline)
    costs = LoopCosts(0.0017, 0.003, io_threads, True)
    head, full = head_and_plan(rows, free_ms, costs)
    one = plan_one(rows, free_ms, costs)
    for name in ("start", "end", "poll", "exec_end", "end_ms", "has_write"):
        assert getattr(head, name).tolist() == getattr(one, name).tolist()
        assert getattr(head, name).dtype == getattr(one, name).dtype
    if full is not None:
        assert full.end_ms.tolist() == plan(rows, free_ms, costs).end_ms.tolist()
