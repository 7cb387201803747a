"""A real Kafka 4.0 cluster on loopback ports: one KRaft controller and three broker-only nodes.

Every node is a plain ``java -cp '<libs>/*' kafka.Kafka node.properties`` child started with
``support.spawn`` (own process group, dies with the pytest worker), so nothing outlives the test
session. The fault helpers act on the JVM with signals, as an operator's ``kill`` would:
``pause`` (SIGSTOP: a long GC pause or a frozen VM), ``resume`` (SIGCONT), ``crash`` (SIGKILL:
the process dies, the OS page cache keeps what it wrote) and ``restart``.

The timeouts are shortened so that failover happens in seconds; the same values are what the
simulator side of each case must run with (``CLUSTER_SETTINGS``), see docs/validation.md.
"""

from __future__ import annotations

import base64
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from support import ManagedProcess, free_port, spawn

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

T = TypeVar("T")

CONTROLLER_ID = 0
BROKER_IDS = (1, 2, 3)

JVM_OPTIONS = (
    "-Xmx256m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)

# Broker and controller settings that differ from the Kafka 4.0 defaults (in brackets), chosen
# so that faults resolve within seconds. The simulator side must use the same values.
CLUSTER_SETTINGS: dict[str, str] = {
    # controller: a broker that misses heartbeats this long is fenced [9000]
    "broker.session.timeout.ms": "3000",
    # broker -> controller heartbeat [2000]
    "broker.heartbeat.interval.ms": "500",
    # leader drops a follower from the ISR after this long without catching up [30000]
    "replica.lag.time.max.ms": "2000",
    # first consumer-group rebalance is not delayed [3000]
    "group.initial.rebalance.delay.ms": "0",
    # allow the consumers' short session.timeout.ms (3000) [6000]
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "3",  # [50]
    "offsets.topic.replication.factor": "3",  # [3]
    "transaction.state.log.num.partitions": "3",  # [50]
    "transaction.state.log.replication.factor": "3",  # [3]
    "transaction.state.log.min.isr": "2",  # [2]
    # the defaults, spelled out because the cases depend on them
    "unclean.leader.election.enable": "false",
    "min.insync.replicas": "1",
    "default.replication.factor": "3",  # [1]
    "num.partitions": "1",
    "auto.create.topics.enable": "false",  # [true]: every test creates its own topic
    # keep leaders where the failover put them: no preferred-leader moves mid-test [true]
    "auto.leader.rebalance.enable": "false",
    # fewer threads on a 2-core machine [3 network, 8 io, 1 fetcher]
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.replica.fetchers": "1",
}

LOG4J2_PROPERTIES = """\
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.requests.name = kafka.request.logger
logger.requests.level = WARN
logger.network.name = org.apache.kafka.common.network
logger.network.level = WARN
logger.coordinator.name = org.apache.kafka.coordinator
logger.coordinator.level = WARN
"""

log = logging.getLogger("rksim.validation.kafka")


class ClusterError(RuntimeError):
    """The cluster did not reach the state a test needs within its deadline."""


def random_cluster_id() -> str:
    """A Kafka Uuid in its base64url form (what ``kafka-storage random-uuid`` prints)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid avoids these too
            return text


def wait_until(
    probe: Callable[[], T | None],
    *,
    timeout_s: float,
    what: str,
    interval_s: float = 0.1,
    describe: Callable[[], str] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None/False; raise after the deadline."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = probe()
        except Exception as exc:  # a probe against a cluster in flux may raise; retry
            value, last_error = None, exc
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            detail = describe() if describe is not None else ""
            cause = f"; last error: {last_error!r}" if last_error else ""
            raise ClusterError(f"timed out after {timeout_s}s waiting for {what}{cause}{detail}")
        time.sleep(interval_s)


@dataclass
class PartitionState:
    """What the cluster metadata says about one partition."""

    leader: int  # -1 when the partition has no leader (offline)
    replicas: list[int]
    isr: list[int]


@dataclass
class KafkaNode:
    node_id: int
    roles: str  # "controller" or "broker"
    port: int
    config_path: Path
    log_dir: Path
    proc: ManagedProcess | None = None
    paused: bool = False
    starts: int = 0

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class KafkaCluster:
    """One controller and three brokers; `start()` formats storage and starts them all."""

    libs: Path
    base_dir: Path
    log_dir: Path
    cluster_id: str = field(default_factory=random_cluster_id)
    nodes: dict[int, KafkaNode] = field(default_factory=dict)
    startup_s: float = 0.0
    fetch_s: float = 0.0
    _admin: AdminClient | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        controller_port = free_port()
        self.nodes[CONTROLLER_ID] = self._node(CONTROLLER_ID, "controller", controller_port)
        for broker_id in BROKER_IDS:
            self.nodes[broker_id] = self._node(broker_id, "broker", free_port())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log4j_path = self.base_dir / "log4j2.properties"

    # --- configuration -------------------------------------------------------------------

    def _node(self, node_id: int, roles: str, port: int) -> KafkaNode:
        node_dir = self.base_dir / f"node-{node_id}"
        return KafkaNode(
            node_id=node_id,
            roles=roles,
            port=port,
            config_path=node_dir / "server.properties",
            log_dir=node_dir / "data",
        )

    @property
    def controller(self) -> KafkaNode:
        return self.nodes[CONTROLLER_ID]

    @property
    def brokers(self) -> dict[int, KafkaNode]:
        return {i: n for i, n in self.nodes.items() if n.roles == "broker"}

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.brokers.values())

    def _properties(self, node: KafkaNode) -> dict[str, str]:
        voters = f"{CONTROLLER_ID}@127.0.0.1:{self.controller.port}"
        common = {
            "node.id": str(node.node_id),
            "process.roles": node.roles,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(node.log_dir),
            **CLUSTER_SETTINGS,
        }
        if node.roles == "controller":
            common["listeners"] = f"CONTROLLER://127.0.0.1:{node.port}"
        else:
            common["listeners"] = f"PLAINTEXT://127.0.0.1:{node.port}"
            common["advertised.listeners"] = f"PLAINTEXT://127.0.0.1:{node.port}"
            common["inter.broker.listener.name"] = "PLAINTEXT"
        return common

    def _write_configs(self) -> None:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log4j_path.write_text(LOG4J2_PROPERTIES)
        for node in self.nodes.values():
            node.config_path.parent.mkdir(parents=True, exist_ok=True)
            lines = [f"{k}={v}" for k, v in self._properties(node).items()]
            node.config_path.write_text("\n".join(lines) + "\n")

    def _java(self, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.log4j_path}",
            "-cp",
            f"{self.libs}/*",
            main_class,
            *args,
        ]

    # --- lifecycle -----------------------------------------------------------------------

    def _format(self, node: KafkaNode) -> None:
        """kafka-storage format: meta.properties (+ the bootstrap metadata on the controller)."""
        cmd = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id,
            "--config",
            str(node.config_path),
        )
        done = subprocess.run(
            cmd, capture_output=True, text=True, timeout=120, check=False, stdin=subprocess.DEVNULL
        )
        if done.returncode != 0:
            raise ClusterError(
                f"formatting node {node.node_id} failed ({done.returncode}):\n"
                f"{(done.stdout + done.stderr)[-3000:]}"
            )

    def _spawn(self, node: KafkaNode) -> None:
        node.starts += 1
        log_path = self.log_dir / f"{node.roles}-{node.node_id}.{node.starts}.log"
        node.proc = spawn(
            self._java("kafka.Kafka", str(node.config_path)), log_path=log_path, grace_s=10.0
        )
        node.paused = False

    def start(self, timeout_s: float = 120.0) -> None:
        """Format every node's storage, start the controller and the brokers, wait for them."""
        started = time.monotonic()
        self._write_configs()
        with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
            list(pool.map(self._format, self.nodes.values()))
        formatted = time.monotonic()
        for node in self.nodes.values():
            self._spawn(node)
        self.wait_for_brokers(BROKER_IDS, timeout_s=timeout_s)
        self.startup_s = time.monotonic() - started
        log.info(
            "kafka cluster up in %.1fs (format %.1fs); bootstrap %s",
            self.startup_s,
            formatted - started,
            self.bootstrap,
        )

    def stop(self) -> None:
        """Stop every node (brokers first); SIGCONT first so a paused JVM can shut down."""
        for node in self.nodes.values():
            if node.paused:
                self.resume(node.node_id)
        for node_id in [*BROKER_IDS, CONTROLLER_ID]:
            proc = self.nodes[node_id].proc
            if proc is not None:
                proc.stop()

    def log_tails(self, max_chars: int = 1500) -> str:
        """The end of each node's log, for failure messages."""
        parts = []
        for node in self.nodes.values():
            if node.proc is not None:
                parts.append(f"--- {node.roles} {node.node_id} ({node.proc.log_path}):")
                parts.append(node.proc.log_tail(max_chars))
        return "\n".join(parts)

    # --- faults --------------------------------------------------------------------------

    def _signal(self, node_id: int, signum: signal.Signals) -> None:
        node = self.nodes[node_id]
        if node.proc is None:
            raise ClusterError(f"node {node_id} was never started")
        os.killpg(node.proc.pgid, signum)

    def pause(self, node_ids: Iterable[int]) -> None:
        """SIGSTOP: the JVM freezes (no fetches, no heartbeats), its sockets stay open."""
        for node_id in node_ids:
            self._signal(node_id, signal.SIGSTOP)
            self.nodes[node_id].paused = True

    def resume(self, node_ids: Iterable[int] | int) -> None:
        for node_id in [node_ids] if isinstance(node_ids, int) else node_ids:
            self._signal(node_id, signal.SIGCONT)
            self.nodes[node_id].paused = False

    def crash(self, node_id: int) -> None:
        """SIGKILL: no controlled shutdown; what the process wrote stays in the page cache."""
        node = self.nodes[node_id]
        self._signal(node_id, signal.SIGKILL)
        assert node.proc is not None
        node.proc.popen.wait(timeout=10)
        node.proc.stop()  # reaps and unregisters; the group is already gone
        node.paused = False

    def restart(self, node_id: int) -> None:
        """Start a crashed node again from its log directory (does not wait for it)."""
        node = self.nodes[node_id]
        if node.running:
            raise ClusterError(f"node {node_id} is still running")
        self._spawn(node)

    def heal(self, timeout_s: float = 90.0) -> None:
        """Undo every fault: resume paused nodes, restart dead ones, wait until all serve."""
        for node in self.nodes.values():
            if node.paused:
                self.resume(node.node_id)
        for node in self.nodes.values():
            if not node.running:
                self._spawn(node)
        self.wait_for_brokers(BROKER_IDS, timeout_s=timeout_s)

    # --- observation ---------------------------------------------------------------------

    def admin(self) -> AdminClient:
        """One shared admin client (a librdkafka handle is destroyed with its last reference)."""
        if self._admin is None:
            from confluent_kafka.admin import AdminClient

            config: dict[str, Any] = {
                "bootstrap.servers": self.bootstrap,
                "socket.timeout.ms": 3000,
                "logger": logging.getLogger("rksim.validation.kafka.admin"),
            }
            self._admin = AdminClient(config)
        return self._admin

    def live_brokers(self, timeout_s: float = 3.0) -> set[int]:
        """Brokers the metadata lists: registered, unfenced (as the controller last said)."""
        metadata = self.admin().list_topics(timeout=timeout_s)
        return set(metadata.brokers)

    def wait_for_brokers(self, broker_ids: Iterable[int], timeout_s: float = 90.0) -> None:
        wanted = set(broker_ids)

        def probe() -> bool:
            for node in self.nodes.values():
                needed = node.node_id in wanted or node.roles == "controller"
                if needed and node.proc is not None and node.proc.poll() is not None:
                    raise ClusterError(
                        f"{node.roles} {node.node_id} exited with {node.proc.returncode}:\n"
                        f"{node.proc.log_tail()}"
                    )
            return wanted <= self.live_brokers()

        try:
            wait_until(probe, timeout_s=timeout_s, what=f"brokers {sorted(wanted)}", interval_s=0.2)
        except ClusterError as exc:
            raise ClusterError(f"{exc}\n{self.log_tails()}") from None

    def partition(self, topic: str, partition: int = 0, timeout_s: float = 3.0) -> PartitionState:
        metadata = self.admin().list_topics(topic, timeout=timeout_s)
        topic_md = metadata.topics[topic]
        if topic_md.error is not None:
            raise ClusterError(f"topic {topic}: {topic_md.error}")
        p = topic_md.partitions[partition]
        return PartitionState(leader=p.leader, replicas=list(p.replicas), isr=list(p.isrs))

    def wait_for_partition(
        self,
        topic: str,
        condition: Callable[[PartitionState], bool],
        *,
        what: str,
        timeout_s: float = 30.0,
        partition: int = 0,
    ) -> PartitionState:
        last: list[PartitionState] = []

        def probe() -> PartitionState | None:
            state = self.partition(topic, partition)
            last[:] = [state]
            return state if condition(state) else None

        return wait_until(
            probe,
            timeout_s=timeout_s,
            what=f"{topic}[{partition}] {what}",
            interval_s=0.1,
            describe=lambda: f"; last state {last[0] if last else 'unknown'}",
        )

    def create_topic(
        self,
        name: str,
        *,
        partitions: int = 1,
        replication_factor: int = 3,
        config: dict[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        """Create a topic and wait until every partition has a leader and a full ISR."""
        from confluent_kafka.admin import NewTopic

        futures = self.admin().create_topics(
            [NewTopic(name, partitions, replication_factor, config=config or {})],
            operation_timeout=timeout_s,
        )
        futures[name].result(timeout=timeout_s)
        for p in range(partitions):
            self.wait_for_partition(
                name,
                lambda s: s.leader >= 0 and len(s.isr) == replication_factor,
                what="has a leader and a full ISR",
                timeout_s=timeout_s,
                partition=p,
            )
