"""`rksim run | sweep | scenarios | show | validate | schema`.

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
    scenario: Annotated[str, typer.Argument(help="Scenario file or built-in name.")],
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid", "-g", help="key=v1,v2,... (repeatable; the cartesian product runs)."
        ),
    ] = None,
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Replications per grid point.")] = 1,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep directory (resumable).")] = Path(
        "sweep-out"
    ),
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", min=1, help="Processes.")
    ] = None,
    set_: SetOption = None,
    ci: Annotated[bool, typer.Option("--ci", help="Apply the scenario's small CI size.")] = False,
) -> None:
    """Run a grid of parameters x seeds in parallel; write one tidy Parquet table."""
    from simulator.sweeps import parse_grid
    from simulator.sweeps import sweep as run_sweep

    spec = load_scenario(scenario, set_ or [], ci=ci)
    table = run_sweep(
        spec, parse_grid(grid or []), seeds, out=out, workers=workers, progress=sys.stderr.isatty()
    )
    failed = int((table.get("error", "") != "").sum()) if len(table) else 0
    typer.echo(f"{len(table)} runs ({failed} failed) -> {out / 'results.parquet'}")
    cols = [c for c in table.columns if c.startswith("param.")] + [
        c
        for c in ("seed", "messages.lost", "messages.duplicates", "latency_ms.ack.p99")
        if c in table.columns
    ]
    if len(table) and cols:
        typer.echo(table[cols].to_string(index=False, max_rows=40))


def main() -> None:
    """Console entry point: maps errors to exit codes (2 user error, 1 internal error)."""
    try:
        app(standalone_mode=False)
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
