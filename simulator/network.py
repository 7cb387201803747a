"""The network: topology, per-link delays, and TCP-like delivery through partitions and faults.

Every registered node reaches every other one over a LAN unless a link says otherwise. The
networkx graph is built once for the topology (and the dashboard); the hot path only looks up
a `Link` in a dict keyed by `(src, dst)`, created lazily and cached.

Defaults (`[network]` section): `rtt_ms` 0.2 ms, a typical round trip inside one LAN or cloud
availability zone (Redis latency docs measure 0.1-0.5 ms on 1 GbE; AWS, GCP and Azure quote
sub-millisecond intra-zone RTTs); `bandwidth_mbps` 10 000 (10 GbE); `tcp_rto_ms` 200 ms (Linux
`TCP_RTO_MIN`, the retransmission timeout a LAN connection actually uses).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import networkx as nx
import numpy as np

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.scenario import Network as NetworkSpec

# A TCP segment on Ethernet carries at most 1448 payload bytes (1500 MTU - IP/TCP headers with
# timestamps): a message of n bytes is ceil(n / 1448) segments, each of which can be lost.
MSS_BYTES = 1448
# Linux gives up on a connection after tcp_retries2 = 15 retransmissions; backoff stops there.
MAX_RETRANSMISSIONS = 15
# Jitter factors drawn per refill: one numpy call instead of one per message.
_JITTER_CHUNK = 512

# Life of a message on a link.
_IN_FLIGHT, _ARRIVED, _HELD, _RESET = 0, 1, 2, 3


@dataclass(slots=True, eq=False)
class Link:
    """One direction between two nodes: latency, bandwidth, faults, and the messages on it."""

    ctx: RunContext = field(repr=False)
    src: str
    dst: str
    base_ms: float  # mean one-way latency: rtt / 2
    ms_per_byte: float  # serialization: 8 bits / bandwidth
    jitter_sigma: float
    rto_ms: float
    extra_delay_ms: float = 0.0  # delay fault
    loss_probability: float = 0.0  # packet_loss fault, per segment
    cut_count: int = 0  # active cuts covering this link; the link is down while > 0
    cut_since_ms: float = 0.0
    reset_recorded: bool = False
    last_arrival_ms: float = -math.inf
    # sent, not yet delivered or reset, in send order
    queue: deque[_Message] = field(default_factory=deque, repr=False)
    _factors: list[float] = field(default_factory=list, repr=False)
    _rng: np.random.Generator | None = None
    _loss_rng: np.random.Generator | None = None

    @property
    def rng(self) -> np.random.Generator:
        if self._rng is None:
            self._rng = self.ctx.rng(f"net.{self.src}->{self.dst}")
        return self._rng

    def _jitter(self, n: int) -> np.ndarray:
        # Lognormal factor with median exp(-sigma^2/2): its mean is exactly 1, so the mean
        # one-way delay stays rtt/2 whatever the jitter.
        sigma = self.jitter_sigma
        return self.rng.lognormal(-0.5 * sigma * sigma, sigma, n)

    def jitter_factors(self, n: int) -> np.ndarray:
        """The next `n` jitter factors of this link's stream (a model that plans delays)."""
        return self._jitter(n)

    def _refill(self) -> list[float]:
        draws = self._jitter(_JITTER_CHUNK)
        self._factors = draws.tolist()
        return self._factors

    def sample(self, nbytes: float = 0) -> float:
        """One sampled one-way delay (ms) for a message of `nbytes` sent now."""
        factors = self._factors or self._refill()
        delay = self.base_ms * factors.pop() + nbytes * self.ms_per_byte + self.extra_delay_ms
        if self.loss_probability:
            delay += self._retransmission_ms(nbytes)
        return delay

    def samples(self, n: int, nbytes: float | np.ndarray = 0) -> np.ndarray:
        """`n` sampled one-way delays at once (vectorized `sample`)."""
        factors = self._jitter(n)
        delays = (
            self.base_ms * factors + np.asarray(nbytes) * self.ms_per_byte + self.extra_delay_ms
        )
        if self.loss_probability:
            segments = np.maximum(1, np.ceil(np.asarray(nbytes, dtype=float) / MSS_BYTES))
            hit_p = 1.0 - (1.0 - self.loss_probability) ** segments
            rng = self.loss_rng
            hit = rng.random(n) < hit_p
            attempts = np.minimum(
                rng.geometric(1.0 - self.loss_probability, n), MAX_RETRANSMISSIONS
            )
            delays = delays + np.where(hit, self.rto_ms * (2.0**attempts - 1.0), 0.0)
        return delays

    @property
    def loss_rng(self) -> np.random.Generator:
        # A separate stream, so that turning loss on does not shift the jitter draws.
        if self._loss_rng is None:
            self._loss_rng = self.ctx.rng(f"net.{self.src}->{self.dst}.loss")
        return self._loss_rng

    def _retransmission_ms(self, nbytes: float) -> float:
        """Extra delay from lost segments: TCP retransmits after an RTO, doubling it each time."""
        p = self.loss_probability
        segments = max(1, math.ceil(nbytes / MSS_BYTES))
        rng = self.loss_rng
        if rng.random() >= 1.0 - (1.0 - p) ** segments:
            return 0.0
        # Each retransmission is lost again with probability p; Linux doubles the RTO after each
        # timeout (RFC 6298 §5.5), so k retransmissions cost rto * (1 + 2 + ... + 2^(k-1)).
        attempts = min(int(rng.geometric(1.0 - p)), MAX_RETRANSMISSIONS)
        return self.rto_ms * (2.0**attempts - 1.0)


@dataclass(slots=True, eq=False)
class _Message:
    """A message on a link; its state says whether it moves, waits out a cut, or was reset."""

    network: Network
    link: Link
    nbytes: float
    on_arrival: Callable[[], None]
    on_reset: Callable[[], None] | None
    timeout_ms: float | None
    sent_ms: float
    state: int = _IN_FLIGHT
    holds: int = 0  # how many times held: tells a stale connection timeout from a live one

    def reached(self, _event: object) -> None:
        self.network._reached(self)


@dataclass(eq=False)
class _Cut:
    """An active partition (groups) or isolation (one node), and the links it covers."""

    cut_id: int
    started_ms: float
    group_of: dict[str, int] | None = None
    node: str = ""
    one_way: bool = False
    links: list[Link] = field(default_factory=list)

    def covers(self, src: str, dst: str) -> bool:
        if src == dst:
            return False
        if self.group_of is not None:
            a, b = self.group_of.get(src), self.group_of.get(dst)
            return a is not None and b is not None and a != b
        return src == self.node or (not self.one_way and dst == self.node)


class Network:
    """Topology plus TCP-like links: ordered, delayed, held through short cuts, reset by long ones."""

    def __init__(self, ctx: RunContext, spec: NetworkSpec):
        self.ctx = ctx
        self.env = ctx.env
        self.spec = spec
        self._graph = nx.Graph()
        self._links: dict[tuple[str, str], Link] = {}
        self._cuts: dict[int, _Cut] = {}
        self._next_cut_id = 1
        self._node_delay_ms: dict[str, float] = {}
        self._node_loss: dict[str, float] = {}
        ctx.network = self

    # --- topology (built once) --------------------------------------------------------------
    @property
    def graph(self) -> nx.Graph:
        """The topology: nodes carry a `role`, explicit links their `rtt_ms` / `bandwidth_mbps`."""
        return self._graph

    def add_node(self, name: str, role: str = "server") -> None:
        self._graph.add_node(name, role=role)

    def add_link(
        self, a: str, b: str, rtt_ms: float | None = None, bandwidth_mbps: float | None = None
    ) -> None:
        """A link between two nodes (both directions); None keeps the LAN default."""
        for name in (a, b):
            self._require(name)
        self._graph.add_edge(a, b, rtt_ms=rtt_ms, bandwidth_mbps=bandwidth_mbps)
        rtt, bandwidth = self._link_params(a, b)
        for src, dst in ((a, b), (b, a)):
            link = self._links.get((src, dst))
            if link is not None and src != dst:
                link.base_ms = rtt / 2.0
                link.ms_per_byte = 8.0 / (bandwidth * 1000.0)

    def connect_all(self, names: list[str]) -> None:
        """Edges between every pair (a LAN switch), for the architecture view."""
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                if not self._graph.has_edge(a, b):
                    self.add_link(a, b)

    def _require(self, name: str) -> None:
        if name not in self._graph:
            known = ", ".join(self._graph.nodes)
            raise KeyError(f"unknown network node {name!r}; known: {known}")

    def _link_params(self, a: str, b: str) -> tuple[float, float]:
        data = self._graph.get_edge_data(a, b) or {}
        rtt = data.get("rtt_ms")
        bandwidth = data.get("bandwidth_mbps")
        return (
            self.spec.rtt_ms if rtt is None else rtt,
            self.spec.bandwidth_mbps if bandwidth is None else bandwidth,
        )

    def _new_link(self, src: str, dst: str) -> Link:
        self._require(src)
        self._require(dst)
        rtt_ms, bandwidth_mbps = self._link_params(src, dst)
        loopback = src == dst
        link = Link(
            self.ctx,
            src,
            dst,
            base_ms=0.0 if loopback else rtt_ms / 2.0,
            # bytes * 8 bits / (Mb/s * 1e6) s = bytes * 8 / (Mb/s * 1e3) ms
            ms_per_byte=0.0 if loopback else 8.0 / (bandwidth_mbps * 1000.0),
            jitter_sigma=self.spec.jitter,
            rto_ms=self.spec.tcp_rto_ms,
        )
        if src != dst:
            self._apply_node_faults(link)
            for cut in self._cuts.values():
                if cut.covers(src, dst):
                    if not link.cut_count:
                        link.cut_since_ms = cut.started_ms
                    link.cut_count += 1
                    cut.links.append(link)
        self._links[(src, dst)] = link
        return link

    def link(self, src: str, dst: str) -> Link:
        """The directed link src -> dst (created with LAN defaults on first use)."""
        return self._links.get((src, dst)) or self._new_link(src, dst)

    # --- delays -------------------------------------------------------------------------------
    def delay(self, src: str, dst: str, nbytes: float = 0) -> float:
        """Sampled one-way delay (ms) of one message: latency x jitter + serialization + faults."""
        link = self._links.get((src, dst)) or self._new_link(src, dst)
        return link.sample(nbytes)

    def delays(self, src: str, dst: str, n: int, nbytes: float | np.ndarray = 0) -> np.ndarray:
        """`n` sampled one-way delays (ms) at once."""
        return self.link(src, dst).samples(n, nbytes)

    def reachable(self, src: str, dst: str) -> bool:
        """False while a cut covers src -> dst."""
        link = self._links.get((src, dst)) or self._new_link(src, dst)
        return not link.cut_count

    # --- TCP-like delivery ----------------------------------------------------------------------
    def send(
        self,
        src: str,
        dst: str,
        nbytes: float,
        on_arrival: Callable[[], None],
        *,
        timeout_ms: float | None = None,
        on_reset: Callable[[], None] | None = None,
    ) -> None:
        """Deliver like a TCP connection: in order, after a delay, held through a cut.

        A message that meets a cut waits (TCP keeps retransmitting) and arrives a fresh delay
        after the heal. If it waited longer than `timeout_ms` (the protocol's own request or
        session timeout; None = wait forever) the connection is reset instead: `on_reset` runs
        at (send time or cut start) + timeout_ms and the message is never delivered.
        """
        link = self._links.get((src, dst)) or self._new_link(src, dst)
        env = self.env
        now = env.now
        msg = _Message(self, link, nbytes, on_arrival, on_reset, timeout_ms, now)
        link.queue.append(msg)
        if link.cut_count:
            self._hold(msg, now)
            return
        # `_launch` inlined: this is the hot path
        arrival = now + link.sample(nbytes)
        if arrival < link.last_arrival_ms:
            arrival = link.last_arrival_ms
        link.last_arrival_ms = arrival
        env.timeout(arrival - now).callbacks.append(msg.reached)

    def _launch(self, msg: _Message, now: float) -> None:
        link = msg.link
        arrival = now + link.sample(msg.nbytes)
        # TCP delivers a byte stream in order: nothing overtakes an earlier message on the link.
        if arrival < link.last_arrival_ms:
            arrival = link.last_arrival_ms
        link.last_arrival_ms = arrival
        self.env.timeout(arrival - now).callbacks.append(msg.reached)

    def _reached(self, msg: _Message) -> None:
        link = msg.link
        if link.cut_count:
            # Caught in flight: the connection is broken since the cut began (or since the send).
            since = link.cut_since_ms if link.cut_since_ms > msg.sent_ms else msg.sent_ms
            self._hold(msg, since)
            return
        queue = link.queue
        if queue[0] is msg:  # the usual case: nothing sent earlier is still on its way
            queue.popleft()
            msg.on_arrival()
            if queue and queue[0].state != _IN_FLIGHT:
                self._deliver_ready(link)
            return
        msg.state = _ARRIVED
        self._deliver_ready(link)

    def _deliver_ready(self, link: Link) -> None:
        # Head-of-line blocking: a message that arrived waits for every earlier one.
        queue = link.queue
        while queue:
            head = queue[0]
            if head.state == _ARRIVED:
                queue.popleft()
                head.on_arrival()
            elif head.state == _RESET:
                queue.popleft()
            else:
                return

    def _hold(self, msg: _Message, since_ms: float) -> None:
        msg.state = _HELD
        msg.holds += 1
        if msg.timeout_ms is None:
            return
        wait = since_ms + msg.timeout_ms - self.env.now
        holds = msg.holds
        if wait <= 0:
            self._expire(msg, holds)
        else:
            self.env.timeout(wait).callbacks.append(lambda _ev: self._expire(msg, holds))

    def _expire(self, msg: _Message, holds: int) -> None:
        if msg.state != _HELD or msg.holds != holds:
            return  # released by a heal in the meantime
        msg.state = _RESET
        link = msg.link
        if not link.reset_recorded:
            # One event per link and cut, not one per message caught in it.
            link.reset_recorded = True
            self.ctx.event("connection_reset", node=link.src, dst=link.dst)
        if msg.on_reset is not None:
            msg.on_reset()
        self._deliver_ready(link)

    # --- faults: cuts -------------------------------------------------------------------------------
    def partition(self, groups: list[list[str]]) -> int:
        """Cut every link between different groups, both ways; returns the cut id for `heal`.

        Nodes in no group stay connected to everyone (like a switch port outside the split).
        """
        group_of: dict[str, int] = {}
        for index, group in enumerate(groups):
            for name in group:
                self._require(name)
                if group_of.setdefault(name, index) != index:
                    raise ValueError(f"node {name!r} is in more than one partition group")
        cut = self._add_cut(_Cut(self._next_cut_id, self.env.now, group_of=group_of))
        self.ctx.event("partition", node="", cut_id=cut.cut_id, groups=[list(g) for g in groups])
        return cut.cut_id

    def isolate(self, node: str, one_way: bool = False) -> int:
        """Cut every link of `node` (only its outgoing ones if `one_way`); returns the cut id."""
        self._require(node)
        cut = self._add_cut(_Cut(self._next_cut_id, self.env.now, node=node, one_way=one_way))
        self.ctx.event("partition", node=node, cut_id=cut.cut_id, one_way=one_way)
        return cut.cut_id

    def _add_cut(self, cut: _Cut) -> _Cut:
        self._next_cut_id += 1
        self._cuts[cut.cut_id] = cut
        # Links not created yet pick the cut up in `_new_link`.
        for link in self._links.values():
            if cut.covers(link.src, link.dst):
                if not link.cut_count:
                    link.cut_since_ms = cut.started_ms
                link.cut_count += 1
                cut.links.append(link)
        return cut

    def heal(self, cut_id: int | None = None) -> None:
        """End one cut, or all; a link is up again once no cut covers it. Unknown ids: no-op."""
        ids = list(self._cuts) if cut_id is None else [cut_id]
        now = self.env.now
        for cid in ids:
            cut = self._cuts.pop(cid, None)
            if cut is None:
                continue
            self.ctx.event("heal", node=cut.node, cut_id=cid)
            for link in cut.links:
                link.cut_count -= 1
                if link.cut_count:
                    continue
                link.reset_recorded = False
                # TCP's next retransmission gets through: held messages leave in send order.
                for msg in link.queue:
                    if msg.state == _HELD:
                        msg.state = _IN_FLIGHT
                        self._launch(msg, now)

    def cut_links(self) -> list[tuple[str, str]]:
        """Directed pairs of registered nodes that are currently cut."""
        cuts = list(self._cuts.values())
        nodes = list(self._graph.nodes)
        return [(a, b) for a in nodes for b in nodes if any(cut.covers(a, b) for cut in cuts)]

    # --- faults: delay and loss ---------------------------------------------------------------------
    def set_delay(self, node: str, extra_ms: float) -> None:
        """Extra one-way latency on every message to or from `node` (like `tc netem delay`)."""
        self._require(node)
        self._node_delay_ms[node] = extra_ms
        self._refresh_node_faults(node)

    def clear_delay(self, node: str) -> None:
        self._node_delay_ms.pop(node, None)
        self._refresh_node_faults(node)

    def set_loss(self, node: str, probability: float) -> None:
        """Packet loss on every segment to or from `node` (like `tc netem loss`)."""
        self._require(node)
        if not 0.0 <= probability < 1.0:
            raise ValueError(f"loss probability must be in [0, 1), got {probability}")
        self._node_loss[node] = probability
        self._refresh_node_faults(node)

    def clear_loss(self, node: str) -> None:
        self._node_loss.pop(node, None)
        self._refresh_node_faults(node)

    def _refresh_node_faults(self, node: str) -> None:
        for (src, dst), link in self._links.items():
            if src != dst and node in (src, dst):
                self._apply_node_faults(link)

    def _apply_node_faults(self, link: Link) -> None:
        delay, loss = self._node_delay_ms, self._node_loss
        link.extra_delay_ms = delay.get(link.src, 0.0) + delay.get(link.dst, 0.0)
        # A segment survives only if both ends' faults let it through.
        survive = (1.0 - loss.get(link.src, 0.0)) * (1.0 - loss.get(link.dst, 0.0))
        link.loss_probability = 1.0 - survive
