"""Where sweep runs execute: in this process, in local worker processes, or on a Dask cluster.

Each backend calls `fn(*args)` for every args tuple and reports each outcome as it arrives with
`on_done(index, value, error)` (`error` is text when the call could not complete), so the caller
can write every result at once. None of them stops at a failed call.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import multiprocessing
import os
import platform
import sys
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, CancelledError, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from importlib import metadata
from pathlib import Path
from typing import Any

OnDone = Callable[[int, Any, str | None], None]


class BackendError(RuntimeError):
    """The backend cannot run the sweep (no Dask, scheduler unreachable, software differs)."""


# what a worker runs ------------------------------------------------------------------------
def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def _package_dirs(kinds: Sequence[str]) -> list[Path]:
    """The simulator package and the packages of the given system models."""
    from simulator import systems

    dirs = {Path(__file__).resolve().parent}
    for kind in kinds:
        module = sys.modules.get(systems.get(kind).factory.__module__)
        if module is not None and getattr(module, "__file__", None):
            dirs.add(Path(module.__file__).resolve().parent)  # type: ignore[arg-type]
    return sorted(dirs)


def compute_fingerprint(kinds: Sequence[str] = ()) -> dict[str, str]:
    """Versions that can change a result, and a hash of the sources of the simulator and of the
    given system models, as they are on disk now.

    Two machines with equal fingerprints compute equal results for equal (scenario, seed).
    """
    digest = hashlib.sha256()
    for directory in _package_dirs(kinds):
        for path in sorted(directory.rglob("*")):
            # code only: scenario files travel resolved, as data, inside each task
            if path.suffix == ".py" and "__pycache__" not in path.parts:
                digest.update(path.relative_to(directory.parent).as_posix().encode())
                digest.update(path.read_bytes())
    return {
        "rksim": _version("rksim"),
        "python": platform.python_version(),
        "simpy": _version("simpy"),
        "numpy": _version("numpy"),
        "pandas": _version("pandas"),
        "pydantic": _version("pydantic"),
        "systems": ",".join(kinds),
        "code": digest.hexdigest()[:16],
    }


@functools.lru_cache(maxsize=16)
def environment_fingerprint(kinds: tuple[str, ...] = ()) -> dict[str, str]:
    """This process's fingerprint, taken once: the code it imported is the code it runs."""
    return compute_fingerprint(kinds)


def usable_cpus() -> int:
    """CPUs this process may run on (a container or `taskset` may allow fewer than exist)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# in this process ---------------------------------------------------------------------------
def map_serial(fn: Callable[..., Any], args: Sequence[tuple[Any, ...]], on_done: OnDone) -> None:
    """One call after the other, here (no start-up cost; monkeypatching works in tests)."""
    for index, item in enumerate(args):
        on_done(index, fn(*item), None)


# local processes ---------------------------------------------------------------------------
def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now (Ctrl-C): the runs they were doing are lost, and rerun on resume."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()


def map_processes(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    on_done: OnDone,
    *,
    workers: int,
    prefetch: int = 2,
) -> None:
    """Calls in `workers` spawned processes, at most `prefetch` x workers in flight.

    A call whose worker process dies (out of memory, a crash in native code, killed) breaks the
    pool. The calls that were in flight become suspects: the pool is rebuilt and each suspect
    runs alone; one that breaks the pool while alone is reported as failed, the others run on.
    """
    context = multiprocessing.get_context("spawn")
    queue: deque[int] = deque(range(len(args)))
    suspects: deque[int] = deque()
    while queue or suspects:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=context)
        running: dict[Future[Any], int] = {}
        broken = False
        try:
            while (queue or suspects or running) and not broken:
                source = suspects if suspects else queue
                # a suspect runs alone, nothing beside it; other calls fill the pool
                limit = 1 if suspects else prefetch * workers
                while source and len(running) < limit:
                    i = source.popleft()
                    try:
                        running[pool.submit(fn, *args[i])] = i
                    except BrokenProcessPool:  # broke between two results: try i again
                        source.appendleft(i)
                        broken = True
                        break
                if broken:
                    break
                complete, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in complete:
                    try:
                        value = future.result()
                    except BrokenProcessPool:
                        broken = True  # stays in `running`: rerun, or blamed if it ran alone
                    except Exception as exc:  # fn raised, or its value could not be pickled
                        on_done(running.pop(future), None, f"{type(exc).__name__}: {exc}")
                    else:
                        on_done(running.pop(future), value, None)
        except BaseException:
            _terminate(pool)
            raise
        if broken:
            _terminate(pool)
            if len(running) == 1:
                (culprit,) = running.values()
                on_done(culprit, None, "worker process died running this call alone (killed?)")
            else:
                suspects.extend(sorted(running.values()))
        else:
            pool.shutdown(wait=True)


# Dask --------------------------------------------------------------------------------------
def _worker_fingerprint(kinds: tuple[str, ...]) -> dict[str, str]:
    return environment_fingerprint(kinds)


def _connect(scheduler: Any, workers: int | None) -> tuple[Any, Callable[[], None]]:
    """A Client for `scheduler` (address, Client, or None for a LocalCluster) and its closer."""
    try:
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise BackendError(
            f"the dask backend needs the dask extra: pip install 'rksim[dask]' ({exc})"
        ) from None
    if isinstance(scheduler, Client):
        return scheduler, lambda: None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers or usable_cpus(),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # its HTTP server on a free port (8787 may be taken)
        )
        client = Client(cluster)

        def close() -> None:
            client.close()
            cluster.close()

        return client, close
    try:
        client = Client(str(scheduler), timeout="20s")
    except (OSError, TimeoutError) as exc:
        raise BackendError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    return client, client.close


def _check_workers(client: Any, kinds: tuple[str, ...]) -> dict[str, str]:
    """Every worker must run the software this client has on disk; return that fingerprint."""
    mine = compute_fingerprint(kinds)
    theirs = client.run(_worker_fingerprint, kinds)
    if not theirs:
        raise BackendError("the Dask cluster has no workers; start some with `dask worker ADDR`")
    problems = []
    for address, fingerprint in sorted(theirs.items()):
        differ = [
            f"{k} {fingerprint.get(k)} vs {v}" for k, v in mine.items() if fingerprint.get(k) != v
        ]
        if differ:
            problems.append(f"{address}: {'; '.join(differ)}")
    if problems:
        raise BackendError(
            "Dask workers run different software than this client (worker vs client); install "
            "the same rksim version everywhere:\n  " + "\n  ".join(problems)
        )
    return mine


def map_dask(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    on_done: OnDone,
    *,
    scheduler: Any = None,
    workers: int | None = None,
    systems: Sequence[str] = (),
    prefetch: int = 2,
) -> None:
    """Calls as Dask tasks, about `prefetch` per worker thread in flight.

    Every task has its own key (a per-sweep nonce and the call's index) and `pure=False`, so Dask
    never merges two runs that look alike. The expected software fingerprint is passed to each
    call (`fn(*args, fingerprint)`) so a worker that joins later and differs records an error
    instead of a wrong result. The fingerprint covers the simulator and the models of `systems`. A task whose workers keep dying (Dask's `allowed-failures`) is
    reported as failed.
    """
    client, close = _connect(scheduler, workers)
    futures: dict[Any, int] = {}
    try:
        from distributed import as_completed

        expected = _check_workers(client, tuple(systems))
        nonce = uuid.uuid4().hex[:12]
        pending = deque(range(len(args)))
        completed = as_completed()

        def capacity() -> int:
            return max(2, prefetch * sum(client.nthreads().values()))

        def top_up() -> None:
            limit = capacity() if pending else 0
            while pending and len(futures) < limit:
                i = pending.popleft()
                future = client.submit(
                    fn, *args[i], expected, key=f"rksim-run-{nonce}-{i}", pure=False, retries=0
                )
                futures[future] = i
                completed.add(future)

        top_up()
        lost = 0
        for future in completed:
            i = futures.pop(future)
            try:
                value = future.result()
            except (CancelledError, asyncio.CancelledError):
                lost += 1  # the scheduler or the connection went away: not the run's fault
                continue
            except Exception as exc:  # KilledWorker, or the task raised
                on_done(i, None, f"{type(exc).__name__}: {exc}")
            else:
                on_done(i, value, None)
            future.release()
            top_up()
        if lost or pending:
            raise BackendError(
                f"{lost + len(pending)} runs were cancelled by the Dask cluster (scheduler gone?); "
                "the finished runs are kept: rerun to resume"
            )
    except BaseException:
        for future in list(futures):
            future.cancel()
        raise
    finally:
        close()
