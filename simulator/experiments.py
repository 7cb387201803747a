"""Experiment files: base scenario(s) x parameter grid x sampled ranges x replications.

An experiment is a TOML file with a top-level `[experiment]` table::

    [experiment]
    name = "queue_load"
    scenarios = ["queue_mm1"]          # built-in names or paths (relative to this file)
    set = ["scenario.duration_s=10"]   # overrides applied to every base scenario
    replications = 5                   # seeds per point: first_seed, first_seed + 1, ...

    [grid]                             # every combination of these values runs
    "workload.rate_per_s" = [200, 400, 600, 800]

    [sample]                           # plus `points` draws from these ranges
    method = "lhs"                     # Latin hypercube, or "random"
    points = 8
    seed = 7
    ranges."queue.service_ms" = { low = 0.5, high = 1.5 }

The points are the cartesian product of the grid and the sampled points. A key under a system's
section (`kafka.*`) only applies to the base scenarios of that system, so one experiment can
compare Redis and Kafka on the shared keys and vary each one's own settings.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field, PrivateAttr, ValidationError, model_validator

from simulator import systems
from simulator.scenario import (
    ScenarioBase,
    ScenarioError,
    Spec,
    _format_errors,
    builtin_dir,
    load_scenario,
)

MAX_POINTS = 1_000_000
RANGE_KEYS = frozenset({"low", "high", "log", "integer"})


class Range(Spec):
    """A continuous (or integer) interval to sample a parameter from."""

    low: float = Field(description="Smallest value.")
    high: float = Field(description="Largest value.")
    log: bool = Field(False, description="Sample uniformly in log space (needs low > 0).")
    integer: bool = Field(False, description="Round to whole numbers (low..high inclusive).")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if not self.high > self.low:
            raise ValueError(f"high: {self.high} is not allowed; allowed: high > low ({self.low})")
        if self.log and self.low <= 0:
            raise ValueError(f"low: {self.low} is not allowed with log = true; allowed: low > 0")
        if self.integer and math.ceil(self.low) > math.floor(self.high):
            raise ValueError(
                f"low: {self.low} is not allowed with integer = true and high = {self.high}; "
                "allowed: a range that contains a whole number"
            )
        return self


class Sampling(Spec):
    """Points drawn from parameter ranges, reproducibly from `seed`."""

    method: Literal["lhs", "random"] = Field(
        "lhs",
        description="lhs: Latin hypercube (each range cut into `points` strata, one draw per "
        "stratum, strata paired at random); random: independent uniform draws.",
    )
    points: int = Field(ge=1, le=100_000, description="How many points to draw.")
    seed: int = Field(0, ge=0, lt=2**63, description="Seed of the draws (not of the runs).")
    ranges: dict[str, Range] = Field(
        min_length=1, description="Dotted scenario key -> range, e.g. queue.service_ms."
    )


class ExperimentMeta(Spec):
    name: str = Field("experiment", description="Short identifier of the experiment.")
    description: str = Field("", description="What the experiment asks.")
    scenarios: list[str] = Field(
        min_length=1,
        description="Base scenarios: built-in names or TOML paths (relative to the experiment).",
    )
    set: list[str] = Field(
        default_factory=list, description="`key=value` overrides applied to every base scenario."
    )
    ci: bool = Field(False, description="Apply each base scenario's small CI size first.")
    replications: int = Field(1, ge=1, le=100_000, description="Seeds per point.")
    first_seed: int | None = Field(
        None, ge=0, lt=2**63, description="First seed (default: each base scenario's own seed)."
    )
    keep: Literal["summary", "tables", "all"] = Field(
        "summary",
        description="What each run keeps beside its table row: summary (nothing more), tables "
        "(time series, events, faults under OUT/results/RUN/) or all (also per-message rows).",
    )
    metrics: list[str] = Field(
        default_factory=list, description="Summary columns the report plots (default: standard)."
    )


class Experiment(Spec):
    """A validated experiment file."""

    experiment: ExperimentMeta
    grid: dict[str, Annotated[list[Any], Field(min_length=1)]] = Field(
        default_factory=dict, description="Dotted scenario key -> list of values."
    )
    sample: Sampling | None = Field(None, description="Ranges sampled into extra points.")
    _source_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check_keys(self) -> Experiment:
        problems = []
        if self.sample is not None:
            for key in self.sample.ranges:
                if key in self.grid:
                    problems.append(
                        f"sample.ranges.{key}: also in [grid]; allowed: a key in one of them"
                    )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # points ------------------------------------------------------------------------------
    def sampled_points(self) -> list[dict[str, Any]]:
        """The points drawn from `[sample]` (empty without one), reproducible from its seed."""
        if self.sample is None:
            return []
        return sample_ranges(
            self.sample.ranges, self.sample.points, self.sample.method, self.sample.seed
        )

    def combinations(self) -> list[dict[str, Any]]:
        """Every point: grid product x sampled points (one empty point if neither is given)."""
        keys = list(self.grid)
        grid_points = [
            dict(zip(keys, combo, strict=True))
            for combo in itertools.product(*(self.grid[k] for k in keys))
        ]
        sampled = self.sampled_points() or [{}]
        total = len(grid_points) * len(sampled)
        if total > MAX_POINTS:
            raise ScenarioError(
                [f"experiment: {total} points is not allowed; allowed: at most {MAX_POINTS}"]
            )
        return [{**g, **s} for g in grid_points for s in sampled]

    def parameters(self) -> list[str]:
        """Varied keys, grid first."""
        return list(self.grid) + (list(self.sample.ranges) if self.sample else [])

    # bases -------------------------------------------------------------------------------
    def resolve(self, name: str) -> str | Path:
        """A base scenario reference: a file next to the experiment, a path, or a built-in."""
        path = Path(name)
        if self._source_dir is not None and not path.is_absolute():
            beside = self._source_dir / path
            if beside.exists():
                return beside
        if path.exists() or (builtin_dir() / f"{name}.toml").exists():
            return path if path.exists() else name
        return name  # load_scenario reports the missing file with the built-in list

    def bases(
        self, overrides: list[str] | None = None, ci: bool = False
    ) -> list[tuple[str, ScenarioBase]]:
        """(label, scenario) per base, with `set` and then `overrides` applied."""
        loaded: list[tuple[str, ScenarioBase]] = []
        problems: list[str] = []
        for i, name in enumerate(self.experiment.scenarios):
            try:
                spec = load_scenario(
                    self.resolve(name),
                    [*self.experiment.set, *(overrides or [])],
                    ci=ci or self.experiment.ci,
                )
            except ScenarioError as exc:
                problems.extend(f"experiment.scenarios[{i}] ({name}): {p}" for p in exc.problems)
                continue
            loaded.append((spec.scenario.name, spec))
        if problems:
            raise ScenarioError(problems)
        labels = [label for label, _ in loaded]
        if len(set(labels)) < len(labels):  # two bases share a name: tell them apart by source
            loaded = [
                (name, spec)
                for name, (_, spec) in zip(self.experiment.scenarios, loaded, strict=True)
            ]
        unused = [k for k in self.parameters() if not any(applies(k, s) for _, s in loaded)]
        if unused:
            kinds = ", ".join(sorted({s.system.kind for _, s in loaded}))
            raise ScenarioError(
                [
                    f"{'grid' if k in self.grid else 'sample.ranges'}.{k}: applies to no base "
                    f"scenario (systems: {kinds}); allowed: a core key or a key of these systems"
                    for k in unused
                ]
            )
        return loaded

    def seeds(self, spec: ScenarioBase, replications: int | None = None) -> list[int]:
        """The seeds of every point of one base scenario."""
        first = self.experiment.first_seed
        first = spec.scenario.seed if first is None else first
        return [first + i for i in range(replications or self.experiment.replications)]


def applies(key: str, spec: ScenarioBase) -> bool:
    """Whether a dotted key concerns this scenario: not a section of another system."""
    section = key.split(".", 1)[0]
    return section == spec.system.kind or section not in systems.kinds()


def sample_ranges(
    ranges: dict[str, Range], points: int, method: str, seed: int
) -> list[dict[str, Any]]:
    """`points` draws from the ranges: Latin hypercube or independent uniform, seeded."""
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    keys = list(ranges)
    if method == "lhs":
        # each column: one draw inside each of `points` equal strata, strata in random order
        strata = np.stack([rng.permutation(points) for _ in keys], axis=1)
        unit = (strata + rng.random((points, len(keys)))) / points
    else:
        unit = rng.random((points, len(keys)))
    out: list[dict[str, Any]] = [{} for _ in range(points)]
    for j, key in enumerate(keys):
        spec = ranges[key]
        for i in range(points):
            out[i][key] = _scale(float(unit[i, j]), spec)
    return out


def _scale(u: float, spec: Range) -> float | int:
    if spec.integer:
        # whole numbers low..high, each with the share of the (log) interval [k, k + 1) it covers
        low, high = math.ceil(spec.low), math.floor(spec.high)
        if spec.log:
            value = math.exp(math.log(low) + u * (math.log(high + 1) - math.log(low)))
        else:
            value = low + u * (high - low + 1)
        return int(min(high, max(low, math.floor(value))))
    if spec.log:
        return float(math.exp(math.log(spec.low) + u * (math.log(spec.high) - math.log(spec.low))))
    return float(spec.low + u * (spec.high - spec.low))


# files -------------------------------------------------------------------------------------
def _flatten_keys(table: Any, leaf: Callable[[dict[str, Any]], bool]) -> Any:
    """`[grid] workload.rate_per_s = [...]` (nested tables) and quoted dotted keys alike."""
    if not isinstance(table, dict):
        return table
    flat: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and not leaf(value):
            for inner, v in _flatten_keys(value, leaf).items():
                flat[f"{key}.{inner}"] = v
        else:
            flat[key] = value
    return flat


def is_experiment(data: dict[str, Any]) -> bool:
    return isinstance(data, dict) and "experiment" in data


def is_experiment_file(source: str | Path) -> bool:
    """A TOML file with a top-level [experiment] table (otherwise: a scenario)."""
    path = Path(source)
    if path.suffix != ".toml" or not path.is_file():
        return False
    try:
        return is_experiment(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False


def _problems(exc: ValidationError) -> list[str]:
    """Scenario-style lines; a cross-field rule's message gets the path of its table."""
    problems: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and loc[:2] == ("sample", "ranges"):
            path = ".".join(str(part) for part in loc)
            allowed = ", ".join(Range.model_fields)
            problems.append(
                f"{path}: unknown key (value {err['input']!r}); allowed keys: {allowed}"
            )
            continue
        if err["type"] != "value_error":
            one = ValidationError.from_exception_data(exc.title, [err])  # type: ignore[list-item]
            problems.extend(_format_errors(one, Experiment))
            continue
        where = ".".join(str(part) for part in err["loc"])
        for line in str(err["msg"]).removeprefix("Value error, ").splitlines():
            problems.append(f"{where}.{line}" if where else line)
    return problems


def validate_experiment(data: dict[str, Any], source_dir: Path | None = None) -> Experiment:
    """Validate plain data (parsed TOML) into an Experiment, or raise ScenarioError."""
    if not isinstance(data, dict):
        raise ScenarioError([f"experiment: expected a table, got {type(data).__name__}"])
    data = dict(data)
    if isinstance(data.get("grid"), dict):
        data["grid"] = _flatten_keys(data["grid"], lambda v: False)
    sample = data.get("sample")
    if isinstance(sample, dict) and isinstance(sample.get("ranges"), dict):
        sample = dict(sample)
        sample["ranges"] = _flatten_keys(sample["ranges"], lambda v: bool(set(v) & RANGE_KEYS))
        data["sample"] = sample
    try:
        experiment = Experiment.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(exc)) from None
    experiment._source_dir = source_dir
    return experiment


def load_experiment(source: str | Path | dict[str, Any]) -> Experiment:
    """Read and validate an experiment file (or plain data)."""
    if isinstance(source, dict):
        return validate_experiment(source)
    path = Path(source)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot read: {exc}"]) from None
    if not is_experiment(data):
        raise ScenarioError([f"{path}: no [experiment] table; allowed: an experiment file"])
    return validate_experiment(data, path.resolve().parent)
