"""The detached process that waits for its lane of a device and then becomes the job.

    python -m explorer.jobs.runner JOB_DIR [--lock-fd FD]

`explorer.jobs.start` spawns this (`explorer.jobs.process.spawn`: its own session), so
it does not depend on a browser tab or on the Streamlit server. For every job kind it

1. reads `JOB_DIR/job.json` (the child argv, device class, lane, launch seq, runs folder),
2. writes `status.json` state `queued` and waits until it is the oldest live queued
   job of its lane on its device class *and* can take the lane's exclusive flock(s):
   LONG lane `runs/.locks/cpu.lock` or `cuda<i>.lock` (one per GPU it needs), SHORT
   lane `runs/.locks/short-<device>.lock` (`explorer.jobs.kinds`: lanes),
3. execs the job's command in place (`explorer.jobs.process.exec_job`), keeping the
   lock fds: the same pid becomes the job and the locks live exactly as long as it,
   released by the kernel however it ends (exit, crash, SIGKILL).

SIGTERM while queued -> state `cancelled`, exit 0. No streamlit, no torch import.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from explorer.jobs.kinds import LONG, SHORT
from explorer.jobs.process import Cancelled, cancel_on_sigterm, child_env, exec_job
from explorer.jobs.state import LOCKS_DIR, live_queue, open_lock, try_flock
from explorer.paths import job_env
from ssd.training.runlog import JOB_FILE, RUN_LOCK, read_json_or_none, read_status, update_status

POLL_S = 1.0  # how often a queued job looks at the queue again (a listdir + a few lock probes)


def runs_ahead(run_dir: Path, device: str, seq: int, lane: str = LONG, runs_dir: Path | None = None) -> list[str]:
    """Names of live jobs queued in the same lane of the same device class with a smaller seq.

    Reads the lane's queue index (`explorer.jobs.state.live_queue`: a few entries), not
    every job folder. runs_dir: the folder holding `.locks` (default: the job's parent)."""
    ahead = []
    for other_seq, other in live_queue(run_dir.parent if runs_dir is None else runs_dir, device, lane):
        if other == run_dir or other_seq >= seq:
            continue
        if (read_status(other) or {}).get("state") == "queued":
            ahead.append(other.name)
    return ahead


def _take(path: Path) -> int | None:
    fd = open_lock(path)
    if try_flock(fd):
        return fd
    os.close(fd)
    return None


def acquire_device(runs_dir: Path, device: str, nproc: int, gpu_count: int, lane: str = LONG):
    """Try to lock what a job of `lane` needs on `device` without waiting.

    Returns (fds, gpu_indices) when all are taken, or None (nothing held then).
    SHORT lane: the lane's one lock of the device class; LONG cpu: one lock for the
    whole CPU; LONG cuda: `nproc` of the `gpu_count` GPU locks."""
    locks = Path(runs_dir) / LOCKS_DIR
    if lane == SHORT or device == "cpu":
        fd = _take(locks / (f"short-{device}.lock" if lane == SHORT else "cpu.lock"))
        return None if fd is None else ([fd], [])
    fds, gpus = [], []
    for i in range(max(gpu_count, 1)):
        fd = _take(locks / f"cuda{i}.lock")
        if fd is not None:
            fds.append(fd)
            gpus.append(i)
            if len(fds) == nproc:
                return fds, gpus
    for fd in fds:
        os.close(fd)
    return None


def visible_devices(gpus: list[int]) -> str:
    """CUDA_VISIBLE_DEVICES for the locked GPU indices, mapped through an inherited
    CUDA_VISIBLE_DEVICES (indices count the GPUs this process can see)."""
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited:
        seen = [s.strip() for s in inherited.split(",") if s.strip()]
        return ",".join(seen[i] for i in gpus if i < len(seen))
    return ",".join(str(i) for i in gpus)


def wait_for_device(run_dir: Path, job: dict):
    """Block (status `queued`) until this job may start; returns (fds, gpu_indices)."""
    device, seq, lane = job["device"], int(job["seq"]), job.get("lane", LONG)
    runs_dir = Path(job.get("runs_dir") or run_dir.parent)
    nproc, gpu_count = int(job.get("nproc", 1)), int(job.get("gpu_count", 0))
    last_message = None
    while True:
        ahead = runs_ahead(run_dir, device, seq, lane, runs_dir)
        if not ahead:
            got = acquire_device(runs_dir, device, nproc, gpu_count, lane)
            if got is not None:
                return got
            message = f"queued: waiting for a free {device} device"
        else:
            message = f"queued: {len(ahead)} run(s) ahead on {device} ({', '.join(ahead)})"
        if message != last_message:
            update_status(run_dir, state="queued", message=message, pid=os.getpid())
            last_message = message
        time.sleep(POLL_S)


def _own_lock(run_dir: Path, lock_fd: int | None) -> int | None:
    """The run lock's fd: the launcher's, or taken here when started by hand (None: busy)."""
    if lock_fd is not None:
        return lock_fd
    fd = open_lock(run_dir / RUN_LOCK)
    if try_flock(fd):
        return fd
    print(f"jobs.runner: {run_dir.name} is already running", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.jobs.runner", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="job folder holding job.json")
    parser.add_argument("--lock-fd", type=int, default=None,
                        help="fd of JOB_DIR/.run.lock already locked by the launcher (else taken here)")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    cancel_on_sigterm()
    job = read_json_or_none(run_dir / JOB_FILE)
    if not job or not job.get("argv") or job.get("device") not in ("cpu", "cuda"):
        print(f"jobs.runner: {run_dir / JOB_FILE} is missing or lacks argv/device", file=sys.stderr)
        if run_dir.is_dir():
            update_status(run_dir, state="failed", message="job.json missing or invalid")
        return 2
    lock_fd = _own_lock(run_dir, args.lock_fd)
    if lock_fd is None:
        return 2
    try:
        update_status(run_dir, state="queued", message="queued", pid=os.getpid(), device=job["device"])
        fds, gpus = wait_for_device(run_dir, job)
        env = child_env()
        if job.get("data_roots") is not None:  # every annotation, image and split file the job opens (ssd.data.paths)
            env.update(job_env(tuple(job["data_roots"])))
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = visible_devices(gpus)
        where = job["device"] + (f" (GPU {','.join(map(str, gpus))})" if gpus else "")
        what = "training" if job.get("kind", "train") == "train" else job["kind"]
        update_status(run_dir, state="running", message=f"starting {what} on {where}", pid=os.getpid())
    except Cancelled:
        update_status(run_dir, state="cancelled", message="cancelled while queued")
        return 0
    argv = [str(a) for a in job["argv"]]
    try:
        exec_job(argv, [*fds, lock_fd], env)
    except OSError as exc:  # only reached when the exec itself fails
        update_status(run_dir, state="failed", message=f"could not start {what}: {exc}")
        return 1
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main())
