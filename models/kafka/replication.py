"""Follower fetching: the leader's side of a replica fetch, and the follower's fetch loop.

A follower runs one fetcher per leader broker (ReplicaFetcherThread). Each FetchRequest covers
every partition it follows from that leader with its fetch offset (= its LEO) and the epoch of
its last record. The leader
- checks the epoch: if the follower's last epoch ends earlier on the leader, the response says
  where the logs diverge and the follower truncates there (KIP-101 / KIP-595), so a follower
  never keeps records the leader line does not have and never cuts committed ones;
- records the fetch offset as the follower's LEO (this is how the leader learns it) and may
  advance the HW and move the follower in or out of the ISR;
- answers with records up to `replica.fetch.max.bytes` per partition, or parks the request until
  new records arrive or `replica.fetch.wait.max.ms` passes (`replica.fetch.min.bytes` = 1).
Followers learn the leader's HW from the response, i.e. one fetch late.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.kafka import protocol as pr
from simulator.node import UP

if TYPE_CHECKING:
    from models.kafka.broker import Broker
    from models.kafka.partition import PartitionReplica
    from simulator.network import Link

FETCH_REQUEST_BYTES = 100
PARTITION_FIELDS_BYTES = 30


def handle_follower_fetch(
    leader: Broker,
    fetch: pr.FollowerFetch,
    now: float,
    expired: bool = False,
    completing: bool = False,
) -> None:
    """The leader serves (or parks) one follower fetch.

    The answer carries only partitions with news for the follower (records, a new HW, an
    error or a divergence), as a fetch session does (KIP-227). `completing`: the fetch was
    parked and its positions are already recorded.
    """
    replicas = leader.replicas
    budget = leader.fetch_response_max_bytes
    per_partition = leader.fetch_partition_max_bytes
    parts: list[pr.FetchedPartition] = []
    answer = expired
    follower = fetch.follower
    for p, offset, last_epoch, epoch in fetch.partitions:
        rep = replicas.get(p)
        if rep is None or not rep.is_leader:
            parts.append(pr.FetchedPartition(p, pr.NOT_LEADER_OR_FOLLOWER))
            answer = True
            continue
        leader_epoch = rep.leader_epoch
        if epoch != leader_epoch:
            error = pr.FENCED_LEADER_EPOCH if epoch < leader_epoch else pr.NOT_LEADER_OR_FOLLOWER
            parts.append(pr.FetchedPartition(p, error))
            answer = True
            continue
        log = rep.log
        if last_epoch != epoch and last_epoch >= 0:
            found, end = log.end_offset_for_epoch(last_epoch)
            if found != last_epoch or end < offset:
                part = pr.FetchedPartition(p)
                part.diverging = (found, end)
                parts.append(part)
                answer = True
                continue
        leo = log.leo
        if offset > leo:
            part = pr.FetchedPartition(p)
            part.diverging = (rep.leader_epoch, leo)
            parts.append(part)
            answer = True
            continue
        state = rep.followers.get(follower)
        if state is not None and not completing:
            rep.follower_fetched(follower, offset, now, state)
        hw = log.hw
        if offset < leo and budget > 0:
            pieces, nbytes = log.read(
                offset, leo, per_partition if per_partition < budget else budget
            )
            budget -= nbytes
            answer = True
            parts.append(pr.FetchedPartition(p, pr.NONE, pieces, nbytes, hw, log.log_start, state))
        elif state is None or state.sent_hw != hw:
            parts.append(pr.FetchedPartition(p, pr.NONE, None, 0.0, hw, log.log_start, state))
        # else: nothing new for this partition, left out of the answer
    if answer:
        for part in parts:
            if part.state is not None:
                part.state.sent_hw = part.high_watermark
        _respond(leader, fetch, parts, now)
    else:
        leader.park(fetch, now)


def complete_parked(leader: Broker, touched: list[PartitionReplica], now: float) -> None:
    """New records (or a lost leadership) on `touched` partitions complete parked fetches."""
    wanted = {rep.partition for rep in touched}
    parked = leader.parked
    leader.parked = []
    for fetch in parked:
        if fetch.pset.isdisjoint(wanted):
            leader.parked.append(fetch)
        else:
            handle_follower_fetch(leader, fetch, now, completing=True)


def _respond(
    leader: Broker, fetch: pr.FollowerFetch, parts: list[pr.FetchedPartition], now: float
) -> None:
    total = 0.0
    # lazy only when nothing can happen in between: no error to handle, no fsync to wait for
    plain = leader.flush_every is None
    for part in parts:
        total += PARTITION_FIELDS_BYTES + part.nbytes
        if part.error or part.diverging is not None:
            plain = False
    nbytes = FETCH_REQUEST_BYTES + total
    sent = leader.capacity.send(now, nbytes)
    fetcher = fetch.fetcher
    follower = fetcher.broker
    from_leader = fetcher.from_leader
    if (
        plain
        and follower.state == UP
        and fetch.generation == fetcher.generation
        and not from_leader.cut_count
        and not fetcher.to_leader.cut_count
    ):
        arrival = sent + from_leader.sample(nbytes)
        fetcher.receive_lazily(fetch, parts, arrival, nbytes)
        return
    leader.model.net.send(
        leader.name, follower.name, nbytes, lambda: fetcher.on_response(fetch, parts)
    )


class LazyResponse:
    """A fetch response applied ahead of its arrival, with what is needed to take it back."""

    __slots__ = ("arrival", "fetch", "nbytes", "parts", "undo")

    def __init__(
        self,
        fetch: pr.FollowerFetch,
        parts: list[pr.FetchedPartition],
        arrival: float,
        nbytes: float,
    ):
        self.fetch = fetch
        self.parts = parts
        self.arrival = arrival
        self.nbytes = nbytes
        self.undo: list[tuple[PartitionReplica, int, int]] = []


class ReplicaFetcher:
    """A follower's fetch loop towards one leader broker (ReplicaFetcherThread).

    Why lazy: a caught-up follower gets one response per leader append. When nothing can come
    between the response and its arrival (both links up, the follower running) the response is
    applied when the leader sends it and the next fetch is scheduled to reach the leader at the
    time it would, one event per round trip instead of two. A fault, or a leadership change,
    before the arrival takes the response back (`take_back`) and sends it as a real message.
    """

    def __init__(self, broker: Broker, leader: int):
        self.broker = broker
        self.leader = leader
        self.partitions: list[int] = []
        self._pset: frozenset[int] = frozenset()  # the same, as the set each fetch carries
        self._replicas: list[PartitionReplica] = []  # the same, as this broker's replicas
        self.generation = 0
        self.in_flight = False
        self.sent_ms = 0.0
        self.stopped = False
        self._retry_armed = False
        self.lazy: LazyResponse | None = None
        self.flushing: Any = None  # fsync the fetcher thread waits for
        self._last_to_leader = float("-inf")  # TCP order of lazily scheduled fetches
        # the two directions of the connection (the network keeps a link for good)
        model = broker.model
        net, leader_name = model.net, model.brokers[leader].name
        self.to_leader: Link = net.link(broker.name, leader_name)
        self.from_leader: Link = net.link(leader_name, broker.name)

    def add(self, partition: int) -> None:
        if partition not in self.partitions:
            self.partitions.append(partition)
            self._partitions_changed()
        self.send()

    def remove(self, partition: int) -> None:
        if partition in self.partitions:
            self.partitions.remove(partition)
            self._partitions_changed()

    def _partitions_changed(self) -> None:
        self._pset = frozenset(self.partitions)
        replicas = self.broker.replicas
        self._replicas = [replicas[p] for p in self.partitions]

    def stop(self) -> None:
        self.stopped = True
        self.generation += 1
        self.lazy = None

    def _request(self) -> pr.FollowerFetch:
        parts = [
            (rep.partition, rep.log.leo, rep.log.last_epoch, rep.leader_epoch)
            for rep in self._replicas
        ]
        self.generation += 1
        return pr.FollowerFetch(self, self.broker.id, self.generation, parts, self._pset)

    def send(self) -> None:
        broker = self.broker
        if self.stopped or self.in_flight or not self.partitions or broker.state != UP:
            return
        fetch = self._request()
        generation = fetch.generation
        self.in_flight = True
        self.sent_ms = broker.env.now
        self.lazy = None
        model = broker.model
        leader = model.brokers[self.leader]
        model.net.send(
            broker.name,
            leader.name,
            FETCH_REQUEST_BYTES + PARTITION_FIELDS_BYTES * len(fetch.partitions),
            lambda: leader.receive_follower_fetch(fetch),
            timeout_ms=broker.cfg.replica_socket_timeout_ms,
            on_reset=lambda: self.failed(generation),
        )

    def receive_lazily(
        self,
        fetch: pr.FollowerFetch,
        parts: list[pr.FetchedPartition],
        arrival: float,
        nbytes: float,
    ) -> None:
        """Apply a response that will arrive at `arrival`, and schedule the next fetch."""
        if fetch.generation != self.generation or self.stopped:
            return
        lazy = LazyResponse(fetch, parts, arrival, nbytes)
        self._apply(parts, lazy.undo)
        self.lazy = lazy
        broker = self.broker
        if not self.partitions:
            self.in_flight = False
            return
        nxt = self._request()
        leader = broker.model.brokers[self.leader]
        size = FETCH_REQUEST_BYTES + PARTITION_FIELDS_BYTES * len(nxt.partitions)
        reach = arrival + self.to_leader.sample(size)
        if reach < self._last_to_leader:
            reach = self._last_to_leader
        self._last_to_leader = reach
        self.in_flight = True
        self.sent_ms = arrival
        env = broker.env

        def arrive(_e: Any) -> None:
            if nxt.generation == self.generation and not self.stopped:
                self.lazy = None
                leader.receive_follower_fetch(nxt)

        env.timeout(reach - env.now).callbacks.append(arrive)

    def take_back(self) -> None:
        """Undo a lazily applied response still on its way and send it as a real message."""
        lazy = self.lazy
        if lazy is None:
            return
        self.lazy = None
        broker = self.broker
        now = broker.env.now
        self.generation += 1  # cancels the scheduled next fetch
        if lazy.arrival <= now:
            # it arrived: only the next fetch was still travelling; send it for real
            self.in_flight = False
            self.send()
            return
        for rep, leo, hw in lazy.undo:
            if rep.log.leo > leo:
                rep.log.truncate(leo)
            rep.log.hw = min(hw, rep.log.leo)
        fetch = lazy.fetch
        fetch.generation = self.generation
        self.in_flight = True
        leader = broker.model.brokers[self.leader]
        parts = lazy.parts
        broker.model.net.send(
            leader.name, broker.name, lazy.nbytes, lambda: self.on_response(fetch, parts)
        )

    def on_response(self, fetch: pr.FollowerFetch, parts: list[pr.FetchedPartition]) -> None:
        broker = self.broker
        if not broker.serving(self.on_response, (fetch, parts), None):
            return
        if fetch.generation != self.generation or self.stopped:
            return
        self.in_flight = False
        self.flushing = None
        if self._apply(parts, None):
            self._retry_later()
        elif self.flushing is not None and not self.flushing.triggered:
            generation = self.generation
            self.flushing.callbacks.append(lambda _e: self._after_flush(generation))
        else:
            self.send()

    def _after_flush(self, generation: int) -> None:
        if generation == self.generation and self.broker.state == UP:
            self.send()

    def _apply(
        self, parts: list[pr.FetchedPartition], undo: list[tuple[PartitionReplica, int, int]] | None
    ) -> bool:
        """Append / truncate / learn the HW; True if some partition answered with an error."""
        broker = self.broker
        now = broker.env.now
        failed = False
        replicas = broker.replicas
        leader, followed = self.leader, self._pset
        for part in parts:
            rep = replicas.get(part.partition)
            if (
                rep is None
                or rep.is_leader
                or rep.leader != leader
                or part.partition not in followed
            ):
                continue
            if part.error:
                failed = True
                continue
            log = rep.log
            if part.diverging is not None:
                epoch, end = part.diverging
                _, own_end = log.end_offset_for_epoch(epoch)
                target = min(end, own_end)
                if target < log.leo:
                    cause = broker.truncation_cause(rep, target)
                    removed = log.truncate(target)
                    broker.record_truncation(rep, removed, cause, "diverging_epoch", now)
                continue
            if undo is not None:
                undo.append((rep, log.leo, log.hw))
            if part.pieces:
                _, pos, count, _ = part.pieces[-1]
                store = log.store
                ts = store.b_time[store.batch_index(pos + count - 1)]
                log.append_pieces(part.pieces, part.nbytes, ts, now)
                flush_every = broker.flush_every
                if flush_every is not None and log.unflushed >= flush_every:
                    # the fetcher thread flushes before it fetches again
                    self.flushing = log.flush()
            hw = part.high_watermark
            if hw > log.leo:
                hw = log.leo
            if hw > log.hw:
                log.hw = hw
            if rep.power_cut and log.leo >= part.high_watermark:
                rep.power_cut = False  # caught up again with what the leader committed
        return failed

    def failed(self, generation: int) -> None:
        """The request was lost with its connection (reset): back off, then fetch again."""
        if generation != self.generation or self.stopped:
            return
        self.in_flight = False
        self.lazy = None
        self._retry_later()

    def leader_gone(self, reset: bool) -> None:
        """The leader's process died with our fetch parked or on its way."""
        if reset:
            self.failed(self.generation)

    def watchdog(self, now: float) -> None:
        """replica.socket.timeout.ms: a fetch nobody answers is abandoned and sent again."""
        if self.in_flight and now - self.sent_ms > self.broker.cfg.replica_socket_timeout_ms:
            self.generation += 1
            self.in_flight = False
            self.lazy = None
            self.send()

    def _retry_later(self) -> None:
        if self._retry_armed:
            return
        self._retry_armed = True
        broker = self.broker
        incarnation = broker.incarnation

        def retry(_event: Any) -> None:
            self._retry_armed = False
            if broker.incarnation == incarnation:
                self.send()

        broker.env.timeout(broker.cfg.replica_fetch_backoff_ms).callbacks.append(retry)
