"""The files of a training run directory, written so another process can read them
at any moment (the app's job manager polls them):

    RUN_DIR/config.json    every argument + the resolved model config (enough to reproduce)
    RUN_DIR/metrics.jsonl  one JSON object per log step or evaluation, appended
    RUN_DIR/train.log      human-readable log
    RUN_DIR/status.json    {"state", "progress", "message", "pid", "epoch", "step",
                            "total_steps", "best_map", "device", "started_at", "updated_at"}
    RUN_DIR/checkpoints/last.pt, best.pt

JSON files are replaced atomically (temp file in the same folder + os.replace), so a
reader sees either the old or the new file, never half of one.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

STATES = ("queued", "running", "finished", "failed", "cancelled")


def write_json_atomic(path, obj) -> None:
    """Write `obj` as JSON to `path` via a temp file + os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=_json_default)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


class RunDir:
    """Writer for one run directory (only rank 0 makes one)."""

    def __init__(self, root, total_steps: int, device: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "checkpoints").mkdir(exist_ok=True)
        self.metrics_path = self.root / "metrics.jsonl"
        self.status_path = self.root / "status.json"
        self.last_path = self.root / "checkpoints" / "last.pt"
        self.best_path = self.root / "checkpoints" / "best.pt"
        self.status = {
            "state": "queued",
            "progress": 0.0,
            "message": "",
            "pid": os.getpid(),
            "epoch": 0,
            "step": 0,
            "total_steps": int(total_steps),
            "best_map": None,
            "device": device,
            "started_at": time.time(),
            "updated_at": time.time(),
        }
        if self.status_path.exists():  # resuming: keep the first start time
            try:
                self.status["started_at"] = float(read_json(self.status_path).get("started_at", time.time()))
            except (ValueError, OSError):
                pass
        self.logger = _file_logger(self.root / "train.log")

    def set_status(self, **fields) -> None:
        unknown = set(fields) - set(self.status)
        if unknown:
            raise KeyError(f"unknown status field(s) {sorted(unknown)}")
        if "state" in fields and fields["state"] not in STATES:
            raise ValueError(f"state must be one of {STATES}, got {fields['state']!r}")
        self.status.update(fields)
        total = max(1, self.status["total_steps"])
        self.status["progress"] = round(min(1.0, self.status["step"] / total), 4)
        self.status["updated_at"] = time.time()
        write_json_atomic(self.status_path, self.status)

    def log_metrics(self, record: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(record, default=_json_default) + "\n")
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


def read_metrics(path) -> list[dict]:
    """All records of a metrics.jsonl (a half-written last line is ignored)."""
    out = []
    p = Path(path)
    if not p.exists():
        return out
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
