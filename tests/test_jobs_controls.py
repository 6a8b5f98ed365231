"""Tests for explorer/jobs/controls.py with real concurrent calls: two "tabs" (threads
with their own lock descriptors, as two Streamlit sessions have) pressing Cancel, Resume
and Delete on the same run at once. Real runner processes: job.json's training command
is a `sleep`, so each resume starts a real detached runner that queues, takes the CPU
lock and execs it."""
import json
import os
import signal
import sys
import threading
import time

import pytest

from explorer.jobs import manager as jobs
from explorer.jobs.state import open_lock, try_flock
from jobs_helpers import ended, fake_run, hold_lock, kill_live_runs, wait_for
from ssd.training.runlog import CANCEL_MARK, CONTROL_LOCK, read_status
from ssd.io import write_json_atomic

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


@pytest.fixture
def runs(tmp_path):
    runs_dir = tmp_path / "runs"
    runs_dir.mkdir()
    yield runs_dir
    kill_live_runs(runs_dir)


def _cancelled_run(runs, name="r"):
    run_dir = fake_run(runs, name, "cancelled")
    write_json_atomic(run_dir / "job.json", {"name": name, "device": "cpu", "seq": 1, "nproc": 1, "gpu_count": 0,
                                             "train_argv": SLEEPER, "attempts": []})
    write_json_atomic(run_dir / "status.json", {"state": "cancelled", "message": "cancelled"})
    return run_dir


def _attempts(run_dir) -> list:
    return json.loads((run_dir / "job.json").read_text())["attempts"]


def _race(calls: list) -> list:
    """Run every call at the same moment (a barrier); [(name, "ok" | JobError text)].
    Any other exception (TimeoutError, OSError, ...) fails the test."""
    barrier = threading.Barrier(len(calls))
    out, errors = [], []

    def go(name, fn, args):
        barrier.wait()
        try:
            fn(*args)
            out.append((name, "ok", time.monotonic()))
        except jobs.JobError as exc:
            out.append((name, str(exc), time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(f"{name}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=go, args=c) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert len(out) == len(calls)
    return out


def test_concurrent_resumes_start_one_attempt_and_never_hang(runs):
    run_dir = _cancelled_run(runs)
    started = time.monotonic()
    out = _race([("resume", jobs.resume, (run_dir,)) for _ in range(5)])
    assert time.monotonic() - started < 5  # was: 10 s then TimeoutError
    ok = [o for o in out if o[1] == "ok"]
    assert len(ok) == 1, out
    assert all("in progress" in o[1] or "alive" in o[1] for o in out if o[1] != "ok"), out
    assert len(_attempts(run_dir)) == 1 and _attempts(run_dir)[0]["pid"]
    info = wait_for(run_dir, lambda i: i.state == "running", what="resumed run running")
    assert info.alive


def test_cancel_and_resume_at_once_end_in_one_consistent_state(runs):
    """Rounds of Cancel x3 + Resume x3 at the same moment on a run that is alternately
    live and cancelled. Every outcome is "ok" or a JobError saying why; every successful
    resume left exactly one attempt record; a cancel that succeeded after the last
    successful resume leaves the run cancelled, else it runs (never undone silently)."""
    run_dir = _cancelled_run(runs)
    resumes = 0
    rounds = 0
    # At least 4 rounds, and more (up to 12) until some resume has won a race: which press
    # wins is up to the scheduler, and a loaded machine can hand every round to a cancel.
    while rounds < 4 or (resumes == 0 and rounds < 12):
        rounds += 1
        out = _race([("cancel", jobs.cancel, (run_dir,))] * 3 + [("resume", jobs.resume, (run_dir,))] * 3)
        resumes += sum(1 for o in out if o[0] == "resume" and o[1] == "ok")
        assert len(_attempts(run_dir)) == resumes
        last_ok = max((o for o in out if o[1] == "ok"), key=lambda o: o[2], default=None)
        if last_ok and last_ok[0] == "cancel":  # the run's process ends, as cancelled
            info = wait_for(run_dir, lambda i: not i.alive, 30, "the cancelled run's process gone")
            assert info.state == "cancelled" and (run_dir / CANCEL_MARK).exists()
        elif last_ok:  # a resume came last: the run trains, no cancel pending
            info = wait_for(run_dir, lambda i: i.state == "running", 30, "resumed run running")
            assert info.alive and not (run_dir / CANCEL_MARK).exists()
        else:  # every press refused: nothing changed
            assert jobs.read_run(run_dir).state in ("running", "cancelled")
    assert resumes >= 1


def test_any_control_is_refused_at_once_while_another_holds_the_run(runs):
    run_dir = _cancelled_run(runs)
    fd = open_lock(run_dir / CONTROL_LOCK)
    try:
        assert try_flock(fd)
        for fn, args in ((jobs.resume, (run_dir,)), (jobs.cancel, (run_dir,)), (jobs.delete_run, (runs, "r"))):
            started = time.monotonic()
            with pytest.raises(jobs.JobError, match="another action on it is in progress"):
                fn(*args)
            assert time.monotonic() - started < 1.0
    finally:
        os.close(fd)
    assert read_status(run_dir)["state"] == "cancelled" and _attempts(run_dir) == []


def test_delete_of_a_queued_run_is_refused_and_it_stays_queued(runs):
    run_dir = fake_run(runs, "q", "queued")
    holder = hold_lock(run_dir)  # its runner, waiting in the queue
    try:
        out = _race([("delete", jobs.delete_run, (runs, "q")), ("delete", jobs.delete_run, (runs, "q"))])
        assert all(o[1] != "ok" for o in out)
        assert any("still running or queued" in o[1] for o in out), out
        info = jobs.read_run(run_dir)
        assert run_dir.is_dir() and info.state == "queued" and info.alive
    finally:
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()
    jobs.delete_run(runs, "q")  # dead now: deleted
    assert not run_dir.exists()


def test_cancel_then_resume_of_the_ended_run(runs):
    run_dir = _cancelled_run(runs)
    jobs.resume(run_dir)
    wait_for(run_dir, lambda i: i.state == "running", what="running")
    jobs.cancel(run_dir)
    info = wait_for(run_dir, ended, 30, "cancelled")
    assert info.state == "cancelled"
    wait_for(run_dir, lambda i: not i.alive, 30, "process gone")
    jobs.resume(run_dir)
    assert len(_attempts(run_dir)) == 2 and not (run_dir / CANCEL_MARK).exists()
