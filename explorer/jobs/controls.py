"""Cancel, resume and delete a run, safely when two browser tabs press at once.

Every control first takes the run's `.control.lock` *without waiting*: a second action
on the same run while one is in progress is refused at once with a message saying so
(never a wait, never a TimeoutError). Under that lock the state is read again, so the
decision is taken on the run as it is now, not as the tab last drew it:

- resume also takes the run lock (`.run.lock`) exclusively, briefly retried because a
  probe of another tab may hold it for a millisecond; a live run holds it for its whole
  life, so a run that is still alive is refused. job.json is read under both locks, so
  no attempt record is lost and a Cancel is never undone by a stale Resume.
- cancel needs the run alive; the process group it signals is the one of the attempt
  recorded under the same control lock.
- delete takes the run lock exclusively too: a queued or running run is refused.
No streamlit import.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Iterator

from explorer.jobs.damage import checkpoint_problem_deep, clean_job, read_json_checked
from explorer.jobs.kinds import kind_of
from explorer.jobs.limits import JobError
from explorer.jobs.process import stop_group
from explorer.jobs.runs import fix_dead_status, read_run
from explorer.jobs.spec import sanitize_run_name
from explorer.jobs.start import start_run
from explorer.jobs.state import open_lock, probe_run_lock, try_flock, try_flock_briefly
from ssd.training import runlog
from ssd.training.runlog import CANCEL_MARK, CONTROL_LOCK, JOB_FILE, LIVE_STATES, RUN_LOCK, read_status

RESUMABLE = ("cancelled", "failed")


@contextlib.contextmanager
def control_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's control lock for one action; JobError at once when another action
    on the run holds it, or when the lock cannot be opened."""
    try:
        fd = open_lock(run_dir / CONTROL_LOCK)
    except OSError as exc:
        raise JobError(f"run {run_dir.name}: its folder cannot be locked ({exc.strerror})") from None
    try:
        if not try_flock(fd):
            raise JobError(f"run {run_dir.name}: another action on it is in progress (another tab?); "
                           "nothing was done, the list shows its state in a moment")
        yield
    finally:
        os.close(fd)


def run_dir_in(runs_dir: Path, name: str) -> Path:
    """runs_dir/name, refusing names that would leave runs_dir."""
    if name != sanitize_run_name(name):
        raise JobError(f"not a run name: {name!r}")
    run_dir = Path(runs_dir).resolve() / name
    if not run_dir.is_dir():
        raise JobError(f"no run named {name!r} in {runs_dir}")
    return run_dir


def cancel(run_dir: Path) -> None:
    """Ask a queued or running run to stop: SIGTERM to its process group. The trainer
    saves checkpoints/last.pt and ends as `cancelled`; a queued runner just ends.
    Raises JobError when the run is not live or another action on it is in progress."""
    run_dir = Path(run_dir).resolve()
    with control_lock(run_dir):
        info = read_run(run_dir)
        if info.state not in LIVE_STATES or not info.alive:
            raise JobError(f"run {info.name} is {info.state}, nothing to cancel")
        raw, _ = read_json_checked(run_dir / JOB_FILE)
        attempts = clean_job(raw)[0].get("attempts") or []
        pgid = attempts[-1].get("pid") if attempts else None
        if not isinstance(pgid, int) or pgid <= 1:
            raise JobError(f"run {info.name} has no recorded process group (job.json damaged?)")
        try:
            (run_dir / CANCEL_MARK).write_text(str(time.time()))
        except OSError as exc:
            raise JobError(f"run {info.name}: cannot record the cancel ({exc.strerror})") from None
        with probe_run_lock(run_dir) as alive:
            if alive:  # the lock proves the recorded group is still this run's, not a reused id
                stop_group(pgid)


def _resume_refusal(name: str, run_dir: Path, job: dict) -> str | None:
    """Why the (dead, locked) run cannot resume, or None."""
    if read_json_checked(runlog.paths(run_dir).status)[1]:
        return f"run {name}: status.json is unreadable, so its state is unknown; delete the run or restore the file"
    state = (read_status(run_dir) or {}).get("state")
    if state not in RESUMABLE:
        return f"run {name} is {state}; only cancelled or failed runs resume"
    try:
        kind = kind_of(job)
    except ValueError as exc:
        return f"run {name}: {exc}"
    if job.get("device") not in ("cpu", "cuda") or (not kind.module and not job.get("train_argv")):
        return f"run {name} was not launched by the job manager (no usable job.json)"
    if not kind.resumable:
        return f"run {name} is a {kind.name} job, which does not resume; launch it again"
    last = runlog.paths(run_dir).last
    if last.exists():
        problem = checkpoint_problem_deep(last)
        if problem:
            return (f"run {name}: checkpoints/last.pt is damaged ({problem}); delete that file to start the run "
                    "again from scratch, or launch a new run fine-tuned from this run's best.pt")
    return None


def resume(run_dir: Path) -> Path:
    """Start a cancelled or failed run again, from checkpoints/last.pt when there is
    one (`--resume`), else from scratch; it queues like a new launch. Raises JobError
    at once when the run is alive, not resumable, damaged, or busy with another action."""
    run_dir = Path(run_dir).resolve()
    with control_lock(run_dir):
        fd = open_lock(run_dir / RUN_LOCK)
        try:
            if not try_flock_briefly(fd):
                raise JobError(f"run {run_dir.name} is {read_run(run_dir).state} and alive; "
                               "only cancelled or failed runs resume")
            fix_dead_status(run_dir)  # we hold the run lock: a live status of a dead run is stale
            raw, problem = read_json_checked(run_dir / JOB_FILE)
            job, _ = clean_job(raw)
            refusal = f"run {run_dir.name}: {problem}" if problem else _resume_refusal(run_dir.name, run_dir, job)
            if refusal:
                raise JobError(refusal)
            start_run(run_dir, job, resume=True, fd=fd)
        except OSError as exc:
            raise JobError(f"run {run_dir.name}: cannot be resumed, its folder is not writable "
                           f"({exc.strerror})") from None
        finally:
            os.close(fd)
    return run_dir


def delete_run(runs_dir: Path, name: str) -> None:
    """Delete runs_dir/name and everything in it; refused while the run is queued or
    running, or while another action on it is in progress."""
    run_dir = run_dir_in(runs_dir, name)
    with control_lock(run_dir):
        fd = open_lock(run_dir / RUN_LOCK)
        try:
            if not try_flock_briefly(fd):
                raise JobError(f"run {name} is still running or queued; cancel it first")
            try:
                shutil.rmtree(run_dir)
            except OSError as exc:
                raise JobError(f"run {name}: could not delete everything ({exc.strerror}: {exc.filename})") from None
        finally:
            os.close(fd)
