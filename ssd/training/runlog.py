"""The run directory of a training run: the one owner of its format.

Training (`ssd.train`) writes it; the app's job manager (`explorer.jobs`) reads it
while the run goes on. Both import the names below instead of restating them:

    RUN_DIR/config.json             every option + the resolved model config (enough to reproduce)
    RUN_DIR/metrics.jsonl           one JSON record per log step ("kind": "train") or evaluation ("eval")
    RUN_DIR/train.log               human-readable log
    RUN_DIR/status.json             STATUS_FIELDS: state (one of STATES), progress, message, ...
    RUN_DIR/checkpoints/last.pt     resumable state (weights, optimizer, scheduler, step, RNG)
    RUN_DIR/checkpoints/best.pt     the weights with the best validation AP
    JOB_FILE, STDOUT_FILE, ...      the job framework's files (below), for every job kind

Whole files here (status.json, config.json, checkpoints) are written with `ssd.io`'s
atomic write: a reader sees the old file or the new one, never half of one.

No torch import: the job runner waiting in a queue imports this and stays light.
"""
from __future__ import annotations

import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ssd.data.paths import open_nonblocking
from ssd.io import json_default, write_json_atomic

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
STATUS_FILE = "status.json"
CHECKPOINTS_DIR = "checkpoints"
LAST_CHECKPOINT = f"{CHECKPOINTS_DIR}/last.pt"
BEST_CHECKPOINT = f"{CHECKPOINTS_DIR}/best.pt"
# Files of every background job's folder (training runs, evaluations, exports, studies):
# the app's job framework (`explorer.jobs`) writes and reads them, under these names only.
JOB_FILE = "job.json"  # what was launched: kind, child argv, device, lane, seq, attempts
STDOUT_FILE = "stdout.log"  # everything the job's processes print (tracebacks too)
RUN_LOCK = ".run.lock"  # flock held by the job's process tree for its whole life (liveness)
CONTROL_LOCK = ".control.lock"  # flock taken (never waited for) by cancel / resume / delete
CANCEL_MARK = "cancel_requested"  # marker: the user asked to cancel
SPEC_FILE = "spec.json"  # a job kind's own input (an evaluation's checkpoint, data, thresholds)
RESULT_FILE = "result.json"  # a short job's output (an evaluation's AP figures and errors)
KEPT_FILE = "raw.pt"  # an evaluation's kept network outputs (the file keeps its name: earlier evaluations still load)
EXPORT_DIR = "export"  # a training run's ONNX export job folder (spec.json, status.json, result.json)
ONNX_FILE = "model.onnx"  # the exported model, in EXPORT_DIR

LIVE_STATES = ("queued", "running")  # a process of the run should exist
END_STATES = ("finished", "failed", "cancelled")  # the run ended (cancelled and failed can resume)
STATES = LIVE_STATES + END_STATES
STATUS_FIELDS = ("state", "progress", "message", "pid", "epoch", "step", "total_steps", "best_map",
                 "device", "started_at", "updated_at")
MAX_JSON_BYTES = 1 << 20  # status.json / config.json / job.json larger than this are refused unread
MAX_METRICS_BYTES = 64 << 20  # read_metrics reads at most the last 64 MiB of metrics.jsonl
# metrics.jsonl records: "kind" says which keys the record has.
TRAIN_KEYS = ("epoch", "step", "loss", "conf", "loc", "lr", "images_per_s", "time")
EVAL_KEYS = ("epoch", "step", "map", "ap50", "ap75", "voc07_map", "time")


class RunDirError(ValueError):
    """A run-directory file that cannot be used; the message names the file."""


def _file(name: str) -> property:
    """A `RunPaths` property: the file `name` inside the run directory."""
    return property(lambda self: self.root / name, doc=f"RUN_DIR/{name}")


@dataclass(frozen=True)
class RunPaths:
    """The files of the run directory `root` (nothing is created)."""

    root: Path  # the run directory
    config = _file(CONFIG_FILE)
    metrics = _file(METRICS_FILE)
    log = _file(LOG_FILE)
    status = _file(STATUS_FILE)
    last = _file(LAST_CHECKPOINT)
    best = _file(BEST_CHECKPOINT)


def paths(run_dir) -> RunPaths:
    """`RunPaths` of the run directory `run_dir` (str or Path)."""
    return RunPaths(Path(run_dir))


def checked_status(fields: dict) -> dict:
    """`fields` if every key is a status field and the state is known, else raise
    (KeyError for an unknown field, ValueError for an unknown state)."""
    unknown = set(fields) - set(STATUS_FIELDS)
    if unknown:
        raise KeyError(f"unknown status field(s) {sorted(unknown)}; known: {list(STATUS_FIELDS)}")
    if "state" in fields and fields["state"] not in STATES:
        raise ValueError(f"state must be one of {STATES}, got {fields['state']!r}")
    return fields


def update_status(run_dir, **fields) -> dict:
    """Merge `fields` (checked) into RUN_DIR/status.json atomically; returns the new
    status. For writers other than the trainer (the job runner and manager)."""
    status = read_status(run_dir) or {}
    status.update(checked_status(fields))
    status["updated_at"] = time.time()
    write_json_atomic(paths(run_dir).status, status)
    return status


# --------------------------------------------------------------------------- reads ---
def read_json(path) -> dict:
    """The JSON object in `path`; RunDirError naming the file when it is missing,
    unreadable (not a regular file, over MAX_JSON_BYTES, truncated, nested too deep)
    or not a JSON object."""
    p = Path(path)
    try:
        with open_nonblocking(p, MAX_JSON_BYTES) as f:
            data = json.loads(f.read().decode("utf-8"))
    except FileNotFoundError:
        raise RunDirError(f"{p}: not found") from None
    except (OSError, ValueError, RecursionError) as e:
        raise RunDirError(f"{p}: not readable JSON ({str(e)[:200]})") from None
    if not isinstance(data, dict):
        raise RunDirError(f"{p}: holds a JSON {type(data).__name__}, not an object")
    return data


def read_json_or_none(path) -> dict | None:
    """The JSON object in `path`, or None when missing or unreadable (a foreign
    writer mid-write, a file truncated by a crash). For pollers."""
    try:
        return read_json(path)
    except RunDirError:
        return None


def read_status(run_dir) -> dict | None:
    """RUN_DIR/status.json, or None when there is none (yet) or it is unreadable."""
    return read_json_or_none(paths(run_dir).status)


def read_config(run_dir) -> dict | None:
    """RUN_DIR/config.json (keys "args", "model_config", "class_names", ...) or None."""
    return read_json_or_none(paths(run_dir).config)


def parse_records(lines: Iterable[str]) -> list[dict]:
    """metrics.jsonl lines -> records; a half-written line (being written now, or cut
    by a crash) is skipped."""
    records = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


def read_metrics(path) -> list[dict]:
    """All records of a metrics.jsonl file, or of RUN_DIR/metrics.jsonl when `path` is
    a directory ([] when absent, unreadable or not a regular file). Of a file over
    MAX_METRICS_BYTES only the last MAX_METRICS_BYTES are read."""
    p = Path(path)
    if p.is_dir():
        p = paths(p).metrics
    try:
        with open_nonblocking(p) as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(size - MAX_METRICS_BYTES, 0))
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return parse_records(lines[1:] if size > MAX_METRICS_BYTES else lines)


def split_records(records: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """(train rows, eval rows) of metrics records, by their "kind"; each row has
    exactly TRAIN_KEYS / EVAL_KEYS (None where a record lacks one)."""
    train, evals = [], []
    for rec in records:
        if rec.get("kind") == "train":
            train.append({k: rec.get(k) for k in TRAIN_KEYS})
        elif rec.get("kind") == "eval":
            evals.append({k: rec.get(k) for k in EVAL_KEYS})
    return train, evals


# --------------------------------------------------------------------------- writer --
class RunDir:
    """Writer of one run directory (only rank 0 makes one). Creates the folder and
    train.log; status.json is written on the first `set_status`, checkpoints/ with the
    first checkpoint (a run that fails before training holds only its log and status)."""

    def __init__(self, root, total_steps: int, device: str):
        self.paths = paths(root)
        self.root = self.paths.root
        self.root.mkdir(parents=True, exist_ok=True)
        self.metrics_path, self.status_path = self.paths.metrics, self.paths.status
        self.last_path, self.best_path = self.paths.last, self.paths.best
        now = time.time()
        self.status = {
            "state": "queued", "progress": 0.0, "message": "", "pid": os.getpid(), "epoch": 0, "step": 0,
            "total_steps": int(total_steps), "best_map": None, "device": device, "started_at": now,
            "updated_at": now,
        }
        previous = read_status(self.root)
        if previous and isinstance(previous.get("started_at"), (int, float)):
            self.status["started_at"] = float(previous["started_at"])  # resuming: keep the first start
        self.logger = _file_logger(self.paths.log)

    def set_status(self, **fields) -> None:
        """Merge `fields` (STATUS_FIELDS only) into the status and write it atomically;
        progress is recomputed from step / total_steps."""
        self.status.update(checked_status(fields))
        total = max(1, self.status["total_steps"])
        self.status["progress"] = round(min(1.0, self.status["step"] / total), 4)
        self.status["updated_at"] = time.time()
        write_json_atomic(self.status_path, self.status)

    def write_config(self, config: dict) -> None:
        write_json_atomic(self.paths.config, config)

    def log_metrics(self, record: dict) -> None:
        """Append one record ("kind" "train" with TRAIN_KEYS or "eval" with EVAL_KEYS)."""
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=json_default) + "\n")
            f.flush()

    def log(self, msg: str) -> None:
        self.logger.info(msg)


def _file_logger(path: Path) -> logging.Logger:
    logger = logging.getLogger(f"ssd.train.{path}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S")
    fh = logging.FileHandler(path)
    fh.setFormatter(fmt)
    logger.addHandler(fh)
    sh = logging.StreamHandler()
    sh.setFormatter(fmt)
    logger.addHandler(sh)
    return logger
