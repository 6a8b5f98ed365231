"""Starting a job's detached runner under its run lock (launch and resume share it).

No streamlit import.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from explorer.jobs.kinds import kind_of
from explorer.jobs.process import spawn
from explorer.jobs.state import enqueue, next_seq
from ssd.training.runlog import CANCEL_MARK, JOB_FILE, STDOUT_FILE, update_status
from ssd.io import write_json_atomic


def start_run(run_dir: Path, job: dict, resume: bool, fd: int) -> None:
    """Write job.json + status `queued`, enter the lane's device queue and spawn the
    runner, all under the run lock `fd` (held exclusively by the caller), so no probe
    ever sees a half-launched job as dead. The runner keeps the lock; the caller closes
    `fd`. `job` holds at least "device" (and "train_argv" for a training run); its kind
    (default "train") gives the lane and the child command."""
    kind = kind_of(job)
    runs_dir = Path(job.get("runs_dir") or run_dir.parent)
    job["seq"] = next_seq(runs_dir)
    job["lane"] = kind.lane
    job["argv"] = argv = kind.child_argv(run_dir, job, resume)
    job.setdefault("attempts", []).append(
        {"seq": job["seq"], "launched_at": time.time(), "resume": "--resume" in argv})
    write_json_atomic(run_dir / JOB_FILE, job)
    (run_dir / CANCEL_MARK).unlink(missing_ok=True)
    update_status(run_dir, state="queued", message="queued", device=job["device"], pid=None)
    enqueue(run_dir, job["device"], job["seq"], kind.lane, runs_dir)
    pid = spawn([sys.executable, "-m", "explorer.jobs.runner", str(run_dir), "--lock-fd", str(fd)],
                run_dir / STDOUT_FILE, pass_fds=(fd,))
    job["attempts"][-1]["pid"] = pid  # the runner's pid == its process group id
    write_json_atomic(run_dir / JOB_FILE, job)
