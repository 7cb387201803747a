"""Commands the model knows and what each costs the single Redis thread (the calibration).

Calibration (Redis 7.x on one core of an ordinary x86 server, values in microseconds):

* Without pipelining a request costs about 5-8 µs of main-thread time: one `read()` of the
  client's socket (~2 µs), parsing and executing the command (~0.5-1 µs for GET/SET), one
  `write()` of the reply (~2.5 µs), plus the loop's own `epoll_wait` and `beforeSleep` (~2 µs,
  shared by every request served in the same iteration). That gives the 100-200k simple
  requests per second at sub-millisecond latency that the Redis docs report for
  `redis-benchmark -c 50` ("Redis benchmark" page: "How fast is Redis?", typical results
  without pipelining), and ~1M+ requests/s with `-P 16`, where one read and one write serve 16
  commands ("Pipelining" page: up to 10x). The syscalls dominate: that is why pipelining is
  the main lever on throughput, and why io-threads (offloading socket writes, and with
  io-threads-do-reads also reads) helps only when many clients are served per iteration
  ("Redis 6 threaded I/O", redis.conf THREADED I/O: "usually threading reads doesn't help much").
* KEYS scans every key: "an entry level laptop can scan a 1 million key database in 40
  milliseconds" (KEYS command page) -> 0.04 µs per key. The latency docs list KEYS, SORT,
  LREM, SUNION and big LRANGE as the usual slow commands (O(N)).
* AOF: each write is appended to the AOF buffer as RESP (~0.3 µs plus the bytes), and
  `beforeSleep` calls `write()` once per iteration (~3 µs + ~0.5 ns/byte into the page cache)
  ("Persistence" page; aof.c flushAppendOnlyFile). fsync latency comes from the core `[disk]`.
* fork() and restart load time are per-GB model parameters in `[redis]` (latency docs: fork
  9-13 ms/GB on physical hosts, 239 ms/GB on old Xen VMs).

`cpu_speed` in `[redis]` scales every cost (2.0 = a CPU twice as fast).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from models.redis.config import RedisConfig

# Op codes stored per request row (int8).
(
    GET,
    SET,
    INCR,
    LPUSH,
    BRPOP,
    PUBLISH,
    CACHE_GET,
    CACHE_SET,
    SLOW,
    XADD,
    XREADGROUP,
    XACK,
    XAUTOCLAIM,
) = range(13)
OP_NAMES = (
    "GET",
    "SET",
    "INCR",
    "LPUSH",
    "BRPOP",
    "PUBLISH",
    "GET",
    "SET",
    "SLOW",
    "XADD",
    "XREADGROUP",
    "XACK",
    "XAUTOCLAIM",
)
N_OPS = len(OP_NAMES)

# Commands that change the dataset: propagated to the AOF, counted in `dirty` for save rules,
# refused by noeviction at maxmemory and by MISCONF after a failed save.
WRITE_OPS = (SET, INCR, LPUSH, CACHE_SET, BRPOP, XADD, XREADGROUP, XACK, XAUTOCLAIM)
# Commands that carry a message id: the client counts the reply as the acknowledgement.
MESSAGE_OPS = (SET, INCR, LPUSH, PUBLISH, CACHE_SET, XADD)
# Commands that grow memory (deny-oom): refused with OOM under noeviction at maxmemory.
DENY_OOM_OPS = (SET, INCR, LPUSH, CACHE_SET, XADD)

IS_WRITE = np.zeros(N_OPS, dtype=bool)
IS_WRITE[list(WRITE_OPS)] = True
IS_MESSAGE = np.zeros(N_OPS, dtype=bool)
IS_MESSAGE[list(MESSAGE_OPS)] = True
IS_DENY_OOM = np.zeros(N_OPS, dtype=bool)
IS_DENY_OOM[list(DENY_OOM_OPS)] = True

# --- calibration constants (µs at cpu_speed 1; sources in the module docstring) ---------------
READ_SYSCALL_US = 2.0  # read() of one client's socket into its query buffer
PARSE_US = 0.25  # RESP parsing + command lookup, per command
WRITE_SYSCALL_US = 2.5  # write() of one client's pending replies
EPOLL_WAIT_US = 1.0  # epoll_wait returning ready sockets, per iteration
BEFORE_SLEEP_US = 0.7  # beforeSleep bookkeeping (blocked clients, expires, flags), per iteration
EXEC_US = np.array(
    [
        0.45,  # GET
        0.60,  # SET
        0.50,  # INCR
        0.60,  # LPUSH
        0.70,  # BRPOP (pop or register a blocked client)
        0.50,  # PUBLISH (+ per subscriber below)
        0.45,  # GET (cache)
        0.75,  # SET key value EX ttl (cache)
        0.00,  # slow command: cost given per row
        1.00,  # XADD (radix tree + listpack append, id generation)
        1.50,  # XREADGROUP (a COUNT batch + PEL inserts)
        0.60,  # XACK
        2.00,  # XAUTOCLAIM (PEL scan + claims)
    ]
)
VALUE_COPY_US_PER_BYTE = 0.0002  # memcpy of values into/out of the dataset (~5 GB/s)
PUBLISH_PER_SUBSCRIBER_US = 1.0  # copy to each subscriber's buffer + its share of write()
AOF_PROPAGATE_US = 0.3  # feedAppendOnlyFile: RESP of one write into the AOF buffer
AOF_BYTES_PER_WRITE = 40  # RESP framing around key and value ("*3\r\n$3\r\nSET\r\n...")
AOF_WRITE_US = 3.0  # write() of the AOF buffer, once per iteration that has something to write
AOF_WRITE_US_PER_BYTE = 0.0005  # copy into the page cache (~2 GB/s)
KEYS_US_PER_KEY = 0.04  # KEYS page: 1M keys in 40 ms
LRANGE_US_PER_ELEMENT = 0.05  # reply building of a big LRANGE
SORT_US_PER_ELEMENT_LOG2 = 0.1  # SORT: n log n comparisons
CRON_US = 20.0  # serverCron bookkeeping at each tick (clients, stats, resize checks)
EXPIRE_US_PER_KEY = 1.0  # deleting one expired key (active expire cycle or on access)
EVICT_US_PER_KEY = 1.5  # one eviction: sampling maxmemory-samples keys + delete
ERROR_REPLY_US = 0.3  # building -LOADING / -OOM / -MISCONF instead of executing
KEY_NAME_BYTES = 16  # bytes of a typical key name ("key:123456")


_ONE_ROW_SHAPES = 1024  # memoized one-command cost shapes at most


class CostModel:
    """Per-command and per-iteration costs (ms) for one server configuration."""

    def __init__(self, config: RedisConfig, subscribers: int = 0):
        self.config = config
        scale = 1e-3 / config.cpu_speed  # µs -> ms at this CPU speed
        self.scale = scale
        self.overhead = config.per_iteration_overhead
        self.subscribers = subscribers
        exec_us = EXEC_US.copy()
        exec_us[PUBLISH] += PUBLISH_PER_SUBSCRIBER_US * subscribers
        self.exec_ms = exec_us * scale
        self.parse_ms = PARSE_US * scale
        self.read_ms = READ_SYSCALL_US * scale
        self.write_ms = WRITE_SYSCALL_US * scale
        self.byte_ms = VALUE_COPY_US_PER_BYTE * scale
        self.aof_row_ms = AOF_PROPAGATE_US * scale if config.appendonly else 0.0
        self.aof_byte_ms = AOF_WRITE_US_PER_BYTE * scale if config.appendonly else 0.0
        # per iteration: epoll_wait + beforeSleep; write() of the AOF buffer when it has data
        self.iteration_ms = (EPOLL_WAIT_US + BEFORE_SLEEP_US) * scale if self.overhead else 0.0
        self.aof_write_ms = AOF_WRITE_US * scale if (self.overhead and config.appendonly) else 0.0
        self.error_ms = ERROR_REPLY_US * scale
        self.cron_ms = CRON_US * scale if self.overhead else 0.0
        self.expire_ms = EXPIRE_US_PER_KEY * scale
        self.evict_ms = EVICT_US_PER_KEY * scale
        self.io_threads = config.io_threads
        self.io_reads = config.io_threads_do_reads
        # costs of one-command requests by (op, value bytes, first, last): closed loops and
        # consumers send one command at a time, with a handful of distinct shapes
        self._one_row: dict[tuple[int | float, ...], tuple[float, float, float]] = {}

    def row_costs(
        self,
        op: np.ndarray,
        nbytes: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
        jitter: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(exec, read, reply-write) ms of each command row of a request.

        `first`/`last` mark the first and last command of each request (pipelined commands share
        one read() and one write()). Without per-iteration overhead everything is charged to the
        command itself, so the loop is a plain single-server queue (theory tests).
        """
        if op.size == 1 and jitter is None:
            shape = (op.item(), nbytes.item(), bool(first[0]), bool(last[0]))
            costs = self._one_row.get(shape)
            if costs is None:
                computed = self._row_costs(op, nbytes, first, last, None)
                costs = (computed[0].item(), computed[1].item(), computed[2].item())
                if len(self._one_row) < _ONE_ROW_SHAPES:
                    self._one_row[shape] = costs
            return np.array([costs[0]]), np.array([costs[1]]), np.array([costs[2]])
        return self._row_costs(op, nbytes, first, last, jitter)

    def _row_costs(
        self,
        op: np.ndarray,
        nbytes: np.ndarray,
        first: np.ndarray,
        last: np.ndarray,
        jitter: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        exec_ms = self.exec_ms[op] + nbytes * self.byte_ms
        writes = IS_WRITE[op]
        if self.aof_row_ms:
            aof_bytes = nbytes + AOF_BYTES_PER_WRITE + KEY_NAME_BYTES
            exec_ms = exec_ms + writes * (self.aof_row_ms + aof_bytes * self.aof_byte_ms)
        read_ms = np.where(first, self.read_ms, 0.0) + self.parse_ms
        write_ms = np.where(last, self.write_ms, 0.0)
        if not self.overhead:
            exec_ms = exec_ms + read_ms + write_ms
            read_ms = np.zeros_like(exec_ms)
            write_ms = np.zeros_like(exec_ms)
        if jitter is not None:
            exec_ms = exec_ms * jitter
        return exec_ms, read_ms, write_ms

    def slow_command_ms(self, name: str, keys: int, count: int, given_ms: float | None) -> float:
        """Cost of one slow command: given, or from the table and the dataset size."""
        if given_ms is not None:
            return given_ms
        if name == "KEYS":
            return KEYS_US_PER_KEY * keys * self.scale
        if name == "LRANGE":
            return LRANGE_US_PER_ELEMENT * count * self.scale
        if name == "SORT":
            return SORT_US_PER_ELEMENT_LOG2 * count * max(1.0, np.log2(count)) * self.scale
        return 100.0  # EVAL without slow_command_ms: a 100 ms script

    def error_costs(self, rows: int) -> np.ndarray:
        """Exec cost of commands answered with an error instead of being executed."""
        return np.full(rows, self.error_ms)
