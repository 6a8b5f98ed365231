"""Tests for explorer/jobs/runner.py: the queue (one run per device, launch order),
device locks, CUDA_VISIBLE_DEVICES mapping, and a broken job.json failing cleanly."""
import os
import signal
import subprocess
import sys

import pytest

from explorer.jobs import manager as jobs
from explorer.jobs.metrics import read_metrics
from explorer.jobs.runner import acquire_device, main, runs_ahead, visible_devices
from explorer.jobs.state import LOCKS_DIR, open_lock, try_flock
from jobs_helpers import CPU, ended, fake_run, hold_lock, kill_live_runs, tiny_spec, wait_for
from ssd.io import write_json_atomic
from ssd.training.runlog import read_status


@pytest.fixture
def runs(tmp_path):
    runs_dir = tmp_path / "runs"
    yield runs_dir
    kill_live_runs(runs_dir)


def test_runs_ahead_counts_only_live_queued_runs_of_the_device(tmp_path):
    me = fake_run(tmp_path, "me", "queued", seq=5)
    older_live = fake_run(tmp_path, "older", "queued", seq=2)
    fake_run(tmp_path, "older-dead", "queued", seq=1)  # no process: not in the way
    fake_run(tmp_path, "younger", "queued", seq=9)
    gpu = fake_run(tmp_path, "gpu", "queued", seq=3, device="cuda")
    holders = [hold_lock(older_live), hold_lock(gpu)]
    try:
        assert runs_ahead(me, "cpu", 5) == ["older"]
    finally:
        for p in holders:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert runs_ahead(me, "cpu", 5) == []


def test_acquire_device_takes_free_locks_only(tmp_path):
    got = acquire_device(tmp_path, "cpu", 1, 0)
    assert got is not None and got[1] == []
    assert acquire_device(tmp_path, "cpu", 1, 0) is None  # held: the next run waits
    for fd in got[0]:
        os.close(fd)
    busy = open_lock(tmp_path / LOCKS_DIR / "cuda0.lock")
    assert try_flock(busy)
    fds, gpus = acquire_device(tmp_path, "cuda", 1, 2)
    assert gpus == [1]  # GPU 0 is busy
    assert acquire_device(tmp_path, "cuda", 2, 2) is None  # only one GPU left: nothing held
    for fd in [*fds, busy]:
        os.close(fd)


def test_visible_devices_maps_through_an_inherited_list(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert visible_devices([0, 2]) == "0,2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6")
    assert visible_devices([0, 2]) == "4,6"


def test_missing_job_file_fails_with_a_status(tmp_path):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    assert main([str(run_dir)]) == 2
    st = read_status(run_dir)
    assert st["state"] == "failed" and "job.json" in st["message"]


def test_failed_exec_is_reported(tmp_path):
    run_dir = fake_run(tmp_path, "r", "queued")
    write_json_atomic(run_dir / "job.json", {"device": "cpu", "seq": 1, "argv": [str(tmp_path / "no-python")]})
    res = subprocess.run([sys.executable, "-m", "explorer.jobs.runner", str(run_dir)], cwd=jobs.PROJECT_ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    st = read_status(run_dir)
    assert st["state"] == "failed" and "could not start training" in st["message"]


@pytest.mark.slow
def test_queue_runs_one_per_device_in_launch_order(runs):
    first = jobs.launch(runs, tiny_spec(), name="first", devices=CPU)
    second = jobs.launch(runs, tiny_spec(), name="second", devices=CPU)
    third = jobs.launch(runs, tiny_spec(), name="third", devices=CPU)
    wait_for(third, lambda i: "2 run(s) ahead" in i.message or "1 run(s) ahead" in i.message, 20, "queue")
    jobs.cancel(third)  # cancel while queued: the runner ends, training never starts
    assert wait_for(third, ended, 20, "cancelled").state == "cancelled"
    assert not (third / "train.log").exists()
    assert jobs.read_run(second).state == "queued"  # waits for `first`
    a = wait_for(first, ended, what="first finished")
    b = wait_for(second, ended, what="second finished")
    assert (a.state, b.state) == ("finished", "finished"), (a.message, b.message)
    # `second` started training only after `first` had ended.
    assert b.started_at >= a.updated_at
    first_steps = [r["time"] for r in read_metrics(first)[0]]
    second_steps = [r["time"] for r in read_metrics(second)[0]]
    assert max(first_steps) < min(second_steps)
