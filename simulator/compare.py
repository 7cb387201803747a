"""Side by side: one workload and one fault schedule against several systems.

A comparison scenario lists its variants in `[compare]` (a label and the `--set` overrides that
turn the base scenario into that system, e.g. `system.kind="kafka"`). Faults use roles that each
model maps to its own nodes (`primary`/`leader`, `a_replica`, `a_consumer`, `all_servers`), so
the same schedule means the same thing on both sides. Claims across variants are checked with
keys prefixed by the variant label: `kafka.messages.lost == 0`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.results import Result, evaluate_expectations
from simulator.scenario import ScenarioBase, ScenarioError, Variant, load_scenario

# The columns of the one-table verdict (summary paths) and their headings.
VERDICT_COLUMNS: dict[str, str] = {
    "messages.produced": "produced",
    "messages.delivered": "delivered",
    "messages.lost": "lost",
    "messages.skipped": "skipped",
    "messages.failed": "failed",
    "messages.indeterminate": "indeterminate",
    "messages.duplicates": "duplicates",
    "messages.out_of_order": "out of order",
    "latency_ms.ack.p99": "ack p99 (ms)",
    "latency_ms.end_to_end.p99": "end-to-end p99 (ms)",
    "availability.unavailable_s": "unavailable (s)",
}


@dataclass
class ComparisonResult:
    """The results of every variant, their verdict table and the cross-variant expectations."""

    base: ScenarioBase
    variants: list[Variant]
    results: dict[str, Result]
    expectations: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """One row per variant: loss, duplicates, p99, unavailable time, recovery."""
        rows = []
        for variant in self.variants:
            summary = self.results[variant.label].summary
            row: dict[str, Any] = {"variant": variant.label, "system": self.system_of(variant)}
            for path, heading in VERDICT_COLUMNS.items():
                row[heading] = _get(summary, path)
            recoveries = [f.get("p99_recovery_ms") for f in summary.get("faults", [])]
            row["p99 recovery (ms)"] = _worst(recoveries)
            row["lost by cause"] = ", ".join(
                f"{k} {v}" for k, v in sorted(summary["messages"]["lost_by_cause"].items())
            )
            rows.append(row)
        return pd.DataFrame(rows)

    def system_of(self, variant: Variant) -> str:
        return str(self.results[variant.label].manifest.get("system", ""))

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {label: r.summary for label, r in self.results.items()}

    @property
    def passed(self) -> bool:
        return all(e["held"] for e in self.expectations)

    def to_text(self) -> str:
        lines = [
            f"{self.base.scenario.name}: {len(self.variants)} variants, same workload and faults"
        ]
        lines.append("")
        lines.append(self.table().drop(columns=["lost by cause"]).to_string(index=False))
        causes = self.table()[["variant", "lost by cause"]]
        if (causes["lost by cause"] != "").any():
            lines.append("\nLost by cause:")
            for _, row in causes.iterrows():
                if row["lost by cause"]:
                    lines.append(f"  {row['variant']}: {row['lost by cause']}")
        if self.expectations:
            lines.append("\nExpectations:")
            for e in self.expectations:
                mark = "held" if e["held"] else "NOT HELD"
                lines.append(f"  {mark:<9}{e['check']}  [actual {e['actual']}]  {e.get('why', '')}")
        return "\n".join(lines)

    def save(self, directory: str | Path) -> None:
        """One result directory per variant, plus the verdict table."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        for label, result in self.results.items():
            result.save(out / label, messages=False)
        table = self.table()
        tmp = out / ".verdict.parquet.tmp"
        table.to_parquet(tmp, index=False)
        tmp.replace(out / "verdict.parquet")


def _get(summary: dict[str, Any], path: str) -> Any:
    node: Any = summary
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _worst(values: list[Any]) -> Any:
    if any(v == "not_recovered" for v in values):
        return "not_recovered"
    numbers = [v for v in values if isinstance(v, int | float)]
    return max(numbers) if numbers else None


def _report(progress: Callable[[str, float], None], label: str, fraction: float) -> None:
    progress(label, fraction)


def variant_spec(base: ScenarioBase, variant: Variant) -> ScenarioBase:
    """The base scenario turned into one variant (its overrides applied and validated)."""
    data = base.to_dict()
    data.pop("compare", None)
    try:
        return load_scenario(data, variant.set)
    except ScenarioError as exc:
        raise ScenarioError(
            [f"compare variant {variant.label!r}: {p}" for p in exc.problems]
        ) from None


def compare(
    scenario: ScenarioBase | str | Path | dict[str, Any],
    variants: list[Variant] | list[dict[str, Any]] | None = None,
    seed: int | None = None,
    *,
    overrides: list[str] | None = None,
    ci: bool = False,
    progress: Callable[[str, float], None] | None = None,
) -> ComparisonResult:
    """Run the scenario once per variant with the same seed; check the cross-variant claims."""
    if isinstance(scenario, ScenarioBase):
        base = scenario.with_overrides(overrides) if overrides else scenario
    else:
        base = load_scenario(scenario, overrides, ci=ci)
    chosen = [
        v if isinstance(v, Variant) else Variant(**v) for v in (variants or base.compare.variants)
    ]
    if not chosen:
        raise ScenarioError(
            ["compare.variants: the scenario lists no variants; add [[compare.variants]] tables"]
        )
    specs = {v.label: variant_spec(base, v) for v in chosen}  # validate all before running any
    from simulator.runner import run

    results: dict[str, Result] = {}
    for variant in chosen:
        report: Callable[[float], None] | bool = False
        if progress is not None:
            report = functools.partial(_report, progress, variant.label)
        results[variant.label] = run(specs[variant.label], seed=seed, progress=report)
    outcome = ComparisonResult(base, chosen, results)
    # with variants chosen by the caller, only the claims about those variants can be checked
    labels = set(results)
    claims = [
        e
        for e in base.compare.expect
        if all(key.split(".", 1)[0] in labels for key in e.summary_keys())
    ]
    outcome.expectations = evaluate_expectations(outcome.summaries(), claims)
    return outcome
