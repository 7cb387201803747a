"""Clients of the real-Kafka cases: explicit confluent-kafka settings, a recording producer,
a read-back of a whole partition, and a consumer that runs as a child process to be SIGKILLed.

confluent-kafka (librdkafka) does not share the Java client's defaults, so every setting the
cases compare is spelled out here, in the Java client's names where librdkafka has the same
property; docs/validation.md lists the differences. Run as a script this module is the consumer
child: ``python kafka_clients.py consume --bootstrap ... --topic ... --group ... --out FILE``.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VALUE_BYTES = 100  # the simulator's default workload.value_bytes
ID_DIGITS = 10
CLIENT_LOGGER = logging.getLogger("rksim.validation.kafka.client")


def encode_id(message_id: int) -> bytes:
    """A record value that carries its message id (zero-padded, then filler to VALUE_BYTES)."""
    return f"{message_id:0{ID_DIGITS}d}".encode().ljust(VALUE_BYTES, b".")


def decode_id(value: bytes) -> int:
    return int(value[:ID_DIGITS])


@dataclass(frozen=True)
class ProducerSettings:
    """Every producer setting a case compares, with the value both sides run with.

    Defaults are the Java client's (Kafka 4.0 ProducerConfig) except where a case needs
    otherwise; librdkafka's own defaults differ (see docs/validation.md), so all are passed.
    """

    acks: str = "all"
    enable_idempotence: bool = False
    linger_ms: int = 5
    batch_size: int = 16384
    max_in_flight_requests_per_connection: int = 5
    retries: int = 2147483647
    retry_backoff_ms: int = 100
    request_timeout_ms: int = 30000
    delivery_timeout_ms: int = 120000

    def confluent(self) -> dict[str, Any]:
        return {
            "acks": self.acks,
            "enable.idempotence": self.enable_idempotence,
            "linger.ms": self.linger_ms,
            "batch.size": self.batch_size,
            "max.in.flight.requests.per.connection": self.max_in_flight_requests_per_connection,
            "retries": self.retries,
            "retry.backoff.ms": self.retry_backoff_ms,
            "request.timeout.ms": self.request_timeout_ms,
            "delivery.timeout.ms": self.delivery_timeout_ms,
            # librdkafka-only knobs pinned to neutral values: no compression (Java: none;
            # librdkafka: none), partitioner of the Java client for keyed records
            "compression.type": "none",
            "partitioner": "murmur2_random",
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ConsumerSettings:
    """Every consumer setting a case compares (Java defaults unless a case needs otherwise)."""

    enable_auto_commit: bool = True
    auto_commit_interval_ms: int = 5000
    # Java commits, at the next poll, the offsets the previous poll returned; librdkafka
    # commits in the background whatever offsets were *stored*. Storing after processing
    # (enable.auto.offset.store=false + store_offsets) is the closest librdkafka equivalent.
    store_offsets_after_processing: bool = True
    auto_offset_reset: str = "latest"
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    max_poll_interval_ms: int = 300000
    group_protocol: str = "classic"
    isolation_level: str = "read_uncommitted"

    def confluent(self, group_id: str) -> dict[str, Any]:
        return {
            "group.id": group_id,
            "group.protocol": self.group_protocol,
            "enable.auto.commit": self.enable_auto_commit,
            "auto.commit.interval.ms": self.auto_commit_interval_ms,
            "enable.auto.offset.store": not self.store_offsets_after_processing,
            "auto.offset.reset": self.auto_offset_reset,
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": self.heartbeat_interval_ms,
            "max.poll.interval.ms": self.max_poll_interval_ms,
            "isolation.level": self.isolation_level,
            "partition.assignment.strategy": "range",
        }

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ProduceLog:
    """What the client saw for each message id: send time, answer time and error (if any)."""

    sent_s: dict[int, float] = field(default_factory=dict)
    acked_s: dict[int, float] = field(default_factory=dict)
    failed: dict[int, str] = field(default_factory=dict)  # id -> librdkafka error name

    @property
    def acked(self) -> set[int]:
        return set(self.acked_s)

    def acked_between(self, start_s: float, end_s: float) -> set[int]:
        """Ids sent in [start_s, end_s) and acknowledged (at any time)."""
        return {i for i, t in self.sent_s.items() if start_s <= t < end_s and i in self.acked_s}

    def unanswered(self) -> set[int]:
        return set(self.sent_s) - set(self.acked_s) - set(self.failed)

    def latencies_s(self, ids: set[int] | None = None) -> list[float]:
        chosen = self.acked_s if ids is None else {i: self.acked_s[i] for i in ids}
        return [chosen[i] - self.sent_s[i] for i in sorted(chosen)]


class RecordingProducer:
    """A confluent-kafka producer that numbers its messages and records every answer."""

    def __init__(self, bootstrap: str, topic: str, settings: ProducerSettings) -> None:
        from confluent_kafka import Producer

        self.topic = topic
        self.settings = settings
        self.log = ProduceLog()
        self.next_id = 0
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "logger": CLIENT_LOGGER, **settings.confluent()}
        )

    def _on_delivery_callback(self, message_id: int, err: Any, _message: Any) -> None:
        now = time.perf_counter()
        if err is None:
            self.log.acked_s[message_id] = now
        else:
            self.log.failed[message_id] = err.name()

    def send(self) -> int:
        message_id = self.next_id
        self.next_id += 1
        self.log.sent_s[message_id] = time.perf_counter()
        self._producer.produce(
            self.topic,
            value=encode_id(message_id),
            on_delivery=functools.partial(self._on_delivery_callback, message_id),
        )
        return message_id

    def poll(self, timeout_s: float = 0.0) -> None:
        self._producer.poll(timeout_s)

    def produce_for(self, duration_s: float, rate_per_s: float) -> list[int]:
        """Send at a constant rate for `duration_s` (open loop), serving callbacks meanwhile."""
        interval = 1.0 / rate_per_s
        start = time.perf_counter()
        end = start + duration_s
        next_send = start
        sent: list[int] = []
        while True:
            now = time.perf_counter()
            if now >= end:
                return sent
            if now >= next_send:
                sent.append(self.send())
                next_send += interval
                self._producer.poll(0)
            else:
                self._producer.poll(min(next_send, end) - now)

    def send_and_wait(self, timeout_s: float = 30.0) -> int:
        """Send one message and wait for its answer (closed loop, for latency)."""
        message_id = self.send()
        deadline = time.perf_counter() + timeout_s
        while message_id not in self.log.acked_s and message_id not in self.log.failed:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"no answer for message {message_id} in {timeout_s}s")
            self._producer.poll(0.01)
        return message_id

    def flush(self, timeout_s: float) -> int:
        """Wait for outstanding answers; returns how many are still unanswered."""
        return int(self._producer.flush(timeout_s))


def high_watermark(bootstrap: str, topic: str, partition: int = 0) -> int:
    """The partition's high watermark: the offset up to which every ISR member has the log."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "rksim-watermarks", "logger": CLIENT_LOGGER}
    )
    try:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=5)
        return int(high)
    finally:
        consumer.close()


def read_partition(
    bootstrap: str, topic: str, partition: int = 0, timeout_s: float = 30.0
) -> list[tuple[int, int]]:
    """Every record of one partition from the beginning to its high watermark: (offset, id)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"rksim-readback-{topic}",
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted",
            "logger": CLIENT_LOGGER,
        }
    )
    try:
        _low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=timeout_s
        )
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        records: list[tuple[int, int]] = []
        deadline = time.monotonic() + timeout_s
        position = -1
        while position + 1 < high:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"read {len(records)} records of {topic}[{partition}] up to offset "
                    f"{position}, high watermark {high}, in {timeout_s}s"
                )
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error() is not None:
                raise RuntimeError(f"reading {topic}[{partition}]: {message.error()}")
            position = int(message.offset() or 0)
            records.append((position, decode_id(message.value() or b"")))
        return records
    finally:
        consumer.close()


def consume(
    bootstrap: str,
    topic: str,
    group_id: str,
    settings: ConsumerSettings,
    out: Path,
    *,
    processing_ms: float,
    stop_after_offset: int | None = None,
    max_runtime_s: float = 120.0,
) -> None:
    """Consume as an application would: process (sleep), record `offset id` to `out`, store.

    Each processed record is a flushed line of `out` before its offset is stored, so the file
    is what the application processed even if the process is SIGKILLed mid-way.
    """
    from confluent_kafka import Consumer

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "logger": CLIENT_LOGGER, **settings.confluent(group_id)}
    )
    consumer.subscribe([topic])
    deadline = time.monotonic() + max_runtime_s
    try:
        with out.open("a", buffering=1, encoding="ascii") as processed:
            while time.monotonic() < deadline:
                message = consumer.poll(0.2)
                if message is None:
                    continue
                if message.error() is not None:
                    continue  # e.g. partition EOF events; the broker's errors are retried
                if processing_ms > 0:
                    time.sleep(processing_ms / 1000.0)
                offset = int(message.offset() or 0)
                processed.write(f"{offset} {decode_id(message.value() or b'')}\n")
                if settings.store_offsets_after_processing:
                    consumer.store_offsets(message)
                if stop_after_offset is not None and offset >= stop_after_offset:
                    return
    finally:
        consumer.close()


def read_processed(path: Path) -> list[tuple[int, int]]:
    """The `offset id` lines a consumer wrote (a torn last line of a killed child is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="ascii").splitlines():
        parts = line.split()
        if len(parts) == 2:
            records.append((int(parts[0]), int(parts[1])))
    return records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("consume", help="run a consumer until killed (or max runtime)")
    c.add_argument("--bootstrap", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--group", required=True)
    c.add_argument("--out", required=True, type=Path)
    c.add_argument("--processing-ms", type=float, default=0.0)
    c.add_argument("--settings", default="{}", help="ConsumerSettings fields as JSON")
    c.add_argument("--max-runtime-s", type=float, default=120.0)
    args = parser.parse_args(argv)
    import json

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = ConsumerSettings(**json.loads(args.settings))
    consume(
        args.bootstrap,
        args.topic,
        args.group,
        settings,
        args.out,
        processing_ms=args.processing_ms,
        max_runtime_s=args.max_runtime_s,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
