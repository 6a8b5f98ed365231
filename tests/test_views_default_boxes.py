"""explorer/default_box_view.py: configs from sliders, tables and figures of default boxes."""
import plotly.graph_objects as go
import pytest

from explorer.views import default_boxes as dbv
from ssd.config import compact256, ssd300_coco, ssd300_voc, ssd512_voc
from ssd.priors import default_boxes


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())


def test_parse_feature_maps():
    assert dbv.parse_feature_maps("38, 19,10; 5") == (38, 19, 10, 5)
    with pytest.raises(ValueError, match="'x'"):
        dbv.parse_feature_maps("38, x")
    with pytest.raises(ValueError, match="positive"):
        dbv.parse_feature_maps("38, 0")
    with pytest.raises(ValueError, match="at least two"):
        dbv.parse_feature_maps("38")


def test_custom_config_is_the_linear_rule():
    cfg = dbv.custom_config(300, 0.2, 0.9, (38, 19, 10, 5, 3, 1), (1.0, 2.0, 0.5, 3.0, 1 / 3))
    assert cfg.scales[0] == pytest.approx(0.2) and cfg.scales[5] == pytest.approx(0.9)
    assert cfg.scales[1] == pytest.approx(0.34)  # 0.2 + 0.7 / 5
    # 6 boxes per cell everywhere: (38^2 + 19^2 + 10^2 + 5^2 + 3^2 + 1) * 6
    assert len(default_boxes(cfg)) == 1940 * 6
    four = dbv.custom_config(300, 0.2, 0.9, (38, 19, 10, 5, 3, 1), (1.0, 2.0, 0.5, 3.0, 1 / 3), four_box_levels=True)
    assert four.boxes_per_location() == (4, 6, 6, 6, 4, 4)
    assert len(default_boxes(four)) == 8732  # SSD300's count from the paper's box layout


def test_custom_config_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="s_min < s_max"):
        dbv.custom_config(300, 0.9, 0.2, (38, 19), (1.0,))
    with pytest.raises(ValueError, match="aspect ratio"):
        dbv.custom_config(300, 0.2, 0.9, (38, 19), ())
    with pytest.raises(ValueError, match="image_size"):
        dbv.custom_config(0, 0.2, 0.9, (38, 19), (1.0,))


@pytest.mark.parametrize("factory", [ssd300_voc, ssd300_coco, ssd512_voc, compact256])
def test_controls_reproduce_every_preset_exactly(factory):
    cfg = factory()
    c = dbv.controls_from_config(cfg)
    assert dbv.config_from_controls(c, cfg.name, cfg.num_classes) == cfg  # every scale, step and ratio
    # The rule settings the controls show describe the preset's scales too.
    first = c["s_first"] if c["first_separate"] else None
    assert dbv.rule_scales(c["s_min"], c["s_max"], cfg.num_levels, first) == pytest.approx(cfg.scales, abs=1e-9)
    assert dbv.scales_text_from_rule(c, cfg.num_levels) == c["scales"]


def test_ssd300_rule_is_conv4_3_apart_then_linear():
    c = dbv.controls_from_config(ssd300_voc())
    assert (c["s_min"], c["s_max"], c["first_separate"], c["s_first"]) == (0.2, 0.88, True, 0.1)
    assert c["ratio_sets"] == "1, 2, 1/2; 1, 2, 1/2, 3, 1/3; 1, 2, 1/2, 3, 1/3; 1, 2, 1/2, 3, 1/3; 1, 2, 1/2; 1, 2, 1/2"
    assert len(default_boxes(dbv.config_from_controls(c))) == 8732
    # s_max one notch up moves levels 2.. only; level 1 (60 px) stays.
    moved = dbv.rule_scales(0.2, 0.89, 6, 0.1)
    assert moved[:2] == (0.1, 0.2) and moved[5] == pytest.approx(0.89)


def test_ratio_sets_text_round_trip_and_errors():
    assert dbv.parse_ratio_sets("1, 2, 1/2; 1, 3, 1/3", 2) == ((1.0, 2.0, 0.5), (1.0, 3.0, 1 / 3))
    assert dbv.parse_ratio_sets("1, 2", 3) == ((1.0, 2.0),) * 3  # one set for every level
    with pytest.raises(ValueError, match="3 level sets for 2 feature maps"):
        dbv.parse_ratio_sets("1; 2; 3", 2)
    with pytest.raises(ValueError, match="level 1: 'x' is not a number"):
        dbv.parse_ratio_sets("1; x", 2)
    with pytest.raises(ValueError, match="'1/0' is not a number"):
        dbv.parse_ratio_sets("1/0", 2)
    with pytest.raises(ValueError, match="'-2' must be a positive number"):
        dbv.parse_ratio_sets("-2", 2)


def test_controls_for_new_maps_follow_the_number_of_levels():
    c = dbv.controls_from_config(ssd300_voc())
    c["feature_maps"] = "10, 5, 3"
    new = dbv.controls_for_new_maps(c)
    cfg = dbv.config_from_controls(new)
    assert cfg.feature_maps == (10, 5, 3) and cfg.steps == pytest.approx((30, 60, 100))
    assert cfg.aspect_ratios[2] == cfg.aspect_ratios[1] == (1.0, 2.0, 0.5, 3.0, 1 / 3)
    c["feature_maps"] = "10, 5"  # two levels: the rule covers both, no separate first level
    assert dbv.config_from_controls(dbv.controls_for_new_maps(c)).scales == pytest.approx((0.2, 0.88, 1.56))


def test_valid_level_drops_stale_values():
    assert dbv.valid_level(3, 6) == 3
    assert dbv.valid_level(6, 6) == 0
    assert dbv.valid_level("6: 1x1", 6) == 0
    assert dbv.valid_level(None, 6) == 0


def test_level_rows_sum_to_total():
    rows = dbv.level_rows(ssd512_voc())
    assert sum(r["boxes"] for r in rows) == 24564
    assert rows[0]["feature_map"] == "64x64" and rows[0]["boxes_per_location"] == 4


def test_cell_box_rows_hand_checked():
    cfg = ssd300_voc()
    db = default_boxes(cfg)
    rows = dbv.cell_box_rows(db, cfg, 5, 0, 0)  # the 1x1 level: one cell at the centre
    assert [r["ratio"] for r in rows] == ["1", "1'", "2", "1/2"]
    assert rows[0]["cx"] == 150 and rows[0]["w"] == 264
    assert rows[1]["w"] == pytest.approx((264 * 315) ** 0.5, abs=0.1)  # s'_k = sqrt(s_k s_k+1)
    assert rows[2]["w"] == pytest.approx(min(300, 264 * 2 ** 0.5), abs=0.1)  # clipped to the image


def test_default_box_figure_has_clickable_cells_and_cell_boxes():
    cfg = ssd300_voc()
    db = default_boxes(cfg)
    fig = dbv.default_box_figure(cfg, db, 1, (3, 4), image_uri="data:image/png;base64,AAAA")
    valid(fig)
    centres = [t for t in fig.data if t.name == "cell centres (click one)"][0]
    assert len(centres.x) == 19 * 19
    assert list(centres.customdata[3 * 19 + 4]) == [3, 4]
    boxes = [t for t in fig.data if (t.name or "").startswith("ratio ")]
    assert len(boxes) == 6


def test_box_size_figure_one_trace_per_level():
    fig = dbv.box_size_figure(ssd300_voc())
    valid(fig)
    assert len([t for t in fig.data if (t.name or "").startswith("level")]) == 6

