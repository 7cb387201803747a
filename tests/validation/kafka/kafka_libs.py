"""Fetch the jars of a real Kafka broker with Maven, once, into a cache folder (stdlib only).

``tests/validation/pom.xml`` pins the version; ``mvn dependency:copy-dependencies`` resolves it
through the local Maven repository (``~/.m2``, so a rerun needs no network) and copies the jars
into ``$RKSIM_KAFKA_LIBS`` or ``${XDG_CACHE_HOME:-~/.cache}/rksim/kafka-<version>/libs``. A stamp
file holding the pom's digest marks a complete copy; an exclusive file lock lets the CI
prefetch (``python3 tests/validation/kafka/kafka_libs.py`` in the background while pip installs) and
the test fixtures of several pytest-xdist workers share one fetch without racing.

Run as a script it fetches and prints the folder; exit code 0 when the jars are there.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

POM = Path(__file__).resolve().parent.parent / "pom.xml"
STAMP_NAME = ".complete"
MVN_TIMEOUT_S = 600.0


class LibsUnavailable(RuntimeError):
    """The jars are not there and could not be fetched (no mvn, no network, bad pom)."""


def kafka_version(pom: Path = POM) -> str:
    """The Kafka version pinned by the pom (``<kafka.version>``)."""
    match = re.search(r"<kafka\.version>\s*([^<\s]+)\s*</kafka\.version>", pom.read_text())
    if match is None:
        raise LibsUnavailable(f"{pom}: no <kafka.version> property")
    return match.group(1)


def libs_dir(pom: Path = POM) -> Path:
    """Where the jars of the pinned version live (created by `fetch`)."""
    explicit = os.environ.get("RKSIM_KAFKA_LIBS")
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "rksim" / f"kafka-{kafka_version(pom)}" / "libs"


def _pom_digest(pom: Path) -> str:
    return hashlib.sha256(pom.read_bytes()).hexdigest()


def is_complete(target: Path, pom: Path = POM) -> bool:
    """True when `target` holds a finished copy made from this very pom."""
    stamp = target / STAMP_NAME
    try:
        return stamp.read_text().strip() == _pom_digest(pom)
    except OSError:
        return False


def fetch(pom: Path = POM, target: Path | None = None, *, quiet: bool = True) -> Path:
    """Make sure the jars are in `target` (default `libs_dir()`); return the folder.

    Holds an exclusive lock on ``<target>.lock`` while it checks and copies, so concurrent
    callers wait for one fetch and then reuse it. Raises LibsUnavailable with Maven's output.
    """
    target = target or libs_dir(pom)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock_path = target.parent / f"{target.name}.lock"
    with lock_path.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_complete(target, pom):
            return target
        mvn = shutil.which("mvn")
        if mvn is None:
            raise LibsUnavailable("mvn (Apache Maven) not found on PATH")
        shutil.rmtree(target, ignore_errors=True)
        partial = target.parent / f"{target.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        cmd = [
            mvn,
            "-B",
            *(["-q"] if quiet else []),
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={partial}",
        ]
        started = time.monotonic()
        try:
            done = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=MVN_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise LibsUnavailable(f"{' '.join(cmd)} timed out after {MVN_TIMEOUT_S}s") from exc
        jars = sorted(partial.glob("*.jar")) if partial.is_dir() else []
        if done.returncode != 0 or not any(j.name.startswith("kafka_2.13-") for j in jars):
            output = (done.stdout + done.stderr)[-4000:]
            raise LibsUnavailable(
                f"{' '.join(cmd)} exited {done.returncode} with {len(jars)} jars:\n{output}"
            )
        (partial / STAMP_NAME).write_text(_pom_digest(pom) + "\n")
        partial.rename(target)
        if not quiet:
            print(f"fetched {len(jars)} jars in {time.monotonic() - started:.1f}s", flush=True)
        return target


def main() -> int:
    try:
        path = fetch(quiet="--verbose" not in sys.argv)
    except LibsUnavailable as exc:
        print(f"kafka libs unavailable: {exc}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
