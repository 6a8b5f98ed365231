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
from streamlit.testing.v1 import AppTest

from explorer.jobs import manager as jobs

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    monkeypatch.setenv("SSD_RUNS_DIR", str(runs))
    yield runs
    for info in jobs.list_runs(runs):  # never leave a training process behind
        if info.alive and (info.run_dir / "job.json").is_file():
            job = json.loads((info.run_dir / "job.json").read_text())
            try:
                os.killpg(job["attempts"][-1]["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


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
    assert any("No runs yet" in i.value for i in at.info)
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
    assert any("Launched ui-run" in s.value for s in at.success), [e.value for e in at.error]
    assert (runs_dir / "ui-run" / "job.json").is_file()

    # Wait until ssd.train itself reports (its SIGTERM handler is installed by then).
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
    assert any("No runs yet" in i.value for i in at.info)


def test_missing_voc_folder_is_refused_on_the_page(runs_dir, tmp_path):
    at = _page()
    at.radio(key="train_dataset").set_value("voc").run()
    at.text_input(key="train_data_root").input(str(tmp_path / "no-such-voc"))
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Not launched" in e.value and "does not exist" in e.value for e in at.error)
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

    from ssd.train import main

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
    errors = [e.value for e in at.error]
    assert any("broken failed" in e and "000001.jpg" in e and "unreadable image" in e for e in errors), errors
    assert not any("is gone" in e for e in errors)


def test_recipe_fills_the_form_and_a_wrong_start_is_refused(runs_dir):
    at = _page()
    at.selectbox(key="train_recipe").set_value("cpu_demo").run()
    assert not at.exception, at.exception
    assert at.number_input(key="train_train_size").value == 256 and at.number_input(key="train_epochs").value == 3
    assert any("augment=light" in c.value for c in at.caption)  # what the recipe sets unseen
    at.radio(key="train_start").set_value("ImageNet backbone").run()
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Not launched" in e.value and "--backbone-weights works with --model ssd300_vgg16" in e.value
               for e in at.error), [e.value for e in at.error]
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
