"""explorer/evaluation/jobs.py + spec.py + runner.py: real detached evaluations (finish,
cache hit, cancel, failure with its reason, dead process), the cache key, and a clear
message for each kind of bad input."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch

from explorer.evaluation import jobs
from explorer.evaluation.spec import DatasetSpec, EvalInputError, EvalSpec, eval_key, load_checked
from ssd.training import checkpoint
from ssd.training.runlog import SPEC_FILE, STATUS_FILE, update_status
from ssd.models import build
from tests.eval_helpers import SHIPPED


def _wait(d, states=("finished", "failed", "cancelled"), timeout=180):
    t0 = time.time()
    while time.time() - t0 < timeout:
        info = jobs.read_eval(d)
        if info.state in states:
            return info
        time.sleep(0.3)
    raise AssertionError(f"still {jobs.read_eval(d)} after {timeout}s; log:\n{jobs.log_tail(d)}")


def _spec(n=6, **kw):
    return EvalSpec(SHIPPED, DatasetSpec("procedural", seed=1000, num_images=n), **kw)


def test_key_follows_checkpoint_bytes_data_and_thresholds(tmp_path):
    base = eval_key(_spec())
    assert base == eval_key(_spec()) and len(base) == 16
    assert eval_key(_spec(n=7)) != base
    assert eval_key(_spec(score_thresh=0.05)) != base
    copy = tmp_path / "copy.pt"
    shutil.copy(SHIPPED, copy)
    same = EvalSpec(str(copy), _spec().dataset)
    assert eval_key(same) == base  # same bytes, another path: the same evaluation
    with open(copy, "ab") as f:
        f.write(b"x")
    assert eval_key(same) != base


def test_launch_finishes_in_the_background_and_is_cached(tmp_path):
    d = jobs.launch(_spec(), tmp_path)
    assert d.parent == tmp_path and d.name == eval_key(_spec())
    info = _wait(d)
    assert info.state == "finished", info.message
    res = jobs.load_result(d)
    assert res["num_images"] == 6 and len(res["per_image"]) == 6 and len(res["sources"]) == 6
    assert res["sources"][0] == "procedural:scene_1000000000"
    assert sum(r["errors"]["Miss"] for r in res["per_image"]) == res["errors"]["counts"]["Miss"]
    assert jobs.load_kept(d).num_images == 6
    before = (d / STATUS_FILE).stat().st_mtime_ns
    assert jobs.launch(_spec(), tmp_path) == d  # cache hit: nothing runs again
    time.sleep(0.5)
    assert (d / STATUS_FILE).stat().st_mtime_ns == before
    assert [i.key for i in jobs.list_evals(tmp_path)] == [d.name]


def test_cancel_a_running_evaluation(tmp_path):
    d = jobs.launch(_spec(n=3000), tmp_path)
    t0 = time.time()
    while jobs.read_eval(d).progress <= 0 and time.time() - t0 < 120:
        time.sleep(0.3)
    jobs.cancel(d)
    info = _wait(d)
    assert info.state == "cancelled" and "cancelled" in info.message
    jobs.delete(d)
    assert not d.exists()


def test_failure_in_the_run_shows_failed_with_the_reason(tmp_path):
    """A COCO dataset whose images have no box passes the quick check; the run finds it."""
    from ssd.data.procedural import write_coco

    js = write_coco(tmp_path / "data" / "ann.json", tmp_path / "data" / "images", 3, seed=5)
    doc = json.loads(js.read_text())
    doc["annotations"] = []
    js.write_text(json.dumps(doc))
    spec = EvalSpec(SHIPPED, DatasetSpec("coco", num_images=0, coco_json=str(js),
                                         coco_images=str(tmp_path / "data" / "images")))
    d = jobs.launch(spec, tmp_path / "evals")
    info = _wait(d)
    assert info.state == "failed"
    assert "none of the 3 images has a ground-truth box" in info.message


def test_a_dead_process_reads_failed(tmp_path):
    d = tmp_path / "k"
    d.mkdir()
    (d / SPEC_FILE).write_text(json.dumps({"spec": _spec().to_dict()}))
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    update_status(d, state="running", pid=p.pid, started_at=time.time(), message="3/6 images")
    info = jobs.read_eval(d)
    assert info.state == "failed" and "ended without a result" in info.message and "3/6" in info.message


def _ckpt_with_classes(path, names):
    torch.manual_seed(0)
    checkpoint.save(path, build("compact256", num_classes=len(names)), names)
    return str(path)


@pytest.mark.parametrize("case,match", [
    ("truncated", "truncated or corrupt"),
    ("missing", "does not exist"),
    ("classes", "procedural scenes have the classes"),
    ("empty", "the dataset is empty"),
    ("voc_missing", "VOC"),
    ("coco_classes", "differ from the checkpoint's classes"),
    ("thresholds", "thresholds: PostprocessConfig.nms_thresh"),
])
def test_bad_input_is_refused_before_launch(tmp_path, case, match):
    ds, ckpt, kw = DatasetSpec("procedural", num_images=4), SHIPPED, {}
    if case == "truncated":
        data = open(SHIPPED, "rb").read()
        (tmp_path / "cut.pt").write_bytes(data[: len(data) // 3])
        ckpt = str(tmp_path / "cut.pt")
    elif case == "missing":
        ckpt = str(tmp_path / "nope.pt")
    elif case == "classes":
        ckpt = _ckpt_with_classes(tmp_path / "two.pt", ["background", "person", "boat"])
    elif case == "empty":
        ds = DatasetSpec("procedural", num_images=0)
    elif case == "voc_missing":
        ds = DatasetSpec("voc", data_root=str(tmp_path / "no_voc"))
    elif case == "coco_classes":
        from ssd.data.procedural import write_coco

        js = write_coco(tmp_path / "ann.json", tmp_path / "images", 2, seed=5)
        ds = DatasetSpec("coco", coco_json=str(js), coco_images=str(tmp_path / "images"))
        ckpt = _ckpt_with_classes(tmp_path / "two.pt", ["background", "person", "boat"])
    elif case == "thresholds":
        kw = {"nms_thresh": 1.5}
    spec = EvalSpec(ckpt, ds, **kw)
    with pytest.raises(EvalInputError, match=match):
        jobs.launch(spec, tmp_path / "evals")
    assert not (tmp_path / "evals").exists() or not any((tmp_path / "evals").iterdir())


def test_load_checked_returns_model_names_and_data():
    model, names, ds = load_checked(_spec(n=3))
    assert names[0] == "background" and len(ds) == 3 and not model.training


def test_delete_refuses_a_folder_that_is_not_an_evaluation(tmp_path):
    with pytest.raises(EvalInputError, match="not an evaluation folder"):
        jobs.delete(tmp_path)
    assert tmp_path.exists()
    assert os.path.isdir(tmp_path)


def test_an_evaluation_runs_beside_a_training_run_in_its_own_lane(tmp_path):
    """The SHORT lane: with the CPU held by a training run (its lock, its queue slot
    and the LONG limit used up) an evaluation still starts at once and finishes; its own
    limit refuses it with the reason."""
    from explorer.jobs.limits import JobLimits
    from explorer.jobs.state import LOCKS_DIR, enqueue, open_lock, try_flock
    from jobs_helpers import fake_run, hold_lock

    training = fake_run(tmp_path, "training", "running")
    holder = hold_lock(training)
    cpu = open_lock(tmp_path / LOCKS_DIR / "cpu.lock")
    try:
        assert try_flock(cpu)  # the training run's device
        enqueue(training, "cpu", 1)
        with pytest.raises(EvalInputError, match="short jobs.*the limit is 0"):
            jobs.launch(_spec(n=2), tmp_path, limits=JobLimits(max_short_jobs_per_device=0))
        d = jobs.launch(_spec(n=2), tmp_path, limits=JobLimits(max_jobs_per_device=1))
        info = _wait(d, timeout=120)
        assert info.state == "finished", (info.message, jobs.log_tail(d))
        assert json.loads((d / "job.json").read_text())["lane"] == "short"
    finally:
        os.close(cpu)
        os.killpg(holder.pid, 9)
        holder.wait()


def test_a_runs_checkpoint_is_listed_by_its_run_name(tmp_path):
    """Issue 19 item 11: every run's evaluation read "best.pt on ..."; now "RUN / best.pt"."""
    data = DatasetSpec("procedural", seed=1000, num_images=4)
    infos = [jobs.EvalInfo(f"k{i}", tmp_path / f"k{i}", EvalSpec(str(tmp_path / "runs" / run / "checkpoints" / "best.pt"),
                                                               data, 0.01, 0.45, 200, 100), "finished", 1.0, "", 0.0)
             for i, run in enumerate(("demo1", "demo2"))]
    assert [i.label.split(" on ")[0] for i in infos] == ["demo1 / best.pt", "demo2 / best.pt"]
    assert str(tmp_path) not in infos[0].label  # no server path
    assert jobs.checkpoint_name(SHIPPED) == "compact256_shapes.pt"  # a shipped file: its name
