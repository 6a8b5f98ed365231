"""Tests for ssd/priors.py: equality with torchvision's DefaultBoxGenerator, where-from
bookkeeping (level/row/col/box_index), flat_index, level_table and the command line."""
import dataclasses
import runpy
import sys

import pytest
import torch
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator

from ssd.config import linear_scales, ssd300_coco, ssd300_voc, ssd512_voc, ssd_linear
from ssd.priors import default_boxes, level_table, main




_TV_RATIOS_300 = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]
_TV_RATIOS_512 = [[2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2]]


def tv_boxes(cfg, tv_ratios, with_steps=True):
    gen = DefaultBoxGenerator(tv_ratios, scales=list(cfg.scales), steps=list(cfg.steps) if with_steps else None)
    grid = [[f, f] for f in cfg.feature_maps]
    return gen._grid_default_boxes(grid, [cfg.image_size, cfg.image_size])


@pytest.mark.parametrize(
    "cfg, tv_ratios",
    [(ssd300_coco(), _TV_RATIOS_300), (ssd300_voc(), _TV_RATIOS_300), (ssd512_voc(), _TV_RATIOS_512)],
    ids=["ssd300_coco", "ssd300_voc", "ssd512_voc"],
)
def test_equals_torchvision_default_box_generator(cfg, tv_ratios):
    ours = default_boxes(cfg)
    theirs = tv_boxes(cfg, tv_ratios)
    assert ours.cxcywh.shape == theirs.shape
    assert torch.allclose(ours.cxcywh, theirs, atol=1e-6)
    assert len(ours) == {300: 8732, 512: 24564}[cfg.image_size]


def test_equals_torchvision_torchvision_ssd300_anchors_in_pixels():
    # What torchvision's ssd300_vgg16 builds (scales and steps as in its source).
    gen = DefaultBoxGenerator(
        _TV_RATIOS_300, scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05], steps=[8, 16, 32, 64, 100, 300]
    )
    theirs = gen._grid_default_boxes([[f, f] for f in (38, 19, 10, 5, 3, 1)], [300, 300])
    assert torch.allclose(default_boxes(ssd300_coco()).cxcywh, theirs, atol=1e-6)


def test_linear_config_equals_torchvision():
    cfg = ssd_linear(0.2, 0.9)
    # torchvision's own linear estimate agrees on s_1..s_m; it ends with s_{m+1} = 1.0
    # where we continue the line (1.04), so give it our scales for the full comparison.
    assert DefaultBoxGenerator(_TV_RATIOS_300, min_ratio=0.2, max_ratio=0.9).scales[:-1] == pytest.approx(
        linear_scales(0.2, 0.9, 6)[:-1]
    )
    theirs = tv_boxes(cfg, [[2, 3]] * 6, with_steps=False)  # no steps: centres (j + 0.5) / f
    assert torch.allclose(default_boxes(cfg).cxcywh, theirs, atol=1e-6)


def test_no_clip_keeps_boxes_larger_than_the_image():
    cfg = dataclasses.replace(ssd300_coco(), clip=False)
    wh_last = default_boxes(cfg).wh_per_level[-1]
    assert wh_last.max() > 1.0
    assert default_boxes(ssd300_coco()).wh_per_level[-1].max() == 1.0
    gen = DefaultBoxGenerator(_TV_RATIOS_300, scales=list(cfg.scales), steps=list(cfg.steps), clip=False)
    theirs = gen._grid_default_boxes([[f, f] for f in cfg.feature_maps], [300, 300])
    assert torch.allclose(default_boxes(cfg).cxcywh, theirs, atol=1e-6)


def test_where_each_box_comes_from():
    cfg = ssd300_voc()
    db = default_boxes(cfg)
    assert db.per_level == (5776, 2166, 600, 150, 36, 4) and db.feature_maps == cfg.feature_maps
    for t in (db.level, db.row, db.col, db.box_index):
        assert t.shape == (8732,) and t.dtype == torch.long
    steps = torch.tensor(cfg.steps)[db.level]
    # centre of cell (i, j) of level k: ((j + 0.5) * step_k, (i + 0.5) * step_k) / image_size
    assert torch.allclose(db.cxcywh[:, 0], (db.col + 0.5) * steps / 300, atol=1e-6)
    assert torch.allclose(db.cxcywh[:, 1], (db.row + 0.5) * steps / 300, atol=1e-6)
    for k in range(6):
        sl = db.level_slice(k)
        assert (db.level[sl] == k).all()
        assert (db.row[sl] < cfg.feature_maps[k]).all() and (db.col[sl] < cfg.feature_maps[k]).all()
        assert torch.equal(db.cxcywh[sl, 2:], db.wh_per_level[k][db.box_index[sl]])
    assert db.labels_per_level[0] == ("1", "1'", "2", "1/2")
    assert db.labels_per_level[1] == ("1", "1'", "2", "1/2", "3", "1/3")
    # s'_1 = sqrt(30 * 60) px
    assert db.wh_per_level[0][1, 0].item() * 300 == pytest.approx((30 * 60) ** 0.5, rel=1e-5)


def test_flat_index_inverts_the_bookkeeping():
    db = default_boxes(ssd300_voc())
    for a in list(range(0, 8732, 97)) + [0, 5775, 5776, 8731]:
        k, i, j, b = (int(t[a]) for t in (db.level, db.row, db.col, db.box_index))
        assert db.flat_index(k, i, j, b) == a
    assert db.flat_index(5, 0, 0, 3) == 8731
    assert db.flat_index(1, 0, 0, 0) == 5776
    assert db.level_slice(5) == slice(8728, 8732)


def test_xyxy_matches_cxcywh():
    db = default_boxes(ssd300_voc())
    c = db.cxcywh
    assert torch.allclose(db.xyxy, torch.cat([c[:, :2] - c[:, 2:] / 2, c[:, :2] + c[:, 2:] / 2], 1))


def test_level_table():
    rows = level_table(ssd300_voc())
    assert [r["boxes"] for r in rows] == [5776, 2166, 600, 150, 36, 4]
    assert rows[0]["feature_map"] == "38x38" and rows[0]["boxes_per_location"] == 4
    assert rows[0]["box_sizes_px"][:2] == ["1:30x30", "1':42x42"]


# ---------------------------------------------------------------- command line
@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_cli_module_prints_8732(monkeypatch, capsys):
    # `python -m ssd.priors ...` run in-process with runpy (the same __main__ path; a fresh
    # interpreter importing torch costs seconds on the shared test machine).
    monkeypatch.setattr(sys, "argv", ["python -m ssd.priors", "--preset", "ssd300_voc"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("ssd.priors", run_name="__main__")
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "total default boxes: 8732" in out
    assert "38x38" in out and "ssd300_voc" in out


def test_cli_linear_rule(capsys):
    assert main(["--s-min", "0.2", "--s-max", "0.9"]) == 0
    text = capsys.readouterr().out
    assert "linear" in text and f"total default boxes: {6 * (38**2 + 19**2 + 10**2 + 25 + 9 + 1)}" in text
    assert main(["--s-min", "0.1", "--s-max", "0.8", "--ratios", "1,2,1/2", "--no-extra-box"]) == 0
    assert f"total default boxes: {3 * (38**2 + 19**2 + 10**2 + 25 + 9 + 1)}" in capsys.readouterr().out


def test_cli_bad_values_exit_2(capsys):
    assert main(["--s-min", "0.9", "--s-max", "0.2"]) == 2
    assert "s_min" in capsys.readouterr().err
    assert main(["--feature-maps", "38,0", "--s-min", "0.2"]) == 2
    assert "feature_maps" in capsys.readouterr().err
    assert main(["--ratios", "1,2,1/0", "--s-min", "0.2"]) == 2
    assert "ratios" in capsys.readouterr().err
    assert main(["--feature-maps", "38,x", "--s-min", "0.2"]) == 2
    assert "error" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--s-min", "abc"])
    assert e.value.code == 2
    assert "--s-min" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--preset", "ssd9000"])
    assert e.value.code == 2
