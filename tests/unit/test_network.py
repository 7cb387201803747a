"""Network: LAN delays, TCP-like ordering, cuts that hold or reset messages, delay and loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulator.context import RunContext
from simulator.network import Network
from simulator.scenario import Network as NetworkSpec
from simulator.scenario import ScenarioBase, ScenarioMeta


def make_network(
    nodes: tuple[str, ...] = ("a", "b", "c", "d"), seed: int = 1, **network: Any
) -> Network:
    """A network of `nodes` in a fresh run starting at t = 0.

    `model_construct` skips only the cross-section checks, which need a registered system model;
    each section is still validated, and the network needs nothing else.
    """
    spec = ScenarioBase.model_construct(
        scenario=ScenarioMeta(warmup_s=0.0, seed=seed), network=NetworkSpec(**network)
    )
    ctx = RunContext(spec)
    net = Network(ctx, spec.network)
    for name in nodes:
        net.add_node(name, role="server")
    return net


def at(net: Network, t_ms: float, action: Any) -> None:
    """Run `action()` at simulated time `t_ms`."""
    net.env.timeout(t_ms - net.env.now).callbacks.append(lambda _ev: action())


def send_recording(net: Network, src: str, dst: str, label: Any, log: list, **kw: Any) -> None:
    """Send an empty message whose arrival (or reset) appends (label, time, what) to `log`."""
    net.send(
        src,
        dst,
        0,
        lambda: log.append((label, net.env.now, "arrived")),
        on_reset=lambda: log.append((label, net.env.now, "reset")),
        **kw,
    )


# --- delays -----------------------------------------------------------------------------------
def test_mean_one_way_delay_is_half_rtt() -> None:
    # Jitter sigma 0.2: the lognormal factor has coefficient of variation ~0.20, so the mean of
    # n = 20000 samples has a standard error of ~0.14%; ±2% is more than 10 standard errors.
    net = make_network(rtt_ms=0.2, jitter=0.2)
    scalar = np.array([net.delay("a", "b") for _ in range(20_000)])
    vector = net.delays("b", "a", 20_000)
    assert scalar.mean() == pytest.approx(0.1, rel=0.02)
    assert vector.mean() == pytest.approx(0.1, rel=0.02)
    assert scalar.std() > 0  # jitter really varies the delay


def test_same_seed_gives_same_delays() -> None:
    first = [make_network(seed=7).delay("a", "b") for _ in range(3)]
    again = [make_network(seed=7).delay("a", "b") for _ in range(3)]
    other = [make_network(seed=8).delay("a", "b") for _ in range(3)]
    assert first == again
    assert first != other


def test_large_message_pays_serialization_time() -> None:
    net = make_network(rtt_ms=0.2, jitter=0.0, bandwidth_mbps=10_000)
    # 1 MB at 10 Gb/s = 8e6 bits / 1e10 bit/s = 0.8 ms on top of the 0.1 ms one-way latency
    assert net.delay("a", "b", nbytes=1_000_000) == pytest.approx(0.9)


def test_explicit_link_overrides_lan_defaults() -> None:
    net = make_network(rtt_ms=0.2, jitter=0.0)
    net.add_link("a", "b", rtt_ms=80.0)  # a cross-region link
    assert net.delay("a", "b") == pytest.approx(40.0)
    assert net.delay("b", "a") == pytest.approx(40.0)
    assert net.delay("a", "c") == pytest.approx(0.1)


def test_graph_carries_roles_and_links() -> None:
    net = make_network(nodes=("x", "y", "z"))
    net.add_node("client", role="client")
    net.connect_all(["x", "y", "z"])
    assert net.graph.nodes["client"]["role"] == "client"
    assert net.graph.number_of_edges() == 3


def test_unknown_node_is_an_error() -> None:
    net = make_network()
    with pytest.raises(KeyError, match="unknown network node 'nope'"):
        net.delay("a", "nope")


# --- TCP-like delivery --------------------------------------------------------------------------
def test_fifo_per_link() -> None:
    # Jitter sigma 1.5 makes successive delays differ by far more than the 1 us send spacing.
    net = make_network(jitter=1.5)
    log: list = []

    def sender():
        for i in range(2000):
            send_recording(net, "a", "b", i, log)
            yield net.env.timeout(0.001)

    net.env.process(sender())
    net.env.run()
    assert [label for label, _, _ in log] == list(range(2000))
    times = [t for _, t, _ in log]
    assert times == sorted(times)


def test_message_sent_across_short_cut_arrives_after_heal() -> None:
    net = make_network(rtt_ms=0.2, jitter=0.0)
    log: list = []
    at(net, 10, lambda: net.isolate("b"))
    at(net, 20, lambda: send_recording(net, "a", "b", "m", log, timeout_ms=1000))
    at(net, 100, net.heal)
    net.env.run()
    assert log == [("m", pytest.approx(100.1), "arrived")]


def test_message_in_flight_when_cut_starts_arrives_after_heal() -> None:
    net = make_network(rtt_ms=10.0, jitter=0.0)  # 5 ms in flight
    log: list = []
    send_recording(net, "a", "b", "m", log, timeout_ms=1000)
    at(net, 1, lambda: net.partition([["a"], ["b"]]))
    at(net, 50, net.heal)
    net.env.run()
    assert log == [("m", pytest.approx(55.0), "arrived")]


def test_long_cut_resets_connection_after_timeout() -> None:
    net = make_network(jitter=0.0)
    log: list = []
    at(net, 10, lambda: net.isolate("b"))
    at(net, 20, lambda: send_recording(net, "a", "b", "sent_during_cut", log, timeout_ms=100))
    at(net, 30, lambda: send_recording(net, "a", "b", "second", log, timeout_ms=100))
    at(net, 500, net.heal)
    net.env.run()
    # reset at send time + timeout, never delivered, even after the heal
    assert log == [
        ("sent_during_cut", pytest.approx(120.0), "reset"),
        ("second", pytest.approx(130.0), "reset"),
    ]
    resets = [e for e in net.ctx.events if e.kind == "connection_reset"]
    assert len(resets) == 1  # one event per link and cut, not per message
    assert (resets[0].node, resets[0].detail["dst"]) == ("a", "b")


def test_in_flight_message_times_out_from_cut_start() -> None:
    net = make_network(rtt_ms=10.0, jitter=0.0)
    log: list = []
    send_recording(net, "a", "b", "m", log, timeout_ms=100)
    at(net, 1, lambda: net.isolate("a"))
    net.env.run()
    assert log == [("m", pytest.approx(101.0), "reset")]


def test_message_without_timeout_waits_for_the_heal() -> None:
    net = make_network(jitter=0.0)
    log: list = []
    net.isolate("a")
    send_recording(net, "a", "b", "m", log)
    at(net, 3_600_000, net.heal)
    net.env.run()
    assert log == [("m", pytest.approx(3_600_000.1), "arrived")]


def test_messages_held_by_a_cut_leave_in_send_order() -> None:
    net = make_network(jitter=1.5)
    log: list = []
    net.isolate("b")
    for i in range(50):
        at(net, i, lambda i=i: send_recording(net, "a", "b", i, log))
    at(net, 100, net.heal)
    net.env.run()
    assert [label for label, _, _ in log] == list(range(50))
    assert min(t for _, t, _ in log) >= 100


def test_later_message_waits_behind_one_held_by_a_cut() -> None:
    # TCP head-of-line blocking: "second" reaches b at 9.9 but the byte stream is only readable
    # once "first", held at b's door by the cut and retransmitted after the heal, gets there.
    net = make_network(rtt_ms=10.0, jitter=0.0)  # 5 ms one way
    log: list = []
    send_recording(net, "a", "b", "first", log, timeout_ms=1000)  # reaches b at 5: cut
    at(net, 4.9, lambda: send_recording(net, "a", "b", "second", log))  # in flight until 9.9
    at(net, 4.95, lambda: net.isolate("b"))
    at(net, 5.5, net.heal)  # "first" leaves again: 5.5 + 5 = 10.5
    net.env.run()
    assert log == [
        ("first", pytest.approx(10.5), "arrived"),
        ("second", pytest.approx(10.5), "arrived"),
    ]


# --- cuts -----------------------------------------------------------------------------------------
def test_partition_groups_leave_unlisted_nodes_connected() -> None:
    net = make_network()
    net.partition([["a"], ["b"]])
    assert not net.reachable("a", "b")
    assert not net.reachable("b", "a")
    for other in ("a", "b", "d"):
        assert net.reachable("c", other)
        assert net.reachable(other, "c")
    assert net.cut_links() == [("a", "b"), ("b", "a")]


def test_overlapping_cuts_compose() -> None:
    net = make_network()
    isolation = net.isolate("a")
    split = net.partition([["a", "b"], ["c"]])
    net.heal(isolation)
    assert net.reachable("a", "b")
    assert not net.reachable("a", "c")  # still covered by the partition
    net.heal(split)
    assert net.reachable("a", "c")
    assert net.cut_links() == []


def test_one_way_isolation_cuts_only_outgoing_traffic() -> None:
    net = make_network()
    net.isolate("a", one_way=True)
    assert not net.reachable("a", "b")
    assert net.reachable("b", "a")


def test_partition_and_heal_are_recorded() -> None:
    net = make_network()
    cut = net.partition([["a"], ["b", "c"]])
    net.heal()
    net.heal(cut)  # already healed: nothing happens
    kinds = [(e.kind, e.detail["cut_id"]) for e in net.ctx.events]
    assert kinds == [("partition", cut), ("heal", cut)]


# --- delay and loss faults ----------------------------------------------------------------------------
def test_delay_fault_adds_extra_latency_both_ways() -> None:
    net = make_network(jitter=0.0)
    net.set_delay("b", 100.0)
    assert net.delay("a", "b") == pytest.approx(100.1)
    assert net.delay("b", "a") == pytest.approx(100.1)
    assert net.delay("a", "c") == pytest.approx(0.1)
    net.clear_delay("b")
    assert net.delay("a", "b") == pytest.approx(0.1)


def test_packet_loss_adds_retransmission_delay() -> None:
    # Loss 0.3 on small (one-segment) messages: 30% of them wait for at least one RTO (200 ms).
    # With n = 20000 the share has a standard error of sqrt(0.3 * 0.7 / 20000) = 0.32%, so
    # ±2 percentage points is more than 6 standard errors.
    net = make_network(jitter=0.0, tcp_rto_ms=200.0)
    net.set_loss("a", 0.3)
    for delays in (
        np.array([net.delay("a", "b") for _ in range(20_000)]),
        net.delays("a", "b", 20_000),
    ):
        extra = delays - 0.1
        assert (extra > 1).mean() == pytest.approx(0.3, abs=0.02)
        # k retransmissions with exponential backoff cost 200 * (2^k - 1): 0, 200, 600, 1400, ...
        k = np.log2(extra / 200.0 + 1.0)
        assert np.allclose(k, np.round(k))
        # a retransmission is itself lost 30% of the time: P(k >= 2 | k >= 1) = 0.3
        assert (k >= 2).sum() / (k >= 1).sum() == pytest.approx(0.3, abs=0.05)
    net.clear_loss("a")
    assert net.delay("a", "b") == pytest.approx(0.1)


def test_packet_loss_never_drops_a_message() -> None:
    net = make_network()
    net.set_loss("b", 0.5)
    log: list = []
    for i in range(200):
        send_recording(net, "a", "b", i, log)
    net.env.run()
    assert [label for label, _, _ in log] == list(range(200))
