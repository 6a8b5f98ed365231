"""Tests for explorer/jobs/study.py: a study is one LONG queue entry that runs its variants,
and cancelling it cancels its current training run (which saves last.pt)."""
from __future__ import annotations

import time

import pytest

from explorer.jobs import manager as jobs
from explorer.jobs.kinds import KINDS, LONG
from explorer.jobs.limits import JobError
from explorer.jobs.study import launch_study, list_studies, read_study, study_of
from jobs_helpers import CPU, ended, fake_run, kill_live_runs, wait_for


def test_study_kind_is_long_and_resumable():
    kind = KINDS["study"]
    assert kind.lane == LONG and kind.resumable and kind.module == "explorer.jobs.study"


def test_launch_refuses_unknown_study_or_scale(tmp_path):
    with pytest.raises(JobError, match="unknown study"):
        launch_study(tmp_path, "nope", "smoke", devices=CPU)
    with pytest.raises(JobError, match="unknown scale"):
        launch_study(tmp_path, "zoomout", "huge", devices=CPU)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_smoke_study_runs_as_one_job(smoke_study):
    runs_dir, job_dir = smoke_study  # launched with launch_study, run to its end (conftest)
    study = read_study(job_dir)
    assert study.state == "finished" and not study.alive, study.message
    assert [r.state for r in study.runs] == ["finished", "finished"]
    assert all(r.best_checkpoint is not None for r in study.runs)
    assert [row["variant"] for row in study.results["table"]] == ["full", "no_zoom_out"]
    assert [s.name for s in list_studies(runs_dir)] == [job_dir.name]
    listed = next(r for r in jobs.list_runs(runs_dir) if r.name == job_dir.name)  # the Training page lists it
    assert listed.model == "compact256" and listed.dataset == "procedural (paper lab: zoomout, smoke)"
    assert study_of(job_dir).runs == study.runs  # and shows its variant runs under it


def test_study_of_is_none_for_other_job_folders(tmp_path):
    run_dir = fake_run(tmp_path, "a-training-run", "finished")
    assert study_of(run_dir) is None and study_of(tmp_path / "missing") is None
    (run_dir / "job.json").write_text('{"kind": "study"}')  # a study job without its spec.json
    assert study_of(run_dir) is None


@pytest.mark.slow
def test_cancelling_a_study_cancels_its_current_run(tmp_path):
    try:
        job_dir = launch_study(tmp_path, "mining", "cpu", seeds=1, devices=CPU)  # cpu scale: minutes per run
        first = job_dir / "runs" / "full-s0"
        deadline = time.monotonic() + 120
        while read_study(job_dir).runs[0].state != "running":
            assert time.monotonic() < deadline, jobs.tail_log(job_dir, 20)
            time.sleep(0.3)
        jobs.cancel(job_dir)
        info = wait_for(job_dir, lambda i: ended(i) and not i.alive, timeout=120, what="the study to stop")
        assert info.state == "cancelled"
        study = read_study(job_dir)
        assert study.runs[0].state == "cancelled" and (first / "checkpoints" / "last.pt").is_file()
        assert [r.state for r in study.runs[1:]] == ["pending"] * 3
    finally:
        kill_live_runs(tmp_path)
