"""`rksim run | sweep | sweep-report | scenarios | show | validate | schema`.

A user error (bad scenario, bad override, missing file) prints one line per problem and exits 2
without a traceback; an internal error prints a short report and exits 1 (`--debug` shows the
traceback).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from simulator.scenario import ScenarioError, builtin_names, json_schema, load_scenario, read_toml

app = typer.Typer(
    name="rksim",
    help="Simulate Redis and Kafka under load and failure; see what every message went through.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_DEBUG = {"on": False}

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a scenario value: section.key=value (repeatable)."),
]
SeedOption = Annotated[
    int | None, typer.Option("--seed", help="Root seed (default: the scenario's).")
]


class UserError(Exception):
    """A problem in what the user asked for (exit code 2)."""


def _err(text: str) -> None:
    typer.echo(text, err=True)


@app.callback()
def _main(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
) -> None:
    _DEBUG["on"] = debug


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Scenario file or built-in scenario name.")],
    seed: SeedOption = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Write the result here.")] = None,
    ci: Annotated[bool, typer.Option("--ci", help="Apply the scenario's small CI size.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    check_invariants: Annotated[
        bool, typer.Option("--check-invariants", help="Stop at the first broken invariant.")
    ] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar (default: on a TTY)."),
    ] = None,
) -> None:
    """Run one scenario and print what happened to every message."""
    from simulator.runner import run as run_scenario

    spec = load_scenario(scenario, set_ or [], ci=ci)
    show_progress = sys.stderr.isatty() if progress is None else progress
    result = run_scenario(
        spec, seed=seed, progress=show_progress, check_invariants=check_invariants
    )
    if out is not None:
        result.save(out)
    if as_json:
        typer.echo(json.dumps(result.summary, indent=2, sort_keys=True))
    else:
        typer.echo(result.to_text())
        if out is not None:
            typer.echo(f"\nresult written to {out}")


@app.command()
def compare(
    scenario: Annotated[str, typer.Argument(help="Comparison scenario file or built-in name.")],
    seed: SeedOption = None,
    set_: SetOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write every result here.")
    ] = None,
    ci: Annotated[bool, typer.Option("--ci", help="Apply the scenario's small CI size.")] = False,
) -> None:
    """Run the same workload and faults against every variant; print one verdict table."""
    from simulator.compare import compare as run_compare

    outcome = run_compare(scenario, seed=seed, overrides=set_ or [], ci=ci)
    if out is not None:
        outcome.save(out)
    typer.echo(outcome.to_text())
    if out is not None:
        typer.echo(f"\nresults written to {out}")


@app.command()
def calibrate(
    system: Annotated[str, typer.Argument(help="The real system to measure: redis.")],
    host: Annotated[str, typer.Option("--host", help="Address of the server.")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="Port of a running, empty server (default: start a private one)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Calibration TOML (default calibration-SYSTEM.toml)."),
    ] = None,
    keys: Annotated[
        int, typer.Option("--keys", min=1000, help="Keys of the dataset for fork and load time.")
    ] = 1_000_000,
) -> None:
    """Measure a real local server and write a calibration TOML (docs/calibration.md)."""
    from importlib.metadata import entry_points

    # The measuring code lives with the models; the core finds it through the
    # `rksim.calibrators` entry points and never imports a model (DESIGN rule 1).
    found = {ep.name: ep for ep in entry_points(group="rksim.calibrators")}
    if system not in found:
        raise UserError(f"no calibration for {system!r}; available: {', '.join(sorted(found))}")
    run_calibration = found[system].load()
    target = out if out is not None else Path(f"calibration-{system}.toml")
    try:
        lines = run_calibration(host, port, target, keys, lambda text: _err(f"... {text}"))
    except (RuntimeError, ConnectionError, OSError) as exc:
        raise UserError(str(exc)) from None
    for line in lines:
        typer.echo(line)


@app.command()
def validate(
    scenario: Annotated[str, typer.Argument(help="Scenario file or built-in name.")],
    set_: SetOption = None,
) -> None:
    """Check a scenario file; print the problems or 'ok'."""
    spec = load_scenario(scenario, set_ or [])
    typer.echo(f"ok: {spec.scenario.name} ({spec.system.kind}, {spec.scenario.duration_s:g} s)")


@app.command()
def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="The reference as Markdown.")
    ] = False,
) -> None:
    """Print the JSON schema of scenario files (or the Markdown reference)."""
    if markdown:
        from simulator.docgen import markdown as render

        typer.echo(render(), nl=False)
    else:
        typer.echo(json.dumps(json_schema(), indent=2))


@app.command()
def scenarios() -> None:
    """List the built-in scenarios."""
    rows = []
    for name in builtin_names():
        data = read_toml(name)
        meta = data.get("scenario", {})
        kind = data.get("system", {}).get("kind", "queue")
        rows.append((name, kind, meta.get("description", "")))
    width = max((len(r[0]) for r in rows), default=10)
    for name, kind, desc in rows:
        typer.echo(f"{name:<{width}}  {kind:<6} {desc}")


@app.command()
def show(
    directory: Annotated[Path, typer.Argument(help="A result directory written by --out.")],
) -> None:
    """Print a saved result."""
    from simulator.results import Result

    if not (directory / "summary.json").exists():
        raise UserError(f"{directory}: not a result directory (no summary.json)")
    typer.echo(Result.load(directory).to_text())


@app.command()
def sweep(
    target: Annotated[
        str,
        typer.Argument(
            help="Experiment file (TOML with an [experiment] table), scenario file or built-in name."
        ),
    ],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid", "-g", help="key=v1,v2,... (repeatable; the cartesian product runs)."
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(
            "--seeds", min=1, help="Replications per point (default 1, or the experiment's)."
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep directory (resumable).")] = Path(
        "sweep-out"
    ),
    workers: Annotated[
        int | None,
        typer.Option("--workers", "-j", min=1, help="Processes (default: every core)."),
    ] = None,
    backend: Annotated[
        str, typer.Option("--backend", help="local (processes here) or dask (a Dask cluster).")
    ] = "local",
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Dask scheduler address, e.g. tcp://HOST:8786 (default: a "
            "local cluster of --workers processes).",
        ),
    ] = None,
    keep: Annotated[
        str | None,
        typer.Option(
            "--keep", help="Also save per run: tables (time series, events) or all (+ messages)."
        ),
    ] = None,
    retry_failed: Annotated[
        bool, typer.Option("--retry-failed", help="Rerun the runs recorded with an error.")
    ] = False,
    set_: SetOption = None,
    ci: Annotated[bool, typer.Option("--ci", help="Apply the scenario's small CI size.")] = False,
    progress: Annotated[
        bool | None,
        typer.Option("--progress/--no-progress", help="Progress bar with ETA (default: on a TTY)."),
    ] = None,
) -> None:
    """Run parameter points x seeds in parallel; write one tidy Parquet table (resumable)."""
    from simulator.stats import point_stats, wide
    from simulator.sweeps import BackendError, parse_grid, plan_sweep
    from simulator.sweeps import sweep as run_sweep

    if backend not in ("local", "dask"):
        raise UserError(f"--backend {backend!r}: allowed: local, dask")
    if keep not in (None, "summary", "tables", "all"):
        raise UserError(f"--keep {keep!r}: allowed: summary, tables, all")
    if scheduler is not None and backend != "dask":
        raise UserError("--scheduler needs --backend dask")
    parsed_grid = parse_grid(grid or [])
    plan = plan_sweep(target, parsed_grid, seeds, overrides=set_ or [], ci=ci)
    keys = {plan.key(p) for p in plan.points}
    already = sum((out / "runs" / f"{k}.parquet").exists() for k in keys)
    if already:
        typer.echo(f"resuming: {already} of {len(keys)} runs already done in {out}", err=True)
    try:
        table = run_sweep(
            target,
            parsed_grid,
            seeds,
            out=out,
            workers=workers,
            progress=sys.stderr.isatty() if progress is None else progress,
            backend=backend,  # type: ignore[arg-type]
            scheduler=scheduler,
            keep=keep,  # type: ignore[arg-type]
            retry_failed=retry_failed,
            overrides=set_ or [],
            ci=ci,
        )
    except BackendError as exc:
        raise UserError(str(exc)) from None
    except KeyboardInterrupt:
        # typer turns Ctrl-C into a return value that main() does not act on: exit here
        done = sum((out / "runs" / f"{k}.parquet").exists() for k in keys)
        _err(f"interrupted: {done} of {len(keys)} runs are kept in {out}; rerun to resume")
        sys.exit(130)
    failed = int((table["error"].fillna("") != "").sum()) if "error" in table.columns else 0
    typer.echo(f"{len(table)} runs ({failed} failed) -> {out / 'results.parquet'}")
    shown = [
        m
        for m in (
            "messages.lost",
            "messages.duplicates",
            "latency_ms.ack.mean",
            "latency_ms.ack.p99",
        )
        if m in table.columns
    ]
    if len(table) and shown:
        typer.echo("mean ± half-width of the 95% t interval over seeds, per point:")
        points = wide(point_stats(table, shown))
        constant = [c for c in ("scenario", "system") if c in points and points[c].nunique() < 2]
        points = points.drop(columns=constant).rename(columns=lambda c: c.removeprefix("param."))
        typer.echo(points.to_string(index=False, max_rows=60))
    if failed:
        typer.echo("failed runs are in the `error` column; rerun with --retry-failed to retry them")
    typer.echo(f"report: rksim sweep-report {out}")


@app.command("sweep-report")
def sweep_report(
    directory: Annotated[Path, typer.Argument(help="A sweep directory written by `rksim sweep`.")],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="HTML file (default: DIR/report.html).")
    ] = None,
    metric: Annotated[
        list[str] | None,
        typer.Option(
            "--metric", "-m", help="Summary column to plot (repeatable; default: standard)."
        ),
    ] = None,
    parameter: Annotated[
        list[str] | None,
        typer.Option("--parameter", "-p", help="Swept parameter for the x axis (repeatable)."),
    ] = None,
    confidence: Annotated[
        float, typer.Option("--confidence", help="Level of the confidence bands.")
    ] = 0.95,
) -> None:
    """Write a self-contained HTML report of a sweep: metric vs parameter with confidence bands."""
    from simulator.sweep_report import write_report

    if not (directory / "results.parquet").exists() and not (directory / "runs").is_dir():
        raise UserError(f"{directory}: not a sweep directory (no results.parquet, no runs/)")
    try:
        path = write_report(
            directory,
            out,
            metrics=metric or None,
            parameters=parameter or None,
            confidence=confidence,
        )
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(str(exc)) from None
    typer.echo(f"report written to {path}")


@app.command()
def report(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="HTML file (default rksim-report.html)."),
    ] = None,
    markdown: Annotated[
        Path | None,
        typer.Option(
            "--markdown", help="Also (or only, without --out) write the guide as Markdown."
        ),
    ] = None,
    ci: Annotated[bool, typer.Option("--ci", help="Run every scenario at its CI size.")] = False,
    seed: Annotated[int, typer.Option("--seed", help="Root seed of every run.")] = 1,
    price_ram_gb: Annotated[
        float, typer.Option("--price-ram-gb", min=0, help="Price of 1 GB of RAM per month.")
    ] = 3.0,
    price_disk_gb: Annotated[
        float, typer.Option("--price-disk-gb", min=0, help="Price of 1 GB of disk per month.")
    ] = 0.08,
    retention_h: Annotated[
        float, typer.Option("--retention-h", min=0, help="Retention the cost view holds, hours.")
    ] = 24.0,
) -> None:
    """Run the decision guide's scenarios; write it as one offline HTML file (and Markdown)."""
    from simulator import report as guide

    rows = guide.load_guide()
    prices = guide.Prices(
        ram_gb_month=price_ram_gb, disk_gb_month=price_disk_gb, retention_h=retention_h
    )
    measured = guide.measure(rows, ci=ci, seed=seed, progress=lambda n: _err(f"running {n}"))
    if out is not None or markdown is None:
        path = out or Path("rksim-report.html")
        text = guide.render_html(rows, measured, prices, ci=ci, seed=seed)
        path.write_text(text, encoding="utf-8")
        typer.echo(f"report written to {path}")
    if markdown is not None:
        markdown.write_text(
            guide.render_markdown(rows, measured, prices, ci=ci, seed=seed), encoding="utf-8"
        )
        typer.echo(f"decision guide written to {markdown}")


def main() -> None:
    """Console entry point: maps errors to exit codes (2 user error, 1 internal error)."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:
            # typer returns 130 for Ctrl-C (and other codes from ctx.exit) in this mode
            if code == 130:
                _err("interrupted (finished sweep runs are kept; rerun the same command to resume)")
            sys.exit(code)
    except ScenarioError as exc:
        _err("invalid scenario:")
        for line in exc.problems:
            _err(f"  {line}")
        sys.exit(2)
    except UserError as exc:
        _err(f"error: {exc}")
        sys.exit(2)
    except typer.Abort:
        _err("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        _err("interrupted (finished sweep runs are kept; rerun the same command to resume)")
        sys.exit(130)
    except Exception as exc:
        # usage errors (missing argument, unknown command or option) carry their own exit code
        show = getattr(exc, "show", None)
        exit_code = getattr(exc, "exit_code", None)
        if callable(show) and isinstance(exit_code, int):
            show()
            sys.exit(exit_code)
        if _DEBUG["on"] or "--debug" in sys.argv:
            traceback.print_exc()
        else:
            _err(f"internal error: {type(exc).__name__}: {exc}")
            _err("this is a bug in rksim; rerun with --debug for the traceback and report it")
        sys.exit(1)


if __name__ == "__main__":
    main()
