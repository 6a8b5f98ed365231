"""The one place that starts and stops background processes, and tells whether one lives.

Every background job of the app (a training run, an evaluation, and next an export or an
ablation study) is started here by `spawn` (its own session, so its own process group,
detached from the server) and stopped here by `stop_group` (SIGTERM to that group).
A job's child entry point turns that SIGTERM into the state "cancelled" with
`run_child` (or, while it waits in a queue, with `cancel_on_sigterm`); `ssd.train`
handles it itself (it saves last.pt first).

Liveness: a job launched by the framework is alive while its process tree holds the
run lock (`explorer.jobs.state.probe_run_lock`: no pid-reuse trap). A folder written
by hand (`python -m ssd.train --out ...`, an evaluation run in-process) has no lock;
for it `pid_alive_since` compares the recorded pid's start time with the status.
No streamlit, no torch import.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from explorer.paths import REPO_ROOT
from ssd.training.runlog import update_status


class Cancelled(Exception):
    """Raised in a job's process by its SIGTERM handler: the user cancelled the job."""


def _raise_cancelled(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Cancelled()


def cancel_on_sigterm() -> None:
    """From now on SIGTERM raises `Cancelled` in this (job) process; SIGHUP is ignored."""
    signal.signal(signal.SIGTERM, _raise_cancelled)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # no terminal to hang up, but be sure


def child_env() -> dict:
    """The environment of a job's process: unbuffered output, the project importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def spawn(argv: list[str], log_path: Path, pass_fds: tuple[int, ...] = ()) -> int:
    """Start `argv` detached: a new session (its pid is its process group id), cwd the
    project root, stdin closed, stdout and stderr appended to `log_path`, `pass_fds`
    inherited. Returns the pid. A daemon thread reaps it (no zombies in a long-lived
    server); the job does not depend on that thread or on the server."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [str(a) for a in argv], cwd=REPO_ROOT, env=child_env(), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, close_fds=True, pass_fds=pass_fds,
        )
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-{Path(log_path).parent.name}").start()
    return proc.pid


def stop_group(pgid: int) -> bool:
    """SIGTERM the process group `pgid` (a job's, from `spawn`); False when it is gone.
    The caller proves first that the group is still the job's (the run lock is held)."""
    if not isinstance(pgid, int) or pgid <= 1:
        raise ValueError(f"not a job's process group: {pgid!r}")
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def run_child(job_dir: Path, body: Callable[[Path], object]) -> int:
    """The status protocol of a job's Python entry point (`python -m ... JOB_DIR`):
    status `running` with this pid, then `body(job_dir)`; SIGTERM -> `cancelled`, an
    error -> `failed` with its message (traceback to stdout.log), else `finished`.
    Returns the exit code (0 finished or cancelled, 1 failed)."""
    job_dir = Path(job_dir)
    cancel_on_sigterm()
    update_status(job_dir, state="running", pid=os.getpid(), started_at=time.time(), progress=0.0)
    try:
        body(job_dir)
    except Cancelled:
        update_status(job_dir, state="cancelled", message="cancelled by the user")
        return 0
    except Exception as exc:  # noqa: BLE001 - every error ends the job as failed, with its reason
        traceback.print_exc()
        known = isinstance(exc, (ValueError, RuntimeError, OSError))  # input, checkpoint and data errors
        update_status(job_dir, state="failed", message=str(exc) if known else f"{type(exc).__name__}: {exc}")
        return 1
    update_status(job_dir, state="finished", progress=1.0, message="finished")
    return 0


def job_main(module: str, body: Callable[[Path], object], argv: list[str] | None = None,
             resumable: bool = False) -> int:
    """The command line of a job kind's child, `python -m MODULE JOB_DIR [--resume]`:
    `run_child(JOB_DIR, body)`, or 2 with the usage line for other arguments (a resumable
    kind's body reads what is done from its folder: `--resume` needs no handling)."""
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[1:] not in ([], ["--resume"] if resumable else []):
        print(f"usage: python -m {module} JOB_DIR" + (" [--resume]" if resumable else ""), file=sys.stderr)
        return 2
    return run_child(Path(argv[0]), body)


def proc_start_time(pid: int) -> float | None:
    """Unix time a process started (from /proc/<pid>/stat field 22), None if gone."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        # comm (field 2) may hold spaces: split after the closing parenthesis.
        fields_after_comm = stat.rsplit(")", 1)[1].split()
        start_ticks = int(fields_after_comm[19])  # field 22 overall = index 19 after comm+state
        btime = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    if fields_after_comm[0] == "Z":
        return None  # a zombie has exited; only its parent has not reaped it
    return btime + start_ticks / os.sysconf("SC_CLK_TCK")


def pid_alive_since(pid: int | None, started_at: float | None) -> bool:
    """True when `pid` is a live process that started no later than `started_at`
    (+2 s for clock tick rounding): the same process that wrote the status, not a
    reused pid. For job folders without a run lock (written by hand)."""
    if not pid:
        return False
    start = proc_start_time(pid)
    if start is None:
        return False
    return started_at is None or start <= float(started_at) + 2.0


def exec_job(argv: list[str], keep_fds: list[int], env: dict) -> None:
    """Replace this (runner) process by the job's command, keeping `keep_fds` (the run
    and device locks) open through the exec: the same pid and process group become the
    job, and the locks live exactly as long as it does. Returns only if the exec fails
    (OSError)."""
    for fd in keep_fds:
        os.set_inheritable(fd, True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print(f"jobs.runner: exec {argv}", flush=True)
    os.execve(argv[0], argv, env)
