"""Tests for the training-job manager: explorer/jobs/manager.py, spec.py, runner.py,
state.py, metrics.py.

The first part needs no training (names, dataset checks, argv, liveness with real
lock-holding processes). The second part launches real tiny `python -m ssd.train`
runs (procedural data, a few steps) and checks finish / cancel / SIGKILL + resume /
queue order end to end.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from explorer.jobs import manager as jobs
from explorer.jobs.spec import (
    JobError,
    JobSpec,
    check_coco,
    check_voc_root,
    resolve_device,
    sanitize_run_name,
    train_argv,
    validate_spec,
)
from explorer.jobs.metrics import eta_seconds, read_metrics, split_records, tail_log
from explorer.jobs.state import (
    CANCEL_MARK,
    RUN_LOCK,
    is_alive,
    next_seq,
    open_lock,
    pid_alive_since,
    probe_run_lock,
    proc_start_time,
    read_json,
    try_flock,
    write_json_atomic,
)

CPU = {"cuda": False, "gpu_count": 0}


# ---------------------------------------------------------------- names ------------
@pytest.mark.parametrize("raw, clean", [
    ("../evil", "evil"),
    ("../../etc/passwd", "etc-passwd"),
    ("a/b\\c", "a-b-c"),
    ("my run #1", "my-run-1"),
    ("..", "run"),
    ("", "run"),
    ("  .hidden", "hidden"),
    ("x..y", "x.y"),
    ("ok_name-1.2", "ok_name-1.2"),
    ("é-ü", "run"),
])
def test_sanitize_run_name(raw, clean):
    assert sanitize_run_name(raw) == clean


def test_sanitize_run_name_length_and_charset():
    name = sanitize_run_name("a" * 200 + "/..")
    assert len(name) <= 64 and set(name) <= set("a")


def test_run_dirs_get_unique_suffixes(tmp_path):
    made = [jobs._create_run_dir(tmp_path, "exp") for _ in range(3)]
    assert [d.name for d in made] == ["exp", "exp-2", "exp-3"]


# ---------------------------------------------------------------- dataset checks ---
def _write_voc(root: Path, with_image=True, with_object=True, splits=("train", "val")) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split in splits:
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n")
    obj = ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
           "<ymax>5</ymax></bndbox></object>") if with_object else ""
    (root / "Annotations" / "000001.xml").write_text(
        f"<annotation><filename>000001.jpg</filename>{obj}</annotation>")
    if with_image:
        Image.new("RGB", (8, 8)).save(root / "JPEGImages" / "000001.jpg")
    return root


def test_voc_check_accepts_usable_folder(tmp_path):
    assert check_voc_root(str(_write_voc(tmp_path / "voc"))) == "1 train ids"


def test_dataset_checks_accept_what_ssd_data_writes(tmp_path):
    from ssd.data import procedural

    root = procedural.write_voc(tmp_path / "voc", num_images=5, size=64)
    assert check_voc_root(str(root)).endswith("train ids")
    path = procedural.write_coco(tmp_path / "coco.json", tmp_path / "coco", num_images=3, size=64)
    assert check_coco(str(path), str(tmp_path / "coco")).startswith("3 images")


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "no Annotations/"),
    (lambda p: (p / "Annotations").mkdir() or (p / "JPEGImages").mkdir() or p, "no .xml"),
    (lambda p: _write_voc(p / "v", with_image=False), "not in JPEGImages"),
    (lambda p: _write_voc(p / "v", with_object=False), "no <object>"),
    (lambda p: _write_voc(p / "v", splits=("train",)), "val.txt is missing"),
])
def test_voc_check_refuses(tmp_path, make, words):
    with pytest.raises(JobError, match=words):
        check_voc_root(str(make(tmp_path)))


def test_voc_check_refuses_broken_xml(tmp_path):
    root = _write_voc(tmp_path / "v")
    (root / "Annotations" / "000001.xml").write_text("<annotation><filename>")
    with pytest.raises(JobError, match="no usable sample"):
        check_voc_root(str(root))


def test_voc_check_needs_a_path():
    with pytest.raises(JobError, match="give the dataset folder"):
        check_voc_root("  ")


def _write_coco(tmp_path: Path, **overrides) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.jpg")
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8},
                       {"id": 2, "file_name": "b.jpg", "width": 8, "height": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
            "categories": [{"id": 1, "name": "cat"}]}
    data.update(overrides)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_coco_check_accepts_usable_files(tmp_path):
    path, images = _write_coco(tmp_path)
    assert check_coco(str(path), str(images)) == "2 images, 1 annotations"


@pytest.mark.parametrize("overrides, words", [
    ({"images": []}, "'images'"),
    ({"annotations": []}, "'annotations'"),
    ({"categories": "cat"}, "'categories'"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}]}, "at least 2"),
    ({"images": [{"id": 1, "file_name": "x.jpg"}, {"id": 2, "file_name": "a.jpg"}]},
     "none of the annotated images"),
    ({"annotations": [{"id": 1, "image_id": 7}]}, "none of the annotated images"),
])
def test_coco_check_refuses_unusable_content(tmp_path, overrides, words):
    path, images = _write_coco(tmp_path, **overrides)
    with pytest.raises(JobError, match=words):
        check_coco(str(path), str(images))


def test_coco_check_refuses_bad_paths_and_json(tmp_path):
    path, images = _write_coco(tmp_path)
    with pytest.raises(JobError, match="does not exist"):
        check_coco(str(tmp_path / "nope.json"), str(images))
    with pytest.raises(JobError, match="image folder .* does not exist"):
        check_coco(str(path), str(tmp_path / "nope"))
    with pytest.raises(JobError, match="give both"):
        check_coco("", str(images))
    path.write_text("{not json")
    with pytest.raises(JobError, match="not valid JSON"):
        check_coco(str(path), str(images))
    path.write_text("[1, 2]")
    with pytest.raises(JobError, match="JSON object"):
        check_coco(str(path), str(images))


@pytest.mark.parametrize("spec", [
    JobSpec(dataset="voc", data_root="/nonexistent/VOC2007"),
    JobSpec(dataset="coco", coco_json="/nonexistent/instances.json", coco_images="/nonexistent"),
])
def test_launch_refuses_missing_dataset_before_anything_starts(tmp_path, spec):
    runs = tmp_path / "runs"
    with pytest.raises(JobError, match="does not exist"):
        jobs.launch(runs, spec, name="x", devices=CPU)
    assert not runs.exists() or not any(runs.iterdir())  # no run dir, no process


@pytest.mark.parametrize("spec, words", [
    (JobSpec(dataset="imagenet"), "dataset must be one of"),
    (JobSpec(model="yolo"), "model must be one of"),
    (JobSpec(epochs=0), "epochs must be an integer >= 1"),
    (JobSpec(batch_size=-2), "batch_size"),
    (JobSpec(lr=0.0), "learning rate"),
    (JobSpec(train_size=0), "train_size"),
    (JobSpec(max_steps=-1), "max_steps"),
])
def test_validate_spec_refuses_bad_settings(spec, words):
    with pytest.raises(JobError, match=words):
        validate_spec(spec)


def test_resolve_device():
    assert resolve_device("auto", False, 0) == "cpu"
    assert resolve_device("auto", True, 1) == "cuda"
    assert resolve_device("cpu", True, 2) == "cpu"
    assert resolve_device("cuda", True, 2, nproc=2) == "cuda"
    with pytest.raises(JobError, match="no CUDA GPU"):
        resolve_device("cuda", False, 0)
    with pytest.raises(JobError, match="need CUDA GPUs"):
        resolve_device("cpu", True, 2, nproc=2)
    with pytest.raises(JobError, match="only 2 GPU"):
        resolve_device("cuda", True, 2, nproc=4)
    with pytest.raises(JobError, match="device must be one of"):
        resolve_device("tpu", False, 0)


def test_train_argv_is_a_list_with_absolute_paths(tmp_path):
    spec = JobSpec(train_size=16, val_size=8, batch_size=8, max_steps=4, lr=0.01)
    argv = train_argv(spec, tmp_path / "r", "cpu", python="PY")
    assert argv[:3] == ["PY", "-m", "ssd.train"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    assert flags == {"--dataset": "procedural", "--train-size": "16", "--val-size": "8",
                     "--data-seed": "0", "--model": "compact256", "--out": str((tmp_path / "r").resolve()),
                     "--epochs": "10", "--batch-size": "8", "--lr": "0.01", "--device": "cpu",
                     "--seed": "0", "--max-steps": "4"}
    voc = train_argv(JobSpec(dataset="voc", data_root="rel/voc"), tmp_path, "cpu", python="PY")
    assert voc[voc.index("--data-root") + 1] == str(Path("rel/voc").resolve())
    ddp = train_argv(JobSpec(nproc=2), tmp_path, "cuda", python="PY")
    assert ddp[:7] == ["PY", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       "-m", "ssd.train"]


# ---------------------------------------------------------------- run state --------
def test_write_json_atomic_and_read(tmp_path):
    write_json_atomic(tmp_path / "s.json", {"a": 1})
    assert read_json(tmp_path / "s.json") == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"]  # no temp file left behind
    (tmp_path / "bad.json").write_text('{"a": ')
    assert read_json(tmp_path / "bad.json") is None and read_json(tmp_path / "none.json") is None


def test_next_seq_counts_up(tmp_path):
    assert [next_seq(tmp_path) for _ in range(3)] == [1, 2, 3]


def test_proc_start_time_guards_pid_reuse():
    now = time.time()
    start = proc_start_time(os.getpid())
    assert start is not None and now - 86400 * 365 < start <= now + 1
    assert pid_alive_since(os.getpid(), now)  # started before "now": the same process
    # A status written before this process existed cannot be this process's: a reused pid.
    assert not pid_alive_since(os.getpid(), start - 3600)
    assert not pid_alive_since(None, now)


def _fake_run(runs: Path, name: str, state: str, seq: int = 1) -> Path:
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    write_json_atomic(run_dir / "job.json", {"name": name, "device": "cpu", "seq": seq,
                                             "train_argv": ["true"], "attempts": []})
    write_json_atomic(run_dir / "status.json", {"state": state, "progress": 0.5, "step": 2,
                                                "total_steps": 4, "started_at": time.time()})
    return run_dir


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """A real process holding the run lock, as a runner does (fd handed over)."""
    fd = open_lock(run_dir / RUN_LOCK)
    assert try_flock(fd)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                            pass_fds=(fd,), start_new_session=True)
    os.close(fd)
    return proc


def test_dead_run_reads_as_failed_and_stays_failed(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "running")
    info = jobs.read_run(run_dir)
    assert (info.state, info.alive) == ("failed", False)
    assert "died" in info.message
    assert read_json(run_dir / "status.json")["state"] == "failed"  # written back


def test_dead_run_with_cancel_request_reads_as_cancelled(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "queued")
    (run_dir / CANCEL_MARK).write_text("1")
    assert jobs.read_run(run_dir).state == "cancelled"


def test_live_lock_holder_keeps_run_running_until_killed(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "running")
    proc = _hold_lock(run_dir)
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
    run_dir = _fake_run(tmp_path, "done", "finished")
    with pytest.raises(JobError, match="nothing to cancel"):
        jobs.cancel(run_dir)
    with pytest.raises(JobError, match="only cancelled or failed"):
        jobs.resume(run_dir)
    with pytest.raises(JobError, match="not a run name"):
        jobs.delete_run(tmp_path, "../done")
    with pytest.raises(JobError, match="no run named"):
        jobs.delete_run(tmp_path, "other")


def test_list_runs_newest_first_and_skips_non_runs(tmp_path):
    a = _fake_run(tmp_path, "a", "finished")
    b = _fake_run(tmp_path, "b", "finished")
    write_json_atomic(a / "job.json", dict(read_json(a / "job.json"), created_at=1.0))
    write_json_atomic(b / "job.json", dict(read_json(b / "job.json"), created_at=2.0))
    (tmp_path / "not-a-run").mkdir()
    (tmp_path / ".locks").mkdir()
    assert [r.name for r in jobs.list_runs(tmp_path)] == ["b", "a"]
    assert jobs.list_runs(tmp_path / "missing") == []


# ---------------------------------------------------------------- metrics ----------
def test_split_records_accepts_flat_and_nested_spellings():
    log_rows, eval_rows = split_records([
        {"step": 1, "loss": {"total": 3.0, "conf": 2.0, "loc": 1.0}, "time": 0.0},
        {"step": 2, "loss_total": 2.0, "loss_conf": 1.5, "loss_loc": 0.5, "time": 1.0},
        {"step": 2, "map": 0.1, "ap50": 0.3},
        {"step": 3, "eval": {"map": 0.2, "ap50": 0.4}},
        {"unrelated": True},
    ])
    assert [(r["step"], r["loss"], r["conf"], r["loc"]) for r in log_rows] == [(1, 3.0, 2.0, 1.0),
                                                                              (2, 2.0, 1.5, 0.5)]
    assert [(r["step"], r["map"], r["ap50"]) for r in eval_rows] == [(2, 0.1, 0.3), (3, 0.2, 0.4)]


def test_read_metrics_skips_half_written_line_and_tail_log(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "lo')
    log_rows, _ = read_metrics(tmp_path)
    assert [r["step"] for r in log_rows] == [1]
    (tmp_path / "stdout.log").write_text("a\nb\n")
    assert tail_log(tmp_path, 1) == "b"  # no train.log yet: stdout.log
    (tmp_path / "train.log").write_text("\n".join(f"line {i}" for i in range(100)))
    assert tail_log(tmp_path, 2) == "line 98\nline 99"


def test_eta_from_step_rate():
    rows = [{"step": s, "time": 10.0 + 2 * s} for s in range(1, 6)]  # 2 s per step
    assert eta_seconds(rows, {"total_steps": 15, "step": 5}) == pytest.approx(20.0)
    assert eta_seconds(rows[:1], {"total_steps": 15, "step": 1}) is None
    assert eta_seconds(rows, {"step": 5}) is None


# ---------------------------------------------------------------- real runs --------
# Real `python -m ssd.train` processes on tiny procedural data: 8 training scenes,
# batch 4 -> 2 steps per epoch (last.pt is written at each epoch end); evaluation only
# at the end (--eval-every 100) to keep them short on a small shared CPU.
def tiny_spec(**overrides) -> JobSpec:
    base = dict(train_size=8, val_size=4, batch_size=4, epochs=50, max_steps=2, eval_every=100,
                log_every=1, device="cpu")
    base.update(overrides)
    return JobSpec(**base)


def wait_for(run_dir: Path, predicate, timeout: float = 90.0, what: str = "") -> jobs.RunInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = jobs.read_run(run_dir)
        if predicate(info):
            return info
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}: {info}\n"
                                 f"{tail_log(run_dir, 20)}")
        time.sleep(0.3)


def _ended(info):
    return info.state not in ("queued", "running")


@pytest.fixture
def runs(tmp_path):
    runs_dir = tmp_path / "runs"
    yield runs_dir
    # Never leave a training process behind, whatever the test did.
    for info in jobs.list_runs(runs_dir):
        if info.alive:
            pgid = (read_json(info.run_dir / "job.json") or {}).get("attempts", [{}])[-1].get("pid")
            if pgid:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def test_tiny_run_finishes_with_metrics_and_checkpoints(runs):
    # Launched by a separate "server" process that is SIGKILLed right after launching:
    # the run lives in its own session and does not need its launcher.
    server = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from explorer.jobs import manager as jobs, spec as job_spec; "
         f"jobs.launch(sys.argv[1], job_spec.JobSpec(**{tiny_spec().to_dict()!r}), name='../tiny', "
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
    info = wait_for(run_dir, _ended, what="finished")
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
    assert jobs._create_run_dir(runs.resolve(), "tiny").name == "tiny-2"


def test_cancel_running_job_saves_checkpoint(runs):
    run_dir = jobs.launch(runs, tiny_spec(max_steps=200), name="long", devices=CPU)
    wait_for(run_dir, lambda i: (i.step or 0) >= 1, what="first step")
    jobs.cancel(run_dir)
    info = wait_for(run_dir, _ended, what="cancelled")
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
    info = wait_for(run_dir, _ended, what="finished after resume")
    assert info.state == "finished", info.message
    assert info.step == 4
    assert f"resuming at step {step_saved}" in (run_dir / "train.log").read_text()
    job = read_json(run_dir / "job.json")
    assert [a["resume"] for a in job["attempts"]] == [False, True] and job["argv"][-1] == "--resume"


@pytest.mark.slow
def test_queue_runs_one_per_device_in_launch_order(runs):
    first = jobs.launch(runs, tiny_spec(), name="first", devices=CPU)
    second = jobs.launch(runs, tiny_spec(), name="second", devices=CPU)
    third = jobs.launch(runs, tiny_spec(), name="third", devices=CPU)
    wait_for(third, lambda i: "2 run(s) ahead" in i.message or "1 run(s) ahead" in i.message, 20, "queue")
    jobs.cancel(third)  # cancel while queued: the runner ends, training never starts
    assert wait_for(third, _ended, 20, "cancelled").state == "cancelled"
    assert not (third / "train.log").exists()
    assert jobs.read_run(second).state == "queued"  # waits for `first`
    a = wait_for(first, _ended, what="first finished")
    b = wait_for(second, _ended, what="second finished")
    assert (a.state, b.state) == ("finished", "finished"), (a.message, b.message)
    # `second` started training only after `first` had ended.
    assert b.started_at >= a.updated_at
    first_steps = [r["time"] for r in read_metrics(first)[0]]
    second_steps = [r["time"] for r in read_metrics(second)[0]]
    assert max(first_steps) < min(second_steps)


def test_concurrent_probes_do_not_see_each_other_as_the_run(tmp_path):
    run_dir = _fake_run(tmp_path, "r", "finished")
    with probe_run_lock(run_dir) as alive:
        assert not alive
        assert not is_alive(run_dir)  # a second probe meanwhile: still "nobody runs"
        fd = open_lock(run_dir / RUN_LOCK)
        assert not try_flock(fd)  # but a launch (exclusive) waits for the probe
        os.close(fd)
