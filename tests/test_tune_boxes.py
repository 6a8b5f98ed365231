"""Tests for ssd/tuning/tune_boxes.py: the search beats compact256 on small objects within its box
budget, keeps the model's geometry, writes a config `--box-config` reads back, and refuses bad input."""
import json

import pytest
import torch

from ssd.config import compact256, load_config_json
from ssd.data import gt_boxes
from ssd.tuning import tune_boxes
from ssd.tuning.coverage import coverage_brute
from ssd.tuning.tune_boxes import num_default_boxes, tune


@pytest.fixture(scope="module")
def small_objects():
    return gt_boxes.procedural_boxes(300, seed=7, size=256, object_size=(0.03, 0.12)).boxes_xyxy_norm


def test_tuned_boxes_clearly_beat_compact256_on_small_objects(small_objects):
    base = compact256()
    res = tune(small_objects, base, max_evals=120, sample=2000)
    assert res.cfg.feature_maps == base.feature_maps and res.cfg.steps == base.steps
    assert res.cfg.image_size == base.image_size
    assert num_default_boxes(res.cfg) <= num_default_boxes(base) == res.before["default_boxes"] == 6132
    # Before/after are the brute-force BPRs of the two configs on every box.
    assert res.before["bpr"] == pytest.approx(coverage_brute(small_objects, base).bpr)
    assert res.after["bpr"] == pytest.approx(coverage_brute(small_objects, res.cfg).bpr)
    assert res.after["bpr"] >= res.before["bpr"] + 0.08, (res.before, res.after)
    # On boxes it never saw (another seed), it still wins.
    held_out = gt_boxes.procedural_boxes(200, seed=8, size=256, object_size=(0.03, 0.12)).boxes_xyxy_norm
    assert coverage_brute(held_out, res.cfg).bpr >= coverage_brute(held_out, base).bpr + 0.05


def test_budget_is_kept():
    gt = gt_boxes.procedural_boxes(60, seed=2).boxes_xyxy_norm
    res = tune(gt, compact256(), max_boxes=2000, max_evals=40)
    assert num_default_boxes(res.cfg) <= 2000
    with pytest.raises(ValueError, match="max_boxes 100 is below the smallest layout"):
        tune(gt, compact256(), max_boxes=100, max_evals=5)


def test_bad_boxes_are_refused():
    with pytest.raises(ValueError, match="box 0 has a NaN"):
        tune(torch.tensor([[float("nan"), 0, 0.1, 0.1]]), compact256())
    with pytest.raises(ValueError, match="no ground-truth boxes"):
        tune(torch.zeros(0, 4), compact256())


def test_cli_writes_a_config_box_config_reads(tmp_path, capsys):
    out = tmp_path / "tuned.json"
    assert tune_boxes.main(["--dataset", "procedural", "--num-images", "60", "--object-size", "0.03,0.12",
                            "--model", "compact256", "--max-evals", "30", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "before" in text and "after" in text and f"wrote {out}" in text
    cfg = load_config_json(out, reference=compact256())
    assert cfg.name == "tuned_compact256" and json.loads(out.read_text())["feature_maps"] == [32, 16, 8, 4, 2, 1]
    assert [p.name for p in tmp_path.iterdir()] == ["tuned.json"]  # no temp file left


def test_cli_bad_input_writes_nothing(tmp_path, capsys):
    out = tmp_path / "tuned.json"
    assert tune_boxes.main(["--dataset", "coco", "--coco-json", str(tmp_path / "none.json"), "--model",
                            "compact256", "--out", str(out)]) == 2
    assert "none.json" in capsys.readouterr().err and not out.exists()
    assert tune_boxes.main(["--num-images", "5", "--model", "compact256", "--max-boxes", "10",
                            "--out", str(out)]) == 2
    assert "below the smallest layout" in capsys.readouterr().err and not out.exists()
    assert list(tmp_path.iterdir()) == []
