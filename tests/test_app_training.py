"""AppTest of pages/training.py: launch a real tiny run from the form, watch it in the
runs table, cancel it, delete it; refused launches; "use in explorer".

`run_every` fragments do not tick in AppTest, so the test reruns the page itself.
The runs dir is a temp folder given through SSD_RUNS_DIR before the page runs.
"""
import json
import os
import signal
import time
from pathlib import Path

import pytest

from explorer.text import shown
from streamlit.testing.v1 import AppTest

from explorer.jobs import manager as jobs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")


def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, at.exception
    return at


def _table(at: AppTest):
    return at.dataframe[0].value if len(at.dataframe) else None


def _rerun_until(at: AppTest, predicate, timeout=90.0, what=""):
    deadline = time.monotonic() + timeout
    while True:
        at.run()
        assert not at.exception, at.exception
        if predicate(at):
            return at
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; table:\n{_table(at)}")
        time.sleep(0.5)


def _state(at: AppTest, name: str):
    table = _table(at)
    if table is None:
        return None
    rows = table[table["name"] == name]
    return rows["state"].iloc[0] if len(rows) else None


def test_empty_page_renders(runs_dir):
    at = _page()
    assert at.title[0].value == "Training"
    assert any("No runs yet" in shown(i.value) for i in at.info)
    assert at.button(key="train_launch_button")


def test_launch_watch_cancel_delete_from_the_page(runs_dir):
    at = _page()
    at.number_input(key="train_train_size").set_value(8)
    at.number_input(key="train_val_size").set_value(4)
    at.number_input(key="train_batch_size").set_value(4)
    at.number_input(key="train_epochs").set_value(50)
    at.number_input(key="train_max_steps").set_value(200)
    at.number_input(key="train_eval_every").set_value(100)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").input("../ui run")
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Launched ui-run" in shown(s.value) for s in at.success), [shown(e.value) for e in at.error]
    assert (runs_dir / "ui-run" / "job.json").is_file()

    # Wait until ssd.training.train itself reports (its SIGTERM handler is installed by then).
    _rerun_until(at, lambda a: _state(a, "ui-run") == "running"
                 and jobs.read_run(runs_dir / "ui-run").message == "training", what="ui-run training")
    assert at.selectbox(key="train_selected").value == "ui-run"
    assert not at.button(key="train_cancel").disabled
    assert at.button(key="train_delete").disabled  # never while running

    at.button(key="train_cancel").click().run()
    assert not at.exception, at.exception
    _rerun_until(at, lambda a: _state(a, "ui-run") == "cancelled", what="ui-run cancelled")
    info = jobs.read_run(runs_dir / "ui-run")
    _rerun_until(at, lambda a: not jobs.read_run(runs_dir / "ui-run").alive, 30, "process exit")
    assert not at.button(key="train_resume").disabled
    assert info.state == "cancelled" and "SIGTERM" in info.message and info.has_last

    at.checkbox(key="train_confirm_delete_ui-run").check().run()
    at.button(key="train_delete").click().run()
    assert not at.exception, at.exception
    assert not (runs_dir / "ui-run").exists()
    assert any("No runs yet" in shown(i.value) for i in at.info)


def test_missing_voc_folder_is_refused_on_the_page(runs_dir, tmp_path):
    at = _page()
    at.radio(key="train_dataset").set_value("voc").run()
    at.text_input(key="train_data_root").input(str(tmp_path / "data" / "no-such-voc"))
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Not launched" in shown(e.value) and "does not exist" in shown(e.value) for e in at.error)
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_use_in_explorer_sets_model_choice(runs_dir):
    run_dir = runs_dir / "done"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "best.pt").write_bytes(b"")  # only its path is handed on
    (run_dir / "status.json").write_text(json.dumps(
        {"state": "finished", "progress": 1.0, "message": "finished", "step": 4, "total_steps": 4,
         "best_map": 0.25, "device": "cpu", "started_at": 1.0, "updated_at": 2.0}))
    at = _page()
    assert _state(at, "done") == "finished"
    at.button(key="train_use").click().run()
    assert not at.exception, at.exception
    assert at.session_state["model_choice"] == str((run_dir / "checkpoints" / "best.pt").resolve())


def test_failed_run_shows_the_trainers_reason(runs_dir, tmp_path, peer_data):
    """Issue 9.7: a run that ended on an image that does not decode says so on the page,
    not "process is gone"."""
    import shutil
    import signal as sig

    from ssd.training.train import main

    voc = tmp_path / "voc"
    src = peer_data / "mmdet" / "VOC2007"
    shutil.copytree(src / "Annotations", voc / "Annotations")
    shutil.copytree(src / "JPEGImages", voc / "JPEGImages")
    shutil.copy(peer_data / "truncated" / "000001.jpg", voc / "JPEGImages" / "000001.jpg")
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n000003\n000004\n")
    (voc / "ImageSets" / "Main" / "val.txt").write_text("000005\n")
    handlers = {s: sig.getsignal(s) for s in (sig.SIGTERM, sig.SIGINT)}
    try:
        assert main(["--dataset", "voc", "--data-root", str(voc), "--classes", "voc", "--batch-size", "4",
                     "--max-steps", "1", "--device", "cpu", "--out", str(runs_dir / "broken")]) == 1
    finally:
        for s, h in handlers.items():
            sig.signal(s, h)
    at = _page()
    assert _state(at, "broken") == "failed"
    errors = [shown(e.value) for e in at.error]
    assert any("broken failed" in e and "000001.jpg" in e and "unreadable image" in e for e in errors), errors
    assert not any("is gone" in e for e in errors)


def test_recipe_fills_the_form_and_a_wrong_start_is_refused(runs_dir):
    at = _page()
    at.selectbox(key="train_recipe").set_value("cpu_demo").run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_train_size").value == 256 and at.number_input(key="train_epochs").value == 3
    assert any("augment=light" in shown(c.value) for c in at.caption)  # what the recipe sets unseen
    at.radio(key="train_start").set_value("ImageNet backbone").run()
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Not launched" in shown(e.value) and "--backbone-weights works with --model ssd300_vgg16" in shown(e.value)
               for e in at.error), [shown(e.value) for e in at.error]
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    at.selectbox(key="train_recipe").set_value("ssd300_voc_paper").run()
    assert at.radio(key="train_start").value == "ImageNet backbone" and at.radio(key="train_dataset").value == "voc"
    assert at.selectbox(key="train_model").value == "ssd300_vgg16"


def test_fine_tune_from_a_runs_checkpoint_from_the_page(runs_dir):
    import shutil

    done = runs_dir / "done"
    (done / "checkpoints").mkdir(parents=True)
    shutil.copy(Path(PAGE).parents[1] / "checkpoints" / "compact256_shapes.pt", done / "checkpoints" / "best.pt")
    (done / "status.json").write_text(json.dumps({"state": "finished", "message": "finished", "step": 1,
                                                  "total_steps": 1, "started_at": 1.0, "updated_at": 2.0}))
    at = _page()
    at.radio(key="train_start").set_value("Fine-tune from a run's checkpoint").run()
    assert at.selectbox(key="train_init_path").value == str((done / "checkpoints" / "best.pt").resolve())
    for key, value in (("train_train_size", 8), ("train_val_size", 4), ("train_batch_size", 4),
                       ("train_max_steps", 1), ("train_epochs", 1)):
        at.number_input(key=key).set_value(value)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").input("tuned")
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    _rerun_until(at, lambda a: _state(a, "tuned") in ("finished", "failed"), what="tuned ended")
    info = jobs.read_run(runs_dir / "tuned")
    assert info.state == "finished", info.message
    log = (runs_dir / "tuned" / "train.log").read_text()
    assert "init: all weights from weights file" in log and "compact256_shapes" not in log  # best.pt of `done`


def _launch_coco(at: AppTest, coco_json, images) -> AppTest:
    at.radio(key="train_dataset").set_value("coco").run()
    at.text_input(key="train_coco_json").input(str(coco_json))
    at.text_input(key="train_coco_images").input(str(images))
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    return at


def _refusals(at: AppTest) -> list[str]:
    return [shown(e.value) for e in at.error if "Not launched" in shown(e.value)]


def test_hostile_dataset_paths_are_refused_before_anything_runs(runs_dir, tmp_path):
    """Issue 14: paths outside the data roots (also through a link), /proc/self/environ,
    a 100,000-deep JSON, a 1 GB sparse file and a FIFO: each a clear refusal, no
    traceback, nothing launched, and the FIFO never blocks the session."""
    data = tmp_path / "data"
    (data / "images").mkdir(parents=True)
    (tmp_path / "outside.json").write_text("{}")
    (data / "link.json").symlink_to(tmp_path / "outside.json")
    (data / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with open(data / "sparse.json", "wb") as f:
        f.truncate(1_000_000_000)
    os.mkfifo(data / "fifo.json")
    cases = [("/proc/self/environ", "outside the allowed data folders"),
             (tmp_path / "outside.json", "outside the allowed data folders"),
             (data / "link.json", "outside the allowed data folders"),
             (data / "deep.json", "nested too deeply"),
             (data / "sparse.json", "over the 512 MiB limit"),
             (data / "fifo.json", "not a regular file")]
    at = _page()
    for path, words in cases:
        started = time.monotonic()
        _launch_coco(at, path, data / "images")
        assert any(words in e for e in _refusals(at)), (path, [shown(e.value) for e in at.error])
        assert time.monotonic() - started < 30
    assert not runs_dir.exists() or not any(d for d in runs_dir.iterdir() if not d.name.startswith("."))


def test_exposed_server_without_data_roots_refuses_every_dataset_path(runs_dir, tmp_path, monkeypatch):
    from streamlit import config

    monkeypatch.delenv("SSD_DATA_ROOTS")
    monkeypatch.setenv("SSD_EXPLORER_PASSWORD", "pw for this test")
    saved = config.get_option("server.address")
    config.set_option("server.address", "0.0.0.0")  # as `make run HOST=0.0.0.0`
    try:
        at = AppTest.from_file(PAGE, default_timeout=60).run()
        at.text_input[0].input("pw for this test")  # the gate of an exposed server
        at.button[0].click().run()
        assert not at.exception, at.exception
        _refuses_every_path(at)
    finally:
        config.set_option("server.address", saved)


def _refuses_every_path(at) -> None:
    at.radio(key="train_dataset").set_value("voc").run()
    assert any("nothing on this exposed server" in shown(c.value) for c in at.caption)
    at.text_input(key="train_data_root").input(str(Path.home()))
    at.button(key="train_launch_button").click().run()
    assert any("outside the allowed data folders (none on this server)" in e for e in _refusals(at))


def test_launch_over_the_limits_is_refused_with_the_limit(runs_dir):
    at = _page()
    at.number_input(key="train_batch_size").set_value(1024)
    at.button(key="train_launch_button").click().run()
    assert any("batch size 1024 is over the limit of 256" in e for e in _refusals(at)), at.error
    at.selectbox(key="train_model").set_value("ssd300_vgg16")
    at.number_input(key="train_batch_size").set_value(64)
    at.button(key="train_launch_button").click().run()
    assert any("over the limit of 32 images per step for ssd300_vgg16" in e for e in _refusals(at))
    at.selectbox(key="train_model").set_value("compact256")
    at.number_input(key="train_batch_size").set_value(16)
    at.number_input(key="train_train_size").set_value(100_000)
    at.number_input(key="train_epochs").set_value(100)
    at.button(key="train_launch_button").click().run()
    assert any("10,000,000 image passes" in e for e in _refusals(at))
    assert not runs_dir.exists() or not any(d for d in runs_dir.iterdir() if not d.name.startswith("."))


def test_damaged_runs_are_flagged_and_the_others_stay_usable(runs_dir):
    from jobs_helpers import fake_run

    good = fake_run(runs_dir, "good", "cancelled")
    bad = fake_run(runs_dir, "bad", "finished")
    (bad / "status.json").write_text('{"state": "fini')
    odd = fake_run(runs_dir, "odd", "failed")
    (odd / "job.json").write_text(json.dumps({"seq": "x", "attempts": 7}))
    at = _page()
    assert {_state(at, n) for n in ("good", "bad", "odd")} == {"cancelled", jobs.DAMAGED, "failed"}
    at.selectbox(key="train_selected").set_value("bad").run()
    assert not at.exception, at.exception
    assert any("damaged run folder" in shown(w.value) and "status.json" in shown(w.value) for w in at.warning)
    assert at.button(key="train_cancel").disabled and at.button(key="train_resume").disabled
    at.selectbox(key="train_selected").set_value("good").run()
    assert not at.exception and not at.button(key="train_resume").disabled


def test_a_second_tab_pressing_cancel_is_told_what_happened(runs_dir):
    """Two tabs: while one action holds the run, Cancel in this tab is refused at once
    with the reason and the state the run is in now."""
    from explorer.jobs.state import open_lock, try_flock
    from ssd.training.runlog import CONTROL_LOCK
    from jobs_helpers import fake_run, hold_lock

    run_dir = fake_run(runs_dir, "live", "running")
    holder = hold_lock(run_dir)
    fd = open_lock(run_dir / CONTROL_LOCK)
    try:
        assert try_flock(fd)  # the other tab's action, in progress
        at = _page()
        started = time.monotonic()
        at.button(key="train_cancel").click().run()
        assert not at.exception, at.exception
        assert time.monotonic() - started < 10
        errors = [shown(e.value) for e in at.error]
        assert any("another action on it is in progress" in e and "now running (alive)" in e for e in errors), errors
    finally:
        os.close(fd)
        os.killpg(holder.pid, signal.SIGKILL)
        holder.wait()


def test_the_form_starts_from_the_training_options_defaults(runs_dir):
    """The page's numbers are `TrainOptions`'s (it hard-coded 512 / 64 scenes)."""
    from ssd.training.options import TrainOptions

    at = _page()
    defaults = TrainOptions()
    assert at.number_input(key="train_train_size").value == defaults.train_size
    assert at.number_input(key="train_val_size").value == defaults.val_size
    assert at.number_input(key="train_epochs").value == defaults.epochs


def test_enter_in_the_run_name_launches_nothing_and_launch_makes_one_run(runs_dir):
    """Issue 19.5: Enter in "Run name" launched a run, and Launch then a second (demo1, demo1-2)."""
    at = _page()
    (form,) = at.get("form")
    assert form.proto.form.enter_to_submit is False  # the browser's Enter submits nothing
    at.text_input(key="train_name").input("demo1").run()  # a rerun with the field's value: nothing submitted
    assert not at.exception, at.exception
    assert not runs_dir.exists() or not [d for d in runs_dir.iterdir() if not d.name.startswith(".")]
    # AppTest drops a form's unsubmitted values on a rerun (a browser keeps them): fill it again.
    for key, value in (("train_train_size", 8), ("train_val_size", 4), ("train_batch_size", 4),
                       ("train_max_steps", 1), ("train_epochs", 1)):
        at.number_input(key=key).set_value(value)
    at.selectbox(key="train_device").set_value("cpu")
    at.text_input(key="train_name").input("demo1")
    at.button(key="train_launch_button").click().run()
    assert [d.name for d in runs_dir.iterdir() if not d.name.startswith(".")] == ["demo1"]
    _rerun_until(at, lambda a: _state(a, "demo1") in ("finished", "failed"), what="demo1 ended")
    assert [d.name for d in runs_dir.iterdir() if not d.name.startswith(".")] == ["demo1"]


def test_selected_run_stays_and_its_label_follows_its_state(runs_dir):
    """Issue 19.6: the pick jumped to another run when the watched one ended, and after
    Cancel the label still read "(running)"."""
    from jobs_helpers import fake_run, hold_lock
    from ssd.training.runlog import read_json
    from ssd.io import write_json_atomic

    watched = fake_run(runs_dir, "watched", "running")
    newer = fake_run(runs_dir, "newer", "finished")
    write_json_atomic(newer / "job.json", dict(read_json(newer / "job.json"), created_at=time.time() + 60))
    holder = hold_lock(watched)
    write_json_atomic(watched / "job.json", dict(read_json(watched / "job.json"), attempts=[{"pid": holder.pid}]))
    try:
        at = _page()
        assert at.selectbox(key="train_selected").value == "newer"  # the newest first
        at.selectbox(key="train_selected").set_value("watched").run()
        assert any(shown(c.value) == "watched: running" for c in at.caption)
        at.button(key="train_cancel").click().run()
        assert not at.exception, at.exception
        assert not any(shown(c.value) == "watched: running" for c in at.caption)
        holder.wait(10)  # the SIGTERM of the cancel ended it
        at.run()
        assert at.selectbox(key="train_selected").value == "watched"
        assert any(shown(c.value) == "watched: cancelled" for c in at.caption), [c.value for c in at.caption]
    finally:
        if holder.poll() is None:
            os.killpg(holder.pid, signal.SIGKILL)
            holder.wait()
