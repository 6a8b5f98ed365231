"""Reading what a job logs, for the page: a training run's metrics rows (validated), the
tail of any job's log, the ETA.

The records and their keys are `ssd.runlog`'s (`TRAIN_KEYS`, `EVAL_KEYS`, by
"kind"); this module reads them cheaply while the run writes, and keeps only rows whose
values are numbers (or missing): a record someone edited (`"loss": [1]`) is skipped and
counted, never handed to a figure. No streamlit import.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from ssd.data.paths import open_nonblocking
from ssd.training import runlog
from ssd.training.runlog import EVAL_KEYS, STDOUT_FILE, TRAIN_KEYS, split_records

LOG_KEYS = TRAIN_KEYS  # the keys of a log row (re-exported for the figure builders)
__all__ = ["LOG_KEYS", "EVAL_KEYS", "split_records", "read_metrics", "read_metrics_checked", "valid_row",
           "tail_metrics", "tail_log", "tail_log_file", "eta_seconds", "Metrics"]


class Metrics(NamedTuple):
    """A run's metrics as read: the usable rows and how many records were skipped."""

    log_rows: list  # train rows, keys LOG_KEYS
    eval_rows: list  # eval rows, keys EVAL_KEYS
    skipped: int  # records of a known kind whose values are not numbers (edited or damaged)


def valid_row(row: dict) -> bool:
    """True when every value of a metrics row is a number (int or float, not bool; NaN
    and inf allowed: a diverged loss is a real value) or None (a key the record lacks)."""
    return all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in row.values())


def _checked(records: list[dict]) -> Metrics:
    log_rows, eval_rows = split_records(records)
    good_log, good_eval = [r for r in log_rows if valid_row(r)], [r for r in eval_rows if valid_row(r)]
    return Metrics(good_log, good_eval, len(log_rows) + len(eval_rows) - len(good_log) - len(good_eval))


def read_metrics_checked(run_dir: Path) -> Metrics:
    """All of RUN/metrics.jsonl as `Metrics` (bad records skipped and counted)."""
    return _checked(runlog.read_metrics(runlog.paths(run_dir).metrics))


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """All of RUN/metrics.jsonl as (log rows, eval rows); empty lists when absent. Rows
    whose values are not numbers are left out (`read_metrics_checked` counts them)."""
    return read_metrics_checked(run_dir)[:2]


def _tail_text(path: Path, max_bytes: int) -> str:
    try:
        with open_nonblocking(path) as f:  # a FIFO planted here never blocks the page
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
    return _checked(runlog.parse_records(text.splitlines())).log_rows


def tail_log(run_dir: Path, n: int = 30) -> str:
    """The last `n` lines of RUN/train.log (or of stdout.log when there is no train.log:
    import errors, the queue's messages, every job kind other than training)."""
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
