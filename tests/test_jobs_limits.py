"""Tests for explorer/jobs/limits.py and the data roots of explorer/paths.py: what one
launch may ask of a shared machine (queue length per device, free disk, batch x model,
images x epochs) and which files it may read (inside the data roots after following
links; regular, size-checked files only: no FIFO, no /proc, no 1 GB sparse file)."""
import os
import signal
import threading
import tracemalloc
from pathlib import Path

import pytest

from explorer import paths
from explorer.jobs import manager as jobs
from explorer.jobs.limits import JobLimits, check_budget, check_disk, inside_roots, read_regular
from explorer.jobs.spec import JobError, JobSpec, check_coco, check_voc_root, validate_spec
from explorer.jobs.state import live_queue
from jobs_helpers import CPU, fake_run, hold_lock, kill_live_runs, tiny_spec
from ssd.training.options import TrainOptions
from ssd.training.recipes import RECIPES


def test_data_roots_from_env_local_and_exposed(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    env = {paths.DATA_ROOTS_ENV: f"{a}{os.pathsep} {b} {os.pathsep}"}
    assert paths.data_roots(exposed=True, environ=env) == (a.resolve(), b.resolve())
    assert paths.data_roots(exposed=False, environ={}) == (paths.DATA_DIR.resolve(), Path.home().resolve())
    assert paths.data_roots(exposed=True, environ={}) == ()


@pytest.mark.parametrize("address, exposed", [
    (None, True), ("", True), ("0.0.0.0", True), ("192.168.1.5", True), ("::", True),
    ("127.0.0.1", False), ("localhost", False), ("::1", False),
])
def test_server_is_exposed(address, exposed):
    assert paths.server_is_exposed(address) is exposed


def test_inside_roots_follows_links_and_checks_before_existence(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.json").write_text("{}")
    (root / "ok.json").write_text("{}")
    (root / "link.json").symlink_to(outside / "secret.json")
    (root / "dirlink").symlink_to(outside)
    assert inside_roots(str(root / "ok.json"), (root,), "x") == (root / "ok.json").resolve()
    for p in (outside / "secret.json", root / "link.json", root / "dirlink" / "secret.json",
              root / ".." / "outside" / "secret.json", outside / "missing.json"):
        with pytest.raises(JobError, match="outside the allowed data folders"):
            inside_roots(str(p), (root,), "x")
    with pytest.raises(JobError, match="does not exist"):
        inside_roots(str(root / "missing.json"), (root,), "x")
    with pytest.raises(JobError, match=r"none on this server"):
        inside_roots(str(root / "ok.json"), (), "x")


def test_read_regular_refuses_special_files_unread(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "big").write_bytes(b"x" * 2000)
    cases = [(tmp_path / "fifo", "not a regular file"), (tmp_path, "not a regular file"),
             (Path("/proc/self/environ"), "empty"), (tmp_path / "empty", "empty"),
             (tmp_path / "big", "over the 1000 bytes limit")]
    for path, words in cases:
        done = []
        t = threading.Thread(target=lambda p=path, w=words: done.append(_expect(p, w)), daemon=True)
        t.start()
        t.join(5)
        assert done == [True], f"{path}: blocked or wrong error"
    assert read_regular(tmp_path / "big", "x", 4000) == b"x" * 2000


def _expect(path, words) -> bool:
    with pytest.raises(JobError, match=words):
        read_regular(path, "file", 1000)
    return True


def test_a_sparse_gigabyte_is_refused_before_a_byte_is_read(tmp_path):
    sparse = tmp_path / "instances.json"
    with open(sparse, "wb") as f:
        f.truncate(1_000_000_000)
    (tmp_path / "images").mkdir()
    tracemalloc.start()
    try:
        with pytest.raises(JobError, match="over the 512 MiB limit"):
            check_coco(str(sparse), str(tmp_path / "images"), roots=(tmp_path,))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000  # was 2.9 GB


def test_a_deeply_nested_coco_json_is_a_clear_refusal(tmp_path):
    (tmp_path / "images").mkdir()
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(JobError, match="nested too deeply"):
        check_coco(str(deep), str(tmp_path / "images"), roots=(tmp_path,))


def test_fifos_inside_a_voc_folder_never_block(tmp_path):
    root = tmp_path / "voc"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    os.mkfifo(root / "Annotations" / "a.xml")
    os.mkfifo(root / "ImageSets" / "Main" / "train.txt")
    (root / "ImageSets" / "Main" / "val.txt").write_text("a\n")
    out = []
    t = threading.Thread(target=lambda: out.append(_voc_error(root, tmp_path)), daemon=True)
    t.start()
    t.join(10)
    assert out and "not a regular file" in out[0], out
    os.unlink(root / "ImageSets" / "Main" / "train.txt")
    (root / "ImageSets" / "Main" / "train.txt").write_text("a\n")
    t = threading.Thread(target=lambda: out.append(_voc_error(root, tmp_path)), daemon=True)
    t.start()
    t.join(10)
    assert len(out) == 2 and "a.xml" in out[1] and "not a regular file" in out[1], out


def _voc_error(root, tmp_path) -> str:
    try:
        check_voc_root(str(root), roots=(tmp_path,))
    except JobError as exc:
        return str(exc)
    return "accepted"


@pytest.mark.parametrize("options, words", [
    (dict(batch_size=1024), "batch size 1024 is over the limit of 256"),
    (dict(model="ssd300_vgg16", batch_size=64), "limit of 32 images per step for ssd300_vgg16"),
    (dict(model="ssdlite320_mobilenet_v3_large", batch_size=65), "limit of 64"),
    (dict(train_size=100_000, epochs=100), "10,000,000 image passes"),
])
def test_budget_refuses_what_the_form_allows(options, words):
    with pytest.raises(JobError, match=words):
        validate_spec(JobSpec.of(**options))


def test_budget_counts_max_steps_and_the_recipes_fit():
    opts = TrainOptions(train_size=100_000, epochs=100, max_steps=1000, batch_size=16).validate()
    check_budget(opts, 1, 100_000, JobLimits())  # 16,000 passes: stops early
    for recipe in RECIPES.values():  # the paper's SSD300 VOC recipe on VOC07+12 trainval (16,551 images) too
        o = TrainOptions(**{k: v for k, v in recipe.items() if k not in ("backbone_weights", "init")}).validate()
        check_budget(o, 1, {"procedural": o.train_size, "voc": 16_551}[o.dataset], JobLimits())


def test_low_disk_refuses_before_a_run_folder_exists(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(JobError, match="free on the disk holding"):
        jobs.launch(runs, tiny_spec(), devices=CPU, limits=JobLimits(min_free_bytes=1 << 62))
    assert not runs.exists() or not any(d for d in runs.iterdir() if not d.name.startswith("."))
    check_disk(runs / "not" / "made", JobLimits(min_free_bytes=1))  # the nearest existing folder is measured


def test_queue_length_per_device_is_capped(tmp_path):
    runs = tmp_path / "runs"
    holders = [hold_lock(fake_run(runs, f"live{i}", "queued", seq=i + 1)) for i in range(2)]
    fake_run(runs, "dead", "queued", seq=9)  # in the index but no process: not counted, dropped
    try:
        assert [d.name for _, d in live_queue(runs, "cpu")] == ["live0", "live1"]
        with pytest.raises(JobError, match=r"2 runs are already queued or running on cpu \(the limit is 2\)"):
            jobs.launch(runs, tiny_spec(), name="third", devices=CPU, limits=JobLimits(max_jobs_per_device=2))
        assert not (runs / "third").exists()
    finally:
        for p in holders:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    try:
        run_dir = jobs.launch(runs, tiny_spec(max_steps=1), name="third", devices=CPU,
                              limits=JobLimits(max_jobs_per_device=2))
        assert [d for _, d in live_queue(runs, "cpu")] == [run_dir]
    finally:
        kill_live_runs(runs)


def test_runs_are_written_only_inside_the_runs_folder(tmp_path):
    runs = tmp_path / "runs"
    try:
        run_dir = jobs.launch(runs, tiny_spec(max_steps=1), name="../../escape", devices=CPU)
        assert run_dir.parent == runs.resolve() and run_dir.name == "escape"
    finally:
        kill_live_runs(runs)
    assert not (tmp_path / "escape").exists()
