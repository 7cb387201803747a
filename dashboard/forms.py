"""Parameter widgets generated from the scenario schema (pydantic fields), never written by hand.

A field's name is the real configuration name, its description becomes the widget's help, its
bounds (`ge`, `le`, integer `gt`/`lt`) become the widget's limits; everything else (strict float
bounds, cross-field rules) is left to the schema, whose `ScenarioError` the page shows.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
import streamlit as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

# Streamlit sends numbers to the browser as JavaScript doubles.
JS_MAX_SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Param:
    """One editable scalar of the scenario: its dotted path, schema field and current value."""

    path: str  # e.g. "workload.rate_per_s", "kafka.producer.acks"
    field: FieldInfo
    kind: Literal["bool", "int", "float", "choice"]
    value: Any
    choices: tuple[Any, ...] = ()
    optional: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """`X | None` -> (X, True); anything else -> (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def scalar_kind(annotation: Any) -> tuple[str, tuple[Any, ...], bool] | None:
    """(widget kind, literal choices, optional) for a scalar field type; None if not a scalar."""
    inner, optional = _unwrap_optional(annotation)
    if typing.get_origin(inner) is Literal:
        return "choice", tuple(typing.get_args(inner)), optional
    if inner is bool:
        # an unset optional flag is a third state a checkbox cannot show
        return ("choice", (True, False), True) if optional else ("bool", (), False)
    if inner is int:
        return "int", (), optional
    if inner is float:
        return "float", (), optional
    return None


def nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model class of a sub-section field (`producer: ProducerConfig`), else None."""
    inner, _optional = _unwrap_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, BaseModel):
        return inner
    return None


def scalar_params(section: BaseModel, prefix: str, names: tuple[str, ...] = ()) -> list[Param]:
    """The editable scalar fields of a spec section (all, in schema order, or `names` in order)."""
    fields = type(section).model_fields
    params = []
    for name in names or tuple(fields):
        field = fields[name]
        found = scalar_kind(field.annotation)
        if found is None:
            continue
        kind, choices, optional = found
        value = getattr(section, name)
        params.append(Param(f"{prefix}.{name}", field, kind, value, choices, optional))  # type: ignore[arg-type]
    return params


def sub_sections(section: BaseModel, prefix: str) -> list[tuple[str, list[Param]]]:
    """One level of nested sections (e.g. `kafka.producer`) with their own scalar fields."""
    found = []
    for name, field in type(section).model_fields.items():
        if nested_model(field.annotation) is None:
            continue
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            params = scalar_params(value, f"{prefix}.{name}")
            if params:
                found.append((f"{prefix}.{name}", params))
    return found


def _bounds(field: FieldInfo, kind: str) -> tuple[float | None, float | None]:
    """Widget limits from the field's constraints (strict float bounds stay with the schema)."""
    low: float | None = None
    high: float | None = None
    for item in field.metadata:
        if isinstance(item, annotated_types.Ge):
            low = item.ge  # type: ignore[assignment]
        elif isinstance(item, annotated_types.Le):
            high = item.le  # type: ignore[assignment]
        elif isinstance(item, annotated_types.Gt) and kind == "int":
            low = item.gt + 1  # type: ignore[operator]
        elif isinstance(item, annotated_types.Lt) and kind == "int":
            high = item.lt - 1  # type: ignore[operator]
    if kind == "int":
        low = None if low is None else int(max(low, -JS_MAX_SAFE_INTEGER))
        high = None if high is None else int(min(high, JS_MAX_SAFE_INTEGER))
    else:
        low = None if low is None else float(low)
        high = None if high is None else float(high)
    return low, high


def _float_step(value: float | None, high: float | None) -> float:
    """A step of about a tenth of the value's magnitude (0.1 for probabilities, 1 for zero)."""
    if high is not None and high <= 1:
        return 0.05
    if not value:
        return 1.0
    return float(10 ** (math.floor(math.log10(abs(value))) - 1)) if abs(value) >= 1 else 0.01


def _float_format(value: float | None) -> str:
    """Enough decimals to show the value (0.2 -> %.2f, 0.0005 -> %.4f)."""
    if not value or abs(value) >= 1:
        return "%.2f"
    decimals = min(6, max(2, 1 - math.floor(math.log10(abs(value)))))
    return f"%.{decimals}f"


def help_text(field: FieldInfo) -> str:
    """The field description plus its schema default."""
    description = field.description or ""
    if field.default_factory is not None or field.is_required():
        return description
    return f"{description} (default: {field.default!r})".strip()


def param_widget(param: Param, key: str) -> Any:
    """Draw one widget for a parameter and return its current value."""
    label = param.name
    help_ = help_text(param.field)
    if param.kind == "bool":
        return st.checkbox(label, value=bool(param.value), key=key, help=help_)
    if param.kind == "choice":
        options = ([None] if param.optional else []) + list(param.choices)
        index = options.index(param.value) if param.value in options else 0
        return st.selectbox(
            label, options, index=index, format_func=_choice_label, key=key, help=help_
        )
    low, high = _bounds(param.field, param.kind)
    if param.kind == "int":
        whole = None if param.value is None else int(param.value)
        return st.number_input(
            label, min_value=low, max_value=high, value=whole, step=1, key=key, help=help_
        )
    value = None if param.value is None else float(param.value)
    return st.number_input(
        label,
        min_value=low,
        max_value=high,
        value=value,
        step=_float_step(value, high),
        format=_float_format(value),
        key=key,
        help=help_,
    )


def _choice_label(value: Any) -> str:
    if value is None:
        return "(not set)"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def changed(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """Overrides (`path -> value`) for the parameters whose widget differs from the scenario."""
    out = {}
    for param in params:
        value = values[param.path]
        if value is None and not param.optional:
            continue
        if value != param.value:
            out[param.path] = value
    return out


def set_text(value: Any) -> str:
    """A value as `--set` reads it back (TOML numbers and booleans, bare words as strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".12g")
    return str(value)  # a bare word is read as a string by `--set`


def as_set_flags(overrides: dict[str, Any]) -> str:
    """The same overrides as `rksim run --set` flags (TOML values)."""
    return " ".join(
        f"--set {path}={set_text(value)}" for path, value in overrides.items() if value is not None
    )
