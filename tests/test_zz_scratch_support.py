import os, signal, sys, time
import pytest
from hypothesis import given, settings, strategies as st
from support import free_port, require_binary, spawn, wait_for_port, ProcessGroup

PIDS = {}

def test_group_spawn(process_group, artifacts_dir):
    p = process_group.spawn(["sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait"], grace_s=1)
    time.sleep(0.3)
    PIDS["pgid"] = p.pgid
    assert p.log_path.parent == artifacts_dir
    os.killpg(p.pgid, 0)

def test_group_gone_after_teardown():
    t0 = time.monotonic()
    with pytest.raises(ProcessLookupError):
        os.killpg(PIDS["pgid"], 0)

def test_port(process_group):
    port = free_port()
    p = process_group.spawn([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)])
    wait_for_port(port, proc=p, timeout_s=10)

def test_early_exit(process_group):
    p = process_group.spawn(["sh", "-c", "echo boom; exit 3"])
    wait_for_port(free_port(), proc=p, timeout_s=5)

def test_missing_binary():
    require_binary("definitely-not-here-xyz", "scratch")

@pytest.mark.real_redis
def test_marked():
    pass

@given(st.integers())
def test_hyp(x):
    pass

def test_profile():
    print("PROFILE", settings.get_current_profile_name(), settings.default.max_examples, settings.default.derandomize)
