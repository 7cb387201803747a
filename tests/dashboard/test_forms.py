"""The dashboard's parameter widgets are derived from a system's pydantic schema."""

from __future__ import annotations

import sys
from typing import Literal

from pydantic import Field
from support import REPO_ROOT

from simulator.systems import SystemConfig

sys.path.insert(0, str(REPO_ROOT / "dashboard"))

import forms


class Producer(SystemConfig):
    """a nested section, like kafka.producer"""

    acks: Literal["0", "1", "all"] = Field("all", description="acks")
    linger_ms: float = Field(5.0, ge=0, description="linger.ms")
    enable_idempotence: bool = Field(True, description="enable.idempotence")


class Toy(SystemConfig):
    """a system section with every kind of field"""

    appendfsync: Literal["always", "everysec", "no"] = Field("everysec", description="fsync policy")
    replicas: int = Field(2, gt=0, lt=10, description="replica count")
    rtt_ms: float = Field(0.2, gt=0, le=1000, description="round trip")
    loss_probability: float = Field(0.0, ge=0, le=1, description="a probability")
    sentinel: bool = Field(False, description="run Sentinel")
    wait_replicas: int | None = Field(None, ge=0, description="WAIT n")
    unclean: bool | None = Field(None, description="unset means the broker default")
    name: str = Field("x", description="not a number: no widget")
    nodes: list[str] = Field(default_factory=list, description="a list: no widget")
    producer: Producer = Field(default_factory=Producer)


def by_name(params: list[forms.Param]) -> dict[str, forms.Param]:
    return {p.name: p for p in params}


def test_scalar_fields_become_widgets_of_the_matching_kind_in_schema_order() -> None:
    params = forms.scalar_params(Toy(), "toy")
    assert [p.path for p in params] == [
        "toy.appendfsync",
        "toy.replicas",
        "toy.rtt_ms",
        "toy.loss_probability",
        "toy.sentinel",
        "toy.wait_replicas",
        "toy.unclean",
    ]
    kinds = {p.name: (p.kind, p.choices, p.optional) for p in params}
    assert kinds["appendfsync"] == ("choice", ("always", "everysec", "no"), False)
    assert kinds["replicas"] == ("int", (), False)
    assert kinds["sentinel"] == ("bool", (), False)
    assert kinds["wait_replicas"] == ("int", (), True)
    assert kinds["unclean"] == ("choice", (True, False), True)  # three states: a selectbox


def test_named_fields_keep_the_requested_order() -> None:
    params = forms.scalar_params(Toy(), "toy", ("sentinel", "replicas"))
    assert [p.name for p in params] == ["sentinel", "replicas"]


def test_nested_sections_are_offered_one_level_down() -> None:
    ((path, params),) = forms.sub_sections(Toy(), "toy")
    assert path == "toy.producer"
    assert [p.path for p in params] == [
        "toy.producer.acks",
        "toy.producer.linger_ms",
        "toy.producer.enable_idempotence",
    ]


def test_widget_limits_come_from_the_constraints() -> None:
    params = by_name(forms.scalar_params(Toy(), "toy"))
    assert forms._bounds(params["replicas"].field, "int") == (1, 9)  # gt=0, lt=10 on integers
    # a strict float bound is left to the schema, which names the field in its error
    assert forms._bounds(params["rtt_ms"].field, "float") == (None, 1000.0)
    assert forms._bounds(params["loss_probability"].field, "float") == (0.0, 1.0)


def test_help_is_the_description_and_the_default() -> None:
    params = by_name(forms.scalar_params(Toy(), "toy"))
    assert forms.help_text(params["rtt_ms"].field) == "round trip (default: 0.2)"


def test_only_changed_values_become_overrides() -> None:
    params = forms.scalar_params(Toy(), "toy")
    values = {p.path: p.value for p in params}
    assert forms.changed(params, values) == {}
    values["toy.replicas"] = 3
    values["toy.unclean"] = True
    assert forms.changed(params, values) == {"toy.replicas": 3, "toy.unclean": True}
