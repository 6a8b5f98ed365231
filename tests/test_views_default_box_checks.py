"""explorer/views/default_box_checks.py: warnings for feature maps that do not fit the input
and for clipping that makes the boxes of a level identical."""
import dataclasses

import pytest

from explorer.views.default_box_checks import config_warnings
from ssd.config import PRESETS, preset, ssd300_voc, ssd512_voc
from ssd.priors import default_boxes


def _kinds(cfg) -> dict:
    return {w.kind: w for w in config_warnings(cfg)}


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_the_presets_warn_of_nothing(name):
    assert config_warnings(preset(name)) == []


def test_steps_left_from_another_input_size():
    """SSD300's steps with a 512 px input: every level's cells cover ~60% of it."""
    cfg = dataclasses.replace(ssd300_voc(), image_size=512)
    w = _kinds(cfg)["grid_misfit"]
    assert w.levels == (0, 1, 2, 3, 4, 5)
    assert "38 cells x 8 px = 304 px, 208 px short" in w.message
    assert "S/f = 13.47 px" in w.message and "10% of S = 51.2 px" in w.message
    # 1 cell of 300 px on 512 px is within one step (300) but 212 px > 51.2 px off.
    assert "level 5: 1 cells x 300 px = 300 px, 212 px short" in w.message


def test_grid_misfit_rule_at_its_edges():
    """|f * step - S| <= min(step, S / 10): SSD300's 10 x 32 = 320 for 300 is inside (20 px);
    one more px of step on level 2 (10 x 33 = 330, 30 px) is the edge, 34 is past it."""
    base = ssd300_voc()
    steps = list(base.steps)
    steps[2] = 33.0
    assert config_warnings(dataclasses.replace(base, steps=tuple(steps))) == []
    steps[2] = 34.0  # 340 px: 40 px over > min(34, 30)
    w = _kinds(dataclasses.replace(base, steps=tuple(steps)))["grid_misfit"]
    assert w.levels == (2,) and "10 cells x 34 px = 340 px, 40 px over" in w.message
    steps = list(base.steps)
    steps[0] = 7.0  # 38 x 7 = 266 px: 34 px short, more than one 7 px cell
    assert _kinds(dataclasses.replace(base, steps=tuple(steps)))["grid_misfit"].levels == (0,)


def test_maps_that_grow_and_maps_larger_than_the_input():
    cfg = dataclasses.replace(ssd300_voc(), feature_maps=(19, 38, 10, 5, 3, 1), steps=(300 / 19, 300 / 38, 30, 60, 100, 300))
    w = _kinds(cfg)
    assert set(w) == {"maps_increasing"}
    assert w["maps_increasing"].levels == (1,) and "level 1 (38x38) after level 0 (19x19)" in w["maps_increasing"].message
    big = dataclasses.replace(ssd300_voc(), image_size=64, feature_maps=(128, 32), steps=(0.5, 2.0),
                              scales=(0.1, 0.5, 0.9), aspect_ratios=((1.0,), (1.0,)))
    w = _kinds(big)
    assert set(w) == {"map_larger_than_input"} and w["map_larger_than_input"].levels == (0,)
    assert "level 0 (128x128): more cells per side than the 64 px input has pixels" in w["map_larger_than_input"].message


def test_clipping_scales_at_or_over_1_makes_a_level_the_full_image():
    """With clip on, s_k >= 1 cuts the ratio-1 boxes (s_k and s'_k) of level k to the full
    input; a level with ratio 1 only is then the full input in every box (brute force: the
    default boxes really are all 512 x 512 px)."""
    base = ssd512_voc()
    cfg = dataclasses.replace(base, scales=base.scales[:5] + (1.0, 1.2, 1.4),
                              aspect_ratios=base.aspect_ratios[:6] + ((1.0,),))
    w = _kinds(cfg)["clip_identical"]
    assert w.levels == (5, 6)
    assert "level 5 (2x2, s_k = 1): ratios 1, 1' are all 512x512 px" in w.message  # 2 and 1/2 keep 512 x 362
    assert "level 6 (1x1, s_k = 1.2): all 2 boxes of a cell are the full 512x512 input" in w.message
    db = default_boxes(cfg)
    level5 = db.cxcywh[db.level_slice(5)].reshape(2 * 2, 4, 4)  # (f*f*K, 4) -> (cells, K, 4)
    assert (level5[:, :2, 2:] == 1).all() and (level5[:, 2:, 2:] < 1).any()
    assert (db.cxcywh[db.level_slice(6)][:, 2:] == 1).all() and db.per_level[6] == 2
    # Without clipping the same scales give boxes larger than the image: no warning.
    assert "clip_identical" not in _kinds(dataclasses.replace(cfg, clip=False))


def test_clipping_that_merges_some_boxes_of_a_cell():
    """s_5 = 1 on SSD300's 1x1 level: ratio 1 and the extra box 1' (sqrt(1 x 1.2) -> 1) are both
    300 x 300 px; ratios 2 and 1/2 stay distinct (300 x 212 px and 212 x 300 px)."""
    base = ssd300_voc()
    cfg = dataclasses.replace(base, scales=base.scales[:5] + (1.0, 1.2))
    w = _kinds(cfg)["clip_identical"]
    assert w.levels == (5,) and "ratios 1, 1' are all 300x300 px" in w.message
    sizes = default_boxes(cfg).wh_per_level[5].tolist()
    assert sizes[0] == sizes[1] == [1.0, 1.0] and sizes[2] != sizes[3]
    # Boxes equal before clipping (s_5 = s_6, ratio 1 and 1') are not clipping's doing.
    same = dataclasses.replace(base, scales=base.scales[:5] + (0.5, 0.5))
    assert "clip_identical" not in _kinds(same)
