"""Reading what a training run logs: metrics.jsonl rows, the tail of train.log, ETA.

`ssd.train` appends one JSON object per line to `RUN/metrics.jsonl`: per log step
epoch, step, the loss (total / conf / loc), lr, images_per_s, time; per evaluation
map and ap50. `read_metrics` splits them into flat log rows and eval rows with fixed
keys, whatever nesting the trainer used (`"loss": {"total": ..}` or `"loss_total"`).
No streamlit import.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
LOG_KEYS = ("epoch", "step", "loss", "conf", "loc", "lr", "images_per_s", "time")
EVAL_KEYS = ("epoch", "step", "map", "ap50", "time")


def _num(value):
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _loss_parts(rec: dict) -> tuple:
    """(total, conf, loc) from one record, accepting the usual spellings."""
    loss = rec.get("loss")
    if isinstance(loss, dict):
        return (_num(loss.get("total")), _num(loss.get("conf", loss.get("cls"))),
                _num(loss.get("loc", loss.get("box"))))
    total = _num(loss) if loss is not None else _num(rec.get("loss_total", rec.get("total")))
    conf = _num(rec.get("loss_conf", rec.get("conf", rec.get("loss_cls"))))
    loc = _num(rec.get("loss_loc", rec.get("loc", rec.get("loss_box"))))
    return total, conf, loc


def split_records(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split raw metrics records into (log_rows, eval_rows) with keys LOG_KEYS /
    EVAL_KEYS (missing values None). A record may be both (e.g. last step + eval)."""
    log_rows, eval_rows = [], []
    for rec in records:
        total, conf, loc = _loss_parts(rec)
        if total is not None or conf is not None:
            log_rows.append({
                "epoch": rec.get("epoch"), "step": rec.get("step"), "loss": total, "conf": conf,
                "loc": loc, "lr": _num(rec.get("lr")),
                "images_per_s": _num(rec.get("images_per_s")), "time": _num(rec.get("time")),
            })
        ev = rec.get("eval") if isinstance(rec.get("eval"), dict) else rec
        m = _num(ev.get("map", ev.get("mAP")))
        if m is not None:
            eval_rows.append({
                "epoch": rec.get("epoch"), "step": rec.get("step"), "map": m,
                "ap50": _num(ev.get("ap50", ev.get("map50"))), "time": _num(rec.get("time")),
            })
    return log_rows, eval_rows


def _parse_lines(lines) -> list[dict]:
    records = []
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a line being written right now, or a crash mid-line
        if isinstance(rec, dict):
            records.append(rec)
    return records


def read_metrics(run_dir: Path) -> tuple[list[dict], list[dict]]:
    """All of RUN/metrics.jsonl as (log_rows, eval_rows); empty lists when absent."""
    try:
        with open(Path(run_dir) / METRICS_FILE, encoding="utf-8", errors="replace") as f:
            return split_records(_parse_lines(f))
    except OSError:
        return [], []


def _tail_text(path: Path, max_bytes: int) -> str:
    try:
        with open(path, "rb") as f:
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
    log_rows, _ = split_records(_parse_lines(_tail_text(Path(run_dir) / METRICS_FILE, max_bytes).splitlines()))
    return log_rows


def tail_log(run_dir: Path, n: int = 30) -> str:
    """The last `n` lines of RUN/train.log (or of stdout.log when there is no
    train.log yet: import errors, the queue's messages)."""
    run_dir = Path(run_dir)
    path = run_dir / LOG_FILE if (run_dir / LOG_FILE).is_file() else run_dir / "stdout.log"
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
