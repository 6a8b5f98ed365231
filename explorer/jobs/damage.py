"""Reading run folders that someone else may have damaged, without trusting them.

A run folder is written by processes the page does not control and lives on a disk
other users can touch: status.json may be truncated or hold the wrong types, job.json
may be edited, checkpoints may be cut short or replaced by a pickle with code in it,
the folder may turn read-only mid-run. These readers return what is usable plus a list
of problems for the page to show; they never raise on bad content and never execute
anything (checkpoints are only looked at as zip archives here; loading stays
`weights_only=True` in `ssd.training.checkpoint`). No streamlit, no torch import.
"""
from __future__ import annotations

import math
import os
import stat
import zipfile
from pathlib import Path

from ssd.training import runlog
from ssd.training.runlog import STATES, RunDirError

# Types each status.json field may have (None allowed for all but state).
_STATUS_TYPES = {
    "state": (str,), "progress": (int, float), "message": (str,), "pid": (int,), "epoch": (int,),
    "step": (int,), "total_steps": (int,), "best_map": (int, float), "device": (str,),
    "started_at": (int, float), "updated_at": (int, float),
}
DIVERGED_RATIO = 3.0  # a finished run whose last losses average over 3x its first is "diverged"
DIVERGED_WINDOW = 5  # how many last log rows are averaged


def read_json_checked(path: Path) -> tuple[dict | None, str | None]:
    """(object, None) for a readable JSON object, (None, None) when the file is absent,
    (None, problem) when it exists but is unreadable, truncated or not an object."""
    if not os.path.lexists(path):
        return None, None
    try:
        return runlog.read_json(path), None
    except RunDirError as exc:
        return None, str(exc)


def clean_status(raw: dict) -> tuple[dict, list[str]]:
    """The fields of a status.json object that have the right type, and one problem line
    per field that does not (bool is not a number here; NaN/inf are refused)."""
    clean, problems = {}, []
    for key, value in raw.items():
        types = _STATUS_TYPES.get(key)
        if types is None:
            continue  # unknown fields are ignored, not an error (older or newer writers)
        ok = value is None and key != "state"
        ok = ok or (isinstance(value, types) and not isinstance(value, bool)
                    and not (isinstance(value, float) and not math.isfinite(value)))
        if key == "state" and ok and value not in STATES:
            ok = False
        if ok:
            clean[key] = value
        else:
            problems.append(f"status.json field {key!r} holds {str(value)[:40]!r}")
    return clean, problems


def clean_job(raw: dict | None) -> tuple[dict, list[str]]:
    """job.json with the fields the manager uses type-checked: seq (int), device (str),
    attempts (list of objects), spec (object), train_argv (list of strings)."""
    if raw is None:
        return {}, []
    job, problems = dict(raw), []
    checks = {"seq": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "device": lambda v: v in ("cpu", "cuda"),
              "attempts": lambda v: isinstance(v, list) and all(isinstance(a, dict) for a in v),
              "spec": lambda v: isinstance(v, dict) and isinstance(v.get("train", {}), dict),
              "train_argv": lambda v: isinstance(v, list) and all(isinstance(a, str) for a in v),
              "created_at": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    for key, ok in checks.items():
        if key in job and not ok(job[key]):
            problems.append(f"job.json field {key!r} holds {str(job[key])[:40]!r}")
            del job[key]
    return job, problems


def diverged(log_rows: list[dict], first_loss: float | None) -> str | None:
    """Why a run's loss diverged (None when it did not): a non-finite last loss, or the
    mean of the last DIVERGED_WINDOW losses over DIVERGED_RATIO x the first logged loss."""
    losses = [r.get("loss") for r in log_rows if isinstance(r.get("loss"), (int, float))]
    if not losses:
        return None
    if not math.isfinite(losses[-1]):
        return f"the last logged loss is {losses[-1]}"
    if first_loss is None or not math.isfinite(first_loss) or first_loss <= 0:
        return None
    recent = losses[-DIVERGED_WINDOW:]
    mean = sum(recent) / len(recent)
    if mean > DIVERGED_RATIO * first_loss:
        return (f"the loss diverged: the last {len(recent)} logged losses average {mean:.4g}, "
                f"{mean / first_loss:.1f}x the first ({first_loss:.4g}); try a lower learning rate")
    return None


def first_logged_loss(run_dir: Path, max_bytes: int = 4096) -> float | None:
    """The loss of the first train record of metrics.jsonl (reads its first `max_bytes`)."""
    try:
        with open(runlog.paths(run_dir).metrics, "rb") as f:
            head = f.read(max_bytes).decode("utf-8", errors="replace")
    except OSError:
        return None
    for rec in runlog.parse_records(head.splitlines()[:-1] if len(head) == max_bytes else head.splitlines()):
        if rec.get("kind") == "train" and isinstance(rec.get("loss"), (int, float)):
            return float(rec["loss"])
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` is not a usable checkpoint file, looked at without unpickling anything
    (None when it looks whole): unreadable, not a regular file, empty, or not a zip
    archive (cut short: torch.save writes a zip whose directory is at the end). Cheap:
    reads the archive's end only, so the model picker can call it for every run."""
    try:
        st = os.stat(path)
    except OSError as exc:
        return f"{Path(path).name}: cannot be read ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return f"{Path(path).name}: not a regular file"
    if st.st_size == 0:
        return f"{Path(path).name}: empty file"
    try:
        if not zipfile.is_zipfile(path):
            return f"{Path(path).name}: not a complete checkpoint (truncated, or not written by torch.save)"
    except OSError as exc:
        return f"{Path(path).name}: cannot be read ({exc.strerror})"
    return None


def checkpoint_problem_deep(path: Path) -> str | None:
    """`checkpoint_problem`, then every member's CRC checked (reads the whole file once,
    unpickles nothing): catches a checkpoint cut or overwritten in the middle."""
    problem = checkpoint_problem(path)
    if problem:
        return problem
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
    except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        return f"{Path(path).name}: damaged archive ({exc})"
    return f"{Path(path).name}: damaged (member {bad} fails its checksum)" if bad else None
