"""AppTest of the Training page's "Default boxes" choice: the shared tuned configuration
(session state "tuned_cfg", set by the Default boxes and Dataset pages) trains a real run
whose best.pt the explorer loads with those boxes; a missing or unfitting one is refused
with the reason, and nothing is launched."""
import dataclasses
import json
import time
from pathlib import Path

import pytest

from explorer.text import shown
from streamlit.testing.v1 import AppTest

from explorer.inputs.box_config import BOX_CONFIG_DIR
from explorer.inputs.models import load_model
from explorer.jobs import manager as jobs
from ssd.config import compact256, ssd300_voc

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "training.py")
TUNED = "the tuned configuration (from the Default boxes / Dataset page)"


def _page(tuned_cfg=None) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    if tuned_cfg is not None:
        from explorer.workspace import Workspace
        ws = at.session_state["_workspace"] = Workspace()
        ws.set_boxes(tuned_cfg, "edited")
    at.run()
    assert not at.exception, at.exception
    return at


def _tiny_form(at: AppTest) -> None:
    for key, value in (("train_train_size", 8), ("train_val_size", 4), ("train_batch_size", 4),
                       ("train_epochs", 1), ("train_max_steps", 2)):
        at.number_input(key=key).set_value(value)
    at.selectbox(key="train_device").set_value("cpu")


def _tuned():
    cfg = compact256(21)  # the Default boxes page's class count; training takes the dataset's
    return dataclasses.replace(cfg, aspect_ratios=((1.0,), (1.0, 2.0, 0.5)) + cfg.aspect_ratios[2:],
                               scales=(0.04, 0.09, 0.2, 0.4, 0.6, 0.8, 1.0), name="tuned_compact256")


def test_the_tuned_configuration_trains_and_its_checkpoint_loads_with_it(runs_dir):
    at = _page(_tuned())
    _tiny_form(at)
    at.radio(key="train_boxes").set_value(TUNED)
    at.text_input(key="train_name").input("tuned")
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Launched tuned" in shown(s.value) for s in at.success), [e.value for e in at.error]
    argv = json.loads((runs_dir / "tuned" / "job.json").read_text())["train_argv"]
    box_file = Path(argv[argv.index("--box-config") + 1])
    assert box_file.parent == runs_dir.resolve() / BOX_CONFIG_DIR and box_file.is_file()
    deadline = time.monotonic() + 180
    while jobs.read_run(runs_dir / "tuned").state != "finished":
        assert jobs.read_run(runs_dir / "tuned").state in ("queued", "running"), jobs.read_run(runs_dir / "tuned")
        assert time.monotonic() < deadline, "the tuned run did not finish in 180 s"
        time.sleep(1)
    loaded = load_model(str(runs_dir / "tuned" / "checkpoints" / "best.pt"))
    assert loaded.model.cfg == dataclasses.replace(_tuned(), num_classes=7)


@pytest.mark.parametrize("tuned_cfg,words", [
    (None, "there is no tuned configuration yet"),
    (ssd300_voc(), "does not fit compact256: the tuned configuration 'ssd300_voc': image_size 300 cannot be "
                   "produced by compact256"),
])
def test_a_missing_or_unfitting_tuned_configuration_is_refused(runs_dir, tuned_cfg, words):
    at = _page(tuned_cfg)
    _tiny_form(at)
    at.radio(key="train_boxes").set_value(TUNED)
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    assert any("Not launched" in shown(e.value) and words in shown(e.value) for e in at.error), [e.value for e in at.error]
    assert jobs.list_runs(runs_dir) == [] and not (runs_dir / BOX_CONFIG_DIR).exists()


def test_the_preset_choice_passes_no_box_config(runs_dir):
    at = _page(_tuned())
    _tiny_form(at)
    at.text_input(key="train_name").input("preset")
    at.button(key="train_launch_button").click().run()
    assert not at.exception, at.exception
    argv = json.loads((runs_dir / "preset" / "job.json").read_text())["train_argv"]
    assert "--box-config" not in argv
