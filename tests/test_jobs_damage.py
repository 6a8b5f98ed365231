"""Tests for explorer/jobs/damage.py and the damaged-run paths of explorer/jobs/runs.py:
run folders someone else broke (truncated or type-corrupted status.json / job.json /
metrics.jsonl, a FIFO planted in the folder, a folder made read-only mid-run, a
diverged run that says finished, a damaged last.pt on resume) never raise, never hide
the other runs, and are flagged."""
import json
import os
import subprocess
import threading
import zipfile
from pathlib import Path

import pytest

from explorer.jobs import manager as jobs
from explorer.jobs.damage import checkpoint_problem, checkpoint_problem_deep, clean_job, clean_status, diverged
from explorer.jobs.metrics import read_metrics, tail_log, tail_metrics
from jobs_helpers import fake_run
from ssd.io import write_json_atomic
from ssd.training.runlog import read_status


def _finished(runs: Path, name: str) -> Path:
    run_dir = fake_run(runs, name, "finished")
    write_json_atomic(run_dir / "status.json", {"state": "finished", "progress": 1.0, "message": "finished"})
    return run_dir


def _within(seconds: float, fn, *args):
    """fn(*args) in a thread; AssertionError if it does not return in `seconds` (a hang)."""
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", fn(*args)), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked for more than {seconds} s"
    return out["v"]


def test_truncated_status_of_a_finished_run_is_damaged_not_failed(tmp_path):
    run_dir = _finished(tmp_path, "cut")
    (run_dir / "status.json").write_text('{"state": "finished", "progr')
    before = (run_dir / "status.json").read_bytes()
    info = jobs.read_run(run_dir)
    assert info.state == jobs.DAMAGED and "status.json" in info.damage
    assert (run_dir / "status.json").read_bytes() == before  # never rewritten as failed
    with pytest.raises(jobs.JobError, match="unreadable"):
        jobs.resume(run_dir)
    assert (run_dir / "status.json").read_bytes() == before


def test_type_corrupted_files_are_flagged_and_the_other_runs_still_listed(tmp_path):
    good = _finished(tmp_path, "good")
    bad = fake_run(tmp_path, "bad", "finished")
    write_json_atomic(bad / "status.json", {"state": 5, "progress": "x", "step": "a", "best_map": float("nan")})
    odd = fake_run(tmp_path, "odd", "finished")
    write_json_atomic(odd / "job.json", {"seq": "abc", "attempts": "x", "created_at": [1], "spec": 3})
    write_json_atomic(odd / "status.json", {"state": "finished", "epoch": {"a": 1}})
    (tmp_path / "listy").mkdir()
    (tmp_path / "listy" / "status.json").write_text("[1, 2]")
    deep = fake_run(tmp_path, "deep", "finished")
    (deep / "status.json").write_text("[" * 100_000 + "]" * 100_000)
    runs = {r.name: r for r in jobs.list_runs(tmp_path)}
    assert set(runs) == {"good", "bad", "odd", "listy", "deep"}
    assert runs["good"].state == "finished" and not runs["good"].damage
    assert "'state'" in runs["bad"].damage and "'progress'" in runs["bad"].damage
    assert runs["bad"].state == jobs.DAMAGED and runs["bad"].progress == 0.0
    assert "'seq'" in runs["odd"].damage and "'attempts'" in runs["odd"].damage
    assert runs["odd"].state == "finished" and runs["odd"].epoch is None
    assert runs["listy"].state == jobs.DAMAGED and runs["deep"].state == jobs.DAMAGED
    for info in runs.values():
        info.row()  # the table row builds for every one
    with pytest.raises(jobs.JobError, match="nothing to cancel"):
        jobs.cancel(odd)


def test_clean_status_and_job_keep_only_well_typed_fields():
    status, problems = clean_status({"state": "running", "progress": True, "step": 3, "pid": "1", "x": 1})
    assert status == {"state": "running", "step": 3} and len(problems) == 2
    job, problems = clean_job({"seq": 4, "device": "tpu", "attempts": [{"pid": 1}, 2], "train_argv": ["a"]})
    assert job == {"seq": 4, "train_argv": ["a"]} and len(problems) == 2


def test_truncated_metrics_line_is_skipped(tmp_path):
    run_dir = _finished(tmp_path, "m")
    rows = [{"kind": "train", "step": i, "loss": 5.0 - i, "time": float(i)} for i in range(3)]
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"kind": "train", "step": 3, "lo'
    (run_dir / "metrics.jsonl").write_text(text)
    log_rows, _ = read_metrics(run_dir)
    assert [r["step"] for r in log_rows] == [0, 1, 2]
    assert [r["step"] for r in tail_metrics(run_dir)] == [0, 1, 2]


def test_fifos_planted_in_a_run_folder_never_block_the_page(tmp_path):
    run_dir = _finished(tmp_path, "fifo")
    for name in ("status.json", "metrics.jsonl", "train.log", "job.json"):
        (run_dir / name).unlink(missing_ok=True)
        os.mkfifo(run_dir / name)
    info = _within(5, jobs.read_run, run_dir)
    assert info.state == jobs.DAMAGED and "not a regular file" in info.damage
    assert _within(5, read_metrics, run_dir) == ([], [])
    assert _within(5, tail_log, run_dir) == ""
    assert [r.name for r in _within(5, jobs.list_runs, tmp_path)] == ["fifo"]


def _make_read_only(folder: Path) -> None:
    """Make `folder` refuse new files even to root: `chattr +i` (immutable), else chmod."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root without chattr +i: cannot make a folder read-only here")
    else:
        os.chmod(folder, 0o555)


def _make_writable(folder: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    os.chmod(folder, 0o755)


def test_read_only_run_folder_mid_run_is_shown_not_raised(tmp_path):
    """A run whose process died while its folder is read-only: the page shows it as
    failed (in memory) with the damage, lists the other runs, and a control on it
    answers with a clear refusal."""
    ro = fake_run(tmp_path, "ro", "running")
    _finished(tmp_path, "ok")
    _make_read_only(ro)
    try:
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")  # really read-only
        runs = {r.name: r for r in jobs.list_runs(tmp_path)}
        assert runs["ok"].state == "finished" and not runs["ok"].damage
        assert runs["ro"].state == "failed" and "not writable" in runs["ro"].damage
        assert read_status(ro)["state"] == "running"  # shown, not written
        with pytest.raises(jobs.JobError, match="cannot|not writable"):
            jobs.resume(ro)
        with pytest.raises(jobs.JobError):
            jobs.delete_run(tmp_path, "ro")
    finally:
        _make_writable(ro)


def _with_losses(runs: Path, name: str, losses: list[float]) -> Path:
    run_dir = _finished(runs, name)
    (run_dir / "metrics.jsonl").write_text("".join(
        json.dumps({"kind": "train", "step": i + 1, "loss": v, "time": float(i)}) + "\n" for i, v in enumerate(losses)))
    return run_dir


def test_a_diverged_run_is_not_reported_finished(tmp_path):
    # The losses of a real `python -m ssd.train --lr 10` run on 16 procedural scenes, which
    # its trainer ends as "finished" (finite, clipped gradients).
    lr10 = [29.2128, 458.6212, 545.8724, 329.6398, 163.4225, 245.2802, 187.1829, 214.2419, 234.9672,
            327.2711, 191.2993]
    info = jobs.read_run(_with_losses(tmp_path, "lr10", lr10))
    assert info.state == "failed" and info.message.startswith("diverged")
    healthy = jobs.read_run(_with_losses(tmp_path, "ok", [29.0, 20.0, 15.0, 12.0, 11.0, 10.5]))
    assert healthy.state == "finished"
    assert diverged([{"loss": 1.0}, {"loss": float("nan")}], 1.0).startswith("the last logged loss")


def test_resume_with_a_damaged_last_checkpoint_gives_advice(tmp_path):
    run_dir = fake_run(tmp_path, "r", "cancelled")
    write_json_atomic(run_dir / "status.json", {"state": "cancelled"})
    (run_dir / "checkpoints").mkdir()
    last = run_dir / "checkpoints" / "last.pt"
    with zipfile.ZipFile(last, "w") as zf:
        zf.writestr("archive/data.pkl", b"x" * 1000)
    data = bytearray(last.read_bytes())
    data[60] ^= 0xFF  # one flipped byte inside the member: the CRC catches it
    last.write_bytes(bytes(data))
    assert checkpoint_problem(last) is None and "checksum" in checkpoint_problem_deep(last)
    with pytest.raises(jobs.JobError, match="last.pt is damaged.*delete that file"):
        jobs.resume(run_dir)
    last.write_bytes(data[:200])  # cut short
    assert "truncated" in checkpoint_problem(last)
    with pytest.raises(jobs.JobError, match="last.pt is damaged"):
        jobs.resume(run_dir)
    assert len(json.loads((run_dir / "job.json").read_text())["attempts"]) == 0  # nothing launched
