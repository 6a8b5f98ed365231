"""explorer/views/default_boxes.py: configs from sliders, tables and figures of default boxes."""
import base64
import json
import math
import re

import numpy as np
import plotly.graph_objects as go
import pytest
from PIL import ImageColor

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
    assert dbv.valid_level(6, 6) == 2  # stale: the middle level (SSD300's 10x10)
    assert dbv.valid_level("6: 1x1", 6) == 2
    assert dbv.valid_level(None, 7) == 3  # SSD512's 8x8
    assert dbv.valid_level(None, 2) == 0


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


def _decoded(value) -> np.ndarray:
    """An array as the browser gets it from the figure's JSON (Plotly's typed-array form)."""
    if isinstance(value, dict) and "bdata" in value:
        arr = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        return arr.reshape([int(n) for n in str(value.get("shape", arr.size)).split(",")])
    return np.asarray(value, dtype=float)


def _alpha(color: str) -> float:
    m = re.fullmatch(r"rgba\(([^)]*)\)", color.replace(" ", ""))
    return float(m.group(1).split(",")[3]) if m else 1.0


def _overlay_ink(fig_json: dict, plot_px: float) -> dict:
    """Share of a `plot_px` x `plot_px` screen-px plot of the image covered by the grid lines and the cell-centre
    dots, weighted by opacity, read from the figure's JSON only (widths, colours, sizes).

    Each axis-aligned grid segment is clipped to the image; crossings count twice, so this is
    an upper bound of the ink really drawn.
    """
    s = fig_json["layout"]["xaxis"]["range"][1]
    px = plot_px / s  # screen px per input px
    out = {}
    for t in fig_json["data"]:
        if "grid" in t.get("name", ""):
            x, y = _decoded(t["x"]), _decoded(t["y"])
            x1, x2, y1, y2 = x[:-1], x[1:], y[:-1], y[1:]
            ok = ~(np.isnan(x1) | np.isnan(x2))  # consecutive points of one line
            length = (np.abs(np.clip(x2, 0, s) - np.clip(x1, 0, s)) + np.abs(np.clip(y2, 0, s) - np.clip(y1, 0, s)))
            inside = ((x1 <= s) & (y1 <= s))[ok]
            area = (length[ok] * inside).sum() * px * t["line"]["width"]
            out["grid"] = area * _alpha(t["line"]["color"]) / plot_px**2
        if t.get("name", "").startswith("cell centres"):
            n = len(_decoded(t["x"]))
            d = t["marker"]["size"]
            out["dots"] = n * math.pi * d**2 / 4 * t["marker"]["opacity"] / plot_px**2
    return out


@pytest.mark.parametrize("factory, f", [(ssd300_voc, 38), (ssd512_voc, 64)])
def test_dense_grids_leave_the_image_readable(factory, f):
    """Issue 11: at 38x38 and 64x64 the grid and the dots covered 30% and 37% of the image in a
    448 px plot (1 px lines at 55% opacity on every border, 60% opaque dots); now at most 7%,
    and less in a larger plot."""
    cfg = factory()
    db = default_boxes(cfg)
    fig_json = json.loads(dbv.default_box_figure(cfg, db, 0, (f // 2, f // 2)).to_json())
    ink = _overlay_ink(fig_json, dbv.PLOT_PX)
    assert ink["grid"] <= dbv.GRID_INK_MAX + 1e-3 and ink["dots"] <= dbv.DOT_INK_MAX + 1e-3, ink
    assert ink["grid"] + ink["dots"] <= 0.07
    assert ink["grid"] > 0.01 and ink["dots"] > 0.005  # still there to see and to click
    wide = _overlay_ink(fig_json, 540)  # a wide window: the plot is 540 px, as tall as it gets
    assert wide["grid"] < ink["grid"] and wide["dots"] < ink["dots"]
    centres = [t for t in fig_json["data"] if t["name"].startswith("cell centres")][0]
    assert len(_decoded(centres["x"])) == f * f  # every cell keeps its dot (clickable), however dense


def test_the_old_dense_style_fails_the_ink_measure():
    """The measure can fail: the style before issue 11 (every line at 55%, dots 4.7 px at 60%)."""
    cfg = ssd512_voc()
    fig_json = json.loads(dbv.default_box_figure(cfg, default_boxes(cfg), 0, (32, 32)).to_json())
    for t in fig_json["data"]:
        if "grid" in t["name"]:
            edges = np.arange(65) * 8.0
            far, zero, gap = np.full(65, 512.0), np.zeros(65), np.full(65, np.nan)
            t["x"] = np.stack([edges, edges, gap, zero, far, gap], axis=1).reshape(-1).tolist()
            t["y"] = np.stack([zero, far, gap, edges, edges, gap], axis=1).reshape(-1).tolist()
            t["line"] = {"color": "rgba(255,255,255,0.55)", "width": 1}
        if t["name"].startswith("cell centres"):
            t["marker"].update(size=300 / 64, opacity=0.6)
    ink = _overlay_ink(fig_json, dbv.PLOT_PX)
    assert ink["grid"] + ink["dots"] > 0.25, ink


def test_grid_style_hand_checked():
    # SSD512's 64x64 map in a 540 px plot: 8.4 px cells -> a line every 2 cells (16.9 px).
    st = dbv.grid_style(64, 8, 512, 540)
    assert st.cell_px == pytest.approx(8.4375) and st.every == 2
    # 33 vertical + 33 horizontal lines of 540 px, 1 px wide: 35640 of 291600 px^2 (12.2%)
    assert st.line_alpha == pytest.approx(0.04 / (66 * 540 / 540**2), abs=1e-3)  # 0.327
    assert st.dot_size == 3 and st.dot_opacity == pytest.approx(0.03 * 540**2 / (4096 * math.pi * 9 / 4), abs=1e-3)
    big = dbv.grid_style(3, 100, 300, 540)  # 3x3: 180 px cells, nothing to thin out
    assert (big.every, big.line_alpha, big.dot_size, big.dot_opacity) == (1, 0.55, 10, 0.6)


def test_clicks_still_pick_cells_from_the_json_the_browser_gets():
    cfg = ssd512_voc()
    fig = dbv.default_box_figure(cfg, default_boxes(cfg), 0, (5, 30))
    centres = [t for t in json.loads(fig.to_json())["data"] if t["name"].startswith("cell centres")][0]
    cells, x, y = _decoded(centres["customdata"]), _decoded(centres["x"]), _decoded(centres["y"])
    assert cells.shape == (64 * 64, 2)
    n = 5 * 64 + 30
    assert dbv.cell_from_customdata({"0": int(cells[n, 0]), "1": int(cells[n, 1])}) == (5, 30)
    assert (x[n], y[n]) == (30.5 * 8, 5.5 * 8)  # the dot sits at the cell's centre
    assert "%{customdata[0]}" in centres["hovertemplate"] and "text" not in centres  # one template, no strings


def _lab(color: str) -> np.ndarray:
    """CIE L*a*b* (D65) of a CSS colour; the alpha of rgba() is ignored."""
    m = re.fullmatch(r"rgba?\(([^)]*)\)", color.replace(" ", ""))
    parts = m.group(1).split(",")[:3] if m else ImageColor.getrgb(color)[:3]  # CSS names and hex
    rgb = np.array([float(v) / 255 for v in parts])
    lin = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ lin
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _delta_e(a: str, b: str) -> float:
    return float(np.linalg.norm(_lab(a) - _lab(b)))


def test_lab_matches_known_values():
    assert _lab("#ffffff") == pytest.approx([100, 0, 0], abs=0.05)
    assert _lab("#ff0000") == pytest.approx([53.24, 80.09, 67.20], abs=0.05)  # sRGB red, D65
    assert _delta_e("yellow", "#ffff00") == pytest.approx(0, abs=1e-9)


def test_selected_cell_and_every_box_have_distinct_colours():
    """Issue 11: the selected cell and the ratio-1 box were both yellow."""
    cfg = dbv.custom_config(300, 0.2, 0.9, (10, 5), (1.0, 2.0, 0.5, 3.0, 1 / 3, 4.0, 0.25))
    fig = dbv.default_box_figure(cfg, default_boxes(cfg), 0, (4, 4))
    boxes = [t.line.color for t in fig.data if (t.name or "").startswith("ratio ")]
    assert len(boxes) == 8
    cell = [t for t in fig.data if t.name == "cell (4, 4)"][0]
    for box in boxes:
        assert _delta_e(box, cell.line.color) >= 40 and _delta_e(box, cell.fillcolor) >= 40, box
    for a in range(len(boxes)):
        for b in range(a + 1, len(boxes)):
            assert _delta_e(boxes[a], boxes[b]) >= 25, (boxes[a], boxes[b])
    assert _delta_e("yellow", "#ffdd00") < 25  # the old pair fails both thresholds above


def test_default_box_figure_is_light():
    """The browser redraws this figure on every slider step: a fixed number of traces,
    no per-point strings, and small JSON even for 64x64 (was 119 kB, float64 centres)."""
    cfg = ssd512_voc()
    fig = dbv.default_box_figure(cfg, default_boxes(cfg), 0, (32, 32))
    assert len(fig.data) == 4 + 4  # frame, grid, centres, cell + 4 boxes on SSD512's level 0
    assert not fig.layout.shapes
    assert all(t.text is None for t in fig.data)
    assert len(fig.to_json()) < 75_000


def test_box_size_figure_one_trace_per_level():
    fig = dbv.box_size_figure(ssd300_voc())
    valid(fig)
    assert len([t for t in fig.data if (t.name or "").startswith("level")]) == 6

