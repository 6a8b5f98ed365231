"""Background evaluations and their on-disk cache: launch, read, list, cancel, delete.

An evaluation is a job of kind "evaluate" of the job framework (`explorer.jobs`: SHORT
lane, so it never waits behind a training run). Each has a folder
`runs_dir()/evaluations/<key>/` (key: `spec.eval_key`) with the framework's files
(`ssd.runlog`: job.json, status.json, stdout.log, .run.lock), `spec.json` and, once
finished, `result.json` and `raw.pt` (written by `explorer.evaluation.runner`).
Everything is on disk, so an evaluation survives a rerun, a closed tab and a server
restart, and the same checkpoint + data + thresholds is never evaluated twice.
No streamlit import.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.evaluation.kept import KeptOutputs, kept_from_file
from explorer.evaluation.spec import EvalInputError, EvalSpec, check_paths, eval_key, load_checked
from explorer.jobs import controls
from explorer.jobs.limits import JobError, JobLimits
from explorer.jobs.manager import submit
from explorer.jobs.metrics import tail_log
from explorer.jobs.runs import job_state
from explorer.jobs.state import is_alive
from explorer.paths import CHECKPOINTS_DIR, confined_to, runs_dir
from ssd.config import SSDConfig
from ssd.training.runlog import CHECKPOINTS_DIR as RUN_CHECKPOINTS
from ssd.training.runlog import LIVE_STATES, KEPT_FILE, RESULT_FILE, SPEC_FILE, STATUS_FILE, read_json
from ssd.io import write_json_atomic

DELETE_WAIT_S = 15.0  # how long delete waits for a cancelled evaluation's process to end


def evaluations_dir() -> Path:
    """`explorer.paths.runs_dir() / "evaluations"`."""
    return runs_dir() / "evaluations"


@dataclass(frozen=True)
class EvalInfo:
    """One evaluation as the page shows it; `state` accounts for a dead process."""

    key: str  # folder name: the cache key
    eval_dir: Path  # the folder
    spec: EvalSpec | None  # what is evaluated (None: unreadable spec.json)
    state: str  # queued | running | finished | failed | cancelled | damaged
    progress: float  # 0..1 of the images
    message: str  # last status message (the reason, when failed)
    updated_at: float  # unix time of the last status write

    @property
    def live(self) -> bool:
        """Queued or running (cancel applies)."""
        return self.state in LIVE_STATES

    @property
    def label(self) -> str:
        if self.spec is None:
            return f"{self.key} ({self.state})"
        return f"{checkpoint_name(self.spec.checkpoint)} on {self.spec.dataset.describe()} [{self.state}]"

    def row(self) -> dict:
        return {"key": self.key, "checkpoint": self.spec.checkpoint if self.spec else "",
                "dataset": self.spec.dataset.describe() if self.spec else "", "state": self.state,
                "progress": round(self.progress, 3), "message": self.message}


def checkpoint_name(checkpoint: str) -> str:
    """A checkpoint as a list shows it: a training run's `RUN/checkpoints/best.pt` as
    "RUN / best.pt" (every run's file is called best.pt), another file by its base name
    (no server path)."""
    p = Path(checkpoint)
    in_a_run = p.parent.name == RUN_CHECKPOINTS and p.parent.resolve() != CHECKPOINTS_DIR.resolve()  # not shipped
    return f"{p.parent.parent.name} / {p.name}" if in_a_run and p.parent.parent.name else p.name


def read_eval(eval_dir: Path) -> EvalInfo:
    """The evaluation in `eval_dir`, its state from the job framework (`job_state`: a
    live state whose process is gone reads "failed"); "finished" without result.json
    reads "failed" too."""
    eval_dir = Path(eval_dir)
    try:
        spec = EvalSpec.from_dict(read_json(eval_dir / SPEC_FILE)["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        spec = None
    js = job_state(eval_dir)
    state = js.state
    message = str(js.status.get("message") or "no status.json: the evaluation never started")
    if state == "finished" and not (eval_dir / RESULT_FILE).is_file():
        state, message = "failed", "finished, but result.json is missing"
    return EvalInfo(eval_dir.name, eval_dir, spec, state, float(js.status.get("progress") or 0.0), message,
                    float(js.status.get("updated_at") or 0.0))


def list_evals(root: Path | None = None) -> list[EvalInfo]:
    """Every evaluation under `root` (default `evaluations_dir()`), newest first."""
    root = evaluations_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    infos = [read_eval(d) for d in root.iterdir() if d.is_dir() and (d / SPEC_FILE).is_file()]
    return sorted(infos, key=lambda i: i.updated_at, reverse=True)


def launch(spec: EvalSpec, root: Path | None = None, check: bool = True, limits: JobLimits | None = None,
           roots: tuple[Path, ...] | None = None) -> Path:
    """Start evaluating `spec` as a background job (or find it in the cache).

    A queued, running or finished evaluation with the same key is returned as it is; a
    failed or cancelled one is run again. `check` first loads the checkpoint and builds
    the dataset here, so bad input raises EvalInputError (naming the file and the
    problem) at once; a full SHORT lane raises EvalInputError too. root: the
    evaluations folder (default `evaluations_dir()`, queued in the runs folder's lanes;
    another root queues in its own). roots: the data roots (`explorer.paths.data_roots`):
    the dataset paths, and every file the evaluation reads for them (here and in its
    process), must lie inside; the checkpoint inside them, the runs folder or the shipped
    checkpoints. None: no confinement. Returns the evaluation's folder."""
    root = (evaluations_dir() if root is None else Path(root)).resolve()
    if roots is not None:  # before anything reads the checkpoint (its sha1 keys the cache)
        check_paths(spec, roots, (*roots, runs_dir().resolve(), CHECKPOINTS_DIR.resolve()))
    key = eval_key(spec)
    eval_dir = root / key
    if eval_dir.is_dir() and read_eval(eval_dir).state in (*LIVE_STATES, "finished"):
        return eval_dir
    if check:
        with confined_to(roots):
            load_checked(spec)

    def make_dir() -> Path:
        eval_dir.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT_FILE, KEPT_FILE, STATUS_FILE):
            (eval_dir / stale).unlink(missing_ok=True)
        write_json_atomic(eval_dir / SPEC_FILE, {"key": key, "spec": spec.to_dict(), "created_at": time.time()})
        return eval_dir

    queue_root = root.parent if root == evaluations_dir().resolve() else root
    try:
        return submit(queue_root, {"kind": "evaluate", "device": "cpu", "created_at": time.time(),
                                   "data_roots": None if roots is None else [str(r) for r in roots]}, make_dir, limits)
    except JobError as exc:
        raise EvalInputError(str(exc)) from None


def cancel(eval_dir: Path) -> None:
    """Cancel a queued or running evaluation (SIGTERM to its process group: it ends as
    `cancelled`); nothing happens for one that has ended."""
    try:
        controls.cancel(Path(eval_dir))
    except JobError:
        if read_eval(eval_dir).live:  # refused for another reason than "already ended"
            raise


def delete(eval_dir: Path) -> None:
    """Cancel if live, wait for its process to end, then remove the folder (only folders
    that hold a spec.json)."""
    eval_dir = Path(eval_dir).resolve()
    if not (eval_dir / SPEC_FILE).is_file():
        raise EvalInputError(f"{eval_dir} is not an evaluation folder (no {SPEC_FILE})")
    cancel(eval_dir)
    deadline = time.monotonic() + DELETE_WAIT_S
    while is_alive(eval_dir) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        controls.delete_run(eval_dir.parent, eval_dir.name)
    except JobError as exc:
        raise EvalInputError(str(exc)) from None


def load_result(eval_dir: Path) -> dict:
    """result.json of a finished evaluation. EvalInputError when missing or unreadable."""
    p = Path(eval_dir) / RESULT_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise EvalInputError(f"{p}: no readable result ({e})") from e


def load_kept(eval_dir: Path) -> KeptOutputs:
    """The kept network outputs of a finished evaluation (`raw.pt`, weights_only load)."""
    return kept_from_file(Path(eval_dir) / KEPT_FILE)


def model_config(result: dict) -> SSDConfig:
    """The evaluated model's `SSDConfig` (default boxes and levels), from result.json."""
    return SSDConfig.from_dict(dict(result["model_config"]))


def log_tail(eval_dir: Path, n: int = 20) -> str:
    """The last `n` lines the evaluation's processes printed (tracebacks of a failed run)."""
    return tail_log(Path(eval_dir), n)
