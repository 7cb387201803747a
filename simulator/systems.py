"""Registry of system models.

The core never imports a model: models are found through the `rksim.systems` entry points
(declared in pyproject.toml), so the import direction stays models -> simulator (DESIGN rule 1).
Tests and notebooks can also `register()` a system directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from simulator.context import RunContext
    from simulator.model import SystemModel


class SystemConfig(BaseModel):
    """Base of a model's scenario section: frozen, unknown keys forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    def node_names(self) -> list[str]:
        """Names of the nodes this configuration builds (fault targets)."""
        return []

    def roles(self) -> list[str]:
        """Roles a fault may target, resolved to nodes when the fault fires."""
        return []


@dataclass(frozen=True)
class System:
    """A system model: its kind, its scenario section and its factory."""

    kind: str
    config: type[SystemConfig]
    factory: Callable[[RunContext], SystemModel]
    description: str = ""


_registered: dict[str, System] = {}
# a model that fails to import must not take the others down: its error is kept and reported
# when a scenario asks for that kind
load_errors: dict[str, str] = {}


@functools.cache
def _from_entry_points() -> dict[str, System]:
    found: dict[str, System] = {}
    for ep in sorted(entry_points(group="rksim.systems"), key=lambda e: e.name):
        try:
            system = ep.load()
        except Exception as exc:
            load_errors[ep.name] = f"{type(exc).__name__}: {exc}"
            continue
        found[system.kind] = system
    return found


def all_systems() -> dict[str, System]:
    merged = dict(_from_entry_points())
    merged.update(_registered)
    return dict(sorted(merged.items()))


def kinds() -> list[str]:
    return list(all_systems())


def get(kind: str) -> System:
    systems = all_systems()
    if kind not in systems:
        raise KeyError(f"unknown system {kind!r}; allowed: {', '.join(systems)}")
    return systems[kind]


def register(system: System) -> None:
    """Register a system at run time (tests, notebooks); rebuilds the scenario schema."""
    _registered[system.kind] = system
    from simulator import scenario

    scenario.scenario_model.cache_clear()


def describe() -> dict[str, Any]:
    return {k: s.description for k, s in all_systems().items()}
