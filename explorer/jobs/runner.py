"""The detached process that waits for a device and then becomes the training run.

    python -m explorer.jobs.runner RUN_DIR [--lock-fd FD]

The job manager (`explorer.jobs.manager`) starts this in its own session
(`start_new_session=True`), so it does not depend on a browser tab or on the
Streamlit server. It

1. reads `RUN_DIR/job.json` (the training argv, the device class, the launch seq),
2. writes `status.json` state `queued` and waits until it is the oldest live
   queued run for its device class *and* can take the exclusive flock(s) on
   `runs/.locks/cpu.lock` or `runs/.locks/cuda<i>.lock` (one per GPU it needs),
3. `os.execve`s the training command in place, keeping the lock fds inheritable:
   the same pid becomes the trainer and the device lock lives exactly as long as
   the training, released by the kernel however it ends (exit, crash, SIGKILL).

SIGTERM while queued -> state `cancelled`, exit 0. No streamlit, no torch import.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from explorer.jobs.state import JOB_FILE, LOCKS_DIR, RUN_LOCK, live_queue, open_lock, try_flock
from ssd.training.runlog import read_json_or_none, read_status, update_status

POLL_S = 1.0  # how often a queued run looks at the queue again (a listdir + a few lock probes)


class _Cancelled(Exception):
    """Raised by the SIGTERM handler while the run still waits in the queue."""


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Cancelled()


def runs_ahead(run_dir: Path, device: str, seq: int) -> list[str]:
    """Names of live runs queued for the same device class with a smaller seq.

    Reads the device's queue index (`explorer.jobs.state.live_queue`: a few entries,
    at most `JobLimits.max_jobs_per_device`), not every run folder of the runs dir."""
    ahead = []
    for other_seq, other in live_queue(run_dir.parent, device):
        if other == run_dir or other_seq >= seq:
            continue
        if (read_status(other) or {}).get("state") == "queued":
            ahead.append(other.name)
    return ahead


def acquire_device(runs_dir: Path, device: str, nproc: int, gpu_count: int):
    """Try to lock the device(s) a run needs without waiting.

    Returns (fds, gpu_indices) when all are taken, or None (nothing held then).
    cpu: one lock for the whole CPU; cuda: `nproc` of the `gpu_count` GPU locks."""
    locks = runs_dir / LOCKS_DIR
    if device == "cpu":
        fd = open_lock(locks / "cpu.lock")
        if try_flock(fd):
            return [fd], []
        os.close(fd)
        return None
    fds, gpus = [], []
    for i in range(max(gpu_count, 1)):
        fd = open_lock(locks / f"cuda{i}.lock")
        if try_flock(fd):
            fds.append(fd)
            gpus.append(i)
            if len(fds) == nproc:
                return fds, gpus
        else:
            os.close(fd)
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
    """Block (status `queued`) until this run may start; returns (fds, gpu_indices)."""
    device, seq = job["device"], int(job["seq"])
    nproc, gpu_count = int(job.get("nproc", 1)), int(job.get("gpu_count", 0))
    last_message = None
    while True:
        ahead = runs_ahead(run_dir, device, seq)
        if not ahead:
            got = acquire_device(run_dir.parent, device, nproc, gpu_count)
            if got is not None:
                return got
            message = f"queued: waiting for a free {device} device"
        else:
            message = f"queued: {len(ahead)} run(s) ahead on {device} ({', '.join(ahead)})"
        if message != last_message:
            update_status(run_dir, state="queued", message=message, pid=os.getpid())
            last_message = message
        time.sleep(POLL_S)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.jobs.runner", description=__doc__)
    parser.add_argument("run_dir", type=Path, help="run directory holding job.json")
    parser.add_argument(
        "--lock-fd", type=int, default=None,
        help="fd of RUN_DIR/.run.lock already locked by the launcher (else taken here)",
    )
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to hang up, but be sure

    job = read_json_or_none(run_dir / JOB_FILE)
    if not job or not job.get("argv") or job.get("device") not in ("cpu", "cuda"):
        print(f"jobs.runner: {run_dir / JOB_FILE} is missing or lacks argv/device", file=sys.stderr)
        if run_dir.is_dir():
            update_status(run_dir, state="failed", message="job.json missing or invalid")
        return 2

    lock_fd = args.lock_fd
    if lock_fd is None:  # started by hand: take the run lock ourselves
        lock_fd = open_lock(run_dir / RUN_LOCK)
        if not try_flock(lock_fd):
            print(f"jobs.runner: {run_dir.name} is already running", file=sys.stderr)
            return 2

    try:
        update_status(run_dir, state="queued", message="queued", pid=os.getpid(),
                      device=job["device"])
        fds, gpus = wait_for_device(run_dir, job)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if job["device"] == "cuda":
            env["CUDA_VISIBLE_DEVICES"] = visible_devices(gpus)
        where = job["device"] + (f" (GPU {','.join(map(str, gpus))})" if gpus else "")
        update_status(run_dir, state="running", message=f"starting training on {where}",
                      pid=os.getpid())
    except _Cancelled:
        update_status(run_dir, state="cancelled", message="cancelled while queued")
        return 0

    for fd in [*fds, lock_fd]:
        os.set_inheritable(fd, True)  # the locks must outlive execve: held by the trainer
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    train_argv = [str(a) for a in job["argv"]]
    print(f"jobs.runner: exec {train_argv}", flush=True)
    try:
        os.execve(train_argv[0], train_argv, env)
    except OSError as exc:  # only reached when the exec itself fails
        update_status(run_dir, state="failed", message=f"could not start training: {exc}")
        return 1
    return 0  # unreachable


if __name__ == "__main__":
    sys.exit(main())
