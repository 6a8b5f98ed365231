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


# ---------------------------------------------------------------- an honest tuner (issue 19 item 4)
def test_result_is_rounded_grows_with_the_map_and_compares_to_its_base():
    gt = gt_boxes.procedural_boxes(40, seed=3, size=256, object_size=(0.05, 0.5)).boxes_xyxy_norm
    base = compact256()
    res = tune(gt, base, max_evals=60)
    assert all(s == round(s, 3) for s in res.cfg.scales), res.cfg.scales  # what is written reads as written
    assert tune_boxes.scales_grow(res.cfg), res.cfg.scales
    assert res.before["bpr"] == pytest.approx(coverage_brute(gt, base).bpr)  # against the config it was given
    assert res.after["bpr"] == pytest.approx(coverage_brute(gt, res.cfg).bpr)


def test_scales_out_of_order_only_when_asked():
    shrinking = tune_boxes.rounded(compact256())
    assert tune_boxes.scales_grow(shrinking)
    import dataclasses
    bad = dataclasses.replace(shrinking, scales=tuple(reversed(shrinking.scales)))
    assert not tune_boxes.scales_grow(bad)
    gt = gt_boxes.procedural_boxes(40, seed=3, size=256).boxes_xyxy_norm
    assert tune_boxes.scales_grow(tune(gt, bad, max_evals=30).cfg)  # a shrinking start is put in order


def test_too_few_boxes_say_so_with_the_numbers():
    few = gt_boxes.procedural_boxes(5, seed=1).boxes_xyxy_norm
    res = tune(few, compact256(), max_evals=10)
    need = tune_boxes.min_boxes_needed(compact256())
    assert need == 20 * (2 * 6 + 2)
    assert len(res.notes) == 1 and f"Tuned on {len(few)} ground-truth box(es), fewer than the {need}" in res.notes[0]
    many = gt_boxes.procedural_boxes(150, seed=1).boxes_xyxy_norm
    assert len(many) >= need and tune(many, compact256(), max_evals=5).notes == ()
