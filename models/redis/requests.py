"""Requests waiting for the event loop: one row per command, sorted by arrival at the server.

A request is what one connection wrote in one go (one command, or a pipeline of several); its
commands share the arrival time, the connection and the reply. Rows are kept as a structure of
numpy arrays so that the loop can take thousands of them per step (DESIGN rule 6), and rows that
arrive later than already queued ones (retries, closed-loop clients, workers) are merged in
arrival order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

FIELDS: dict[str, Any] = {
    "arrival": np.float64,  # in the server's socket buffer (ms)
    "send": np.float64,  # written by the client (ms)
    "deadline": np.float64,  # the client gives up at (send + timeout; inf = never)
    "reply_delay": np.float64,  # one-way delay of the reply, drawn when the request was sent
    "cost": np.float64,  # execution (ms)
    "rcost": np.float64,  # socket read + parse (ms), io-threads-do-reads can offload it
    "wcost": np.float64,  # reply write() (ms), io-threads can offload it
    "op": np.int8,
    "conn": np.int32,  # connection index (client, worker or subscriber)
    "msg": np.int64,  # first message id (-1: the command carries no message)
    "key": np.int64,
    "nbytes": np.int32,
    "attempt": np.int8,
    "first": np.bool_,  # first command of its request
    "last": np.bool_,  # last command of its request
    "gave_up": np.bool_,  # the client already timed out on this request
}

Rows = dict[str, np.ndarray]


def empty_rows(n: int = 0) -> Rows:
    return {name: np.zeros(n, dtype=dtype) for name, dtype in FIELDS.items()}


def concat_rows(parts: list[Rows]) -> Rows:
    parts = [p for p in parts if p["arrival"].size]
    if not parts:
        return empty_rows()
    if len(parts) == 1:
        return parts[0]
    return {name: np.concatenate([p[name] for p in parts]) for name in FIELDS}


def take_rows(rows: Rows, index: np.ndarray | slice) -> Rows:
    return {name: values[index] for name, values in rows.items()}


class RequestQueue:
    """Rows not yet executed, in arrival order; `head` advances as the loop takes them."""

    def __init__(self, capacity: int = 4096):
        self._cap = capacity
        self._data = {name: np.zeros(capacity, dtype=dtype) for name, dtype in FIELDS.items()}
        self.head = 0
        self.tail = 0

    def __len__(self) -> int:
        return self.tail - self.head

    @property
    def arrival(self) -> np.ndarray:
        return self._data["arrival"][self.head : self.tail]

    def field(self, name: str) -> np.ndarray:
        return self._data[name][self.head : self.tail]

    def view(self, n: int | None = None) -> Rows:
        """The first `n` rows (all by default) as views; valid until the next change."""
        end = self.tail if n is None else self.head + n
        return {name: values[self.head : end] for name, values in self._data.items()}

    def first_arrival(self) -> float:
        return float(self._data["arrival"][self.head]) if self.tail > self.head else np.inf

    def count_before(self, t_ms: float, inclusive: bool = False) -> int:
        if inclusive:
            return int(np.searchsorted(self.arrival, t_ms, side="right"))
        return int(np.searchsorted(self.arrival, t_ms, side="left"))

    def pop(self, n: int) -> Rows:
        """Remove and return (copies of) the first `n` rows."""
        rows = {
            name: values[self.head : self.head + n].copy() for name, values in self._data.items()
        }
        self.head += n
        if self.head == self.tail:
            self.head = self.tail = 0
        return rows

    def push(self, rows: Rows) -> None:
        """Add rows (sorted by arrival among themselves), keeping the queue in arrival order."""
        n = int(rows["arrival"].size)
        if n == 0:
            return
        arrival = rows["arrival"]
        if len(self) and arrival[0] < self._data["arrival"][self.tail - 1]:
            self._merge(rows)
            return
        self._append(rows)

    def _merge(self, rows: Rows) -> None:
        """Insert sorted `rows` among queued ones that arrive later (a queued row first on ties).

        Only the overlap moves: the queued rows arriving after the first new one (usually a
        few, delayed by network jitter) and the new rows go to their merged positions, as a
        stable sort of (overlap, new rows) by arrival would place them.
        """
        n = int(rows["arrival"].size)
        if n == 1:  # one request (a consumer's or closed-loop client's next command)
            self._reserve(1)
            split = self.head + int(np.searchsorted(self.arrival, rows["arrival"][0], side="right"))
            tail = self.tail
            for name, values in self._data.items():
                values[split + 1 : tail + 1] = values[split:tail]  # (numpy copes with overlap)
                values[split] = rows[name][0]
            self.tail = tail + 1
            return
        if bool((rows["arrival"][1:] < rows["arrival"][:-1]).any()):  # (n > 1 here)
            rows = take_rows(rows, np.argsort(rows["arrival"], kind="stable"))
        self._reserve(n)
        arrival = rows["arrival"]
        split = self.head + int(np.searchsorted(self.arrival, arrival[0], side="right"))
        old_arrival = self._data["arrival"][split : self.tail]
        m = int(old_arrival.size)
        to_new = np.searchsorted(old_arrival, arrival, side="right") + np.arange(n)
        to_old = np.searchsorted(arrival, old_arrival, side="left") + np.arange(m)
        end = self.tail + n
        for name, values in self._data.items():
            overlap = values[split : self.tail].copy()
            region = values[split:end]
            region[to_old] = overlap
            region[to_new] = rows[name]
        self.tail = end

    def remove(self, mask: np.ndarray) -> Rows:
        """Take out the queued rows where `mask` is true (e.g. caught by a network cut)."""
        current = self.view()
        taken = take_rows(current, mask)
        kept = take_rows(current, ~mask)
        kept = {k: v.copy() for k, v in kept.items()}
        self.head = self.tail = 0
        self._append(kept)
        return taken

    def clear(self) -> Rows:
        return self.pop(len(self))

    def _reserve(self, n: int) -> None:
        """Room for `n` more rows after the tail: move the live rows to the front, or grow."""
        if self.tail + n <= self._cap:
            return
        live = len(self)
        if live + n <= self._cap // 2:
            # plenty of room once the rows already taken are dropped: reuse the arrays (popped
            # rows were copied out, views are only valid until the next change)
            for values in self._data.values():
                values[:live] = values[self.head : self.tail]
        else:
            cap = self._cap
            while live + n > cap // 2:
                cap *= 2
            data = {name: np.zeros(cap, dtype=dtype) for name, dtype in FIELDS.items()}
            for name, values in self._data.items():
                data[name][:live] = values[self.head : self.tail]
            self._data, self._cap = data, cap
        self.head, self.tail = 0, live

    def _append(self, rows: Rows) -> None:
        n = int(rows["arrival"].size)
        if n == 0:
            return
        self._reserve(n)
        for name, values in self._data.items():
            values[self.tail : self.tail + n] = rows[name]
        self.tail += n
