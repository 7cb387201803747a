"""The cluster at any moment of a run, rebuilt from the run's recorded events, faults and nodes.

A `Result` keeps what happened as a log. The timeline turns that log into step functions (node
state, cut links, partition leaders, in-sync replicas, node roles) and answers "what did the
cluster look like at t?" by binary search, for the dashboard's architecture view and the
notebooks. It reads tables only, never a model (DESIGN rule 2), so it works for every system.

Events it understands (any other event is kept in the log and changes no state):

| event | node | detail | effect |
|---|---|---|---|
| `crash`, `power_loss` | the node | | crashed |
| `stop` | the node | | stopped |
| `restart` | the node | | up |
| `pause` / `resume` | the node | | paused / back to the state before the pause |
| `loading`, `*_loading` | the node | | loading (while up) |
| `loaded`, `*_loaded`, `loading_done` | the node | | up (when loading) |
| `*_fenced` / `*_unfenced` | the node | | flag `fenced` set / cleared |
| `partition` | `""` | `cut_id`, `groups` | links between nodes of different groups cut |
| `partition` | the node | `cut_id`, `one_way` | the node's links cut (only outgoing if one_way) |
| `heal` | | `cut_id` | that cut ends |
| `leader_elected`, `unclean_election` | | `partition`, `leader` | the partition's leader |
| `became_leader` | the leader | `partition` | the partition's leader |
| `partition_offline` | | `partition` | the partition has no leader |
| `failover` | | `new_primary` | the leader of partition `primary` |
| `isr_shrink`, `isr_expand`, `isr_change` | | `partition`, `isr` | the partition's ISR |
| `role_change` | the node | `role` | the node's role from then on |

A leader or ISR member may be a node name or a broker id: id 1 is the one server-like node whose
name ends in 1 (`broker1`). A `leader` of null, "" or a negative id means no leader. A leader
event that also carries `isr` sets the partition's ISR.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.node import CRASHED, LOADING, PAUSED, STOPPED, UP

if TYPE_CHECKING:
    from simulator.results import Result

NODE_STATES = (UP, LOADING, PAUSED, STOPPED, CRASHED)
_DOWN_EVENTS = {"crash": CRASHED, "power_loss": CRASHED, "stop": STOPPED}
_STATE_EVENTS = {"crash", "power_loss", "stop", "restart", "pause", "resume", "loaded"}
_LEADER_EVENTS = (
    "leader_elected",
    "unclean_election",
    "became_leader",
    "partition_offline",
    "failover",
)
_ISR_EVENTS = ("isr_shrink", "isr_expand", "isr_change")
_CUT_EVENTS = ("partition", "heal")
_ROLE_EVENT = "role_change"
_CLIENT_ROLES = ("client", "producer", "publisher", "consumer", "subscriber", "worker")
_TRAILING_NUMBER = re.compile(r"^\D.*?(\d+)$")
PRIMARY_PARTITION = "primary"  # where a Redis failover's new primary is filed
_UNSET = object()


def _is_loading(kind: str) -> bool:
    return kind == "loading" or kind.endswith("_loading")


def _is_loaded(kind: str) -> bool:
    return kind in ("loaded", "loading_done") or kind.endswith(("_loaded", "_loading_done"))


def _flag_change(kind: str) -> tuple[str, bool] | None:
    """(flag, set?) for flag events: `broker_fenced` sets `fenced`, `broker_unfenced` clears."""
    if kind.endswith("_unfenced"):
        return "fenced", False
    if kind.endswith("_fenced"):
        return "fenced", True
    return None


@dataclass(frozen=True)
class Cut:
    """One partition (groups cut from each other) or isolation (one node), from begin to end."""

    cut_id: int
    begin_ms: float
    end_ms: float  # inf: never healed
    groups: tuple[tuple[str, ...], ...] = ()
    node: str = ""
    one_way: bool = False

    def covers(self, src: str, dst: str) -> bool:
        """True if traffic from src to dst is cut (as simulator.network's cut decides)."""
        if src == dst:
            return False
        if self.groups:
            group_of = {name: i for i, group in enumerate(self.groups) for name in group}
            a, b = group_of.get(src), group_of.get(dst)
            return a is not None and b is not None and a != b
        return src == self.node or (not self.one_way and dst == self.node)

    def active(self, t_ms: float) -> bool:
        return self.begin_ms <= t_ms < self.end_ms


@dataclass(frozen=True)
class CutLink:
    """A pair of nodes whose link is cut: both ways, or only from `a` to `b` (one_way)."""

    a: str
    b: str
    one_way: bool = False


@dataclass(frozen=True)
class Snapshot:
    """The cluster at one moment."""

    t_ms: float
    nodes: pd.DataFrame  # name, role, state, leader_of, in_isr_of, flags, faults
    cut_links: list[CutLink]
    leaders: dict[str, str | None]  # partition -> leader (None: no leader)
    isr: dict[str, tuple[str, ...]]  # partition -> in-sync replicas
    faults: pd.DataFrame  # the rows of the faults table active at t

    def state_of(self, name: str) -> str:
        return str(self.nodes.loc[self.nodes["name"] == name, "state"].iloc[0])


class _Steps:
    """A step function per key: the value set at each time, looked up by binary search."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[Any]] = {}

    def set(self, key: str, t_ms: float, value: Any) -> None:
        self._times.setdefault(key, []).append(t_ms)
        self._values.setdefault(key, []).append(value)

    def at(self, key: str, t_ms: float, default: Any = None) -> Any:
        times = self._times.get(key)
        if not times:
            return default
        i = bisect.bisect_right(times, t_ms)  # events at exactly t have happened
        return self._values[key][i - 1] if i else default

    def names(self) -> list[str]:
        return list(self._times)

    def times(self) -> list[float]:
        return [t for times in self._times.values() for t in times]

    def items(self, key: str) -> list[tuple[float, Any]]:
        return list(zip(self._times.get(key, []), self._values.get(key, []), strict=True))


def _detail(text: Any) -> dict[str, Any]:
    if not isinstance(text, str) or not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return ()


class Timeline:
    """Node states, cut links, leaders, ISR and roles of one run as functions of time."""

    def __init__(
        self,
        events: pd.DataFrame,
        faults: pd.DataFrame | None = None,
        nodes: pd.DataFrame | None = None,
        *,
        duration_ms: float = 0.0,
    ) -> None:
        order = np.argsort(events["t_ms"].to_numpy(dtype=float), kind="stable")
        self.events = events.iloc[order].reset_index(drop=True)
        self._event_times = self.events["t_ms"].to_numpy(dtype=float)
        self.faults = faults if faults is not None else pd.DataFrame()
        self._roles: dict[str, str] = {}
        if nodes is not None and len(nodes):
            self._roles = {
                str(n): str(r) for n, r in zip(nodes["name"], nodes["role"], strict=True)
            }
        self._states = _Steps()
        self._leaders = _Steps()
        self._isr = _Steps()
        self._role_steps = _Steps()
        self._flags = _Steps()  # "node/flag" -> bool
        self.cuts: list[Cut] = []
        self._replay()
        times = self._event_times
        self.start_ms = float(min(0.0, times[0])) if times.size else 0.0
        self.end_ms = float(max(duration_ms, times[-1])) if times.size else float(duration_ms)

    @classmethod
    def from_result(cls, result: Result) -> Timeline:
        duration_ms = float(result.summary.get("duration_s", 0.0)) * 1000.0
        return cls(result.events, result.faults, result.nodes, duration_ms=duration_ms)

    # --- replay the log once ------------------------------------------------------------------
    def _replay(self) -> None:
        kinds = self.events["kind"].astype(str)
        relevant = (
            kinds.isin([*_STATE_EVENTS, *_LEADER_EVENTS, *_ISR_EVENTS, *_CUT_EVENTS, _ROLE_EVENT])
            | kinds.isin(["loading", "loading_done"])
            | kinds.str.endswith(("_loading", "_loaded", "_loading_done", "fenced"))
        )
        rows = self.events.loc[relevant.to_numpy()]
        state: dict[str, str] = {}
        before_pause: dict[str, str] = {}
        open_cuts: dict[int, dict[str, Any]] = {}
        for t_ms, kind, node, text in zip(
            rows["t_ms"].astype(float),
            rows["kind"].astype(str),
            rows["node"],
            rows["detail"],
            strict=True,
        ):
            name = "" if node is None or node is pd.NA else str(node)
            detail = _detail(text)
            if kind in _CUT_EVENTS:
                self._cut_event(kind, t_ms, name, detail, open_cuts)
            elif kind in _LEADER_EVENTS:
                self._leader_event(kind, t_ms, name, detail)
            elif kind in _ISR_EVENTS:
                raw = detail.get("isr")
                members = (
                    tuple(m for m in (self._member(v) for v in raw or []) if m is not None)
                    if isinstance(raw, list)
                    else ()
                )
                self._isr.set(str(detail.get("partition", "")), t_ms, members)
                for member in members:
                    self._roles.setdefault(member, "")
            elif kind == _ROLE_EVENT:
                if name and "role" in detail:
                    self._role_steps.set(name, t_ms, str(detail["role"]))
                    self._roles.setdefault(name, "")
            elif (flag := _flag_change(kind)) is not None:
                if name:
                    self._roles.setdefault(name, "")
                    self._flags.set(f"{name}/{flag[0]}", t_ms, flag[1])
            elif name:
                self._roles.setdefault(name, "")
                new = self._next_state(kind, state.get(name, UP), name, before_pause)
                if new != state.get(name, UP):
                    state[name] = new
                    self._states.set(name, t_ms, new)
        for cut_id, opened in open_cuts.items():
            self.cuts.append(Cut(cut_id, end_ms=math.inf, **opened))
        self.cuts.sort(key=lambda c: (c.begin_ms, c.cut_id))

    @staticmethod
    def _next_state(kind: str, current: str, name: str, before_pause: dict[str, str]) -> str:
        running = current in (UP, LOADING, PAUSED)
        if kind in _DOWN_EVENTS:
            return _DOWN_EVENTS[kind] if running or kind == "power_loss" else current
        if kind == "restart":
            return UP
        if kind == "pause":
            if current in (UP, LOADING):
                before_pause[name] = current
                return PAUSED
            return current
        if kind == "resume":
            return before_pause.pop(name, UP) if current == PAUSED else current
        if _is_loading(kind):
            if current == PAUSED:
                before_pause[name] = LOADING
                return current
            return LOADING if current in (UP, LOADING) else current
        if _is_loaded(kind):
            if current == PAUSED and before_pause.get(name) == LOADING:
                before_pause[name] = UP
            return UP if current == LOADING else current
        return current

    def _cut_event(
        self,
        kind: str,
        t_ms: float,
        node: str,
        detail: dict[str, Any],
        open_cuts: dict[int, dict[str, Any]],
    ) -> None:
        raw_id = detail.get("cut_id")
        if not isinstance(raw_id, int):
            return
        if kind == "partition":
            groups = tuple(_names(g) for g in detail.get("groups") or [] if isinstance(g, list))
            for member in (m for g in groups for m in g):
                self._roles.setdefault(member, "")
            if node:
                self._roles.setdefault(node, "")
            open_cuts[raw_id] = {
                "begin_ms": t_ms,
                "groups": groups,
                "node": "" if groups else node,
                "one_way": bool(detail.get("one_way", False)),
            }
        else:
            opened = open_cuts.pop(raw_id, None)
            if opened is not None:
                self.cuts.append(Cut(raw_id, end_ms=t_ms, **opened))

    def _leader_event(self, kind: str, t_ms: float, node: str, detail: dict[str, Any]) -> None:
        if kind == "failover":
            partition = PRIMARY_PARTITION
            raw = detail.get("new_primary", detail.get("leader", node or None))
        else:
            partition = str(detail.get("partition", ""))
            if kind == "partition_offline":
                raw = None
            elif kind == "became_leader":
                raw = node
            else:
                raw = detail.get("leader", node)
        leader = self._member(raw)
        if leader is not None:
            self._roles.setdefault(leader, "")
        self._leaders.set(partition, t_ms, leader)
        if isinstance(detail.get("isr"), list):  # an election may state the ISR it chose from
            members = tuple(m for m in map(self._member, detail["isr"]) if m is not None)
            self._isr.set(partition, t_ms, members)

    def _member(self, value: Any) -> str | None:
        """A node name from a name or a broker id (None for no one: null, "", negative id)."""
        if value is None or isinstance(value, bool):
            return None
        text = str(value).strip()
        if not text or text in self._roles:
            return text or None
        if not re.fullmatch(r"-?\d+", text):
            return text
        number = int(text)
        if number < 0:
            return None
        named = [
            n
            for n in self._roles
            if (m := _TRAILING_NUMBER.match(n)) is not None and int(m.group(1)) == number
        ]
        servers = [n for n in named if not self._roles[n].lower().startswith(_CLIENT_ROLES)]
        return (servers or named or [text])[0]

    # --- queries -----------------------------------------------------------------------------
    @property
    def node_names(self) -> list[str]:
        """Every node known from the nodes table or named by an event, in first-seen order."""
        return list(self._roles)

    def role_at(self, name: str, t_ms: float) -> str:
        return str(self._role_steps.at(name, t_ms, self._roles.get(name, "")))

    def state_at(self, name: str, t_ms: float) -> str:
        return str(self._states.at(name, t_ms, UP))

    def flags_at(self, name: str, t_ms: float) -> list[str]:
        """Flags set on the node at t (e.g. `fenced`)."""
        prefix = f"{name}/"
        return [
            key.removeprefix(prefix)
            for key in self._flags.names()
            if key.startswith(prefix) and self._flags.at(key, t_ms, False)
        ]

    def leaders_at(self, t_ms: float) -> dict[str, str | None]:
        """Partition -> leader (None: elected no one yet / offline) for partitions seen by t."""
        found = {p: self._leaders.at(p, t_ms, _UNSET) for p in sorted(self._leaders.names())}
        return {p: leader for p, leader in found.items() if leader is not _UNSET}

    def isr_at(self, t_ms: float) -> dict[str, tuple[str, ...]]:
        found = {p: self._isr.at(p, t_ms) for p in sorted(self._isr.names())}
        return {p: members for p, members in found.items() if members is not None}

    def cuts_at(self, t_ms: float) -> list[Cut]:
        return [cut for cut in self.cuts if cut.active(t_ms)]

    def cut_links_at(self, t_ms: float, names: Iterable[str] | None = None) -> list[CutLink]:
        """Pairs of nodes cut from each other at t (each pair once, in node order)."""
        cuts = self.cuts_at(t_ms)
        if not cuts:
            return []
        ordered = list(self.node_names if names is None else names)
        links = []
        for i, a in enumerate(ordered):
            for b in ordered[i + 1 :]:
                forward = any(c.covers(a, b) for c in cuts)
                backward = any(c.covers(b, a) for c in cuts)
                if forward and backward:
                    links.append(CutLink(a, b))
                elif forward:
                    links.append(CutLink(a, b, one_way=True))
                elif backward:
                    links.append(CutLink(b, a, one_way=True))
        return links

    def faults_at(self, t_ms: float) -> pd.DataFrame:
        """The faults active at t (begun, not yet ended; an instantaneous fault never is)."""
        if self.faults.empty:
            return self.faults
        begin = self.faults["begin_ms"].to_numpy(dtype=float)
        end = np.nan_to_num(self.faults["end_ms"].to_numpy(dtype=float), nan=math.inf)
        return self.faults.loc[(begin <= t_ms) & (t_ms < end)]

    def at(self, t_ms: float) -> Snapshot:
        """Everything known about the cluster at t (events at exactly t have happened)."""
        names = self.node_names
        leaders = self.leaders_at(t_ms)
        isr = self.isr_at(t_ms)
        active = self.faults_at(t_ms)
        fault_kinds: dict[str, list[str]] = {}
        for kind, nodes in zip(active.get("kind", []), active.get("nodes", []), strict=True):
            for name in str(nodes).split(","):
                if name and kind not in fault_kinds.setdefault(name, []):
                    fault_kinds[name].append(str(kind))
        frame = pd.DataFrame(
            {
                "name": names,
                "role": [self.role_at(n, t_ms) for n in names],
                "state": [self.state_at(n, t_ms) for n in names],
                "leader_of": [
                    ",".join(p for p, leader in leaders.items() if leader == n) for n in names
                ],
                "in_isr_of": [",".join(p for p, m in isr.items() if n in m) for n in names],
                "flags": [",".join(self.flags_at(n, t_ms)) for n in names],
                "faults": [",".join(fault_kinds.get(n, [])) for n in names],
            },
            columns=["name", "role", "state", "leader_of", "in_isr_of", "flags", "faults"],
        )
        return Snapshot(t_ms, frame, self.cut_links_at(t_ms, names), leaders, isr, active)

    def change_times(self) -> np.ndarray:
        """Sorted distinct times at which something the architecture view shows changes."""
        times = [
            *self._states.times(),
            *self._leaders.times(),
            *self._isr.times(),
            *self._role_steps.times(),
            *self._flags.times(),
        ]
        for cut in self.cuts:
            times.append(cut.begin_ms)
            if math.isfinite(cut.end_ms):
                times.append(cut.end_ms)
        if not self.faults.empty:
            times.extend(self.faults["begin_ms"].dropna().astype(float))
            times.extend(self.faults["end_ms"].dropna().astype(float))
        return np.unique(np.asarray(times, dtype=float))

    def state_intervals(self) -> pd.DataFrame:
        """One row per stretch of one node in one state: name, state, begin_ms, end_ms."""
        rows = []
        for name in self.node_names:
            begin, current = self.start_ms, UP
            for t_ms, state in self._states.items(name):
                if t_ms > begin:
                    rows.append((name, current, begin, t_ms))
                begin, current = max(begin, t_ms), state
            if self.end_ms > begin or not rows or rows[-1][0] != name:
                rows.append((name, current, begin, max(self.end_ms, begin)))
        return pd.DataFrame(rows, columns=["name", "state", "begin_ms", "end_ms"])

    def events_between(self, begin_ms: float, end_ms: float) -> pd.DataFrame:
        """The events with begin_ms <= t_ms <= end_ms, in time order."""
        lo = int(np.searchsorted(self._event_times, begin_ms, side="left"))
        hi = int(np.searchsorted(self._event_times, end_ms, side="right"))
        return self.events.iloc[lo:hi]
