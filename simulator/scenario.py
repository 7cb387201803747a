"""The scenario spec: typed, frozen, validated, loaded from TOML, with `--set a.b=c` overrides.

A scenario file has the core sections defined here (`[scenario]`, `[system]`, `[workload]`,
`[network]`, `[disk]`, `[checker]`, `[[faults]]`, `[nemesis]`, `[[expect]]`) and one section per
system model (`[queue]`, `[redis]`, `[kafka]`), whose schema each model registers through
`simulator.systems`. Unknown keys are errors that name the field path, the value and what is
allowed.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import tomli_w
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from simulator import systems

# Bounds that keep one run within memory (documented in docs/scenarios.md, checked by the fuzzer).
MAX_DURATION_S = 24 * 3600.0
MAX_RATE_PER_S = 5_000_000.0
MAX_MESSAGES = 50_000_000
# Bounds that keep a run's tables within memory: time-series buckets over the whole run, and
# the random nemesis's expected number of faults (duration / mean interval).
MAX_BUCKETS = 200_000
MAX_NEMESIS_FAULTS = 10_000


class ScenarioError(ValueError):
    """A scenario that does not validate; `problems` holds one readable line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[list[str]]]:
        # keep the problem list intact when the error crosses a process boundary (sweeps)
        return (type(self), (self.problems,))


class Spec(BaseModel):
    """Base of every spec section: frozen, unknown keys forbidden."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)


PositiveMs = Annotated[float, Field(gt=0)]


class ScenarioMeta(Spec):
    name: str = Field("unnamed", description="Short identifier of the scenario.")
    description: str = Field("", description="One line shown by `rksim scenarios`.")
    lesson: str = Field(
        "", description="What to look at and why it happens (shown in the dashboard)."
    )
    duration_s: float = Field(
        10.0, gt=0, le=MAX_DURATION_S, description="Length of the measured phase, in seconds."
    )
    seed: int = Field(1, ge=0, lt=2**63, description="Root seed of every random stream of the run.")
    warmup_s: float = Field(
        1.0,
        ge=0,
        le=3600,
        description="Warm-up before anything is produced: consumers join and groups settle.",
    )
    drain_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="Longest final phase: heal, restart crashed nodes, drain consumers, final read.",
    )
    ci_set: list[str] = Field(
        default_factory=list,
        description="`key=value` overrides that shrink the scenario to its CI size.",
    )
    tags: list[str] = Field(
        default_factory=list, description="Free labels used to group scenarios."
    )


class SystemSection(Spec):
    kind: str = Field("queue", description="Which system model runs the scenario.")


class Phase(Spec):
    """A stretch of the arrival rate profile."""

    duration_s: float = Field(gt=0, le=MAX_DURATION_S, description="Length of this phase.")
    shape: Literal["constant", "ramp", "burst", "diurnal"] = Field(
        "constant",
        description="constant: rate_per_s; ramp: linear from rate_per_s to to_rate_per_s; "
        "burst: rate_per_s x burst_factor; diurnal: one sine period around rate_per_s.",
    )
    rate_per_s: float = Field(gt=0, le=MAX_RATE_PER_S, description="Rate of this phase.")
    to_rate_per_s: float | None = Field(
        None, gt=0, le=MAX_RATE_PER_S, description="End rate of a ramp."
    )
    burst_factor: float = Field(10.0, gt=0, le=1000, description="Multiplier of a burst phase.")
    amplitude: float = Field(0.5, ge=0, le=1, description="Relative amplitude of a diurnal phase.")


class Workload(Spec):
    arrival: Literal["poisson", "constant"] = Field(
        "poisson", description="Open-loop inter-arrival times: exponential or fixed."
    )
    mode: Literal["open", "closed"] = Field(
        "open",
        description="open: messages arrive at their own rate whatever the latency; "
        "closed: each client waits for its reply (plus think time) before the next request.",
    )
    rate_per_s: float = Field(
        1000.0, gt=0, le=MAX_RATE_PER_S, description="Mean total arrival rate (open loop)."
    )
    phases: list[Phase] = Field(
        default_factory=list,
        description="Rate profile; empty means rate_per_s for the whole duration. The last phase "
        "lasts until the end.",
    )
    producers: int = Field(1, ge=1, le=10_000, description="Producing clients (open loop).")
    clients: int = Field(1, ge=1, le=10_000, description="Closed-loop clients.")
    think_time_ms: float = Field(
        0.0, ge=0, le=3_600_000, description="Closed loop: pause after each reply."
    )
    connections_per_client: int = Field(1, ge=1, le=64, description="Connections per client.")
    pipeline: int = Field(
        1,
        ge=1,
        le=100_000,
        description="Requests a client sends per round trip (pipelining depth).",
    )
    consumers: int = Field(
        1, ge=0, le=10_000, description="Consuming clients (workers, subscribers)."
    )
    processing_ms: float = Field(
        0.0, ge=0, le=600_000, description="Consumer processing time per message."
    )
    value_bytes: int = Field(100, ge=0, le=64 * 2**20, description="Mean message value size.")
    value_bytes_distribution: Literal["fixed", "exponential", "lognormal"] = Field(
        "fixed", description="Distribution of message sizes around value_bytes."
    )
    keys: int = Field(1000, ge=1, le=100_000_000, description="Distinct keys.")
    key_distribution: Literal["uniform", "zipf"] = Field("uniform", description="Key popularity.")
    zipf_s: float = Field(
        1.1, gt=0, le=10, description="Zipf exponent when key_distribution = zipf."
    )
    max_messages: int = Field(
        MAX_MESSAGES, ge=1, le=MAX_MESSAGES, description="Hard cap on produced messages."
    )


class Network(Spec):
    rtt_ms: float = Field(
        0.2,
        ge=0.01,
        le=10_000,
        description="Mean round-trip time of a link. 0.1-0.5 ms is typical inside one LAN / "
        "availability zone (Redis latency docs; cloud provider intra-zone figures); 10 us "
        "is about the floor of a kernel TCP round trip.",
    )
    jitter: float = Field(
        0.2, ge=0, le=3, description="Sigma of the lognormal factor applied to each one-way delay."
    )
    bandwidth_mbps: float = Field(
        10_000.0, gt=0, le=1_000_000, description="Link bandwidth (10 GbE default)."
    )
    tcp_rto_ms: float = Field(
        200.0,
        ge=1,
        le=120_000,
        description="Retransmission delay after a lost packet (Linux TCP_RTO_MIN 200 ms; "
        "TCP_RTO_MAX 120 s).",
    )


class Disk(Spec):
    fsync_ms: float = Field(
        1.0,
        gt=0,
        le=60_000,
        description="Median fsync latency (about 0.05-1 ms on NVMe, 1-10 ms on SATA SSD or "
        "network block storage, 10+ ms on spinning disks).",
    )
    fsync_sigma: float = Field(0.5, ge=0, le=3, description="Sigma of the lognormal fsync latency.")
    write_mb_s: float = Field(
        500.0, gt=0, le=1_000_000, description="Sequential write bandwidth of the device."
    )
    read_mb_s: float = Field(
        1000.0, gt=0, le=1_000_000, description="Sequential read bandwidth of the device."
    )
    dirty_expire_centisecs: int = Field(
        3000,
        ge=1,
        le=int(MAX_DURATION_S * 100),
        description="vm.dirty_expire_centisecs: age after which dirty pages are written back.",
    )
    dirty_writeback_centisecs: int = Field(
        500,
        ge=1,
        le=int(MAX_DURATION_S * 100),
        description="vm.dirty_writeback_centisecs: period of the writeback flusher.",
    )


class CheckerSpec(Spec):
    bucket_ms: float = Field(
        0.0,
        ge=0,
        le=MAX_DURATION_S * 1000,
        description="Time bucket of the time series; 0 = automatic. At most "
        f"{MAX_BUCKETS:,} buckets over the run.",
    )
    min_samples: int = Field(
        20, ge=1, le=1_000_000, description="Samples a bucket needs to count for recovery."
    )
    hold_buckets: int = Field(
        3, ge=1, le=10_000, description="Buckets a recovered level must hold."
    )
    recovery_factor: float = Field(
        1.5, ge=1, le=1000, description="A metric is recovered when <= baseline x this factor ..."
    )
    recovery_floor_ms: float = Field(
        1.0,
        ge=0,
        le=3_600_000,
        description="... or <= baseline + this absolute floor (whichever is larger).",
    )


FAULT_KINDS = (
    "crash",
    "power_loss",
    "stop",
    "restart",
    "partition",
    "heal",
    "slow_disk",
    "delay",
    "packet_loss",
    "pause",
    "slow_consumer",
    "consumer_crash",
)
FaultKind = Literal[
    "crash",
    "power_loss",
    "stop",
    "restart",
    "partition",
    "heal",
    "slow_disk",
    "delay",
    "packet_loss",
    "pause",
    "slow_consumer",
    "consumer_crash",
]


class Fault(Spec):
    at_s: float = Field(
        ge=0,
        le=MAX_DURATION_S,
        description="When the fault begins, seconds into the measured phase.",
    )
    kind: FaultKind = Field(description="What happens (see docs/faults).")
    target: str = Field(
        "",
        description="A node name or a role the model resolves when the fault fires "
        "(leader, primary, a_replica, a_consumer, all_servers, ...).",
    )
    duration_s: float | None = Field(
        None,
        gt=0,
        le=MAX_DURATION_S,
        description="How long it lasts; crash/power_loss/stop then restart, partition heals. "
        "None = until a later heal/restart or the final phase.",
    )
    groups: list[list[str]] = Field(
        default_factory=list,
        description="partition: node groups (names or roles) cut from each other.",
    )
    one_way: bool = Field(
        False, description="partition: cut only traffic from the target outwards."
    )
    factor: float = Field(
        10.0, gt=0, le=100_000, description="slow_disk / slow_consumer multiplier."
    )
    delay_ms: float = Field(100.0, ge=0, le=600_000, description="delay: extra one-way latency.")
    loss_probability: float = Field(0.1, ge=0, lt=1, description="packet_loss: packet loss rate.")


class Nemesis(Spec):
    enabled: bool = Field(False, description="Inject random faults during the measured phase.")
    kinds: list[FaultKind] = Field(
        default_factory=lambda: list[FaultKind](["crash", "partition", "pause"]),
        description="Fault kinds to draw.",
    )
    targets: list[str] = Field(
        default_factory=lambda: ["all_servers"],
        description="Targets (names or roles) to draw from.",
    )
    mean_interval_s: float = Field(
        10.0,
        ge=0.01,
        le=MAX_DURATION_S,
        description="Mean time between fault starts (at most "
        f"{MAX_NEMESIS_FAULTS:,} expected faults over the run).",
    )
    mean_duration_s: float = Field(3.0, gt=0, le=MAX_DURATION_S, description="Mean fault duration.")


EXPECTATION_PATTERN = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(==|!=|<=|>=|<|>)\s*(\S+)\s*$")
SUMMARY_SECTIONS = (
    "messages",
    "latency_ms",
    "throughput",
    "availability",
    "faults",
    "sim_events",
    "duration_s",
    "bucket_ms",
    "model",
)


class Expectation(Spec):
    """A checkable claim about the summary, e.g. `messages.lost == 0`."""

    check: str = Field(
        description="`<summary key> <op> <number or summary key>`; op in == != < <= > >="
    )
    why: str = Field("", description="What the expectation demonstrates.")

    @field_validator("check")
    @classmethod
    def _syntax(cls, value: str) -> str:
        if EXPECTATION_PATTERN.match(value) is None:
            raise ValueError(
                f"{value!r} is not `<summary key> <op> <number or summary key>` "
                "with op in == != < <= > >=, e.g. `messages.lost == 0`"
            )
        return value

    def summary_keys(self) -> list[str]:
        """The summary keys the claim reads (left side, and right side unless a number)."""
        match = EXPECTATION_PATTERN.match(self.check)
        assert match is not None
        left, _, right = match.groups()
        return [left] if _is_number(right) else [left, right]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class Variant(Spec):
    """One system (or configuration) of a side-by-side comparison."""

    label: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="Identifier used in tables and in comparison expectations (`kafka.messages.lost`).",
    )
    set: list[str] = Field(
        default_factory=list,
        description="`key=value` overrides that turn the base into this variant.",
    )
    description: str = Field("", description="What this variant is (shown in tables and figures).")


class Comparison(Spec):
    """The same workload and faults against several variants (`rksim compare`)."""

    variants: list[Variant] = Field(default_factory=list, description="The systems compared.")
    expect: list[Expectation] = Field(
        default_factory=list,
        description="Claims across variants: keys are prefixed by a variant label.",
    )


class ScenarioBase(Spec):
    scenario: ScenarioMeta = Field(default_factory=ScenarioMeta)
    system: SystemSection = Field(default_factory=SystemSection)
    workload: Workload = Field(default_factory=Workload)
    network: Network = Field(default_factory=Network)
    disk: Disk = Field(default_factory=Disk)
    checker: CheckerSpec = Field(default_factory=CheckerSpec)
    faults: list[Fault] = Field(default_factory=list)
    nemesis: Nemesis = Field(default_factory=Nemesis)
    expect: list[Expectation] = Field(default_factory=list)
    compare: Comparison = Field(default_factory=Comparison)

    @model_validator(mode="after")
    def _cross_checks(self) -> ScenarioBase:
        problems: list[str] = []
        kinds = systems.kinds()
        kind = self.system.kind
        if kind not in kinds:
            if kind in systems.load_errors:
                problems.append(
                    f"system.kind: the {kind!r} model failed to load: {systems.load_errors[kind]}"
                )
            else:
                problems.append(
                    f"system.kind: unknown system {kind!r}; allowed: {', '.join(kinds)}"
                )
            raise ValueError("\n".join(problems))
        section = self.system_config
        names = set(section.node_names()) if section is not None else set()
        roles = set(section.roles()) if section is not None else set()
        allowed = sorted(names) + sorted(roles)
        duration = self.scenario.duration_s
        for i, fault in enumerate(self.faults):
            where = f"faults[{i}]"
            if fault.at_s >= duration:
                problems.append(
                    f"{where}.at_s: {fault.at_s} is not before the end of the run; "
                    f"allowed: 0 <= at_s < scenario.duration_s ({duration})"
                )
            needs_target = fault.kind not in ("heal", "partition") or (
                fault.kind == "partition" and not fault.groups
            )
            if needs_target and not fault.target:
                problems.append(f"{where}.target: missing; allowed: {', '.join(allowed)}")
            if fault.target and fault.target not in names and fault.target not in roles:
                problems.append(
                    f"{where}.target: unknown node or role {fault.target!r}; allowed: {', '.join(allowed)}"
                )
            for g, group in enumerate(fault.groups):
                for member in group:
                    if member not in names and member not in roles:
                        problems.append(
                            f"{where}.groups[{g}]: unknown node or role {member!r}; "
                            f"allowed: {', '.join(allowed)}"
                        )
        span_s = self.scenario.warmup_s + duration + self.scenario.drain_s
        if self.checker.bucket_ms > 0 and span_s * 1000 / self.checker.bucket_ms > MAX_BUCKETS:
            problems.append(
                f"checker.bucket_ms: {self.checker.bucket_ms:g} ms gives "
                f"{span_s * 1000 / self.checker.bucket_ms:,.0f} buckets over the run "
                f"({span_s:g} s with warm-up and drain); allowed: at most {MAX_BUCKETS:,}, "
                f"i.e. bucket_ms >= {span_s * 1000 / MAX_BUCKETS:.3g}, or 0 (automatic)"
            )
        if self.nemesis.enabled and duration / self.nemesis.mean_interval_s > MAX_NEMESIS_FAULTS:
            problems.append(
                f"nemesis.mean_interval_s: {self.nemesis.mean_interval_s:g} s gives about "
                f"{duration / self.nemesis.mean_interval_s:,.0f} faults in {duration:g} s; "
                f"allowed: at most {MAX_NEMESIS_FAULTS:,}, i.e. mean_interval_s >= "
                f"{duration / MAX_NEMESIS_FAULTS:.3g}"
            )
        for t in self.nemesis.targets if self.nemesis.enabled else []:
            if t not in names and t not in roles:
                problems.append(
                    f"nemesis.targets: unknown node or role {t!r}; allowed: {', '.join(allowed)}"
                )
        for i, expectation in enumerate(self.expect):
            for key in expectation.summary_keys():
                if key.split(".")[0] not in SUMMARY_SECTIONS:
                    problems.append(
                        f"expect[{i}].check: unknown summary key {key!r}; keys start with one "
                        f"of: {', '.join(SUMMARY_SECTIONS)}"
                    )
        labels = [v.label for v in self.compare.variants]
        for i, expectation in enumerate(self.compare.expect):
            for key in expectation.summary_keys():
                label, _, rest = key.partition(".")
                if label not in labels or rest.split(".")[0] not in SUMMARY_SECTIONS:
                    problems.append(
                        f"compare.expect[{i}].check: {key!r} must be `<variant>.<summary key>` "
                        f"with variant in: {', '.join(labels) or '(no variants)'}"
                    )
        for label in sorted({x for x in labels if labels.count(x) > 1}):
            problems.append(f"compare.variants: label {label!r} is used more than once")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def system_config(self) -> Any:
        """The resolved section of the chosen system (e.g. the `[kafka]` table)."""
        return getattr(self, self.system.kind, None)

    def to_dict(self) -> dict[str, Any]:
        """Plain data of the fully resolved scenario (None values dropped for TOML)."""
        return _drop_none(self.model_dump(mode="json"))

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def digest(self) -> str:
        """Stable hash of the resolved scenario (cache key of the dashboard, sweep resume)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def with_overrides(self, overrides: list[str] | dict[str, Any]) -> ScenarioBase:
        """A copy with `a.b=c` overrides applied and validated."""
        data = self.to_dict()
        apply_overrides(data, overrides)
        return validate(data)


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


@functools.cache
def scenario_model() -> type[ScenarioBase]:
    """The Scenario class with one optional section per registered system."""
    fields: dict[str, Any] = {}
    for kind in systems.kinds():
        config_cls = systems.get(kind).config
        fields[kind] = (
            config_cls | None,
            Field(None, description=f"Configuration of the {kind} model ({config_cls.__doc__})."),
        )
    model = create_model("Scenario", __base__=ScenarioBase, **fields)
    return model


def _fill_system_section(data: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    system = data.get("system", {})
    kind = system.get("kind", "queue") if isinstance(system, dict) else None
    if isinstance(kind, str) and kind in systems.kinds() and data.get(kind) is None:
        data[kind] = {}
    return data


def _fields_of(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The allowed keys at `loc` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return None


def _inner_model(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _inner_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def _format_errors(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    problems: list[str] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        path = ""
        for part in loc:
            path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
        value = err.get("input")
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _fields_of(model, loc)
            allowed_txt = ", ".join(allowed) if allowed else "see `rksim schema`"
            problems.append(f"{path}: unknown key (value {value!r}); allowed keys: {allowed_txt}")
        elif kind == "missing":
            problems.append(f"{path}: missing required value")
        elif kind == "value_error":
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.extend(msg.splitlines())
        else:
            msg = err["msg"]
            problems.append(f"{path}: {value!r} is not allowed: {msg}")
    return problems


def validate(data: dict[str, Any]) -> ScenarioBase:
    """Validate plain data (parsed TOML) into a Scenario, or raise ScenarioError."""
    model = scenario_model()
    if not isinstance(data, dict):
        raise ScenarioError([f"scenario: expected a table of sections, got {type(data).__name__}"])
    try:
        return model.model_validate(_fill_system_section(data))
    except ValidationError as exc:
        raise ScenarioError(_format_errors(exc, model)) from None


def parse_value(text: str) -> Any:
    """A `--set` value: TOML syntax (numbers, booleans, arrays, quoted strings) or a bare string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> None:
    """Apply `a.b.c=value` overrides to plain data in place."""
    items: list[tuple[str, Any]] = []
    if isinstance(overrides, dict):
        items = list(overrides.items())
    else:
        for item in overrides:
            if "=" not in item:
                raise ScenarioError(
                    [f"--set {item!r}: expected KEY=VALUE, e.g. kafka.producer.acks=1"]
                )
            key, _, raw = item.partition("=")
            items.append((key.strip(), parse_value(raw.strip())))
    for key, value in items:
        parts = key.split(".")
        if not all(parts):
            raise ScenarioError([f"--set {key!r}: empty path component"])
        node: Any = data
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                try:
                    node = node[int(part)]
                except (ValueError, IndexError):
                    raise ScenarioError([f"--set {key}: no element {part!r}"]) from None
                continue
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict | list):
                raise ScenarioError(
                    [f"--set {key}: {'.'.join(parts[: i + 1])} is a value, not a section"]
                )
            node = nxt
        if isinstance(node, list):
            raise ScenarioError([f"--set {key}: cannot set a list element this way"])
        node[parts[-1]] = value


def builtin_dir() -> Path:
    return Path(__file__).parent / "scenarios"


def builtin_names() -> list[str]:
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


MAX_SCENARIO_BYTES = 1_000_000  # a scenario is a small text file; larger input is refused
MAX_INCLUDE_DEPTH = 4


def _parse_file(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_SCENARIO_BYTES:
            raise ScenarioError([f"{path}: larger than {MAX_SCENARIO_BYTES} bytes; not a scenario"])
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"{path}: not valid TOML: {exc}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot read: {exc}"]) from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`, table by table (arrays and values of `over` replace)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _with_includes(data: dict[str, Any], path: Path, depth: int) -> dict[str, Any]:
    """Resolve a top-level `include = ["calibration.toml", ...]` (relative to the file).

    Included files are applied in order beneath the including file, whose own values win: a
    calibration written by `rksim calibrate` can be shared by many scenarios.
    """
    includes = data.pop("include", [])
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ScenarioError([f"{path}: include: expected a list of file names, got {includes!r}"])
    if includes and depth >= MAX_INCLUDE_DEPTH:
        raise ScenarioError([f"{path}: include: nested deeper than {MAX_INCLUDE_DEPTH} files"])
    merged: dict[str, Any] = {}
    for name in includes:
        target = (path.parent / name).resolve()
        if not target.exists():
            raise ScenarioError([f"{path}: include: no file {name!r} next to it"])
        merged = merge(merged, _with_includes(_parse_file(target), target, depth + 1))
    return merge(merged, data)


def read_toml(source: str | Path) -> dict[str, Any]:
    """Read a scenario file (with its includes), or a built-in scenario by name."""
    path = Path(source)
    if not path.exists():
        candidate = builtin_dir() / f"{source}.toml"
        if candidate.exists():
            path = candidate
        else:
            raise ScenarioError(
                [
                    f"scenario: no file or built-in scenario named {str(source)!r}; "
                    f"built-in: {', '.join(builtin_names())}"
                ]
            )
    return _with_includes(_parse_file(path), path, 0)


def loads(text: str, overrides: list[str] | dict[str, Any] | None = None) -> ScenarioBase:
    """Validate a scenario given as TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError([f"scenario: not valid TOML: {exc}"]) from None
    if overrides:
        apply_overrides(data, overrides)
    return validate(data)


def load_scenario(
    source: str | Path | dict[str, Any],
    overrides: list[str] | dict[str, Any] | None = None,
    *,
    ci: bool = False,
) -> ScenarioBase:
    """Load a scenario from a file, a built-in name or plain data; apply overrides; validate.

    With `ci=True` the scenario's own `ci_set` overrides are applied first (its small CI size).
    """
    data = copy.deepcopy(source) if isinstance(source, dict) else read_toml(source)
    if ci:
        meta = data.get("scenario", {})
        ci_set = meta.get("ci_set", []) if isinstance(meta, dict) else []
        apply_overrides(data, list(ci_set))
    if overrides:
        apply_overrides(data, overrides)
    return validate(data)


def json_schema() -> dict[str, Any]:
    return scenario_model().model_json_schema()


# Re-exported name for type hints: the concrete class is built at run time.
Scenario = ScenarioBase
