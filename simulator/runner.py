"""`run(spec, seed) -> Result`: one simulation through its phases (warm-up, measured, final)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from simulator import systems
from simulator.checker import check
from simulator.context import RunContext
from simulator.faults import FaultInjector
from simulator.invariants import check_history
from simulator.model import ModelFallback, SystemModel
from simulator.network import Network
from simulator.results import Result
from simulator.scenario import ScenarioBase, load_scenario

ProgressCallback = Callable[[float], None]


def _sample_interval_ms(duration_ms: float) -> float:
    return min(1000.0, max(1.0, duration_ms / 400.0))


def _sampler(ctx: RunContext, model: SystemModel, interval_ms: float) -> Generator[Any, Any, None]:
    env = ctx.env
    while True:
        for name, value in model.gauges().items():
            ctx.gauge(name, value)
        if ctx.check_invariants:
            model.check_invariants()
        yield env.timeout(interval_ms)


def _advance(
    ctx: RunContext, until_ms: float, steps: int, report: Callable[[], None] | None
) -> None:
    env = ctx.env
    if until_ms <= env.now:
        return
    if report is None or steps <= 1:
        env.run(until=until_ms)
        return
    start = env.now
    for i in range(1, steps + 1):
        target = start + (until_ms - start) * i / steps
        if target > env.now:
            env.run(until=target)
        report()


def build(
    spec: ScenarioBase, seed: int | None = None, check_invariants: bool = False
) -> tuple[RunContext, SystemModel]:
    """The context and the model of one run, built but not started (warm-up time zero)."""
    ctx = RunContext(spec, seed, check_invariants=check_invariants)
    ctx.network = Network(ctx, spec.network)
    model = systems.get(spec.system.kind).factory(ctx)
    model.build()
    return ctx, model


def run(
    scenario: ScenarioBase | str | Path | dict[str, Any],
    seed: int | None = None,
    *,
    overrides: list[str] | dict[str, Any] | None = None,
    progress: bool | ProgressCallback = False,
    check_invariants: bool = False,
) -> Result:
    """Run one scenario (a Scenario, a file, a built-in name or plain data) with one seed.

    A model with a planning engine may find that the run leaves the steady state it can plan
    (`ModelFallback`): the scenario then runs again from the start with the event-by-event
    engine, and the manifest says why (`engine_fallback`)."""
    spec = scenario if isinstance(scenario, ScenarioBase) else load_scenario(scenario, overrides)
    if isinstance(scenario, ScenarioBase) and overrides:
        spec = spec.with_overrides(overrides)
    wall_start = time.perf_counter()
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    try:
        return _run_once(spec, seed, progress, check_invariants, wall_start, started_at)
    except ModelFallback as fallback:
        again = spec.with_overrides(fallback.overrides)
        result = _run_once(again, seed, progress, check_invariants, wall_start, started_at)
        result.manifest["engine_fallback"] = fallback.reason
        return result


def _run_once(
    spec: ScenarioBase,
    seed: int | None,
    progress: bool | ProgressCallback,
    check_invariants: bool,
    wall_start: float,
    started_at: str,
) -> Result:
    ctx, model = build(spec, seed, check_invariants)
    env = ctx.env
    duration_ms = ctx.duration_ms
    drain_ms = spec.scenario.drain_s * 1000.0
    interval = _sample_interval_ms(duration_ms)
    env.process(_sampler(ctx, model, interval))

    bar: Any = None
    report: Callable[[], None] | None = None
    if progress:
        total = duration_ms + ctx.warmup_ms
        if callable(progress):
            callback = progress

            def report() -> None:
                callback(min(1.0, (env.now + ctx.warmup_ms) / total))
        else:
            from tqdm.auto import tqdm

            bar = tqdm(
                total=100, desc=f"{spec.scenario.name} (simulated time)", unit="%", leave=False
            )

            def report() -> None:
                done = int(100 * min(1.0, (env.now + ctx.warmup_ms) / total))
                bar.update(done - bar.n)

    try:
        # warm-up: consumers join and settle; nothing is produced
        _advance(ctx, 0.0, 1, None)
        ctx.phase = "measured"
        injector = FaultInjector(ctx, model)
        model.start_workload()
        injector.start()
        _advance(ctx, duration_ms, 50, report)

        # final phase: stop producing, heal and restart everything, drain, final read
        ctx.phase = "final"
        ctx.event("final_phase")
        model.stop_workload()
        injector.end_all()
        final = model.final_phase()
        if final is not None:
            env.process(final)
        deadline = duration_ms + drain_ms
        step = max(interval, 10.0)
        while env.now < deadline:
            env.run(until=min(deadline, env.now + step))
            if model.drained():
                break
        model.final_read()
        ctx.end_ms = env.now
        if ctx.check_invariants:
            model.check_invariants()
    except ModelFallback:
        if bar is not None:
            bar.close()  # the run starts again with the other engine
        raise
    sim_wall = time.perf_counter() - wall_start
    if bar is not None:
        bar.update(100 - bar.n)
        bar.close()
    check_start = time.perf_counter()
    checked = check(ctx)
    checked.summary["model"] = dict(model.summary())
    if ctx.check_invariants:
        _check_history_invariants(ctx, checked)
    check_wall = time.perf_counter() - check_start
    result = Result.from_run(
        ctx, checked, wall_s=time.perf_counter() - wall_start, started_at=started_at
    )
    result.manifest["sim_s"] = sim_wall
    result.manifest["check_s"] = check_wall
    if model.engine is not None:
        result.manifest["engine"] = model.engine
    return result


def _check_history_invariants(ctx: RunContext, checked: Any) -> None:
    """Facts that hold for every model (simulator/invariants.py)."""
    check_history(ctx, checked)
