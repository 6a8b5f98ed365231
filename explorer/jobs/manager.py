"""The job framework's front door: submit any kind of job; launch, list, watch, cancel,
resume and delete training runs.

A job is a detached OS process with its own folder; all its state is on disk (the file
names and status format of `ssd.runlog`, the locks and queues of `explorer.jobs.state`),
so jobs survive reruns, closed tabs and server restarts, and a restarted server finds
them all again. `submit` starts `python -m explorer.jobs.runner JOB_DIR` in a new session
(`explorer.jobs.process.spawn`); the runner queues in its kind's lane of the device
(`explorer.jobs.kinds`: LONG one at a time, SHORT beside it; at most
`JobLimits.lane_limit(lane)` queued or running per device) and then execs the job.

Public API (every function takes the runs dir or a job dir explicitly):
    default_runs_dir() -> Path
    available_devices() -> dict(cuda=bool, gpu_count=int)
    submit(runs_dir, job, make_dir, limits=None) -> Path               (any kind)
    launch(runs_dir, spec, name=None, devices=None, data_roots=None, limits=None) -> Path
    list_runs(runs_dir) -> list[RunInfo];  read_run(run_dir) -> RunInfo      (explorer.jobs.runs)
    cancel(run_dir);  resume(run_dir) -> Path;  delete_run(runs_dir, name)   (explorer.jobs.controls)
    read_metrics(run_dir) -> (log_rows, eval_rows);  read_metrics_checked(run_dir) -> Metrics (+ skipped)
    tail_log(run_dir, n) -> str
No streamlit import.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator

from explorer import paths as paths_mod
from explorer.jobs.controls import cancel, delete_run, resume
from explorer.jobs.limits import JobLimits, check_disk
from explorer.jobs.metrics import read_metrics, read_metrics_checked, tail_log
from explorer.jobs.runs import DAMAGED, RunInfo, list_runs, read_run
from explorer.jobs.spec import JobError, JobSpec, job_device, sanitize_run_name, train_argv, validate_spec
from explorer.jobs.start import start_run
from explorer.jobs.kinds import kind_of
from explorer.jobs.state import LOCKS_DIR, flock_wait, live_queue, open_lock, try_flock
from explorer.paths import REPO_ROOT as PROJECT_ROOT, runs_dir  # noqa: F401 (PROJECT_ROOT re-exported)
from ssd.training.runlog import RUN_LOCK

__all__ = [
    "JobError", "JobLimits", "JobSpec", "RunInfo", "DAMAGED", "default_runs_dir", "available_devices", "submit",
    "launch",
    "list_runs", "read_run", "cancel", "resume", "delete_run", "read_metrics", "read_metrics_checked", "tail_log",
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


@contextlib.contextmanager
def _device_slot(runs_dir: Path, device: str, limits: JobLimits, lane: str = "long") -> Iterator[None]:
    """Hold the launch lock of `device` while a job is entered in its lane's queue,
    refusing when `limits.lane_limit(lane)` jobs of that lane are already queued or
    running there (the lanes are counted apart)."""
    fd = open_lock(runs_dir / LOCKS_DIR / f"launch-{device}.lock")
    try:
        flock_wait(fd, timeout_s=5.0)  # held only while counting and entering a job
        live = live_queue(runs_dir, device, lane)
        most = limits.lane_limit(lane)
        if len(live) >= most:
            what = "runs" if lane == "long" else "short jobs (evaluations, exports)"
            raise JobError(f"{len(live)} {what} are already queued or running on {device} (the limit is "
                           f"{most}); wait for one to end or cancel one")
        yield
    except TimeoutError:
        raise JobError(f"the {device} queue is busy (another launch); try again") from None
    finally:
        os.close(fd)


def submit(runs_dir: Path, job: dict, make_dir: Callable[[], Path], limits: JobLimits | None = None) -> Path:
    """Start a job of any kind detached: under the device's launch lock (refused with
    JobError when its lane is full), `make_dir()` makes the job's folder (and writes the
    kind's spec.json), then job.json + status `queued` are written and the runner spawned.

    runs_dir: the folder whose `.locks` holds the queues (the runs folder); job: the
    job.json fields, at least "kind" and "device" ("cpu"/"cuda"; "train_argv" for a
    training run). Returns the job's folder."""
    limits = limits or JobLimits()
    kind = kind_of(job)
    runs_dir = Path(runs_dir).resolve()
    with _device_slot(runs_dir, job["device"], limits, kind.lane):
        run_dir = make_dir()
        job = dict(job, runs_dir=str(runs_dir))
        fd = open_lock(run_dir / RUN_LOCK)
        try:
            if not try_flock(fd):  # another launch of this folder holds it
                raise JobError(f"job folder {run_dir} is locked by another process (launched already?)")
            start_run(run_dir, job, resume=False, fd=fd)
        finally:
            os.close(fd)  # the runner holds its own reference to the locked file now
    return run_dir


def launch(runs_dir: Path, spec: JobSpec, name: str | None = None, devices: dict | None = None,
           data_roots: tuple[Path, ...] | None = None, limits: JobLimits | None = None) -> Path:
    """Validate `spec`, create a fresh run directory and start the training run detached.

    runs_dir: where run directories live (created if missing); runs are written only here.
    name: run name, sanitised and made unique with -2, -3, ...; default
        "<model>-<dataset>-<YYYYmmdd-HHMMSS>".
    devices: `available_devices()` result (looked up when None).
    data_roots: folders dataset paths must resolve into (default: `explorer.paths.data_roots`
        of a local server); limits: `JobLimits()` by default (queue, disk, batch, images x epochs).
    Returns the run directory. Raises JobError before launching anything when a
    setting or dataset path is bad or a limit is reached."""
    limits = limits or JobLimits()
    roots = data_roots if data_roots is not None else paths_mod.data_roots(exposed=False)
    runs_dir = Path(runs_dir).expanduser().resolve()
    ckpt_roots = (*roots, runs_dir, paths_mod.CHECKPOINTS_DIR.resolve())  # a run's best.pt, the shipped ones
    summary = validate_spec(spec, roots=roots, limits=limits, checkpoint_roots=ckpt_roots)
    devices = devices if devices is not None else available_devices()
    device = job_device(spec.train.device, devices["cuda"], devices["gpu_count"], spec.nproc)
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobError(f"cannot create the runs folder {runs_dir} ({exc.strerror})") from None
    check_disk(runs_dir, limits)
    base = sanitize_run_name(name or f"{spec.train.model}-{spec.train.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")

    def make_dir() -> Path:
        run_dir = _create_run_dir(runs_dir, base)
        if run_dir.resolve().parent != runs_dir:  # a name never leaves the runs folder
            raise JobError(f"run folder {run_dir} is not inside {runs_dir}")
        job.update(name=run_dir.name, train_argv=train_argv(spec, run_dir, device))
        return run_dir

    job = {"kind": "train", "created_at": time.time(), "device": device, "nproc": spec.nproc,
           "gpu_count": devices["gpu_count"], "spec": spec.to_dict(), "dataset_summary": summary,
           "data_roots": [str(r) for r in roots]}  # the trainer's dataset readers stay inside (runner env)
    return submit(runs_dir, job, make_dir, limits)
