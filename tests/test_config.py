"""Tests for ssd/config.py: presets, the paper's linear scale rule, validation, round trip."""
import dataclasses
import json
import math

import pytest
import torch

from ssd.config import (
    PRESETS,
    SSDConfig,
    compact256,
    linear_scales,
    preset,
    ratios_from_torchvision,
    ssd300_coco,
    ssd300_voc,
    ssd512_voc,
    ssd_linear,
)


def num_boxes(cfg):
    return sum(f * f * k for f, k in zip(cfg.feature_maps, cfg.boxes_per_location()))


def test_ssd300_has_8732_boxes():
    cfg = ssd300_voc()
    per_level = [f * f * k for f, k in zip(cfg.feature_maps, cfg.boxes_per_location())]
    assert per_level == [5776, 2166, 600, 150, 36, 4]
    assert sum(per_level) == 8732
    assert cfg.boxes_per_location() == (4, 6, 6, 6, 4, 4)
    assert cfg.num_levels == 6 and cfg.num_classes == 21 and cfg.name == "ssd300_voc"
    assert num_boxes(ssd300_coco()) == 8732 and ssd300_coco().num_classes == 91


def test_ssd300_voc_sizes_in_pixels():
    # The paper's released SSD300: 30, 60, 111, 162, 213, 264 px (and 315 for s'_6).
    assert [round(s) for s in ssd300_voc().min_sizes_px()] == [30, 60, 111, 162, 213, 264]


def test_ssd512_has_24564_boxes():
    cfg = ssd512_voc()
    assert num_boxes(cfg) == 24564
    assert cfg.num_levels == 7 and cfg.image_size == 512


def test_compact256_levels():
    cfg = compact256()
    assert cfg.feature_maps == (32, 16, 8, 4, 2, 1) and cfg.num_classes == 7
    assert num_boxes(cfg) == 32 * 32 * 4 + 16 * 16 * 6 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 4


def test_paper_linear_rule():
    # Sec. 2.2: s_min 0.2, s_max 0.9, m = 6 -> 0.2, 0.34, 0.48, 0.62, 0.76, 0.9 (+1.04 beyond).
    s = linear_scales(0.2, 0.9, 6)
    assert s == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9, 1.04])
    cfg = ssd_linear(0.2, 0.9)
    assert cfg.scales == pytest.approx(s)
    assert cfg.steps == pytest.approx([300 / f for f in (38, 19, 10, 5, 3, 1)])
    assert num_boxes(cfg) == 6 * (38**2 + 19**2 + 10**2 + 5**2 + 3**2 + 1)  # 5 ratios + extra everywhere
    assert cfg.name == "linear"


def test_linear_scales_bad_input():
    with pytest.raises(ValueError, match="m >= 2"):
        linear_scales(0.2, 0.9, 1)
    with pytest.raises(ValueError, match="s_min < s_max"):
        linear_scales(0.9, 0.2, 6)
    with pytest.raises(ValueError, match="s_min < s_max"):
        linear_scales(0.0, 0.9, 6)


def test_ratios_from_torchvision():
    assert ratios_from_torchvision([2]) == (1.0, 2.0, 0.5)
    assert ratios_from_torchvision([2, 3]) == pytest.approx((1.0, 2.0, 0.5, 3.0, 1 / 3))


def test_no_extra_box_and_explicit_ratios():
    cfg = dataclasses.replace(ssd300_voc(), extra_box=False)
    assert cfg.boxes_per_location() == (3, 5, 5, 5, 3, 3)
    # the extra box only exists where ratio 1 does
    cfg = dataclasses.replace(ssd300_voc(), aspect_ratios=((2.0, 0.5),) * 6)
    assert cfg.boxes_per_location() == (2,) * 6


def test_presets_and_overrides():
    assert set(PRESETS) == {"ssd300_voc", "ssd300_coco", "ssd512_voc", "compact256"}
    for name in PRESETS:
        assert preset(name).name == name
    cfg = preset("ssd300_voc", num_classes=5)
    assert cfg.num_classes == 5 and cfg.feature_maps == ssd300_voc().feature_maps
    with pytest.raises(ValueError, match="unknown preset"):
        preset("ssd9000")


def test_frozen_and_hashable():
    cfg = ssd300_voc()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.image_size = 512
    # lists are normalised to tuples: equal configs compare and hash equal
    same = SSDConfig(**{**cfg.to_dict()})
    assert same == cfg and hash(same) == hash(cfg)


@pytest.mark.parametrize("factory", list(PRESETS.values()) + [ssd_linear])
def test_to_dict_from_dict_round_trip(factory):
    cfg = factory()
    d = cfg.to_dict()
    d2 = json.loads(json.dumps(d))  # plain JSON types only
    assert SSDConfig.from_dict(d2) == cfg
    assert isinstance(d["aspect_ratios"][0], list) and isinstance(d["scales"], list)


def test_from_dict_unknown_field():
    d = ssd300_voc().to_dict()
    d["min_sizes"] = [1, 2]
    with pytest.raises(ValueError, match="unknown field.*min_sizes"):
        SSDConfig.from_dict(d)


# ---------------------------------------------------------------- one ValueError per kind
def _replace(**kw):
    return dataclasses.replace(ssd300_voc(), **kw)


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: _replace(image_size=0), "image_size"),
        (lambda: _replace(image_size=300.5), "image_size"),
        (lambda: _replace(feature_maps=()), "feature_maps"),
        (lambda: _replace(feature_maps=(38, 19, 10, 5, 3, 0)), "feature_maps"),
        (lambda: _replace(steps=(8, 16, 32, 64, 100)), "steps"),  # lengths disagree
        (lambda: _replace(steps=(8, 16, 32, 64, 100, -300)), "steps"),
        (lambda: _replace(steps=(8, 16, 32, 64, 100, math.nan)), "steps"),
        (lambda: _replace(scales=(0.1, 0.2, 0.37, 0.54, 0.71, 0.88)), "scales"),  # needs m + 1
        (lambda: _replace(scales=(0.1, 0.2, 0.37, 0.54, 0.71, 0.0, 1.05)), "scales"),
        (lambda: _replace(scales=(0.1, 0.2, 0.37, 0.54, 0.71, math.nan, 1.05)), "scales"),
        (lambda: _replace(aspect_ratios=((1.0, 2.0, 0.5),) * 5), "aspect_ratios"),  # lengths disagree
        (lambda: _replace(aspect_ratios=((1.0,),) * 5 + ((),)), "aspect_ratios"),  # empty ratios
        (lambda: _replace(aspect_ratios=((1.0, -2.0),) * 6), "aspect_ratios"),
        (lambda: _replace(aspect_ratios=((1.0, 2.0, 2.0),) * 6), "aspect_ratios"),
        (lambda: _replace(variances=(0.1,)), "variances"),
        (lambda: _replace(variances=(0.1, 0.0)), "variances"),
        (lambda: _replace(variances=(0.1, math.inf)), "variances"),
        (lambda: _replace(num_classes=1), "num_classes"),
        (lambda: _replace(num_classes=2.5), "num_classes"),
        (lambda: ssd_linear(s_min=0.9, s_max=0.2), "s_min"),  # s_min >= s_max
        (lambda: ssd_linear(s_min=0.5, s_max=0.5), "s_min"),
        (lambda: ssd_linear(s_min=-0.1, s_max=0.9), "s_min"),
        (lambda: ssd_linear(image_size=-300), "steps|image_size"),
        (lambda: ssd_linear(feature_maps=(38,)), "m >= 2"),
    ],
)
def test_invalid_config_names_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


# ---------------------------------------------------------------- config files (--box-config)


def test_config_json_round_trip_and_fit(tmp_path):
    from ssd.config import check_fits, load_config_json

    cfg = dataclasses.replace(compact256(), scales=(0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0), name="tuned")
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert load_config_json(path) == cfg
    assert load_config_json(path, reference=compact256()) == cfg
    check_fits(cfg, compact256())


@pytest.mark.parametrize(
    "text, message",
    [
        ("{oops", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        (json.dumps({**compact256().to_dict(), "anchor_sizes": [1]}), r"unknown field\(s\) \['anchor_sizes'\]"),
        (json.dumps({k: v for k, v in compact256().to_dict().items() if k != "scales"}), r"missing field\(s\) \['scales'\]"),
        (json.dumps({**compact256().to_dict(), "scales": [0.1, 0.2]}), "scales must have"),
        (json.dumps({**compact256().to_dict(), "aspect_ratios": [[1.0]] * 5}), "aspect_ratios has 5 levels"),
    ],
)
def test_config_json_bad_input_names_the_file(tmp_path, text, message):
    from ssd.config import load_config_json

    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as e:
        load_config_json(path)
    assert str(path) in str(e.value)


def test_config_json_geometry_the_model_cannot_produce(tmp_path):
    from ssd.config import load_config_json

    other = ssd_linear(0.2, 0.9, image_size=256, feature_maps=(32, 16, 8, 4, 2), num_classes=7)
    path = tmp_path / "five_levels.json"
    path.write_text(json.dumps(other.to_dict()))
    with pytest.raises(ValueError, match=r"five_levels.json: feature_maps \[32, 16, 8, 4, 2\] cannot be produced by compact256"):
        load_config_json(path, reference=compact256())
    wrong_size = dataclasses.replace(compact256(), image_size=300)
    path.write_text(json.dumps(wrong_size.to_dict()))
    with pytest.raises(ValueError, match="image_size 300 cannot be produced by compact256"):
        load_config_json(path, reference=compact256())
    with pytest.raises(ValueError, match="missing.json: cannot read"):
        load_config_json(tmp_path / "missing.json")


def test_select_levels_keeps_each_kept_levels_boxes():
    from ssd.config import check_levels, compact256, expand_levels, select_levels
    from ssd.priors import default_boxes

    cfg = compact256()
    sub = select_levels(cfg, (0, 1, 2))
    assert sub.feature_maps == (32, 16, 8) and sub.scales == cfg.scales[:4]
    full_boxes = default_boxes(cfg).cxcywh
    assert torch.equal(default_boxes(sub).cxcywh, full_boxes[: len(default_boxes(sub).cxcywh)])
    assert select_levels(cfg, (1,)).scales == cfg.scales[1:3]
    assert expand_levels(sub, cfg, (0, 1, 2)).aspect_ratios == cfg.aspect_ratios
    for bad in ((), (0, 2), (2, 1), (6,), ("x",)):
        with pytest.raises(ValueError, match="levels"):
            check_levels(bad, 6)
