"""Shared by the tests of explorer/jobs/ (test_jobs_*.py): fake run directories, a real
lock-holding process, tiny real training jobs and a poller that waits for a state."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from explorer.jobs import manager as jobs
from explorer.jobs.metrics import tail_log
from explorer.jobs.spec import JobSpec
from explorer.jobs.state import enqueue, open_lock, try_flock
from ssd.training.runlog import RUN_LOCK, read_json_or_none
from ssd.io import write_json_atomic

CPU = {"cuda": False, "gpu_count": 0}


def fake_run(runs: Path, name: str, state: str, seq: int = 1, device: str = "cpu") -> Path:
    """A run directory as the manager leaves it (in its device's queue index when live),
    with no process behind it."""
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "job.json", {"name": name, "device": device, "seq": seq,
                                             "train_argv": ["true"], "attempts": []})
    if state in ("queued", "running"):
        enqueue(run_dir, device, seq)
    write_json_atomic(run_dir / "status.json", {"state": state, "progress": 0.5, "step": 2,
                                                "total_steps": 4, "started_at": time.time()})
    return run_dir


def hold_lock(run_dir: Path) -> subprocess.Popen:
    """A real process holding the run lock, as a runner does (fd handed over)."""
    fd = open_lock(run_dir / RUN_LOCK)
    assert try_flock(fd)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            pass_fds=(fd,), start_new_session=True)
    os.close(fd)
    return proc


# Real `python -m ssd.train` processes on tiny procedural data: 8 training scenes,
# batch 4 -> 2 steps per epoch (last.pt is written at each epoch end); evaluation only
# at the end (--eval-every 100) to keep them short on a small shared CPU.
def tiny_spec(**overrides) -> JobSpec:
    base = dict(train_size=8, val_size=4, batch_size=4, epochs=50, max_steps=2, eval_every=100,
                log_every=1, device="cpu")
    base.update(overrides)
    return JobSpec.of(**base)


def wait_for(run_dir: Path, predicate, timeout: float = 90.0, what: str = "") -> jobs.RunInfo:
    """Poll `read_run` until `predicate(info)`; AssertionError with the log on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        info = jobs.read_run(run_dir)
        if predicate(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}: {info}\n"
                                 f"{tail_log(run_dir, 20)}")
        time.sleep(0.3)


def ended(info) -> bool:
    return info.state not in ("queued", "running")


def kill_live_runs(runs_dir: Path) -> None:
    """Never leave a training process behind, whatever the test did."""
    for info in jobs.list_runs(runs_dir):
        if info.alive:
            pgid = (read_json_or_none(info.run_dir / "job.json") or {}).get("attempts", [{}])[-1].get("pid")
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
