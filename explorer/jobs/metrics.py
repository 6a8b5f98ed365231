"""Reading what a training run logs, for the page: metrics rows, the tail of its log, ETA.

The records and their keys are `ssd.training.runlog`'s (`TRAIN_KEYS`, `EVAL_KEYS`, by
"kind"); this module only reads them cheaply while the run writes. No streamlit import.
"""
from __future__ import annotations

import os
from pathlib import Path

from explorer.jobs.state import STDOUT_FILE
from ssd.training import runlog
from ssd.training.runlog import EVAL_KEYS, TRAIN_KEYS, split_records

LOG_KEYS = TRAIN_KEYS  # the keys of a log row (re-exported for the figure builders)
__all__ = ["LOG_KEYS", "EVAL_KEYS", "split_records", "read_metrics", "tail_metrics", "tail_log",
           "tail_log_file", "eta_seconds"]


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """All of RUN/metrics.jsonl as (log rows, eval rows); empty lists when absent."""
    return split_records(runlog.read_metrics(runlog.paths(run_dir).metrics))


def _tail_text(path: Path, max_bytes: int) -> str:
    try:
        with runlog.open_regular(path) as f:  # a FIFO planted here never blocks the page
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(size - max_bytes, 0))
            data = f.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > max_bytes:
        text = text.split("\n", 1)[-1]  # drop the partial first line
    return text


def tail_log_file(path: Path, max_bytes: int = 4096) -> str:
    """The last `max_bytes` of a text file, from a line start ("" when missing)."""
    return _tail_text(Path(path), max_bytes)


def tail_metrics(run_dir: Path, max_bytes: int = 16_384) -> list[dict]:
    """The last log rows of metrics.jsonl, reading only its last `max_bytes`
    (cheap enough to call for every run on every refresh)."""
    text = _tail_text(runlog.paths(run_dir).metrics, max_bytes)
    return split_records(runlog.parse_records(text.splitlines()))[0]


def tail_log(run_dir: Path, n: int = 30) -> str:
    """The last `n` lines of RUN/train.log (or of stdout.log when there is no
    train.log yet: import errors, the queue's messages)."""
    log = runlog.paths(run_dir).log
    path = log if log.is_file() else Path(run_dir) / STDOUT_FILE
    lines = _tail_text(path, 64_000).splitlines()
    return "\n".join(lines[-n:])


def eta_seconds(log_rows: list[dict], status: dict, window: int = 10) -> float | None:
    """Seconds left, from the step rate over the last `window` log rows and
    status total_steps/step; None when it cannot be estimated yet."""
    total, step = status.get("total_steps"), status.get("step")
    rows = [r for r in log_rows if r.get("time") is not None and r.get("step") is not None][-window:]
    if not total or step is None or len(rows) < 2:
        return None
    dt = rows[-1]["time"] - rows[0]["time"]
    dsteps = rows[-1]["step"] - rows[0]["step"]
    if dt <= 0 or dsteps <= 0:
        return None
    return max(float(total) - float(step), 0.0) * dt / dsteps
