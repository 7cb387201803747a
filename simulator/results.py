"""Result of one run: summary dict + tidy DataFrames + manifest + expectations; save and load.

The summary is a deterministic function of the scenario and the seed (same inputs, same bytes);
wall time, start time and versions live in the manifest. A result directory is written into a
temporary sibling and renamed into place, so a crash never leaves a half-written one.
"""

from __future__ import annotations

import json
import operator
import os
import platform
import re
import shutil
import tempfile
import tomllib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.checker import FATES, Checked
from simulator.recovery import NOT_RECOVERED

if TYPE_CHECKING:
    from simulator.context import RunContext

FILES = ("summary.json", "manifest.json", "scenario.toml")
TABLES = ("timeseries", "events", "faults")
MESSAGES_FILE = "messages.parquet"
# Optional table (results saved before it existed load with an empty one).
NODES_FILE = "nodes.parquet"

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}
_EXPECTATION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


# expectations ----------------------------------------------------------------------------------
def summary_value(summary: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`messages.lost_by_cause.no_persistence`, `faults.0.detect_ms`).

    A cause missing from a `*_by_cause` table counts as 0; any other missing key is a KeyError.
    """
    node: Any = summary
    parent = ""
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and parent.endswith("_by_cause"):
            return 0
        else:
            raise KeyError(path)
        parent = part
    return node


def _operand(summary: dict[str, Any], text: str, check: str) -> Any:
    if _NUMBER.match(text):
        return float(text)
    try:
        value = summary_value(summary, text)
    except KeyError:
        raise ValueError(f"expectation {check!r}: no summary key {text!r}") from None
    if isinstance(value, dict | list):
        raise ValueError(f"expectation {check!r}: {text!r} is a table, not a number")
    return value


def evaluate_expectations(
    summary: dict[str, Any], expectations: Iterable[Any]
) -> list[dict[str, Any]]:
    """Check each `<summary key> <op> <number | summary key>` claim against the summary.

    Accepts Expectation specs, dicts with `check` (and `why`) or plain strings. A malformed claim
    or an unknown key raises ValueError naming it; a side that is not a number (None, or
    "not_recovered") makes the claim not held.
    """
    out = []
    for item in expectations:
        if isinstance(item, str):
            check, why = item, ""
        elif isinstance(item, dict):
            check, why = item.get("check", ""), item.get("why", "")
        else:
            check, why = item.check, item.why
        match = _EXPECTATION.match(str(check))
        if match is None:
            raise ValueError(
                f"expectation {check!r}: expected `<summary key> <op> <number or summary key>` "
                f"with op in {' '.join(_OPS)}, e.g. `messages.lost == 0`"
            )
        left, op, right = match.groups()
        actual = _operand(summary, left, check)
        expected = _operand(summary, right, check)
        numeric = all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in (actual, expected)
        )
        held = bool(_OPS[op](actual, expected)) if numeric else False
        out.append({"check": str(check), "why": str(why), "held": held, "actual": actual})
    return out


# manifest --------------------------------------------------------------------------------------
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def versions() -> dict[str, str]:
    """Versions that can change a result (recorded in the manifest, never in the summary)."""
    return {
        "rksim": _version("rksim"),
        "python": platform.python_version(),
        "simpy": _version("simpy"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
    }


def build_manifest(ctx: RunContext, *, wall_s: float, started_at: str) -> dict[str, Any]:
    """What ran, with which seed and software, when and how long it took."""
    spec = ctx.spec
    return {
        "scenario": spec.scenario.name,
        "system": spec.system.kind,
        "seed": int(ctx.seed),
        "digest": spec.digest(),
        "versions": versions(),
        "wall_s": float(wall_s),
        "started_at": started_at,
        "sim_events": len(ctx.events),
        "messages": int(ctx.history.n),
    }


# nodes ---------------------------------------------------------------------------------------
def empty_nodes() -> pd.DataFrame:
    """A nodes table without rows (the shape of `nodes_frame`)."""
    return pd.DataFrame(
        {"name": pd.Series([], dtype="string"), "role": pd.Series([], dtype="string")}
    )


def nodes_frame(ctx: RunContext) -> pd.DataFrame:
    """Every participant of the run with the role it started with (architecture view, timeline).

    The network graph holds each node's role from its registration; a node the model never put
    on the network (or a network-only name) is listed from whichever side knows it.
    """
    roles: dict[str, str] = {}
    graph_roles: dict[str, str] = {}
    if ctx.network is not None:
        graph_roles = {
            str(name): str(data.get("role", ""))
            for name, data in ctx.network.graph.nodes(data=True)
        }
    for name, node in ctx.nodes.items():
        roles[name] = graph_roles.get(name, node.role)
    for name, role in graph_roles.items():
        roles.setdefault(name, role)
    return pd.DataFrame(
        {
            "name": pd.Series(list(roles), dtype="string"),
            "role": pd.Series(list(roles.values()), dtype="string"),
        }
    )


# the result ------------------------------------------------------------------------------------
@dataclass(eq=False)
class Result:
    """Everything a run produced that a person, a notebook or the dashboard looks at."""

    summary: dict[str, Any]
    manifest: dict[str, Any]
    scenario_toml: str
    timeseries: pd.DataFrame
    events: pd.DataFrame
    faults: pd.DataFrame
    expectations: list[dict[str, Any]] = field(default_factory=list)
    nodes: pd.DataFrame = field(default_factory=empty_nodes)  # name, role
    messages_loader: Callable[[], pd.DataFrame | None] | None = field(default=None, repr=False)
    _messages: pd.DataFrame | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_run(
        cls, ctx: RunContext, checked: Checked, *, wall_s: float = 0.0, started_at: str = ""
    ) -> Result:
        """Assemble the result of a finished, checked run."""
        return cls(
            summary=checked.summary,
            manifest=build_manifest(ctx, wall_s=wall_s, started_at=started_at),
            scenario_toml=ctx.spec.to_toml(),
            timeseries=checked.timeseries,
            events=checked.events,
            faults=checked.faults,
            expectations=evaluate_expectations(checked.summary, ctx.spec.expect),
            nodes=nodes_frame(ctx),
            messages_loader=checked.build_messages,
        )

    @property
    def messages(self) -> pd.DataFrame | None:
        """One row per message (built or read on first access; None if it was not saved)."""
        if self._messages is None and self.messages_loader is not None:
            self._messages = self.messages_loader()
            self.messages_loader = None
        return self._messages

    @property
    def passed(self) -> bool:
        """Every expectation held."""
        return all(e["held"] for e in self.expectations)

    def summary_json(self) -> str:
        """The summary as canonical JSON (byte-identical for identical runs)."""
        return json.dumps(self.summary, indent=2, allow_nan=False) + "\n"

    # files ---------------------------------------------------------------------------------
    def save(self, directory: str | Path, messages: bool = True) -> Path:
        """Write the result directory atomically: a crash leaves the old one or the new one."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; a result directory is not
            self._write(staging, messages)
            if target.exists():
                retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex}"
                os.replace(target, retired)
                try:
                    os.replace(staging, target)
                except BaseException:
                    os.replace(retired, target)
                    raise
                shutil.rmtree(retired, ignore_errors=True)
            else:
                os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _write(self, directory: Path, messages: bool) -> None:
        (directory / "summary.json").write_text(self.summary_json(), encoding="utf-8")
        manifest = json.dumps(self.manifest, indent=2, sort_keys=True, default=str) + "\n"
        (directory / "manifest.json").write_text(manifest, encoding="utf-8")
        (directory / "scenario.toml").write_text(self.scenario_toml, encoding="utf-8")
        for name in TABLES:
            getattr(self, name).to_parquet(directory / f"{name}.parquet", index=False)
        self.nodes.to_parquet(directory / NODES_FILE, index=False)
        frame = self.messages if messages else None
        if frame is not None:
            frame.to_parquet(directory / MESSAGES_FILE, index=False)

    @classmethod
    def load(cls, directory: str | Path) -> Result:
        """Read a saved result; the messages table is read on first access."""
        source = Path(directory)
        missing = [
            f for f in (*FILES, *(f"{t}.parquet" for t in TABLES)) if not (source / f).exists()
        ]
        if missing:
            raise FileNotFoundError(
                f"{source}: not a result directory (missing {', '.join(missing)})"
            )
        summary = json.loads((source / "summary.json").read_text(encoding="utf-8"))
        scenario_toml = (source / "scenario.toml").read_text(encoding="utf-8")
        messages_path = source / MESSAGES_FILE
        nodes_path = source / NODES_FILE
        try:
            claims = tomllib.loads(scenario_toml).get("expect", [])
        except tomllib.TOMLDecodeError:
            claims = []
        return cls(
            summary=summary,
            manifest=json.loads((source / "manifest.json").read_text(encoding="utf-8")),
            scenario_toml=scenario_toml,
            timeseries=pd.read_parquet(source / "timeseries.parquet"),
            events=pd.read_parquet(source / "events.parquet"),
            faults=pd.read_parquet(source / "faults.parquet"),
            expectations=evaluate_expectations(summary, claims),
            nodes=pd.read_parquet(nodes_path) if nodes_path.exists() else empty_nodes(),
            messages_loader=(lambda: pd.read_parquet(messages_path))
            if messages_path.exists()
            else None,
        )

    # text ------------------------------------------------------------------------------------
    def engine_note(self) -> str | None:
        """How the model ran, when it has two engines (Kafka): planned, or event by event
        because the planner fell back (and why)."""
        if self.manifest.get("engine") == "planned":
            return "planned (steady state, no fault)"
        why = self.manifest.get("engine_fallback")
        if why:
            return f"event by event: the steady state did not hold ({why})"
        return None

    def to_text(self) -> str:
        """A readable summary for the terminal."""
        s, m = self.summary, self.summary["messages"]
        produced = m["produced"]
        lines = [
            f"{self.manifest.get('scenario', '?')} on {self.manifest.get('system', '?')} "
            f"(seed {self.manifest.get('seed', '?')}, {s.get('duration_s', 0):g} s measured)",
        ]
        note = self.engine_note()
        if note:
            lines.append(f"Engine: {note}")
        lines += [
            "",
            f"Fates of {produced:,} produced messages ({m['acked']:,} acknowledged):",
        ]
        for fate in FATES:
            if m[fate] or fate == "delivered":
                lines.append(f"  {fate:<32}{m[fate]:>12,}  {_share(m[fate], produced)}")
            for cause, n in m.get(f"{fate}_by_cause", {}).items():
                lines.append(f"    {cause:<30}{n:>12,}")
        lines.append(f"Duplicates: {_counts(m['duplicates'], m['duplicates_by_cause'])}")
        lines.append(f"Out of order: {m['out_of_order']:,}")
        anomalies = {k: v for k, v in m["anomalies"].items() if v}
        lines.append(f"Anomalies: {_counts(sum(anomalies.values()), anomalies)}")
        quantiles = ("p50", "p95", "p99", "p999", "max")
        lines += ["", "Latency from the intended send time (ms):"]
        lines.append(f"  {'':<12}" + "".join(f"{k:>10}" for k in quantiles))
        for kind, stats in s["latency_ms"].items():
            lines.append(f"  {kind:<12}" + "".join(f"{_ms(stats[k]):>10}" for k in quantiles))
        t, a = s["throughput"], s["availability"]
        lines += [
            "",
            f"Throughput (/s): offered {t['offered_per_s']:,.1f}, acked {t['acked_per_s']:,.1f}, "
            f"delivered {t['delivered_per_s']:,.1f}",
            f"Unavailable: {a['unavailable_s']:g} s in {len(a['unavailable_windows'])} window(s)",
        ]
        if s["faults"]:
            lines += ["", "Faults (times counted from the fault's begin):"]
        for f in s["faults"]:
            end = "the final heal" if f["end_ms"] is None else f"{f['end_ms'] / 1000:g} s"
            lines += [
                f"  #{f['index']} {f['kind']} of {f['target'] or ','.join(f['nodes'])} "
                f"from {f['begin_ms'] / 1000:g} s to {end}:",
                f"      detected {_after(f['detect_ms'])}; first write {_after(f['first_write_ms'])}; "
                f"p99 back {_after(f['p99_recovery_ms'])}; lag back {_after(f['lag_recovery_ms'])}",
            ]
        if self.expectations:
            lines += ["", "Expectations:"]
        for e in self.expectations:
            mark = "held    " if e["held"] else "NOT HELD"
            why = f"  ({e['why']})" if e["why"] else ""
            lines.append(f"  {mark} {e['check']}  [actual {_ms(e['actual'])}]{why}")
        return "\n".join(lines)


def _share(count: int, total: int) -> str:
    return f"{100.0 * count / total:6.2f}%" if total else ""


def _counts(total: int, parts: dict[str, int]) -> str:
    detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
    return f"{total:,}" + (f" ({detail})" if detail else "")


def _after(value: Any) -> str:
    """A time after a fault's begin: 'n/a' when unknown, 'not recovered' is an answer too."""
    if value is None or value == NOT_RECOVERED:
        return "n/a" if value is None else "not recovered"
    return f"after {_ms(value)} ms"


def _ms(value: Any) -> str:
    """A duration or value for text: 'n/a' for None, 'not recovered' for NOT_RECOVERED."""
    if value is None:
        return "n/a"
    if value == NOT_RECOVERED:
        return "not recovered"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)
