"""Background evaluations and their on-disk cache: launch, read, list, cancel, delete.

Each evaluation has a folder `runs_dir()/evaluations/<key>/` (key: `spec.eval_key`) with
`spec.json`, `status.json`, `runner.log` and, once finished, `result.json` and `raw.pt`
(see `explorer.evaluation.runner`). Everything is on disk, so an evaluation survives a
rerun, a closed tab and a server restart, and the same checkpoint + data + thresholds is
never evaluated twice. No streamlit import.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.evaluation.raw import RawOutputs, raw_from_file
from explorer.evaluation.runner import LOG_FILE, RAW_FILE, RESULT_FILE, SPEC_FILE, STATUS_FILE, write_status
from explorer.evaluation.spec import EvalInputError, EvalSpec, eval_key, load_checked
from explorer.paths import REPO_ROOT, runs_dir

STARTING_GRACE_S = 60.0  # a run not yet showing its pid counts as alive this long after launch


def evaluations_dir() -> Path:
    """`explorer.paths.runs_dir() / "evaluations"`."""
    return runs_dir() / "evaluations"


@dataclass(frozen=True)
class EvalInfo:
    """One evaluation as the page shows it; `state` accounts for a dead process."""

    key: str  # folder name: the cache key
    eval_dir: Path  # the folder
    spec: EvalSpec | None  # what is evaluated (None: unreadable spec.json)
    state: str  # running | finished | failed | cancelled
    progress: float  # 0..1 of the images
    message: str  # last status message (the reason, when failed)
    updated_at: float  # unix time of the last status write

    @property
    def label(self) -> str:
        if self.spec is None:
            return f"{self.key} ({self.state})"
        return f"{Path(self.spec.checkpoint).name} on {self.spec.dataset.describe()} [{self.state}]"

    def row(self) -> dict:
        return {"key": self.key, "checkpoint": self.spec.checkpoint if self.spec else "",
                "dataset": self.spec.dataset.describe() if self.spec else "", "state": self.state,
                "progress": round(self.progress, 3), "message": self.message}


def _alive(status: dict) -> bool:
    from explorer.jobs.state import pid_alive_since

    pid = status.get("pid")
    if pid is None:  # launched, the runner has not written its pid yet
        return time.time() - float(status.get("updated_at", 0)) < STARTING_GRACE_S
    return pid_alive_since(pid, status.get("started_at"))


def read_eval(eval_dir: Path) -> EvalInfo:
    """The evaluation in `eval_dir`; a "running" one whose process is gone reads "failed"."""
    from ssd.training.runlog import read_json

    eval_dir = Path(eval_dir)
    try:
        spec = EvalSpec.from_dict(read_json(eval_dir / SPEC_FILE)["spec"])
    except (OSError, ValueError, KeyError, TypeError):
        spec = None
    try:
        status = read_json(eval_dir / STATUS_FILE)
    except (OSError, ValueError):
        status = {}
    state = status.get("state", "failed")
    message = status.get("message", "no status.json: the evaluation never started")
    if state == "running" and not _alive(status):
        state = "failed"
        message = f"the evaluation process ended without a result (killed or crashed?); last: {message}"
    if state == "finished" and not (eval_dir / RESULT_FILE).is_file():
        state, message = "failed", "finished, but result.json is missing"
    return EvalInfo(eval_dir.name, eval_dir, spec, state, float(status.get("progress", 0.0)), message,
                    float(status.get("updated_at", 0.0)))


def list_evals(root: Path | None = None) -> list[EvalInfo]:
    """Every evaluation under `root` (default `evaluations_dir()`), newest first."""
    root = evaluations_dir() if root is None else Path(root)
    if not root.is_dir():
        return []
    infos = [read_eval(d) for d in root.iterdir() if d.is_dir() and (d / SPEC_FILE).is_file()]
    return sorted(infos, key=lambda i: i.updated_at, reverse=True)


def launch(spec: EvalSpec, root: Path | None = None, check: bool = True) -> Path:
    """Start evaluating `spec` in a detached process (or find it in the cache).

    A finished or running evaluation with the same key is returned as it is; a failed or
    cancelled one is run again. `check` first loads the checkpoint and builds the dataset
    here, so bad input raises EvalInputError (naming the file and the problem) at once.
    Returns the evaluation's folder.
    """
    from ssd.io import write_json_atomic

    root = evaluations_dir() if root is None else Path(root)
    key = eval_key(spec)
    eval_dir = root / key
    if eval_dir.is_dir() and read_eval(eval_dir).state in ("running", "finished"):
        return eval_dir
    if check:
        load_checked(spec)
    eval_dir.mkdir(parents=True, exist_ok=True)
    for stale in (RESULT_FILE, RAW_FILE, STATUS_FILE):
        (eval_dir / stale).unlink(missing_ok=True)
    write_json_atomic(eval_dir / SPEC_FILE, {"key": key, "spec": spec.to_dict(), "created_at": time.time()})
    write_status(eval_dir, state="running", progress=0.0, message="starting", pid=None, started_at=None)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    with open(eval_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "explorer.evaluation.runner", str(eval_dir)], cwd=REPO_ROOT,
                                env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, close_fds=True)
    # Reap it when it ends (no zombies in a long-lived server); the run does not depend on it.
    threading.Thread(target=proc.wait, daemon=True, name=f"reap-eval-{key}").start()
    return eval_dir


def cancel(eval_dir: Path) -> None:
    """SIGTERM the evaluation's process group (it then writes `cancelled`); an evaluation
    whose process is already gone is marked cancelled here."""
    from ssd.training.runlog import read_json

    eval_dir = Path(eval_dir)
    try:
        status = read_json(eval_dir / STATUS_FILE)
    except (OSError, ValueError):
        return
    if status.get("state") != "running":
        return
    pid = status.get("pid")
    if pid and _alive(status):
        try:
            os.killpg(int(pid), signal.SIGTERM)  # the runner leads its own session and group
            return
        except ProcessLookupError:
            pass
    write_status(eval_dir, state="cancelled", message="cancelled by the user")


def delete(eval_dir: Path) -> None:
    """Cancel if running, then remove the folder (only folders that hold a spec.json)."""
    eval_dir = Path(eval_dir)
    if not (eval_dir / SPEC_FILE).is_file():
        raise EvalInputError(f"{eval_dir} is not an evaluation folder (no {SPEC_FILE})")
    cancel(eval_dir)
    shutil.rmtree(eval_dir, ignore_errors=True)


def load_result(eval_dir: Path) -> dict:
    """result.json of a finished evaluation. EvalInputError when missing or unreadable."""
    p = Path(eval_dir) / RESULT_FILE
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise EvalInputError(f"{p}: no readable result ({e})") from e


def load_raw(eval_dir: Path) -> RawOutputs:
    """The kept network outputs of a finished evaluation (`raw.pt`, weights_only load)."""
    return raw_from_file(Path(eval_dir) / RAW_FILE)


def model_config(result: dict):
    """The evaluated model's `SSDConfig` (default boxes and levels), from result.json."""
    from ssd.config import SSDConfig

    return SSDConfig.from_dict(dict(result["model_config"]))


def log_tail(eval_dir: Path, n: int = 20) -> str:
    """The last `n` lines of runner.log (tracebacks of a failed run)."""
    try:
        return "\n".join((Path(eval_dir) / LOG_FILE).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""
