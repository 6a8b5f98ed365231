"""Starting a run's detached runner under its run lock (launch and resume share it).

No streamlit import.
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from explorer.jobs.state import CANCEL_MARK, JOB_FILE, STDOUT_FILE, enqueue, next_seq
from explorer.paths import REPO_ROOT as PROJECT_ROOT
from ssd.io import write_json_atomic
from ssd.training import runlog
from ssd.training.runlog import update_status


def _spawn_runner(run_dir: Path, lock_fd: int) -> int:
    """Start the detached runner holding the locked `.run.lock` fd; returns its pid."""
    argv = [sys.executable, "-m", "explorer.jobs.runner", str(run_dir), "--lock-fd", str(lock_fd)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    with open(run_dir / STDOUT_FILE, "ab") as log:
        proc = subprocess.Popen(
            argv, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, pass_fds=(lock_fd,),
        )
    # Reap it when it ends so a long-lived server collects no zombies; the run does
    # not depend on this thread (it dies with the server, the run does not).
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{run_dir.name}").start()
    return proc.pid


def start_run(run_dir: Path, job: dict, resume: bool, fd: int) -> None:
    """Write job.json + status `queued`, enter the device queue and spawn the runner,
    all under the run lock `fd` (held exclusively by the caller), so no probe ever sees
    a half-launched run as dead. The runner keeps the lock; the caller closes `fd`."""
    job["seq"] = next_seq(run_dir.parent)
    argv = list(job["train_argv"])
    if resume and runlog.paths(run_dir).last.is_file():
        argv.append("--resume")
    job["argv"] = argv
    job.setdefault("attempts", []).append(
        {"seq": job["seq"], "launched_at": time.time(), "resume": "--resume" in argv})
    write_json_atomic(run_dir / JOB_FILE, job)
    (run_dir / CANCEL_MARK).unlink(missing_ok=True)
    update_status(run_dir, state="queued", message="queued", device=job["device"], pid=None)
    enqueue(run_dir, job["device"], job["seq"])
    pid = _spawn_runner(run_dir, fd)
    job["attempts"][-1]["pid"] = pid  # the runner's pid == its process group id
    write_json_atomic(run_dir / JOB_FILE, job)
