"""The scenario spec: defaults, overrides, and one test per bad-input case with its exact message."""

from __future__ import annotations

import pytest

from simulator.scenario import ScenarioError, load_scenario, loads, parse_value


def problems(data: dict, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(data, overrides)
    return info.value.problems


def test_empty_scenario_takes_documented_defaults() -> None:
    spec = load_scenario({})
    assert spec.system.kind == "queue"
    assert spec.scenario.duration_s == 10.0
    assert spec.network.rtt_ms == 0.2
    assert spec.disk.dirty_expire_centisecs == 3000
    assert spec.disk.dirty_writeback_centisecs == 500
    assert spec.system_config is not None  # the chosen system's section is filled in


def test_spec_is_frozen() -> None:
    spec = load_scenario({})
    with pytest.raises(Exception, match="frozen"):
        spec.workload.rate_per_s = 5  # type: ignore[misc]


def test_unknown_key_names_path_value_and_allowed_keys() -> None:
    (line,) = problems({"workload": {"rate": 5}})
    assert line.startswith(
        "workload.rate: unknown key (value 5); allowed keys: arrival, mode, rate_per_s"
    )


def test_unknown_section_is_rejected() -> None:
    (line,) = problems({"wrkload": {}})
    assert line.startswith("wrkload: unknown key")
    assert "workload" in line


def test_rate_must_be_positive() -> None:
    assert problems({"workload": {"rate_per_s": 0}}) == [
        "workload.rate_per_s: 0 is not allowed: Input should be greater than 0"
    ]


def test_wrong_type_is_named() -> None:
    assert problems({"scenario": {"duration_s": "long"}}) == [
        "scenario.duration_s: 'long' is not allowed: Input should be a valid number, "
        "unable to parse string as a number"
    ]


def test_unknown_system_kind_lists_allowed() -> None:
    (line,) = problems({"system": {"kind": "rabbitmq"}})
    assert line.startswith("system.kind: unknown system 'rabbitmq'; allowed: ")
    assert "queue" in line


def test_fault_after_the_end_is_rejected() -> None:
    assert problems(
        {
            "scenario": {"duration_s": 5},
            "faults": [{"at_s": 7, "kind": "crash", "target": "server"}],
        }
    ) == [
        "faults[0].at_s: 7.0 is not before the end of the run; allowed: 0 <= at_s < scenario.duration_s (5.0)"
    ]


def test_fault_targeting_unknown_node_lists_nodes_and_roles() -> None:
    (line,) = problems({"faults": [{"at_s": 1, "kind": "crash", "target": "broker9"}]})
    assert line.startswith("faults[0].target: unknown node or role 'broker9'; allowed: ")
    assert "server" in line and "primary" in line


def test_unknown_fault_kind_lists_kinds() -> None:
    (line,) = problems({"faults": [{"at_s": 1, "kind": "meteor", "target": "server"}]})
    assert line.startswith("faults[0].kind: 'meteor' is not allowed: Input should be 'crash'")


def test_several_problems_are_all_reported() -> None:
    lines = problems({"workload": {"rate_per_s": -1, "keys": 0}})
    assert len(lines) == 2


def test_set_override_is_typed_by_the_schema() -> None:
    spec = load_scenario({}, ["workload.rate_per_s=2500", 'queue.service="deterministic"'])
    assert spec.workload.rate_per_s == 2500.0
    assert spec.system_config.service == "deterministic"


def test_bare_string_override_value() -> None:
    spec = load_scenario({}, ["queue.service=deterministic"])
    assert spec.system_config.service == "deterministic"


def test_override_without_equals_is_an_error() -> None:
    assert problems({}, ["workload.rate_per_s"]) == [
        "--set 'workload.rate_per_s': expected KEY=VALUE, e.g. kafka.producer.acks=1"
    ]


def test_override_of_unknown_key_is_an_error() -> None:
    (line,) = problems({}, ["workload.rat=5"])
    assert line.startswith("workload.rat: unknown key (value 5)")


def test_parse_value_uses_toml_syntax() -> None:
    assert parse_value("5") == 5
    assert parse_value("true") is True
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("all") == "all"


def test_bad_toml_is_a_scenario_error() -> None:
    with pytest.raises(ScenarioError, match="not valid TOML"):
        loads("[workload\nrate = ")


def test_missing_file_lists_builtins() -> None:
    with pytest.raises(ScenarioError, match=r"no file or built-in scenario named 'nope\.toml'"):
        load_scenario("nope.toml")


def test_round_trip_through_toml_is_identical() -> None:
    spec = load_scenario(
        {"faults": [{"at_s": 1, "kind": "crash", "target": "server", "duration_s": 2}]},
        ["workload.rate_per_s=123"],
    )
    again = loads(spec.to_toml())
    assert again == spec
    assert again.digest() == spec.digest()


def test_digest_changes_with_any_value() -> None:
    a = load_scenario({})
    b = load_scenario({}, ["workload.rate_per_s=1001"])
    assert a.digest() != b.digest()


def test_every_builtin_scenario_validates() -> None:
    from simulator.scenario import builtin_names

    names = builtin_names()
    assert names
    for name in names:
        load_scenario(name)
        load_scenario(name, ci=True)


def test_include_applies_a_shared_file_beneath_the_scenario(tmp_path) -> None:
    (tmp_path / "calibration.toml").write_text("[disk]\nfsync_ms = 0.13\nfsync_sigma = 0.22\n")
    (tmp_path / "s.toml").write_text(
        'include = ["calibration.toml"]\n[disk]\nfsync_sigma = 0.5\n[workload]\nrate_per_s = 10\n'
    )
    spec = load_scenario(str(tmp_path / "s.toml"))
    assert spec.disk.fsync_ms == 0.13  # from the included file
    assert spec.disk.fsync_sigma == 0.5  # the scenario's own value wins


def test_missing_include_is_named(tmp_path) -> None:
    (tmp_path / "s.toml").write_text('include = ["nope.toml"]\n')
    with pytest.raises(ScenarioError, match=r"include: no file 'nope\.toml' next to it"):
        load_scenario(str(tmp_path / "s.toml"))


def test_a_bucket_too_small_for_the_run_is_refused_with_the_smallest_allowed() -> None:
    (line,) = problems({"scenario": {"duration_s": 3600}, "checker": {"bucket_ms": 1}})
    assert line.startswith("checker.bucket_ms: 1 ms gives ")
    assert "allowed: at most 200,000" in line
    # a bucket above the smallest allowed one it names is accepted
    load_scenario({"scenario": {"duration_s": 3600}, "checker": {"bucket_ms": 50}})


def test_a_nemesis_that_would_inject_more_faults_than_allowed_is_refused() -> None:
    (line,) = problems(
        {
            "scenario": {"duration_s": 3600},
            "nemesis": {"enabled": True, "mean_interval_s": 0.1, "targets": ["server"]},
        }
    )
    assert line.startswith("nemesis.mean_interval_s: 0.1 s gives about 36,000 faults")
    # a disabled nemesis is not checked: its interval never fires
    load_scenario({"scenario": {"duration_s": 3600}, "nemesis": {"mean_interval_s": 0.1}})


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("network", "tcp_rto_ms", 0.001),
        ("network", "bandwidth_mbps", 1e9),
        ("disk", "write_mb_s", 1e9),
        ("workload", "think_time_ms", 1e12),
        ("checker", "hold_buckets", 10**9),
    ],
)
def test_periods_and_sizes_outside_their_documented_range_are_named(
    section: str, field: str, value: float
) -> None:
    (line,) = problems({section: {field: value}})
    assert line.startswith(f"{section}.{field}: {value!r} is not allowed: Input should be")
