"""What a page shows, as a URL: built-in scenario, seed, `--set` overrides and edited faults.

`?scenario=queue_mm1&seed=7&set=workload.rate_per_s=900&fault={at_s=3, kind="crash", ...}` is
read back into the same `RunRequest`, so a copied link reproduces the run (a run is a pure
function of its resolved scenario and seed). Overrides use the CLI's `--set` syntax; a fault is
a TOML inline table (`fault=none`: the scenario's faults removed). A comparison adds its
composed variants (`variant={label="a", set=["k=v"]}`) and claims (`claim=a.messages.lost == 0`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import forms

from simulator.scenario import (
    ScenarioBase,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_value,
    read_toml,
)

NO_FAULTS = "none"
SEED_PATH = "scenario.seed"
QueryParams = dict[str, list[str]]


def toml_value(value: Any) -> str:
    """A value in TOML syntax (for inline tables in URLs)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def query_dict(params: Mapping[str, Any] | Any) -> QueryParams:
    """st.query_params (or a plain mapping) as key -> list of values."""
    out: QueryParams = {}
    keys = list(params.keys())
    for key in keys:
        if hasattr(params, "get_all"):
            values = list(params.get_all(key))
        else:
            raw = params[key]
            values = list(raw) if isinstance(raw, list | tuple) else [raw]
        out[str(key)] = [str(v) for v in values]
    return out


@dataclass(frozen=True)
class RunRequest:
    """A built-in scenario with a seed, overrides and (optionally) its own fault schedule."""

    scenario: str
    seed: int | None = None  # None: the scenario's own seed
    overrides: tuple[tuple[str, Any], ...] = ()  # dotted path -> value, seed excluded
    faults: tuple[str, ...] | None = None  # TOML inline tables; None: the scenario's faults

    @classmethod
    def build(
        cls,
        scenario: str,
        overrides: Mapping[str, Any] | None = None,
        faults: Iterable[Mapping[str, Any]] | None = None,
        seed: int | None = None,
    ) -> RunRequest:
        """From widget values: a seed among the overrides wins over `seed`."""
        rest = dict(overrides or {})
        seed = rest.pop(SEED_PATH, seed)
        return cls(
            scenario,
            None if seed is None else int(seed),
            tuple(sorted(rest.items())),
            None if faults is None else tuple(toml_value(dict(f)) for f in faults),
        )

    def fault_tables(self) -> list[dict[str, Any]] | None:
        if self.faults is None:
            return None
        tables = []
        for text in self.faults:
            value = parse_value(text)
            if not isinstance(value, dict):
                raise ScenarioError([f"fault {text!r}: expected a TOML inline table {{...}}"])
            tables.append(value)
        return tables

    def spec(self) -> ScenarioBase:
        """The validated scenario (ScenarioError names every problem)."""
        data = read_toml(self.scenario)
        faults = self.fault_tables()
        if faults is not None:
            data["faults"] = faults
        overrides = dict(self.overrides)
        if self.seed is not None:
            overrides[SEED_PATH] = self.seed
        return load_scenario(data, overrides)

    def to_query(self) -> QueryParams:
        query: QueryParams = {"scenario": [self.scenario]}
        if self.seed is not None:
            query["seed"] = [str(self.seed)]
        if self.overrides:
            query["set"] = [f"{path}={forms.set_text(value)}" for path, value in self.overrides]
        if self.faults is not None:
            query["fault"] = list(self.faults) or [NO_FAULTS]
        return query

    @classmethod
    def from_query(cls, query: QueryParams) -> RunRequest | None:
        """The request a URL describes; None without `scenario`; ScenarioError if malformed."""
        names = query.get("scenario") or []
        if not names:
            return None
        name = names[0]
        problems = []
        if name not in builtin_names():
            problems.append(
                f"scenario: no built-in scenario {name!r}; built-in: {', '.join(builtin_names())}"
            )
        seed = None
        if query.get("seed"):
            try:
                seed = int(query["seed"][0])
            except ValueError:
                problems.append(f"seed: {query['seed'][0]!r} is not a whole number")
        overrides: dict[str, Any] = {}
        for item in query.get("set", []):
            path, sep, raw = item.partition("=")
            if not sep or not path.strip():
                problems.append(f"set: {item!r} is not KEY=VALUE, e.g. workload.rate_per_s=900")
                continue
            overrides[path.strip()] = parse_value(raw.strip())
        if SEED_PATH in overrides:
            seed = int(overrides.pop(SEED_PATH))
        faults: tuple[str, ...] | None = None
        if "fault" in query:
            raw_faults = [f for f in query["fault"] if f != NO_FAULTS]
            for text in raw_faults:
                if not isinstance(parse_value(text), dict):
                    problems.append(f"fault: {text!r} is not a TOML inline table {{...}}")
            faults = tuple(raw_faults)
        if problems:
            raise ScenarioError(problems)
        return cls(name, seed, tuple(sorted(overrides.items())), faults)

    def label(self) -> str:
        """A short readable name: scenario · seed · overrides · faults."""
        parts = [self.scenario]
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        parts += [f"{path.rsplit('.', 1)[-1]}={forms.set_text(v)}" for path, v in self.overrides]
        if self.faults is not None:
            parts.append(f"{len(self.faults)} edited fault(s)")
        return " · ".join(parts)

    def command(self, spec: ScenarioBase, scenario_file: str) -> str:
        """The CLI command that reruns it: `--set` flags, or the downloaded resolved scenario
        when the faults were edited (a fault list cannot be given as flags)."""
        if self.faults is not None:
            return f"rksim run {scenario_file}"
        flags = forms.as_set_flags(dict(self.overrides))
        return f"rksim run {self.scenario} --seed {spec.scenario.seed} {flags}".strip()


@dataclass(frozen=True)
class CompareRequest:
    """A base scenario, its variants (label, overrides, description), claims and a seed."""

    scenario: str
    seed: int
    variants: tuple[tuple[str, tuple[str, ...], str], ...] = ()  # empty: the scenario's own
    claims: tuple[str, ...] = ()

    @property
    def composed(self) -> bool:
        return bool(self.variants)

    def spec(self) -> ScenarioBase:
        """The base scenario with its [compare] section (ScenarioError names every problem)."""
        base = load_scenario(self.scenario, {SEED_PATH: self.seed})
        if not self.composed:
            return base
        data = base.to_dict()
        data["compare"] = {
            "variants": [
                {"label": label, "set": list(sets), "description": text}
                for label, sets, text in self.variants
            ],
            "expect": [{"check": claim} for claim in self.claims],
        }
        return load_scenario(data)

    def to_query(self) -> QueryParams:
        query: QueryParams = {"scenario": [self.scenario], "seed": [str(self.seed)]}
        if self.composed:
            query["variant"] = [
                toml_value({"label": label, "set": list(sets), "description": text})
                for label, sets, text in self.variants
            ]
            if self.claims:
                query["claim"] = list(self.claims)
        return query

    @classmethod
    def from_query(cls, query: QueryParams) -> CompareRequest | None:
        names = query.get("scenario") or []
        if not names:
            return None
        problems = []
        seed = None
        try:
            seed = int((query.get("seed") or ["-1"])[0])
        except ValueError:
            problems.append(f"seed: {query['seed'][0]!r} is not a whole number")
        variants = []
        for text in query.get("variant", []):
            table = parse_value(text)
            if not isinstance(table, dict) or "label" not in table:
                problems.append(f"variant: {text!r} is not a TOML table with a label")
                continue
            sets = table.get("set", [])
            variants.append(
                (
                    str(table["label"]),
                    tuple(str(s) for s in (sets if isinstance(sets, list) else [sets])),
                    str(table.get("description", "")),
                )
            )
        if problems:
            raise ScenarioError(problems)
        if seed is None or seed < 0:
            seed = load_scenario(names[0]).scenario.seed
        return cls(names[0], seed, tuple(variants), tuple(query.get("claim", [])))


def new_run_link(
    query: QueryParams, state: Any, link_key: str, error_key: str
) -> RunRequest | None:
    """The run an opened URL describes, if this session did not write that URL itself.

    `state` is the session state: `link_key` remembers the query last read or written (so a
    page's own URL is not followed again), `error_key` receives the problems of a link that does
    not describe a valid run. Returns None when there is nothing new to follow.
    """
    if not query or query == state.get(link_key):
        return None
    state[link_key] = query
    state.pop(error_key, None)
    try:
        request = RunRequest.from_query(query)
        if request is not None:
            request.spec()
    except ScenarioError as exc:
        state[error_key] = exc.problems
        return None
    return request
