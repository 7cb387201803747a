"""Kafka state invariants beyond those `KafkaModel.check_invariants` already checks.

`KafkaModel.check_invariants` (cluster.py) checks log start <= HW <= LEO on every replica and the
log matching property. This module adds, as a pure function of the model's state:

- at most one leader per leader epoch of a partition, both in the history of elections
  (`PartitionShared.elections`) and among the replicas that believe they lead right now (a
  partitioned or crashed broker may still believe it leads, but only with an older epoch:
  KIP-101/KIP-279 leader epochs fence it);
- the ISR contains the leader, in the controller's record (`PartitionState`: KRaft never
  removes the leader from the ISR, and an offline partition has no leader) and on the leading
  replica itself (`PartitionReplica.isr`: the leader never proposes an ISR without itself);
- a committed consumer offset (`Group.committed`) is <= the highest high watermark a leader of
  its partition reached (a later restart or truncation may move the HW below it: the group
  resets and records that); see `check_committed_offsets`.

Every check reads attributes through getattr so it lights up as the state appears.
"""

from __future__ import annotations

from typing import Any

from simulator.model import InvariantViolation
from simulator.node import CRASHED, STOPPED


def check(model: Any) -> None:
    """Raise InvariantViolation at the first broken Kafka invariant."""
    check_one_leader_per_epoch(model)
    check_isr_contains_leader(model)
    check_committed_offsets(model)


def check_one_leader_per_epoch(model: Any) -> None:
    now = model.env.now
    for shared in getattr(model, "partitions", []):
        leaders: dict[int, int] = {}
        for election in getattr(shared, "elections", []):
            seen = leaders.setdefault(election.epoch, election.leader)
            if seen != election.leader:
                state = {
                    "partition": shared.partition,
                    "leader_epoch": election.epoch,
                    "leaders": sorted({seen, election.leader}),
                }
                raise InvariantViolation(
                    election.t_ms, f"broker{election.leader}", "two leaders in one epoch", state
                )
    believers: dict[tuple[int, int], str] = {}
    for broker in getattr(model, "brokers", []):
        for rep in getattr(broker, "replicas", {}).values():
            if not getattr(rep, "is_leader", False):
                continue
            key = (rep.partition, rep.leader_epoch)
            other = believers.setdefault(key, broker.name)
            if other != broker.name:
                state = {"partition": key[0], "leader_epoch": key[1], "other": other}
                raise InvariantViolation(
                    now, broker.name, "two replicas lead the same partition in one epoch", state
                )


def check_isr_contains_leader(model: Any) -> None:
    now = model.env.now
    controller = getattr(model, "controller", None)
    for state in getattr(controller, "states", {}).values():
        if state.leader >= 0 and state.leader not in state.isr:
            where = {
                "partition": state.partition,
                "leader": state.leader,
                "isr": list(state.isr),
                "leader_epoch": state.leader_epoch,
            }
            raise InvariantViolation(
                now, "controller", "the ISR does not contain the leader", where
            )
    for broker in getattr(model, "brokers", []):
        if getattr(broker, "state", None) in (CRASHED, STOPPED):
            continue  # a broker that is down holds no live view; it rebuilds it on restart
        for rep in getattr(broker, "replicas", {}).values():
            if not getattr(rep, "is_leader", False):
                continue
            for label, isr in (("isr", rep.isr), ("proposed_isr", rep.proposed_isr)):
                if isr is not None and broker.id not in isr:
                    where = {"partition": rep.partition, label: list(isr)}
                    raise InvariantViolation(
                        now, broker.name, f"the leader is not in its own {label}", where
                    )


def check_committed_offsets(model: Any) -> None:
    """Every committed offset is <= the highest high watermark a leader of its partition ever
    reached (`PartitionShared.max_hw`).

    A consumer reads only below its leader's HW, and commits positions it reached (a reset goes
    to the log start or the HW): whatever happened since (a leader's restart reloading an older
    HW checkpoint, an election, a truncation), the commit was at most that HW when its records
    were fetched. The HW of the replicas right now is no bound: a commit made after a restart or
    an election may rightly carry a position fetched before it.
    """
    group = getattr(model, "group", None)
    committed = getattr(group, "committed", None)
    partitions = getattr(model, "partitions", None)
    if not committed or not partitions:
        return
    for p, commit in sorted(committed.items()):
        offset = commit[0] if isinstance(commit, tuple) else commit
        highest_hw = partitions[p].max_hw
        if offset > highest_hw:
            state = {"partition": p, "committed_offset": offset, "highest_hw": highest_hw}
            raise InvariantViolation(
                model.env.now, "group", "committed offset beyond the high watermark", state
            )
