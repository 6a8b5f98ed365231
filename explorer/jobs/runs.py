"""Reading jobs for the page: any job folder -> `JobState` (every kind), a training run
folder -> `RunInfo`, every run of a runs folder.

The effective state accounts for dead processes (a status that says queued or running
while the run lock is free becomes failed, or cancelled when the user asked), and
for damage: a folder someone else made unreadable, read-only or type-corrupted comes
back flagged (`RunInfo.damage`, state "damaged" when the state itself is unknown),
never as an exception that would hide every other run. No streamlit import.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.jobs.damage import clean_job, clean_status, diverged, first_logged_loss, read_json_checked
from explorer.jobs.metrics import eta_seconds, tail_log_file, tail_metrics
from explorer.jobs.process import pid_alive_since
from explorer.jobs.state import is_alive, probe_run_lock
from ssd.ablation.studies import SCALES, base_options
from ssd.training import runlog
from ssd.training.runlog import CANCEL_MARK, JOB_FILE, LIVE_STATES, STDOUT_FILE, update_status

DAMAGED = "damaged"  # RunInfo.state of a run whose own state cannot be read (never written to disk)


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
    damage: str = ""  # what is wrong with the run folder's files ("" when nothing)
    cancel_requested: bool = False  # live, and the user asked to cancel (SIGTERM sent, not ended yet)

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
            "message": self.message, "damage": self.damage,
        }


def _fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def read_run(run_dir: Path) -> RunInfo:
    """The run in `run_dir` with its effective state: a status that says queued or
    running while no process of the run is alive becomes `failed` (or `cancelled`
    when the user asked to cancel), and is written back so it stays so (when the
    folder is writable). Damaged files never raise: the run comes back with
    `damage` saying what is wrong, and its state is never guessed from a file that
    cannot be read (state "damaged")."""
    run_dir = Path(run_dir).resolve()
    try:
        return _read_run(run_dir)
    except (OSError, ValueError, TypeError, KeyError, AttributeError, RecursionError) as exc:
        return damaged_run(run_dir, f"cannot read the run folder: {type(exc).__name__}: {str(exc)[:200]}")


def damaged_run(run_dir: Path, problem: str) -> RunInfo:
    """A RunInfo for a run folder that could not be read at all (state "damaged")."""
    alive = False
    with contextlib.suppress(OSError):
        alive = is_alive(run_dir)
    return RunInfo(name=run_dir.name, run_dir=run_dir, state="running" if alive else "damaged", progress=0.0,
                   message=problem, alive=alive, device="", epoch=None, step=None, total_steps=None,
                   best_map=None, seq=None, created_at=None, started_at=None, updated_at=None, elapsed_s=None,
                   eta_s=None, images_per_s=None, model="", dataset="", has_last=False, has_best=False,
                   damage=problem)


def _read_status(run_dir: Path, problems: list[str]) -> tuple[dict, bool]:
    """(clean status, unreadable): unreadable when status.json exists but cannot be used."""
    raw, problem = read_json_checked(runlog.paths(run_dir).status)
    if problem:
        problems.append(problem)
        return {}, True
    status, bad = clean_status(raw or {})
    problems.extend(bad)
    return status, "state" not in status and raw is not None


@dataclass(frozen=True)
class JobState:
    """A job folder's effective state, for every job kind (`job_state`)."""

    job: dict  # job.json, type-checked ({} for a folder written by hand)
    status: dict  # status.json, type-checked, with the effective state's fields
    state: str  # queued | running | finished | failed | cancelled | damaged
    alive: bool  # the job's process tree exists
    problems: list  # what is wrong with the folder's files


def job_state(run_dir: Path) -> JobState:
    """The effective state of any job folder: a status that says queued or running
    while no process of the job is alive becomes `failed` (or `cancelled` when the user
    asked), written back when the folder is writable. A folder with no job.json (a run
    of `python -m ssd.train` by hand, an evaluation run in-process) is alive while its
    status's pid is (`explorer.jobs.process.pid_alive_since`); it is never rewritten."""
    run_dir = Path(run_dir)
    problems: list[str] = []
    raw_job, job_problem = read_json_checked(run_dir / JOB_FILE)
    if job_problem:
        problems.append(job_problem)
    job, bad = clean_job(raw_job)
    problems.extend(bad)
    status, unreadable = _read_status(run_dir, problems)
    if raw_job is not None or job_problem is not None:  # launched by the framework: the run lock says
        alive, unsaved = _check_alive_and_fix(run_dir, unreadable, problems)
        status, unreadable = _read_status(run_dir, [])
        status.update(unsaved)  # the effective state when the folder refused the write
    else:
        state = status.get("state")
        # Only a live state has a process; the writer of an ended run may live on (in-process main()).
        alive = state in LIVE_STATES and pid_alive_since(status.get("pid"), status.get("started_at"))
        if state in LIVE_STATES and not alive:
            status = dict(status, state="failed", message="process is gone: it ended without a result (killed, "
                                                          f"crashed or machine restarted); last: {status.get('message', '')}")
    # No usable state: a live job is running (it rewrites the file soon); a dead one
    # whose status cannot be read is damaged (it may have finished), never guessed failed.
    state = status.get("state") or ("running" if alive else DAMAGED if unreadable else "failed")
    if unreadable and not alive:
        state = DAMAGED
        status = dict(status, message="status.json is unreadable: the job's state is unknown (the file "
                                      "is left as it is; delete it or restore the file)")
    return JobState(job, status, state, alive, problems)


def _read_run(run_dir: Path) -> RunInfo:
    js = job_state(run_dir)
    return _run_info(run_dir, js.job, js.status, js.state, js.alive, js.problems)


def _run_info(run_dir: Path, job: dict, status: dict, state: str, alive: bool, problems: list[str]) -> RunInfo:
    # What was launched (job.json), else what ran (config.json of a run started by hand).
    options = (job.get("spec") or {}).get("train") or (runlog.read_config(run_dir) or {}).get("args") or {}
    if not isinstance(options, dict):
        options = {}
    if not options and job.get("kind") == "study":
        options = _study_options(job.get("study"))
    started, updated = status.get("started_at"), status.get("updated_at")
    elapsed = None
    if started:
        elapsed = (time.time() if state in LIVE_STATES and alive else (updated or time.time())) - started
    recent = tail_metrics(run_dir)
    message = str(status.get("message", ""))
    if state == "finished":
        why = diverged(recent, first_logged_loss(run_dir))
        if why:  # the trainer said finished, the losses say otherwise
            state, message = "failed", f"diverged: {why}"
    run_paths = runlog.paths(run_dir)
    return RunInfo(
        name=run_dir.name, run_dir=run_dir, state=state,
        progress=float(min(max(status.get("progress") or 0.0, 0.0), 1.0)),
        message=message, alive=alive,
        device=str(status.get("device") or job.get("device") or ""),
        epoch=status.get("epoch"), step=status.get("step"), total_steps=status.get("total_steps"),
        best_map=status.get("best_map"), seq=job.get("seq"), created_at=job.get("created_at"),
        started_at=started, updated_at=updated, elapsed_s=elapsed,
        eta_s=eta_seconds(recent, status) if state == "running" else None,
        images_per_s=next((r["images_per_s"] for r in reversed(recent)
                           if isinstance(r.get("images_per_s"), (int, float))), None),
        model=str(options.get("model", "")), dataset=str(options.get("dataset", "")),
        has_last=run_paths.last.is_file(), has_best=run_paths.best.is_file(),
        damage="; ".join(problems),
        cancel_requested=state in LIVE_STATES and (run_dir / CANCEL_MARK).exists(),
    )


def _study_options(spec) -> dict:
    """A study job's model and dataset for the runs table (its variants' full recipe)."""
    if not isinstance(spec, dict) or spec.get("scale") not in SCALES:
        return {}
    base = base_options(SCALES[spec["scale"]], seed=0)
    return {"model": base.model, "dataset": f"{base.dataset} (paper lab: {spec.get('study')}, {spec['scale']})"}


def _check_alive_and_fix(run_dir: Path, unreadable: bool, problems: list[str]) -> tuple[bool, dict]:
    """(alive, fields to show that could not be saved). A dead run's stale live status is
    rewritten (`fix_dead_status`); in a read-only folder it is only shown."""
    with probe_run_lock(run_dir) as alive:
        if alive:
            return True, {}
        if unreadable:  # never rewrite a status we could not read (it may say finished)
            return False, {}
        fields = dead_status_fields(run_dir)
        if fields:
            try:
                update_status(run_dir, **fields)
            except OSError as exc:
                problems.append(f"the run folder is not writable ({exc.strerror or exc}); "
                                "its state is shown, not saved")
                return False, fields
        return False, {}


def dead_status_fields(run_dir: Path) -> dict:
    """For a run known dead: the status fields that end a status still saying queued or
    running, `cancelled` (cancel asked) or `failed`; {} when the status needs nothing."""
    raw, problem = read_json_checked(runlog.paths(run_dir).status)
    if problem:
        return {}
    status, _ = clean_status(raw or {})
    if status.get("state", "queued") not in LIVE_STATES:
        return {}
    if (run_dir / CANCEL_MARK).exists():
        return {"state": "cancelled", "message": "cancelled"}
    last = _last_output_line(run_dir)
    return {"state": "failed", "message": "process died without reporting (killed, crashed or machine "
                                          "restarted)" + (f"; last output: {last}" if last else "")}


def fix_dead_status(run_dir: Path) -> None:
    """With the run lock held (nothing of this run runs, nothing can start): a status
    still saying queued/running becomes `cancelled` (cancel asked) or `failed`.
    OSError when the folder refuses the write."""
    fields = dead_status_fields(run_dir)
    if fields:
        update_status(run_dir, **fields)


def _last_output_line(run_dir: Path) -> str:
    """Last non-empty line the run printed (a traceback ends with the error)."""
    lines = [ln.strip() for ln in tail_log_file(run_dir / STDOUT_FILE).splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run under `runs_dir` (a folder with job.json or status.json), newest first.
    A folder that cannot be read comes back as a "damaged" run; it never hides the others."""
    runs_dir = Path(runs_dir)
    try:
        entries = [d for d in runs_dir.iterdir() if not d.name.startswith(".")]
    except OSError:
        return []
    runs = []
    for d in entries:
        try:
            if not d.is_dir() or not ((d / JOB_FILE).exists() or runlog.paths(d).status.exists()):
                continue
        except OSError as exc:
            runs.append(damaged_run(d, f"cannot look into the run folder ({exc.strerror})"))
            continue
        runs.append(read_run(d))
    return sorted(runs, key=lambda r: (r.created_at or r.started_at or 0.0, r.name), reverse=True)


