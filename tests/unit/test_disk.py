"""Disk: page cache, fsync, kernel writeback, power loss, atomic replacement, slow disk."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from simulator.context import RunContext
from simulator.disk import Disk
from simulator.scenario import Disk as DiskSpec
from simulator.scenario import ScenarioBase, ScenarioMeta


def make_disk(seed: int = 1, **disk: Any) -> Disk:
    """A disk named "d1" in a fresh run starting at t = 0.

    `model_construct` skips only the cross-section checks, which need a registered system model;
    each section is still validated, and the disk needs nothing else.
    """
    spec = ScenarioBase.model_construct(
        scenario=ScenarioMeta(warmup_s=0.0, seed=seed), disk=DiskSpec(**disk)
    )
    ctx = RunContext(spec)
    return Disk(ctx, "d1", spec.disk)


def run_until(disk: Disk, t_ms: float) -> None:
    disk.env.run(until=t_ms)


def test_disk_registers_in_the_run_context() -> None:
    disk = make_disk()
    assert disk.ctx.disks == {"d1": disk}
    with pytest.raises(ValueError, match="duplicate disk"):
        Disk(disk.ctx, "d1", disk.spec)


def test_process_crash_keeps_page_cache() -> None:
    # A crashed process loses nothing it wrote: the page cache belongs to the kernel, so the
    # disk has nothing to do on a crash. The data is readable, just not durable yet.
    disk = make_disk()
    log = disk.file("aof")
    log.append(10, 1000)
    run_until(disk, 1000)
    assert (log.written, log.durable) == (10, 0)
    assert disk.dirty_bytes() == 1000


def test_fsync_makes_data_durable() -> None:
    disk = make_disk(fsync_ms=2.0, fsync_sigma=0.0)
    log = disk.file("aof")
    log.append(10, 1000)
    done = log.fsync()
    log.append(5, 500)  # written after the call: not covered by this fsync
    run_until(disk, 1.9)
    assert not done.triggered and log.durable == 0
    run_until(disk, 3.0)
    assert done.processed and done.value == 10
    assert log.durable == 10
    assert disk.dirty_bytes() == 500


def test_fsync_pays_for_the_dirty_bytes() -> None:
    disk = make_disk(fsync_ms=1.0, fsync_sigma=0.0, write_mb_s=500.0)
    log = disk.file("log")
    log.append(1, 50_000_000)  # 50 MB at 500 MB/s = 100 ms, plus 1 ms of flush
    done = log.fsync()
    run_until(disk, 100.9)
    assert not done.triggered
    run_until(disk, 101.1)
    assert done.processed


def test_power_loss_drops_what_was_not_fsynced() -> None:
    disk = make_disk()
    log = disk.file("aof")
    log.append(10, 1000)
    log.fsync()
    run_until(disk, 1000)
    log.append(5, 500)
    assert disk.power_loss() == {"aof": (15, 10)}
    assert (log.written, log.durable) == (10, 10)
    assert disk.dirty_bytes() == 0


def test_fsync_interrupted_by_power_loss_never_completes() -> None:
    disk = make_disk(fsync_ms=10.0, fsync_sigma=0.0)
    log = disk.file("aof")
    log.append(10, 1000)
    done = log.fsync()
    run_until(disk, 5)
    disk.power_loss()
    run_until(disk, 1000)
    assert not done.triggered
    assert (log.written, log.durable) == (0, 0)


def test_dirty_pages_written_back_after_expire() -> None:
    # vm.dirty_expire_centisecs = 3000, vm.dirty_writeback_centisecs = 500: the flusher wakes
    # every 5 s (at 5000, 10000, ... ms here) and writes back what is at least 30 s old.
    disk = make_disk()
    log = disk.file("kafka-0")
    # written at -> first wake-up when it is 30 s old
    written_back_at = {0: 30_000, 1000: 35_000, 7500: 40_000}
    durable_at: dict[int, float] = {}

    def writer_and_observer():
        for t in range(0, 45_000, 100):
            if t in written_back_at:
                log.append(1, 1000)
            durable_at[t] = log.durable
            yield disk.env.timeout(100)

    disk.env.process(writer_and_observer())
    disk.env.run(until=45_000)
    for records, (written, wakeup) in enumerate(written_back_at.items(), start=1):
        assert durable_at[written + 30_000 - 100] < records, "durable before it was 30 s old"
        assert durable_at[wakeup - 100] < records, "written back between flusher wake-ups"
        assert durable_at[wakeup + 100] >= records, "not written back at the next wake-up"
    assert disk.dirty_bytes() == 0


def test_fsyncs_are_serialized() -> None:
    disk = make_disk(fsync_ms=10.0, fsync_sigma=0.0)
    first, second = disk.file("a"), disk.file("b")
    first.append(1, 0)
    second.append(1, 0)
    done_first, done_second = first.fsync(), second.fsync()
    run_until(disk, 10.5)
    assert done_first.processed and not done_second.triggered
    run_until(disk, 20.5)
    assert done_second.processed


def test_slow_disk_multiplies_fsync_latency() -> None:
    disk = make_disk(fsync_ms=10.0, fsync_sigma=0.0)
    log = disk.file("aof")
    disk.slow(5.0)
    slow_fsync = log.fsync()
    run_until(disk, 49.5)
    assert not slow_fsync.triggered
    run_until(disk, 50.5)
    assert slow_fsync.processed
    disk.restore()
    disk.restore()  # already restored: no second event
    fast_fsync = log.fsync()
    run_until(disk, 61.0)
    assert fast_fsync.processed
    assert [e.kind for e in disk.ctx.events] == ["slow_disk", "disk_restored"]


def test_median_fsync_latency_is_fsync_ms() -> None:
    # Lognormal sigma 0.5: the sample median of n = 20000 has a standard error of about
    # 1.25 * 0.5 / sqrt(20000) = 0.44% in log space, so ±3% is more than 6 standard errors.
    disk = make_disk(fsync_ms=4.0, fsync_sigma=0.5)
    samples = [disk.fsync_latency_sample() for _ in range(20_000)]
    assert np.median(samples) == pytest.approx(4.0, rel=0.03)


def test_same_seed_gives_same_fsync_latencies() -> None:
    def draws(seed: int) -> list[float]:
        disk = make_disk(seed=seed)
        return [disk.fsync_latency_sample() for _ in range(3)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def test_atomic_replace_keeps_old_content_until_complete() -> None:
    disk = make_disk(fsync_ms=1.0, fsync_sigma=0.0, write_mb_s=500.0)
    disk.replace("dump.rdb", "snapshot-1", position=100)
    done = disk.write_atomic("dump.rdb", "snapshot-2", nbytes=500_000_000, position=200)  # 1 s
    run_until(disk, 900)
    rdb = disk.file("dump.rdb")
    assert (rdb.content, rdb.durable) == ("snapshot-1", 100)
    run_until(disk, 1002)
    assert done.processed and done.value == 200
    assert (rdb.content, rdb.written, rdb.durable) == ("snapshot-2", 200, 200)


def test_power_loss_during_atomic_replace_keeps_old_file() -> None:
    disk = make_disk(fsync_sigma=0.0)
    disk.replace("dump.rdb", "snapshot-1")
    done = disk.write_atomic("dump.rdb", "snapshot-2", nbytes=500_000_000)
    run_until(disk, 500)
    disk.power_loss()
    run_until(disk, 5000)
    assert not done.triggered
    assert disk.file("dump.rdb").content == "snapshot-1"


def test_truncate_drops_the_log_suffix() -> None:
    disk = make_disk()
    log = disk.file("p0")
    log.append(10, 1000)
    log.fsync()
    run_until(disk, 100)
    log.append(10, 1000)
    disk.truncate("p0", 15)
    assert (log.written, log.durable) == (15, 10)
    assert disk.dirty_bytes() == pytest.approx(500)
    disk.truncate("p0", 5)
    assert (log.written, log.durable) == (5, 5)
    assert disk.dirty_bytes() == 0


def test_read_time_follows_read_bandwidth() -> None:
    disk = make_disk(read_mb_s=1000.0)
    assert disk.read_time_ms(1_000_000_000) == pytest.approx(1000.0)  # 1 GB at 1 GB/s
