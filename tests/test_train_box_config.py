"""`python -m ssd.train --box-config FILE` (issue 13, "Training with the tuned boxes"): the heads
get the file's boxes per cell, the run config and the checkpoints record its default boxes,
the explorer loads the checkpoint with them, a resume rebuilds them; a bad file fails before
anything is written. Also `--object-size` on `ssd.train` and `ssd.evaluate` (the end-to-end
comparison trains and evaluates on small objects)."""
import dataclasses
import json
import re
import signal
from argparse import Namespace

import pytest
import torch

from explorer.inputs.models import load_model
from ssd.config import compact256
from ssd.data.common import DatasetError
from ssd.data.procedural import CLASSES, DEFAULT_OBJECT_SIZE
from ssd.evaluation.evaluate import build_eval_dataset
from ssd.priors import default_boxes
from ssd.training import checkpoint
from ssd.training.options import parse_args
from ssd.training.train import main

TINY = ["--dataset", "procedural", "--object-size", "0.03,0.12", "--train-size", "8", "--val-size", "4",
        "--batch-size", "4", "--log-every", "1", "--threads", "1", "--warmup-steps", "2", "--epochs", "2"]


@pytest.fixture
def restore_signals():
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


def _tuned(num_classes: int = 21):
    """Default boxes with other boxes per cell than compact256's (K = 2, 4, 6, 6, 4, 4 vs 4, 6, ...)
    and a class count the dataset will replace (procedural scenes: 7)."""
    cfg = compact256(num_classes)
    return dataclasses.replace(cfg, aspect_ratios=((1.0,), (1.0, 2.0, 0.5)) + cfg.aspect_ratios[2:],
                               scales=(0.04, 0.09, 0.2, 0.4, 0.6, 0.8, 1.0), name="tuned_compact256")


@pytest.fixture
def tuned_json(tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps(_tuned().to_dict()))
    return path


def test_tiny_box_config_run_loads_in_the_explorer_with_its_boxes(tmp_path, tuned_json, restore_signals):
    run = tmp_path / "run"
    assert main(TINY + ["--max-steps", "2", "--box-config", str(tuned_json), "--out", str(run)]) == 0
    expected = _tuned(num_classes=7)  # the dataset's class count
    config = json.loads((run / "config.json").read_text())
    assert config["model_config"] == expected.to_dict()
    assert config["args"]["box_config"] == str(tuned_json) and config["args"]["object_size"] == "0.03,0.12"
    assert "default boxes: tuned_compact256 from" in (run / "train.log").read_text()
    best = run / "checkpoints" / "best.pt"
    meta = checkpoint.read(best)
    assert meta["config"] == expected.to_dict()
    assert f"--box-config {tuned_json}" in meta["recipe"]["command"]
    loaded = load_model(str(best))  # what the sidebar does with a run's best.pt
    assert loaded.model.cfg == expected and loaded.model.cfg.boxes_per_location() == (2, 4, 6, 6, 4, 4)
    with torch.no_grad():
        out = loaded.model(torch.rand(1, 3, 256, 256))
    assert out.cls_logits_flat().shape == (1, default_boxes(expected).cxcywh.shape[0], 7)


def test_a_box_config_run_resumes_with_its_boxes(tmp_path, tuned_json, restore_signals):
    run = tmp_path / "run"
    assert main(TINY + ["--max-steps", "1", "--box-config", str(tuned_json), "--out", str(run)]) == 0
    assert main(["--resume", "--max-steps", "2", "--out", str(run)]) == 0
    model, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert meta["step"] == 2 and model.cfg == _tuned(num_classes=7)


def _bad(tmp_path, name: str, change: dict | None = None, text: str | None = None):
    path = tmp_path / name
    path.write_text(text if text is not None else json.dumps({**_tuned().to_dict(), **(change or {})}))
    return path


@pytest.mark.parametrize("name,change,text,words", [
    ("unknown.json", {"anchor_scales": [1, 2]}, None, r"unknown field\(s\) \['anchor_scales'\]"),
    ("maps.json", {"feature_maps": [38, 19, 10, 5, 3, 1]}, None,
     r"feature_maps \[38, 19, 10, 5, 3, 1\] cannot be produced by compact256"),
    ("size.json", {"image_size": 300}, None, r"image_size 300 cannot be produced by compact256"),
    ("ratios.json", {"aspect_ratios": [[1.0]] * 5}, None, r"aspect_ratios has 5 levels"),
    ("junk.json", None, "{not json", r"not valid JSON"),
])
def test_a_bad_box_config_names_the_file_and_writes_nothing(tmp_path, capsys, name, change, text, words):
    path = _bad(tmp_path, name, change, text)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as exc:
        main(TINY + ["--box-config", str(path), "--out", str(run)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"--box-config {path}:" in err and re.search(words, err), err
    assert "Traceback" not in err
    assert not run.exists()  # nothing half-written: no run folder at all


def test_a_missing_box_config_file_is_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--box-config", str(tmp_path / "none.json"), "--out", str(tmp_path / "run")])
    assert "none.json: cannot read the config file" in capsys.readouterr().err


def test_a_box_config_for_another_model_is_refused(tmp_path, tuned_json, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--model", "ssd300_vgg16", "--box-config", str(tuned_json), "--out", str(tmp_path / "r")])
    assert "image_size 256 cannot be produced by ssd300_vgg16" in capsys.readouterr().err


def test_box_config_with_init_from_a_preset_run_gives_the_clear_head_error(tmp_path, tuned_json, capsys,
                                                                           restore_signals):
    preset = tmp_path / "preset"
    assert main(TINY + ["--max-steps", "1", "--out", str(preset)]) == 0
    run = tmp_path / "run"
    code = main(TINY + ["--max-steps", "1", "--box-config", str(tuned_json), "--init",
                        str(preset / "checkpoints" / "best.pt"), "--out", str(run)])
    status = json.loads((run / "status.json").read_text())
    assert code == 1 and status["state"] == "failed"
    assert "does not fit compact256" in status["message"] and "boxes per cell" in status["message"]


@pytest.mark.parametrize("argv,words", [
    (["--object-size", "0.2,0.1"], "0 < min <= max <= 1"),
    (["--object-size", "small"], "--object-size wants MIN,MAX"),
    (["--dataset", "voc", "--data-root", "x", "--object-size", "0.1,0.2"], "only applies to --dataset procedural"),
])
def test_bad_object_size_is_refused(tmp_path, capsys, argv, words):
    with pytest.raises(SystemExit):
        parse_args(argv + ["--out", str(tmp_path / "run")])
    assert words in capsys.readouterr().err


def test_evaluate_draws_the_same_small_objects():
    args = Namespace(dataset="procedural", num_images=3, seed=1000, object_size="0.03,0.12")
    ds = build_eval_dataset(args, 256, CLASSES)
    assert ds.object_size == (0.03, 0.12)
    default = build_eval_dataset(Namespace(**{**vars(args), "object_size": ""}), 256, CLASSES)
    assert default.object_size == DEFAULT_OBJECT_SIZE
    with pytest.raises(DatasetError, match="--object-size wants MIN,MAX"):
        build_eval_dataset(Namespace(**{**vars(args), "object_size": "1,2,3"}), 256, CLASSES)
