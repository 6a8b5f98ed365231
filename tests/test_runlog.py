"""Tests for ssd/training/runlog.py: the run directory's status checks,
its readers (strict and tolerant), and the metrics records."""
import json
import os
import time

from pathlib import Path

import pytest

from ssd.io import write_json_atomic
from ssd.training import runlog
from ssd.training.runlog import (
    RunDir,
    RunDirError,
    read_json,
    read_json_or_none,
    read_metrics,
    read_status,
    split_records,
    update_status,
)

def _dot_files(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_read_json_names_the_file_and_the_problem(tmp_path):
    with pytest.raises(RunDirError, match="none.json: not found"):
        read_json(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"a": ')
    with pytest.raises(RunDirError, match="bad.json: not readable JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="list.json: holds a JSON list"):
        read_json(tmp_path / "list.json")
    assert read_json_or_none(tmp_path / "bad.json") is None and read_json_or_none(tmp_path / "none.json") is None


def test_run_dir_status_is_atomic_and_checked(tmp_path):
    rd = RunDir(tmp_path / "r", total_steps=10, device="cpu")
    assert read_status(tmp_path / "r") is None and sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "train.log"]
    rd.set_status(state="running", step=5)
    st = read_status(tmp_path / "r")
    assert st["progress"] == 0.5 and set(st) == set(runlog.STATUS_FIELDS) and st["pid"] == os.getpid()
    with pytest.raises(ValueError, match="state must be one of"):
        rd.set_status(state="exploded")
    with pytest.raises(KeyError, match="colour"):
        rd.set_status(colour="red")
    assert _dot_files(tmp_path / "r") == []


def test_run_dir_keeps_the_first_start_time_when_resumed(tmp_path):
    first = RunDir(tmp_path / "r", 10, "cpu")
    first.set_status(state="running")
    started = read_status(tmp_path / "r")["started_at"]
    time.sleep(0.01)
    RunDir(tmp_path / "r", 10, "cpu").set_status(state="running")
    assert read_status(tmp_path / "r")["started_at"] == started


def test_update_status_merges_and_checks(tmp_path):
    update_status(tmp_path, state="queued", message="queued", pid=1)
    st = update_status(tmp_path, state="running", message="go")
    assert (st["state"], st["message"], st["pid"]) == ("running", "go", 1)
    assert read_status(tmp_path) == st
    with pytest.raises(ValueError, match="state must be one of"):
        update_status(tmp_path, state="paused")
    with pytest.raises(KeyError, match="unknown status field"):
        update_status(tmp_path, colour="red")


def test_paths_are_the_documented_layout(tmp_path):
    p = runlog.paths(tmp_path)
    assert [x.relative_to(tmp_path).as_posix() for x in (p.config, p.metrics, p.log, p.status, p.last, p.best)] == [
        "config.json", "metrics.jsonl", "train.log", "status.json", "checkpoints/last.pt", "checkpoints/best.pt"]


def test_metrics_records_round_trip_and_split_by_kind(tmp_path):
    rd = RunDir(tmp_path, 2, "cpu")
    rd.log_metrics({"kind": "train", "epoch": 1, "step": 1, "loss": 2.0, "conf": 1.5, "loc": 0.5, "lr": 1e-3,
                    "images_per_s": 3.0, "time": 1.0})
    rd.log_metrics({"kind": "eval", "epoch": 1, "step": 1, "map": 0.2, "ap50": 0.4, "time": 2.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "step": 2, "lo')  # a line being written
    recs = read_metrics(tmp_path)
    assert len(recs) == 2 and recs == read_metrics(tmp_path / "metrics.jsonl")
    train, evals = split_records(recs)
    assert train[0]["loss"] == 2.0 and tuple(train[0]) == runlog.TRAIN_KEYS
    assert evals[0]["map"] == 0.2 and evals[0]["ap75"] is None and tuple(evals[0]) == runlog.EVAL_KEYS
    assert read_metrics(tmp_path / "missing.jsonl") == []
    assert json.loads(json.dumps(train[0])) == train[0]


def test_readers_survive_damaged_files(tmp_path):
    """Issue 14: FIFOs, deep nesting, oversize and truncated files never block or raise."""
    import threading

    from ssd.training.runlog import MAX_JSON_BYTES, RunDirError, read_json, read_json_or_none, read_metrics

    os.mkfifo(tmp_path / "fifo.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (tmp_path / "big.json").write_text('{"a": "' + "x" * MAX_JSON_BYTES + '"}')
    for name, words in (("fifo.json", "not a regular file"), ("deep.json", "not readable JSON"),
                        ("big.json", "over the")):
        out = []
        t = threading.Thread(target=lambda n=name: out.append(read_json_or_none(tmp_path / n)), daemon=True)
        t.start()
        t.join(5)
        assert out == [None], name
        with pytest.raises(RunDirError, match=words):
            read_json(tmp_path / name)
    os.mkfifo(tmp_path / "metrics.jsonl")
    out = []
    t = threading.Thread(target=lambda: out.append(read_metrics(tmp_path / "metrics.jsonl")), daemon=True)
    t.start()
    t.join(5)
    assert out == [[]]
    (tmp_path / "m2.jsonl").write_text('{"kind": "train", "step": 1}\n' + "[" * 100_000 + "\n" + '{"kind": "tr')
    assert read_metrics(tmp_path / "m2.jsonl") == [{"kind": "train", "step": 1}]
