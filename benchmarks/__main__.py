"""Command line: `python -m benchmarks [NAME ...] [--reps 5] [--quick] [--set KEY=VALUE]`.

NAME is a registered benchmark (see `--list`), or a scenario to run as an ad-hoc benchmark:
`scenario:NAME` for a built-in scenario, or a path to a scenario TOML file (`--set` overrides
apply to these). Without NAME every registered benchmark runs. Results go to
benchmarks/results/ (git-ignored) as JSON and a Markdown table, timestamped and as `latest.*`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks import load_all
from benchmarks.harness import environment, measure

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SELF_CHECK_RANGE = (0.8, 1.25)
STANDARD_MEDIANS = {
    "median_ratio",
    "median_messages_per_s",
    "median_baseline_events_per_s",
    "median_bytes_per_message",
    "median_wall_s",
    "median_check_s",
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help="benchmarks to run (all)")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="scenario override for ad-hoc scenario benchmarks (repeatable)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="results folder")
    parser.add_argument("--list", action="store_true", help="list benchmarks and exit")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    return args


def _resolve(name: str, registry: dict[str, Any], overrides: list[str]) -> dict[str, Any] | None:
    """None for a registered benchmark, else the ad-hoc scenario spec NAME stands for."""
    if name in registry:
        return None
    if name.startswith("scenario:"):
        return {"scenario": name.removeprefix("scenario:"), "overrides": overrides}
    if name.endswith(".toml") or Path(name).is_file():
        return {"scenario": str(Path(name).resolve()), "overrides": overrides}
    known = ", ".join(sorted(registry))
    raise SystemExit(f"unknown benchmark {name!r}; known: {known} (or scenario:NAME, FILE.toml)")


def _fmt(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def markdown_table(rows: list[dict[str, Any]], env: dict[str, Any]) -> str:
    """Results as a Markdown table, with the environment they were taken in."""
    lines = [
        f"# Benchmarks {env['time_utc']}",
        "",
        f"Python {env['python']}, SimPy {env['simpy']}, {env['platform']}, "
        f"{env['cpu_count']} CPUs, commit {env['git_commit'] or '–'}.",
        "Ratio = simulated messages per wall second / bare SimPy events per wall second "
        "(median over interleaved repetitions); memory = peak RSS growth per message.",
        "",
        "| benchmark | reps | messages | ratio (median) | ratio range | msg/s | baseline ev/s "
        "| B/msg | wall s | check s |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "error" in row:
            message = row["error"].splitlines()[0].replace("|", "\\|")
            lines.append(f"| {row['name']} | – | – | error: {message} | | | | | | |")
            continue
        ratio_range = f"{_fmt(row['min_ratio'], '.4f')}–{_fmt(row['max_ratio'], '.4f')}"
        lines.append(
            f"| {row['name']} | {row['reps']} | {_fmt(row['messages'], ',')} "
            f"| {_fmt(row['median_ratio'], '.4f')} | {ratio_range} "
            f"| {_fmt(row['median_messages_per_s'], ',.0f')} "
            f"| {_fmt(row['median_baseline_events_per_s'], ',.0f')} "
            f"| {_fmt(row['median_bytes_per_message'], ',.1f')} "
            f"| {_fmt(row['median_wall_s'], '.3f')} | {_fmt(row['median_check_s'], '.3f')} |"
        )
    breakdowns = [row for row in rows if _breakdown(row)]
    if breakdowns:
        lines += ["", "Breakdown (medians of the benchmark's own facts):", ""]
        lines += [f"- {row['name']}: {_breakdown(row)}" for row in breakdowns]
    return "\n".join(lines) + "\n"


def _breakdown(row: dict[str, Any]) -> str:
    own = {k: v for k, v in row.items() if k.startswith("median_") and k not in STANDARD_MEDIANS}
    return ", ".join(f"{k.removeprefix('median_')} {v:,.3f}" for k, v in own.items())


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    registry = load_all()
    if args.list:
        for name, bench in sorted(registry.items()):
            print(f"{name:24} {bench.description}")
        return 0
    names = args.names or sorted(registry)
    specs = {name: _resolve(name, registry, args.overrides) for name in names}
    env = environment()
    rows: list[dict[str, Any]] = []
    failed = False
    for name in names:
        print(f"== {name} ({args.reps} reps{', quick' if args.quick else ''})", flush=True)
        try:
            result = measure(
                name,
                reps=args.reps,
                quick=args.quick,
                scenario=specs[name],
                progress=lambda line: print("  " + line, flush=True),
            )
            rows.append(result.summary())
        except Exception as exc:
            failed = True
            traceback.print_exc()
            rows.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})

    table = markdown_table(rows, env)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    payload = json.dumps({"environment": env, "quick": args.quick, "results": rows}, indent=2)
    for stem in (f"bench-{stamp}", "latest"):
        (args.out / f"{stem}.json").write_text(payload + "\n", encoding="utf-8")
        (args.out / f"{stem}.md").write_text(table, encoding="utf-8")
    print()
    print(table)
    print(f"written: {args.out / f'bench-{stamp}.json'} and .md (also latest.*)")

    for row in rows:
        ratio = row.get("median_ratio")
        low, high = SELF_CHECK_RANGE
        if row["name"] == "baseline" and ratio is not None and not low <= ratio <= high:
            print(
                f"WARNING: baseline-vs-itself ratio {ratio:.3f} is outside {low}-{high}: the "
                "machine was too noisy to trust this run's ratios",
                file=sys.stderr,
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
