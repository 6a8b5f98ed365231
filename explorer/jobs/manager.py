"""Training-job manager: launch, list, watch, cancel, resume and delete runs.

A run is a detached OS process with its own directory `runs_dir/<name>/`; all its
state is on disk (the run directory of `ssd.runlog`, plus the manager's files and
locks of `explorer.jobs.state`), so runs survive reruns, closed tabs
and server restarts, and a restarted server finds them all again. Launch starts
`python -m explorer.jobs.runner RUN_DIR` in a new session; the runner queues for
the device (one run per device, launch order) and then execs `python -m ssd.train`.

Public API (every function takes the runs dir or a run dir explicitly):
    default_runs_dir() -> Path
    available_devices() -> dict(cuda=bool, gpu_count=int)
    launch(runs_dir, spec, name=None) -> Path
    list_runs(runs_dir) -> list[RunInfo];  read_run(run_dir) -> RunInfo
    cancel(run_dir);  resume(run_dir) -> Path;  delete_run(runs_dir, name)
    read_metrics(run_dir) -> (log_rows, eval_rows);  tail_log(run_dir, n) -> str
No streamlit import.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.jobs.metrics import eta_seconds, read_metrics, tail_log, tail_log_file, tail_metrics
from explorer.jobs.spec import JobError, JobSpec, resolve_device, sanitize_run_name, train_argv, validate_spec
from explorer.jobs.state import (
    CANCEL_MARK,
    JOB_FILE,
    RUN_LOCK,
    STDOUT_FILE,
    flock_wait,
    next_seq,
    open_lock,
    pid_alive_since,
    probe_run_lock,
)
from explorer.paths import REPO_ROOT as PROJECT_ROOT, runs_dir
from ssd import runlog
from ssd.runlog import LIVE_STATES, read_json_or_none, read_status, update_status, write_json_atomic

__all__ = [
    "JobError", "JobSpec", "RunInfo", "default_runs_dir", "available_devices", "launch",
    "list_runs", "read_run", "cancel", "resume", "delete_run", "read_metrics", "tail_log",
    "sanitize_run_name",
]

def default_runs_dir() -> Path:
    """The runs folder (`explorer.paths.runs_dir`)."""
    return runs_dir()


def available_devices() -> dict:
    """What torch sees here: {"cuda": bool, "gpu_count": int}. Imports torch lazily."""
    import torch

    cuda = bool(torch.cuda.is_available())
    return {"cuda": cuda, "gpu_count": int(torch.cuda.device_count()) if cuda else 0}


@dataclass(frozen=True)
class RunInfo:
    """One run as the page shows it; `state` already accounts for dead processes."""

    name: str  # directory name under the runs dir
    run_dir: Path  # absolute run directory
    state: str  # queued | running | finished | failed | cancelled
    progress: float  # 0..1 of total steps
    message: str  # last status message
    alive: bool  # the run's process tree exists (runner or trainer)
    device: str  # device the run trains on ("cpu", "cuda", ...)
    epoch: int | None  # current epoch (as the trainer reports it)
    step: int | None  # current optimiser step
    total_steps: int | None  # steps of the whole run
    best_map: float | None  # best validation mAP so far
    seq: int | None  # launch order (None: run not launched by the manager)
    created_at: float | None  # unix time the run was launched
    started_at: float | None  # unix time training started (trainer's status)
    updated_at: float | None  # unix time of the last status write
    elapsed_s: float | None  # seconds of training so far (to updated_at when ended)
    eta_s: float | None  # estimated seconds to the end (live runs only)
    images_per_s: float | None  # last logged throughput
    model: str  # model preset
    dataset: str  # dataset kind
    has_last: bool  # checkpoints/last.pt exists (resumable)
    has_best: bool  # checkpoints/best.pt exists (usable in the explorer)

    @property
    def best_checkpoint(self) -> Path:
        return runlog.paths(self.run_dir).best

    def row(self) -> dict:
        """A table row for the runs overview."""
        return {
            "name": self.name, "state": self.state, "progress": round(self.progress, 3),
            "elapsed": _fmt_duration(self.elapsed_s), "ETA": _fmt_duration(self.eta_s),
            "best mAP": None if self.best_map is None else round(self.best_map, 4),
            "device": self.device, "model": self.model, "dataset": self.dataset,
            "message": self.message,
        }


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _create_run_dir(runs_dir: Path, base: str) -> Path:
    """mkdir runs_dir/base, or base-2, base-3, ... (mkdir is atomic: two launches
    with one name never share a directory)."""
    for i in range(1, 10_000):
        run_dir = runs_dir / (base if i == 1 else f"{base}-{i}")
        try:
            run_dir.mkdir()
        except FileExistsError:
            continue
        return run_dir
    raise JobError(f"too many runs named {base!r} in {runs_dir}")


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


def _start(run_dir: Path, job: dict, resume: bool) -> None:
    """Write job.json + status `queued` and spawn the runner, all under the run lock
    so no probe ever sees a half-launched run as dead."""
    fd = open_lock(run_dir / RUN_LOCK)
    try:
        flock_wait(fd)
        job["seq"] = next_seq(run_dir.parent)
        argv = list(job["train_argv"])
        if resume and runlog.paths(run_dir).last.is_file():
            argv.append("--resume")
        job["argv"] = argv
        job.setdefault("attempts", []).append(
            {"seq": job["seq"], "launched_at": time.time(), "resume": "--resume" in argv})
        write_json_atomic(run_dir / JOB_FILE, job)
        (run_dir / CANCEL_MARK).unlink(missing_ok=True)
        update_status(run_dir, state="queued", message="queued", device=job["device"],
                      pid=None)
        pid = _spawn_runner(run_dir, fd)
        job["attempts"][-1]["pid"] = pid  # the runner's pid == its process group id
        write_json_atomic(run_dir / JOB_FILE, job)
    finally:
        os.close(fd)  # the runner holds its own reference to the locked file now


def launch(runs_dir: Path, spec: JobSpec, name: str | None = None, devices: dict | None = None) -> Path:
    """Validate `spec`, create a fresh run directory and start the run detached.

    runs_dir: where run directories live (created if missing).
    name: run name, sanitised and made unique with -2, -3, ...; default
        "<model>-<dataset>-<YYYYmmdd-HHMMSS>".
    devices: `available_devices()` result (looked up when None).
    Returns the run directory. Raises JobError before launching anything when a
    setting or dataset path is bad."""
    summary = validate_spec(spec)
    devices = devices if devices is not None else available_devices()
    device = resolve_device(spec.train.device, devices["cuda"], devices["gpu_count"], spec.nproc)
    runs_dir = Path(runs_dir).expanduser().resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = sanitize_run_name(name or f"{spec.train.model}-{spec.train.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    run_dir = _create_run_dir(runs_dir, base)
    job = {
        "name": run_dir.name, "created_at": time.time(), "device": device, "nproc": spec.nproc,
        "gpu_count": devices["gpu_count"], "spec": spec.to_dict(), "dataset_summary": summary,
        "train_argv": train_argv(spec, run_dir, device),
    }
    _start(run_dir, job, resume=False)
    return run_dir


def read_run(run_dir: Path) -> RunInfo:
    """The run in `run_dir` with its effective state: a status that says queued or
    running while no process of the run is alive becomes `failed` (or `cancelled`
    when the user asked to cancel), and is written back so it stays so."""
    run_dir = Path(run_dir).resolve()
    job = read_json_or_none(run_dir / JOB_FILE) or {}
    status = read_status(run_dir) or {}
    state = status.get("state", "queued" if job else "failed")
    if job:
        alive = _check_alive_and_fix(run_dir)
        status = read_status(run_dir) or status
        state = status.get("state", state)
    else:  # run written by `python -m ssd.train` by hand: no run lock, check the pid
        # Only a live state has a run process; the writer of an ended run may live on (in-process main()).
        alive = state in LIVE_STATES and pid_alive_since(status.get("pid"), status.get("started_at"))
        if state in LIVE_STATES and not alive:
            state = "failed"
            status = dict(status, message="process is gone (killed or machine restarted)")
    # What was launched (job.json), else what ran (config.json of a run started by hand).
    options = (job.get("spec") or {}).get("train") or (runlog.read_config(run_dir) or {}).get("args") or {}
    started, updated = status.get("started_at"), status.get("updated_at")
    elapsed = None
    if started:
        elapsed = (time.time() if state in LIVE_STATES and alive else (updated or time.time())) - started
    recent = tail_metrics(run_dir)
    return RunInfo(
        name=run_dir.name, run_dir=run_dir, state=state,
        progress=float(min(max(status.get("progress") or 0.0, 0.0), 1.0)),
        message=str(status.get("message", "")), alive=alive,
        device=str(status.get("device") or job.get("device") or ""),
        epoch=status.get("epoch"), step=status.get("step"), total_steps=status.get("total_steps"),
        best_map=status.get("best_map"), seq=job.get("seq"), created_at=job.get("created_at"),
        started_at=started, updated_at=updated, elapsed_s=elapsed,
        eta_s=eta_seconds(recent, status) if state == "running" else None,
        images_per_s=next((r["images_per_s"] for r in reversed(recent) if r.get("images_per_s")), None),
        model=str(options.get("model", "")), dataset=str(options.get("dataset", "")),
        has_last=runlog.paths(run_dir).last.is_file(), has_best=runlog.paths(run_dir).best.is_file(),
    )


def _check_alive_and_fix(run_dir: Path) -> bool:
    with probe_run_lock(run_dir) as alive:
        if alive:
            return True
        # We hold the run lock: nothing of this run runs, nothing can start.
        status = read_status(run_dir) or {}
        if status.get("state", "queued") in LIVE_STATES:
            if (run_dir / CANCEL_MARK).exists():
                update_status(run_dir, state="cancelled", message="cancelled")
            else:
                last = _last_output_line(run_dir)
                update_status(run_dir, state="failed",
                              message="process died without reporting (killed, crashed or machine "
                                      "restarted)" + (f"; last output: {last}" if last else ""))
        return False


def _last_output_line(run_dir: Path) -> str:
    """Last non-empty line the run printed (a traceback ends with the error)."""
    lines = [ln.strip() for ln in tail_log_file(run_dir / STDOUT_FILE).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run under `runs_dir` (a folder with job.json or status.json), newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    runs = [read_run(d) for d in runs_dir.iterdir()
            if d.is_dir() and not d.name.startswith(".")
            and ((d / JOB_FILE).is_file() or runlog.paths(d).status.is_file())]
    return sorted(runs, key=lambda r: (r.created_at or r.started_at or 0.0, r.name), reverse=True)


def _run_dir_in(runs_dir: Path, name: str) -> Path:
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
    Raises JobError when the run is not live."""
    run_dir = Path(run_dir).resolve()
    info = read_run(run_dir)
    if info.state not in LIVE_STATES or not info.alive:
        raise JobError(f"run {info.name} is {info.state}, nothing to cancel")
    job = read_json_or_none(run_dir / JOB_FILE) or {}
    attempts = job.get("attempts") or []
    pgid = attempts[-1].get("pid") if attempts else None
    (run_dir / CANCEL_MARK).write_text(str(time.time()))
    if not pgid:
        raise JobError(f"run {info.name} has no recorded process group")
    with probe_run_lock(run_dir) as alive:
        if alive:  # the lock proves the recorded group is still this run's, not a reused id
            try:
                os.killpg(int(pgid), signal.SIGTERM)
            except ProcessLookupError:
                pass


def resume(run_dir: Path) -> Path:
    """Start a cancelled or failed run again, from checkpoints/last.pt when there is
    one (`--resume`), else from scratch; it queues like a new launch."""
    run_dir = Path(run_dir).resolve()
    info = read_run(run_dir)
    if info.alive or info.state not in ("cancelled", "failed"):
        raise JobError(f"run {info.name} is {info.state}; only cancelled or failed runs resume")
    job = read_json_or_none(run_dir / JOB_FILE)
    if not job or not job.get("train_argv"):
        raise JobError(f"run {info.name} was not launched by the job manager (no job.json)")
    _start(run_dir, job, resume=True)
    return run_dir


def delete_run(runs_dir: Path, name: str) -> None:
    """Delete runs_dir/name and everything in it; refused while the run is live."""
    run_dir = _run_dir_in(runs_dir, name)
    with probe_run_lock(run_dir) as alive:
        if alive:
            raise JobError(f"run {name} is still running; cancel it first")
        shutil.rmtree(run_dir)
