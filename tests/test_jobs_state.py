"""Tests for explorer/jobs/state.py: the launch counter, the lane queues and the run
lock that tells whether a run's process tree is alive (real processes hold it)."""
import os
import signal
import time

from explorer.jobs.state import enqueue, is_alive, live_queue, next_seq, open_lock, probe_run_lock, try_flock
from jobs_helpers import fake_run as _fake_run, hold_lock
from ssd.training.runlog import RUN_LOCK


def test_next_seq_counts_up(tmp_path):
    assert [next_seq(tmp_path) for _ in range(3)] == [1, 2, 3]


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


def test_lanes_have_their_own_queues_and_entries_link_to_nested_job_folders(tmp_path):
    """A SHORT job's folder may live below the runs folder (evaluations/<key>): its queue
    entry links to it, and the LONG lane's queue does not see it."""
    train = _fake_run(tmp_path, "train", "queued", seq=1)
    nested = _fake_run(tmp_path / "evaluations", "abc123", "finished", seq=2)
    enqueue(nested, "cpu", 2, "short", tmp_path)
    holders = [hold_lock(train), hold_lock(nested)]
    try:
        assert live_queue(tmp_path, "cpu") == [(1, train.resolve())]
        assert live_queue(tmp_path, "cpu", "short") == [(2, nested.resolve())]
    finally:
        for p in holders:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert live_queue(tmp_path, "cpu", "short") == []  # a dead job's entry is dropped
