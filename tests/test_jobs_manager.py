"""Tests for explorer/jobs/manager.py: run directories, liveness (real lock-holding
processes), controls, and real tiny `python -m ssd.train` runs launched through it:
finish, cancel, SIGKILL + resume, and a run whose dataset image does not decode
ending `failed` with the reason."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from explorer.jobs import manager as jobs
from explorer.jobs.metrics import read_metrics, tail_log
from explorer.jobs.spec import JobError, JobSpec
from explorer.jobs.state import is_alive
from jobs_helpers import CPU, ended, fake_run, hold_lock, kill_live_runs, tiny_spec, wait_for
from ssd.training.runlog import CANCEL_MARK, read_json_or_none as read_json, read_status
from ssd.io import write_json_atomic


@pytest.fixture
def runs(tmp_path):
    runs_dir = tmp_path / "runs"
    yield runs_dir
    kill_live_runs(runs_dir)


def test_run_dirs_get_unique_suffixes(tmp_path):
    made = [jobs.create_job_dir(tmp_path, "exp") for _ in range(3)]
    assert [d.name for d in made] == ["exp", "exp-2", "exp-3"]


@pytest.mark.parametrize("spec", [
    JobSpec.of(dataset="voc", data_root="/nonexistent/VOC2007"),
    JobSpec.of(dataset="coco", coco_json="/nonexistent/instances.json", coco_images="/nonexistent"),
])
def test_launch_refuses_missing_dataset_before_anything_starts(tmp_path, spec):
    runs = tmp_path / "runs"
    with pytest.raises(JobError, match="does not exist"):
        jobs.launch(runs, spec, name="x", devices=CPU, data_roots=(Path("/"),))
    assert not runs.exists() or not any(runs.iterdir())  # no run dir, no process


def test_dead_run_reads_as_failed_and_stays_failed(tmp_path):
    run_dir = fake_run(tmp_path, "r", "running")
    info = jobs.read_run(run_dir)
    assert (info.state, info.alive) == ("failed", False)
    assert "died" in info.message
    assert read_json(run_dir / "status.json")["state"] == "failed"  # written back


def test_dead_run_with_cancel_request_reads_as_cancelled(tmp_path):
    run_dir = fake_run(tmp_path, "r", "queued")
    (run_dir / CANCEL_MARK).write_text("1")
    assert jobs.read_run(run_dir).state == "cancelled"


def test_live_lock_holder_keeps_run_running_until_killed(tmp_path):
    run_dir = fake_run(tmp_path, "r", "running")
    proc = hold_lock(run_dir)
    try:
        info = jobs.read_run(run_dir)
        assert (info.state, info.alive) == ("running", True)
        with pytest.raises(JobError, match="still running"):
            jobs.delete_run(tmp_path, "r")
        with pytest.raises(JobError, match="only cancelled or failed"):
            jobs.resume(run_dir)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not is_alive(run_dir)
    assert jobs.read_run(run_dir).state == "failed"
    jobs.delete_run(tmp_path, "r")
    assert not run_dir.exists()


def test_controls_refuse_bad_targets(tmp_path):
    run_dir = fake_run(tmp_path, "done", "finished")
    with pytest.raises(JobError, match="nothing to cancel"):
        jobs.cancel(run_dir)
    with pytest.raises(JobError, match="only cancelled or failed"):
        jobs.resume(run_dir)
    with pytest.raises(JobError, match="not a run name"):
        jobs.delete_run(tmp_path, "../done")
    with pytest.raises(JobError, match="no run named"):
        jobs.delete_run(tmp_path, "other")


def test_list_runs_newest_first_and_skips_non_runs(tmp_path):
    a = fake_run(tmp_path, "a", "finished")
    b = fake_run(tmp_path, "b", "finished")
    write_json_atomic(a / "job.json", dict(read_json(a / "job.json"), created_at=1.0))
    write_json_atomic(b / "job.json", dict(read_json(b / "job.json"), created_at=2.0))
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / ".locks").mkdir()
    assert [r.name for r in jobs.list_runs(tmp_path)] == ["b", "a"]
    assert jobs.list_runs(tmp_path / "missing") == []


def test_tiny_run_finishes_with_metrics_and_checkpoints(runs):
    # Launched by a separate "server" process that is SIGKILLed right after launching:
    # the run lives in its own session and does not need its launcher.
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from explorer.jobs import manager as jobs, spec as job_spec; "
         f"jobs.launch(sys.argv[1], job_spec.JobSpec.from_dict({tiny_spec().to_dict()!r}), name='../tiny', "
         "devices={'cuda': False, 'gpu_count': 0}); print('launched', flush=True); time.sleep(60)",
         str(runs)],
        cwd=jobs.PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    assert server.stdout.readline().strip() == "launched"
    server.kill()
    server.wait()
    run_dir = (runs / "tiny").resolve()  # "../" sanitised away: inside the runs dir
    assert run_dir.is_dir() and len(list(runs.iterdir())) == 2  # the run + .locks
    job = read_json(run_dir / "job.json")
    assert job["argv"][1:3] == ["-m", "ssd.train"] and job["device"] == "cpu" and job["seq"] == 1
    info = wait_for(run_dir, ended, what="finished")
    assert info.state == "finished", info.message
    assert (info.step, info.total_steps, info.progress) == (2, 2, 1.0)
    assert info.has_last and info.has_best and info.best_map is not None
    log_rows, eval_rows = read_metrics(run_dir)
    assert [r["step"] for r in log_rows] == [1, 2]
    assert all(r["loss"] > 0 and r["conf"] > 0 and r["loc"] >= 0 for r in log_rows)
    assert len(eval_rows) == 1 and 0.0 <= eval_rows[0]["map"] <= 1.0
    assert "finished" in tail_log(run_dir, 5)
    wait_for(run_dir, lambda i: not i.alive, 20, "process exit")
    # A second launch with the same name gets its own directory.
    assert jobs.create_job_dir(runs.resolve(), "tiny").name == "tiny-2"


def test_cancel_running_job_saves_checkpoint(runs):
    run_dir = jobs.launch(runs, tiny_spec(max_steps=200), name="long", devices=CPU)
    wait_for(run_dir, lambda i: (i.step or 0) >= 1, what="first step")
    jobs.cancel(run_dir)
    info = wait_for(run_dir, ended, what="cancelled")
    assert info.state == "cancelled", info.message
    assert "SIGTERM" in info.message and info.has_last
    import torch

    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == info.step >= 1
    wait_for(run_dir, lambda i: not i.alive, 20, "process exit")
    with pytest.raises(JobError, match="nothing to cancel"):
        jobs.cancel(run_dir)


@pytest.mark.slow
def test_sigkill_shows_failed_then_resume_finishes(runs):
    run_dir = jobs.launch(runs, tiny_spec(max_steps=4), name="killed", devices=CPU)
    # last.pt is written at the end of epoch 1 (step 2): kill after that.
    wait_for(run_dir, lambda i: i.has_last and (i.step or 0) >= 2, what="epoch-1 checkpoint")
    pgid = read_json(run_dir / "job.json")["attempts"][-1]["pid"]
    os.killpg(pgid, signal.SIGKILL)  # no chance to say anything
    info = wait_for(run_dir, lambda i: i.state != "running", 20, "failed")
    assert info.state == "failed" and "died without reporting" in info.message
    assert read_json(run_dir / "status.json")["state"] == "failed"
    import torch

    step_saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"]
    assert step_saved >= 2
    jobs.resume(run_dir)
    info = wait_for(run_dir, ended, what="finished after resume")
    assert info.state == "finished", info.message
    assert info.step == 4
    assert f"resuming at step {step_saved}" in (run_dir / "train.log").read_text()
    job = read_json(run_dir / "job.json")
    assert [a["resume"] for a in job["attempts"]] == [False, True] and job["argv"][-1] == "--resume"


def test_run_with_undecodable_image_shows_failed_with_the_reason(runs, tmp_path, voc_with_truncated_jpeg):
    voc = voc_with_truncated_jpeg
    spec = tiny_spec(dataset="voc", data_root=str(voc), classes="voc", train_size=2000, val_size=200)
    run_dir = jobs.launch(runs, spec, name="truncated", devices=CPU, data_roots=(tmp_path,))
    info = wait_for(run_dir, ended, what="failed")
    assert info.state == "failed", info.message
    assert "000001.jpg" in info.message and "unreadable image" in info.message
    assert "died without reporting" not in info.message  # the trainer's own reason, not the guess
    assert read_status(run_dir)["state"] == "failed"
    assert "failed: dataset error" in (run_dir / "train.log").read_text()
    assert info.row()["message"] == info.message  # the runs table shows it


def test_run_started_by_hand_is_alive_only_while_its_status_is_live(tmp_path):
    """No job.json: liveness comes from status.json's pid (this process here)."""
    run_dir = tmp_path / "by-hand"
    run_dir.mkdir()
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": os.getpid(), "started_at": time.time()})
    assert (jobs.read_run(run_dir).state, jobs.read_run(run_dir).alive) == ("running", True)
    write_json_atomic(run_dir / "status.json", {"state": "failed", "message": "dataset error: x.jpg",
                                                "pid": os.getpid(), "started_at": time.time()})
    info = jobs.read_run(run_dir)
    assert (info.state, info.alive, info.message) == ("failed", False, "dataset error: x.jpg")
    write_json_atomic(run_dir / "status.json", {"state": "running", "pid": 2**22 + 12345, "started_at": 1.0})
    info = jobs.read_run(run_dir)
    assert (info.state, info.alive) == ("failed", False) and "gone" in info.message
