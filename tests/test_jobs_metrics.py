"""Tests for explorer/jobs/metrics.py: rows of a run's metrics.jsonl as ssd.train writes
them (read while it writes), the tail of its log, and the ETA."""
import json

import pytest

from explorer.jobs.metrics import LOG_KEYS, eta_seconds, read_metrics, tail_log, tail_metrics
from ssd.training.runlog import EVAL_KEYS, RunDir


def _records():
    train = [{"kind": "train", "epoch": 1, "step": s, "loss": 3.0 / s, "conf": 2.0 / s, "loc": 1.0 / s,
              "lr": 1e-3, "images_per_s": 10.0, "time": 100.0 + s} for s in (1, 2, 3)]
    evals = [{"kind": "eval", "epoch": 1, "step": 3, "map": 0.1, "ap50": 0.3, "ap75": 0.05,
              "voc07_map": 0.2, "time": 104.0}]
    return train + evals


def test_read_metrics_of_what_the_trainer_writes(tmp_path):
    run = RunDir(tmp_path / "run", 3, "cpu")  # the trainer's own writer
    for rec in _records():
        run.log_metrics(rec)
    log_rows, eval_rows = read_metrics(tmp_path / "run")
    assert [tuple(r) for r in log_rows] == [LOG_KEYS] * 3
    assert [(r["step"], r["loss"]) for r in log_rows] == [(1, 3.0), (2, 1.5), (3, 1.0)]
    assert [tuple(r) for r in eval_rows] == [EVAL_KEYS] and eval_rows[0]["map"] == 0.1
    assert [r["step"] for r in tail_metrics(tmp_path / "run")] == [1, 2, 3]


def test_read_metrics_skips_half_written_line_and_unknown_kinds(tmp_path):
    lines = [json.dumps(r) for r in _records()[:1]] + ['{"kind": "other", "step": 9}', '{"kind": "train", "st']
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines))
    log_rows, eval_rows = read_metrics(tmp_path)
    assert [r["step"] for r in log_rows] == [1] and eval_rows == []
    assert read_metrics(tmp_path / "missing") == ([], [])


def test_tail_metrics_reads_only_the_end(tmp_path):
    recs = [dict(_records()[0], step=s) for s in range(1, 2001)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    tail = tail_metrics(tmp_path, max_bytes=2000)
    assert 0 < len(tail) < 20 and tail[-1]["step"] == 2000  # the cut first line is dropped


def test_tail_log(tmp_path):
    assert tail_log(tmp_path) == ""
    (tmp_path / "stdout.log").write_text("a\nb\n")
    assert tail_log(tmp_path, 1) == "b"  # no train.log yet: stdout.log
    (tmp_path / "train.log").write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail_log(tmp_path, 2) == "line 98\nline 99"


def test_eta_from_step_rate():
    rows = [{"step": s, "time": 10.0 + 2 * s} for s in range(1, 6)]  # 2 s per step
    assert eta_seconds(rows, {"total_steps": 15, "step": 5}) == pytest.approx(20.0)
    assert eta_seconds(rows[:1], {"total_steps": 15, "step": 1}) is None
    assert eta_seconds(rows, {"step": 5}) is None


def test_a_bad_record_is_skipped_counted_and_never_reaches_the_figure(tmp_path):
    """Issue 20.6: one record with `"loss": [1]` raised a TypeError in the loss figure on
    every refresh; it is skipped when read, and counted."""
    from explorer.jobs.metrics import read_metrics_checked
    from explorer.views.training import loss_figure

    recs = _records()
    recs[1] = dict(recs[1], loss=[1])
    recs[3] = dict(recs[3], map="0.1")
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    got = read_metrics_checked(tmp_path)
    assert [r["step"] for r in got.log_rows] == [1, 3] and got.eval_rows == [] and got.skipped == 2
    log_rows, _ = read_metrics(tmp_path)
    loss_figure(log_rows)  # raised TypeError: '>' not supported between 'list' and 'int'
    assert [r["step"] for r in tail_metrics(tmp_path)] == [1, 3]
