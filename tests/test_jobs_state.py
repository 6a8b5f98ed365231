"""Tests for explorer/jobs/state.py: the launch counter, pid-reuse guard and the run
lock that tells whether a run's process tree is alive (real processes hold it)."""
import os
import signal
import time

from explorer.jobs.state import (
    RUN_LOCK,
    is_alive,
    next_seq,
    open_lock,
    pid_alive_since,
    probe_run_lock,
    proc_start_time,
    try_flock,
)
from jobs_helpers import fake_run as _fake_run, hold_lock


def test_next_seq_counts_up(tmp_path):
    assert [next_seq(tmp_path) for _ in range(3)] == [1, 2, 3]


def test_proc_start_time_guards_pid_reuse():
    now = time.time()
    start = proc_start_time(os.getpid())
    assert start is not None and now - 86400 * 365 < start <= now + 1
    assert pid_alive_since(os.getpid(), now)  # started before "now": the same process
    # A status written before this process existed cannot be this process's: a reused pid.
    assert not pid_alive_since(os.getpid(), start - 3600)
    assert not pid_alive_since(None, now)


def test_concurrent_probes_do_not_see_each_other_as_the_run(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "finished")
    with probe_run_lock(run_dir) as alive:
        assert not alive
        assert not is_alive(run_dir)  # a second probe meanwhile: still "nobody runs"
        fd = open_lock(run_dir / RUN_LOCK)
        assert not try_flock(fd)  # but a launch (exclusive) waits for the probe
        os.close(fd)


def test_lock_holder_is_alive_until_killed(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "running")
    assert not is_alive(run_dir)
    proc = hold_lock(run_dir)
    try:
        assert is_alive(run_dir)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not is_alive(run_dir)


def test_next_seq_leaves_no_temp_file(tmp_path):
    next_seq(tmp_path)
    assert sorted(p.name for p in (tmp_path / ".locks").iterdir()) == ["seq", "seq.lock"]
