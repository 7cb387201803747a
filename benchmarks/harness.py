"""Benchmark harness: throughput relative to bare SimPy, and memory per message.

Why a ratio. Wall-clock speed depends on the machine and on whatever else it is doing, so a
benchmark is reported as *simulated messages per wall second divided by bare SimPy events per
wall second* on the same machine at the same moment. The baseline is a single SimPy process
looping ``yield env.timeout(1)``: the cheapest thing a SimPy simulation can do per event.
A ratio of 0.05 means "one message costs as much as 20 bare SimPy events".

Method.

* Every measured repetition (baseline or benchmark) runs in a fresh interpreter started with
  ``multiprocessing``'s *spawn* method, so no repetition inherits warm caches, JIT-like state
  of the allocator or leftover objects from another.
* Baseline and benchmark are interleaved (baseline, bench, baseline, bench, ...); each
  benchmark repetition is divided by the baseline measured just before it, and the report gives
  the *median* of these ratios, which is robust to one slow repetition (a noisy neighbour, a
  CPU frequency change).
* Memory per message = (peak RSS of the child process - RSS just before the repetition
  started) / messages. Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (the kernel's
  high-water mark, KiB on Linux), RSS before the run is ``psutil.Process().memory_info().rss``
  measured after imports and the benchmark's ``setup``. The high-water mark covers the whole
  process life, so if interpreter start-up peaked above the run the result is 0; whatever the
  run allocates, including lazily imported modules, counts. It is an upper bound on what a
  message costs, a trend indicator rather than an exact size.
* ``wall_s`` is what the benchmark itself reports (for a scenario: the run's own wall time
  from the result manifest), so loading and validating the scenario is not counted.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil
import simpy

BASELINE_EVENTS = 300_000
# Facts every benchmark reports; any other number a repetition returns is kept as its breakdown.
STANDARD_FACTS = {"messages", "wall_s", "check_s", "rss_before_bytes", "peak_rss_bytes"}
BASELINE_EVENTS_QUICK = 50_000


def bare_simpy_rate(n_events: int) -> float:
    """Events per wall second of one SimPy process doing nothing but `yield env.timeout(1)`."""
    env = simpy.Environment()

    def ticker() -> Any:
        for _ in range(n_events):
            yield env.timeout(1)

    env.process(ticker())
    start = time.perf_counter()
    env.run()
    elapsed = time.perf_counter() - start
    return n_events / elapsed


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: `run(quick=...)` does one repetition and returns its facts."""

    name: str
    run: Callable[..., dict[str, Any]]
    setup: Callable[..., None] | None = None
    description: str = ""


REGISTRY: dict[str, Benchmark] = {}


def benchmark(
    name: str, *, setup: Callable[..., None] | None = None, description: str = ""
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., dict[str, Any]]]:
    """Register `fn(*, quick: bool) -> {"messages": int, "wall_s": float, ["check_s": float]}`.

    `fn` runs one repetition. `setup(quick=...)` (imports, loading inputs) runs in the same
    child before the memory baseline is taken, so it is counted in neither time nor memory.
    """

    def register(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Benchmark(name, fn, setup, description or (doc[0] if doc else ""))
        return fn

    return register


def peak_rss_bytes() -> int:
    """High-water mark of this process's resident set (ru_maxrss: KiB on Linux, B on macOS)."""
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)


def _child_baseline(n_events: int) -> dict[str, Any]:
    bare_simpy_rate(min(10_000, n_events))  # warm up the interpreter paths
    return {"events_per_s": bare_simpy_rate(n_events)}


def _child_benchmark(name: str, quick: bool, scenario: dict[str, Any] | None) -> dict[str, Any]:
    """Run one repetition of a benchmark in this (fresh) process and measure it."""
    try:
        return _measure_in_child(name, quick, scenario)
    except Exception as exc:
        # Not every exception survives pickling back to the parent intact: send plain text.
        import traceback

        detail = "".join(traceback.format_exception(exc))
        raise RuntimeError(f"{type(exc).__name__}: {exc}\n--- in the child:\n{detail}") from None


def _measure_in_child(name: str, quick: bool, scenario: dict[str, Any] | None) -> dict[str, Any]:
    from benchmarks import load_all

    load_all()
    if scenario is not None:  # an ad-hoc scenario from the command line
        bench = _scenario_bench(name, scenario["scenario"], scenario.get("overrides"))
    else:
        bench = REGISTRY[name]
    if bench.setup is not None:
        bench.setup(quick=quick)
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    facts = dict(bench.run(quick=quick))
    facts["rss_before_bytes"] = rss_before
    facts["peak_rss_bytes"] = peak_rss_bytes()
    return facts


def _in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(fn, *args).result()


@dataclass
class Measurement:
    """Per-repetition facts and their medians for one benchmark."""

    name: str
    reps: int
    quick: bool
    baseline_events_per_s: list[float] = field(default_factory=list)
    messages: list[int] = field(default_factory=list)
    wall_s: list[float] = field(default_factory=list)
    check_s: list[float] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    bytes_per_message: list[float] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        def med(values: list[float]) -> float | None:
            return statistics.median(values) if values else None

        messages_per_s = [m / w for m, w in zip(self.messages, self.wall_s, strict=True) if w]
        return {
            "name": self.name,
            "reps": self.reps,
            "quick": self.quick,
            "median_ratio": med(self.ratios),
            "min_ratio": min(self.ratios) if self.ratios else None,
            "max_ratio": max(self.ratios) if self.ratios else None,
            "median_messages_per_s": med(messages_per_s),
            "median_baseline_events_per_s": med(self.baseline_events_per_s),
            "median_bytes_per_message": med(self.bytes_per_message),
            "median_wall_s": med(self.wall_s),
            "median_check_s": med(self.check_s),
            "messages": self.messages[0] if self.messages else None,
            "ratios": self.ratios,
            "wall_s": self.wall_s,
            "baseline_events_per_s": self.baseline_events_per_s,
            "bytes_per_message": self.bytes_per_message,
            **self.extra,
            **{f"median_{key}": med(values) for key, values in self.extra.items()},
        }


def measure(
    name: str,
    *,
    reps: int = 5,
    quick: bool = False,
    scenario: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> Measurement:
    """Measure a registered benchmark (or an ad-hoc `scenario` spec) against bare SimPy.

    Runs baseline, bench, baseline, bench, ... each in a fresh spawned process, and keeps the
    ratio of every bench repetition to the baseline run just before it.
    """
    if scenario is None and name not in REGISTRY:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(sorted(REGISTRY))}")
    n_events = BASELINE_EVENTS_QUICK if quick else BASELINE_EVENTS
    result = Measurement(name, reps, quick)
    for rep in range(1, reps + 1):
        baseline = _in_fresh_process(_child_baseline, n_events)["events_per_s"]
        facts = _in_fresh_process(_child_benchmark, name, quick, scenario)
        messages, wall_s = int(facts["messages"]), float(facts["wall_s"])
        if messages <= 0 or wall_s <= 0:
            raise RuntimeError(f"benchmark {name!r} reported {messages} messages in {wall_s}s")
        ratio = (messages / wall_s) / baseline
        grown = max(0, facts["peak_rss_bytes"] - facts["rss_before_bytes"])
        result.baseline_events_per_s.append(baseline)
        result.messages.append(messages)
        result.wall_s.append(wall_s)
        result.ratios.append(ratio)
        result.bytes_per_message.append(grown / messages)
        if facts.get("check_s") is not None:
            result.check_s.append(float(facts["check_s"]))
        for key, value in facts.items():  # a benchmark's own breakdown, e.g. figures_s
            if key not in STANDARD_FACTS and isinstance(value, int | float):
                result.extra.setdefault(key, []).append(value)
        if progress is not None:
            progress(
                f"{name} rep {rep}/{reps}: {messages / wall_s:,.0f} msg/s, baseline "
                f"{baseline:,.0f} ev/s, ratio {ratio:.4f}, {grown / messages:,.1f} B/msg"
            )
    return result


def environment() -> dict[str, Any]:
    """Where the numbers were taken: enough to tell two result files apart."""
    import subprocess

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "python": platform.python_version(),
        "simpy": simpy.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "git_commit": commit,
        # Set on some processors to avoid OpenBLAS bugs; slows numpy (see the env notes).
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# Scenario benchmarks. `simulator` is imported lazily so that the harness (and the baseline)
# work before, or without, the simulator's public API.

_prepared: dict[str, Any] = {}


def _scenario_key(
    name_or_path: str, overrides: dict[str, Any] | list[str] | None, quick: bool
) -> str:
    return repr((str(name_or_path), overrides, quick))


def _simulator_api() -> tuple[Callable[..., Any], Callable[..., Any]]:
    try:
        from simulator import load_scenario, run
    except ImportError as exc:
        raise RuntimeError(
            f"scenario benchmarks need `from simulator import load_scenario, run`: {exc}"
        ) from exc
    return load_scenario, run


def prepare_scenario(
    name_or_path: str,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    quick: bool = False,
) -> Any:
    """Import the simulator and load + validate the scenario (not measured)."""
    import inspect

    load_scenario, _ = _simulator_api()
    key = _scenario_key(name_or_path, overrides, quick)
    if key not in _prepared:
        kwargs = (
            {"ci": True} if quick and "ci" in inspect.signature(load_scenario).parameters else {}
        )
        _prepared[key] = load_scenario(name_or_path, overrides or None, **kwargs)
    return _prepared[key]


def run_scenario(
    name_or_path: str,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
) -> dict[str, Any]:
    """One repetition of a scenario: run it and report messages, wall_s and check_s.

    `quick` loads the scenario at its CI size (`load_scenario(..., ci=True)`). Messages are
    `summary["messages"]["produced"]`; wall time is the run's own `manifest["wall_s"]`.
    """
    _, run = _simulator_api()
    spec = prepare_scenario(name_or_path, overrides, quick=quick)
    start = time.perf_counter()
    result = run(spec, seed=seed)
    elapsed = time.perf_counter() - start
    manifest = getattr(result, "manifest", {}) or {}
    return {
        "messages": int(result.summary["messages"]["produced"]),
        "wall_s": float(manifest.get("wall_s") or elapsed),
        "check_s": manifest.get("check_s"),
    }


def _scenario_bench(
    name: str,
    name_or_path: str,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    seed: int = 0,
    description: str = "",
) -> Benchmark:
    def setup(*, quick: bool = False) -> None:
        prepare_scenario(name_or_path, overrides, quick=quick)

    def run_once(*, quick: bool = False) -> dict[str, Any]:
        return run_scenario(name_or_path, overrides, quick=quick, seed=seed)

    label = f"scenario {name_or_path}" + (f" {overrides}" if overrides else "")
    return Benchmark(name, run_once, setup, description or label)


def scenario_benchmark(
    name: str,
    name_or_path: str,
    overrides: dict[str, Any] | list[str] | None = None,
    *,
    seed: int = 0,
    description: str = "",
) -> None:
    """Register a scenario (built-in name or TOML path, with overrides) as benchmark `name`."""
    if name in REGISTRY:
        raise ValueError(f"benchmark {name!r} registered twice")
    REGISTRY[name] = _scenario_bench(
        name, name_or_path, overrides, seed=seed, description=description
    )
