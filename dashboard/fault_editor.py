"""The `[[faults]]` table of a scenario as an editable grid, its columns generated from the schema.

Each row is one `Fault`; each column one field of it, with the field's description as help and
its bounds as limits. A `target` picks from the node names and roles the system section declares;
`groups` (a partition's node groups) is written as a TOML array: `[["primary"], ["a_replica"]]`.
Rows are turned back into plain fault tables for `load_scenario`, whose `ScenarioError` then
names any problem (`faults[0].at_s: ...`).
"""

from __future__ import annotations

import math
from typing import Any

import forms
import pandas as pd
import streamlit as st

from simulator.scenario import Fault, ScenarioBase, parse_value

LIST_FIELDS = ("groups",)


def targets(spec: ScenarioBase) -> list[str]:
    """Node names and roles a fault of this scenario may target."""
    section = spec.system_config
    if section is None:
        return []
    return list(dict.fromkeys([*section.node_names(), *section.roles()]))


def column_config(spec: ScenarioBase) -> dict[str, Any]:
    """One data-editor column per `Fault` field, generated from the schema."""
    config: dict[str, Any] = {}
    for name, field in Fault.model_fields.items():
        help_ = forms.help_text(field)
        found = forms.scalar_kind(field.annotation)
        required = field.is_required()
        if name == "target":
            config[name] = st.column_config.SelectboxColumn(name, options=targets(spec), help=help_)
        elif name in LIST_FIELDS:
            example = '[["primary"], ["a_replica"]]'
            config[name] = st.column_config.TextColumn(
                name, help=f"{help_} Written as a TOML array, e.g. {example}."
            )
        elif found is None:
            config[name] = st.column_config.TextColumn(name, help=help_)
        elif found[0] == "choice":
            config[name] = st.column_config.SelectboxColumn(
                name, options=list(found[1]), help=help_, required=required
            )
        elif found[0] == "bool":
            config[name] = st.column_config.CheckboxColumn(name, help=help_)
        else:
            low, high = forms._bounds(field, found[0])
            config[name] = st.column_config.NumberColumn(
                name,
                help=help_,
                min_value=low,
                max_value=high,
                step=1 if found[0] == "int" else None,
                required=required,
            )
    return config


def _cell(value: Any) -> Any:
    """A cell for the grid: lists as TOML text, everything else as is."""
    if isinstance(value, list):
        return "[" + ", ".join(_cell(v) if isinstance(v, list) else f'"{v}"' for v in value) + "]"
    return value


def frame(faults: list[dict[str, Any]]) -> pd.DataFrame:
    """The grid of a list of fault tables (every schema field a column, in schema order)."""
    columns = list(Fault.model_fields)
    rows = [{name: _cell(fault.get(name)) for name in columns} for fault in faults]
    table = pd.DataFrame(rows, columns=columns)
    for name, field in Fault.model_fields.items():
        found = forms.scalar_kind(field.annotation)
        if found is not None and found[0] in ("int", "float"):
            table[name] = pd.to_numeric(table[name], errors="coerce").astype("float64")
        elif found is not None and found[0] == "bool":
            table[name] = table[name].fillna(False).astype(bool)
        else:
            table[name] = table[name].astype("object")
    return table


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Fault tables from the grid: empty cells and schema defaults left out, blank rows dropped."""
    faults = []
    for record in table.to_dict("records"):
        fault: dict[str, Any] = {}
        for name, field in Fault.model_fields.items():
            value = record.get(name)
            if _missing(value):
                continue
            if hasattr(value, "item"):
                value = value.item()  # numpy scalar -> Python
            if name in LIST_FIELDS and isinstance(value, str):
                value = parse_value(value.strip())
            found = forms.scalar_kind(field.annotation)
            if found is not None and found[0] == "int" and isinstance(value, float):
                value = int(value) if value.is_integer() else value
            if not field.is_required() and value == field.get_default(call_default_factory=True):
                continue
            fault[name] = value
        if fault:
            faults.append(fault)
    return faults


def spec_faults(spec: ScenarioBase) -> list[dict[str, Any]]:
    """The scenario's own faults as plain tables without defaults (comparable with `rows`)."""
    return [fault.model_dump(mode="json", exclude_defaults=True) for fault in spec.faults]


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    """Equal fault lists (numbers compared as numbers: 5 == 5.0)."""
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(x[k] == y[k] for k in x) for x, y in zip(a, b, strict=True)
    )
