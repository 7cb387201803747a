"""The dashboard's one way into the runner: runs cached by (scenario digest, seed), never pickled.

A finished `Result` stays in server memory as a read-only object shared by every session
(`st.cache_resource`), so a rerun (a widget change, a download) costs a dictionary lookup instead
of a simulation or the pickling of a per-message table.
"""

from __future__ import annotations

import threading
import tomllib
from collections import OrderedDict
from collections.abc import Callable

import streamlit as st

import simulator
from simulator.results import Result
from simulator.scenario import ScenarioBase, builtin_dir, builtin_names

RunKey = tuple[str, int]
# A few finished runs; the default scenarios hold at most ~200k messages (tens of MB).
STORE_CAPACITY = 8


class ResultStore:
    """Finished runs by key, least recently used evicted first; safe across sessions' threads."""

    def __init__(self, capacity: int = STORE_CAPACITY) -> None:
        self.capacity = capacity
        self._results: OrderedDict[RunKey, Result] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: RunKey) -> Result | None:
        with self._lock:
            result = self._results.get(key)
            if result is not None:
                self._results.move_to_end(key)
            return result

    def put(self, key: RunKey, result: Result) -> None:
        with self._lock:
            self._results[key] = result
            self._results.move_to_end(key)
            while len(self._results) > self.capacity:
                self._results.popitem(last=False)


@st.cache_resource(show_spinner=False)
def result_store() -> ResultStore:
    """The process-wide store (cleared with `st.cache_resource.clear()`)."""
    return ResultStore()


def run_key(spec: ScenarioBase) -> RunKey:
    """Cache key of a run: the resolved scenario's digest and its seed."""
    return spec.digest(), int(spec.scenario.seed)


def cached_result(spec: ScenarioBase) -> Result | None:
    """The stored result of this exact scenario and seed, if it already ran."""
    return result_store().get(run_key(spec))


def run(spec: ScenarioBase, progress: Callable[[float], None] | None = None) -> Result:
    """The result of `spec` (seed included): from the store, or simulated now and stored."""
    key = run_key(spec)
    store = result_store()
    result = store.get(key)
    if result is None:
        result = simulator.run(spec, progress=progress if progress is not None else False)
        store.put(key, result)
    return result


@st.cache_data(show_spinner=False, ttl=60)
def scenario_catalog() -> dict[str, str]:
    """Built-in scenario name -> one-line description (read without validating, so a broken
    file is still listed and shows its validation errors when picked)."""
    catalog = {}
    for name in builtin_names():
        try:
            data = tomllib.loads((builtin_dir() / f"{name}.toml").read_text(encoding="utf-8"))
            meta = data.get("scenario", {})
            description = str(meta.get("description", "")) if isinstance(meta, dict) else ""
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            description = "(cannot be read)"
        catalog[name] = description
    return catalog


def file_stem(spec: ScenarioBase) -> str:
    """Base name of downloaded files: scenario, seed and digest (different runs never clash)."""
    return f"{spec.scenario.name}-seed{spec.scenario.seed}-{spec.digest()[:8]}"
