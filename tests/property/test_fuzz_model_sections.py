"""Fuzzing the [redis] and [kafka] sections: random values for every field, nested sections too.

Each example fills a random subset of the fields of the system's config class (and of its nested
section classes) with wild values (any type, out of range, garbage strings, nested garbage) or
with plausible ones, plus an occasional unknown key. The document must either validate or raise
a ScenarioError with readable lines; never another exception.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from models.kafka.config import KafkaConfig
from models.redis.config import RedisConfig
from simulator.scenario import MAX_DURATION_S, MAX_RATE_PER_S, ScenarioError, load_scenario

wild = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["all", "1", "0", "everysec", "1mb", "32mb 8mb 60", "5 1000", "-1", "1e400"]),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
OVERRIDE_PATHS = [
    "kafka.brokers",
    "kafka.topic.partitions",
    "kafka.producer.acks",
    "kafka.topic",
    "redis.hz",
    "redis.maxmemory",
    "redis.save",
    "redis.appendfsync",
]
plausible = st.one_of(st.integers(0, 16), st.floats(0, 1000, allow_nan=False), st.booleans())


def _section(config: type[BaseModel], depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for name, field in config.model_fields.items():
        nested = field.annotation
        if isinstance(nested, type) and issubclass(nested, BaseModel) and depth < 2:
            fields[name] = st.one_of(_section(nested, depth + 1), wild)
        else:
            fields[name] = st.one_of(wild, plausible)
    return st.fixed_dictionaries({}, optional={**fields, "no_such_field": wild})


def _check(doc: dict[str, Any]) -> None:
    try:
        spec = load_scenario(doc)
    except ScenarioError as exc:
        assert exc.problems, "a ScenarioError must say what is wrong"
        for line in exc.problems:
            assert isinstance(line, str) and line.strip()
            assert "Traceback" not in line
        return
    # a valid scenario stays inside the documented maximums that bound a run
    assert spec.scenario.duration_s <= MAX_DURATION_S
    assert spec.workload.rate_per_s <= MAX_RATE_PER_S


@settings(max_examples=150)
@given(section=_section(KafkaConfig))
def test_random_kafka_sections_validate_or_raise_scenario_error(section: dict[str, Any]) -> None:
    _check({"system": {"kind": "kafka"}, "kafka": section})


@settings(max_examples=150)
@given(section=_section(RedisConfig))
def test_random_redis_sections_validate_or_raise_scenario_error(section: dict[str, Any]) -> None:
    _check({"system": {"kind": "redis"}, "redis": section})


@settings(max_examples=60)
@given(
    kind=st.sampled_from(["kafka", "redis"]),
    section=st.one_of(wild, st.dictionaries(st.text(max_size=8), wild, max_size=4)),
    overrides=st.lists(
        st.tuples(
            st.sampled_from(OVERRIDE_PATHS),
            st.text(max_size=10),
        ),
        max_size=3,
    ),
)
def test_wrong_shapes_and_overrides_of_a_model_section_are_scenario_errors(
    kind: str, section: Any, overrides: list[tuple[str, str]]
) -> None:
    doc: dict[str, Any] = {"system": {"kind": kind}, kind: section}
    try:
        load_scenario(doc, [f"{path}={value}" for path, value in overrides])
    except ScenarioError as exc:
        assert exc.problems


def _upper_bound(config: type[BaseModel], name: str) -> float | None:
    for meta in config.model_fields[name].metadata:
        for attr in ("le", "lt"):
            bound = getattr(meta, attr, None)
            if bound is not None:
                return float(bound)
    return None


def test_counts_that_size_a_run_have_documented_maximums() -> None:
    """Node and partition counts are capped, so a valid file cannot ask for unbounded memory."""
    from models.kafka.config import TopicConfig

    for config, name in (
        (KafkaConfig, "brokers"),
        (TopicConfig, "partitions"),
        (TopicConfig, "replication_factor"),
        (RedisConfig, "hz"),
        (RedisConfig, "io_threads"),
    ):
        assert _upper_bound(config, name) is not None, f"{config.__name__}.{name} has no maximum"
    for name in ("replicas",):  # replication: bounded once it exists
        if name in RedisConfig.model_fields:
            assert _upper_bound(RedisConfig, name) is not None
