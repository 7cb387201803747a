"""K8 on a real cluster: a consumer with auto-commit crashes; its successor redelivers.

Auto-commit commits, every auto.commit.interval.ms, the offsets of what was processed (here:
stored after processing). A consumer that is SIGKILLed between two commits has processed
records whose offsets were never committed; the next member of the group resumes at the last
committed offset and processes them again: duplicates (at-least-once), nothing lost.

The kill is placed deterministically: the test watches the group's committed offset, and kills
the consumer shortly after it sees a commit land, once some more records were processed, well
before the next commit is due.

No simulated twin yet: the Kafka model's consumers are static (no group membership, rebalance
or auto-commit); docs/validation.md lists this case as real-only until they are.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_clients import (
    ConsumerSettings,
    ProducerSettings,
    RecordingProducer,
    consume,
    read_processed,
)
from kafka_cluster import KafkaCluster, wait_until
from support import ProcessGroup

pytestmark = [pytest.mark.real_kafka, pytest.mark.xdist_group("kafka")]

RECORDS = 1000
PROCESSING_MS = 10.0  # the crashing consumer processes ~100 records/s
UNCOMMITTED_AT_KILL = 30  # records processed after the last observed commit, at least

CONSUMER = ConsumerSettings(
    enable_auto_commit=True,
    auto_commit_interval_ms=2000,
    store_offsets_after_processing=True,
    auto_offset_reset="earliest",
    session_timeout_ms=3000,
    heartbeat_interval_ms=500,
    max_poll_interval_ms=300000,
    group_protocol="classic",
    isolation_level="read_uncommitted",
)
PRODUCER = ProducerSettings(
    acks="all",
    enable_idempotence=True,
    linger_ms=5,
    batch_size=16384,
    max_in_flight_requests_per_connection=5,
    retries=2147483647,
    retry_backoff_ms=100,
    request_timeout_ms=30000,
    delivery_timeout_ms=120000,
)


class CommittedOffsets:
    """Reads a group's committed offset of partition 0 without joining the group.

    A plain consumer's committed() is used rather than AdminClient.list_consumer_group_offsets:
    librdkafka 2.16's admin client crashes (SIGSEGV in rd_kafka_cgrp_op) when that request
    meets COORDINATOR_LOAD_IN_PROGRESS, which a fresh __consumer_offsets partition answers.
    """

    def __init__(self, bootstrap: str, group: str, topic: str) -> None:
        from confluent_kafka import Consumer

        self.topic = topic
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
        )

    def __call__(self) -> int | None:
        """The committed offset, or None before the first commit."""
        from confluent_kafka import TopicPartition

        def ask() -> list[int | None]:
            [tp] = self._consumer.committed([TopicPartition(self.topic, 0)], timeout=5)
            return [tp.offset if tp.offset >= 0 else None]

        return wait_until(ask, timeout_s=30, what="the committed offset")[0]

    def close(self) -> None:
        self._consumer.close()


def test_consumer_crash_with_auto_commit_redelivers_processed_records(
    kafka: KafkaCluster,
    topic: str,
    process_group: ProcessGroup,
    artifacts_dir: Path,
    report_outcome: Callable[[str], None],
) -> None:
    kafka.create_topic(topic, config={"min.insync.replicas": "2"})
    producer = RecordingProducer(kafka.bootstrap, topic, PRODUCER)
    for _ in range(RECORDS):
        producer.send()
        producer.poll(0)
    assert producer.flush(60.0) == 0 and len(producer.log.acked) == RECORDS, producer.log.failed

    group = f"{topic}-group"
    first_out = artifacts_dir / "first-consumer.txt"
    child = process_group.spawn(
        [
            sys.executable,
            str(Path(__file__).with_name("kafka_clients.py")),
            "consume",
            f"--bootstrap={kafka.bootstrap}",
            f"--topic={topic}",
            f"--group={group}",
            f"--out={first_out}",
            f"--processing-ms={PROCESSING_MS}",
            f"--settings={json.dumps(CONSUMER.as_dict())}",
            "--max-runtime-s=120",
        ]
    )

    def processed_count() -> int:
        if child.poll() is not None:
            raise AssertionError(f"consumer exited {child.returncode}:\n{child.log_tail()}")
        return len(read_processed(first_out))

    def processed_at_least(count: int) -> bool:
        return processed_count() >= count

    # Watch the committed offset; right after it moves, let a few more records be processed
    # and kill the consumer long before the next auto-commit (every 2000 ms) is due.
    # The time since the commit is measured from when the previous read (which still returned
    # the old offset) was *sent*: the commit landed after that, so this bounds the time since
    # it from above even when a read is slow on a loaded machine.
    interval_s = CONSUMER.auto_commit_interval_ms / 1000.0
    committed_offset = CommittedOffsets(kafka.bootstrap, group, topic)
    asked_at = time.monotonic()
    seen = committed_offset()
    killed_after_commit_s = None
    too_late: list[float] = []  # seconds since a commit when its 30 records were processed
    deadline = time.monotonic() + 60
    while killed_after_commit_s is None:
        assert time.monotonic() < deadline, (
            f"no auto-commit to kill after in 60 s (commits seen, but processing "
            f"{UNCOMMITTED_AT_KILL} records after them took: {too_late} s)"
        )
        unchanged_at, asked_at = asked_at, time.monotonic()
        current = committed_offset()
        if current is None or current == seen:
            processed_count()
            time.sleep(0.02)
            continue
        seen, seen_at = current, unchanged_at
        wait_until(
            functools.partial(processed_at_least, current + UNCOMMITTED_AT_KILL),
            timeout_s=10,
            what="records processed after the commit",
            interval_s=0.01,
        )
        if time.monotonic() - seen_at < 0.5 * interval_s:
            os.killpg(child.pgid, signal.SIGKILL)  # a crash: no close(), no final commit
            killed_after_commit_s = time.monotonic() - seen_at
        else:  # too close to the next commit; wait for that one and try again
            too_late.append(round(time.monotonic() - seen_at, 2))
    child.popen.wait(timeout=10)
    first = read_processed(first_out)
    committed = committed_offset()
    committed_offset.close()
    assert committed is not None

    # The successor joins the same group (after the dead member's session.timeout.ms) and
    # resumes at the committed offset.
    second_out = artifacts_dir / "second-consumer.txt"
    consume(
        kafka.bootstrap,
        topic,
        group,
        CONSUMER,
        second_out,
        processing_ms=0.0,
        stop_after_offset=RECORDS - 1,
        max_runtime_s=60.0,
    )
    second = read_processed(second_out)
    first_offsets = {offset for offset, _id in first}
    second_offsets = {offset for offset, _id in second}
    duplicates = first_offsets & second_offsets
    report_outcome(
        f"first consumer processed {len(first_offsets)} (killed at most "
        f"{killed_after_commit_s:.2f}s after a commit), committed offset {committed}; "
        f"successor started at "
        f"{min(second_offsets) if second_offsets else None}; duplicates {len(duplicates)}; "
        f"never processed {RECORDS - len(first_offsets | second_offsets)}"
    )
    assert first_offsets | second_offsets == set(range(RECORDS)), "a record was never processed"
    assert min(second_offsets) == committed, "the successor resumes at the committed offset"
    assert duplicates == {o for o in first_offsets if o >= committed}
    assert len(duplicates) >= UNCOMMITTED_AT_KILL
    assert len(duplicates) < len(first_offsets), "commits happened: not everything redelivered"
