"""explorer/matching_view.py: matching laid out per GT and level; loss and hard negatives."""
import math

import plotly.graph_objects as go
import pytest
import torch

from explorer.views import matching as mv
from ssd.boxes import encode, px_to_norm
from ssd.config import SSDConfig
from ssd.priors import default_boxes


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())

# A tiny hand-checkable layout: a 2x2 level of half-image boxes and a 1x1 level of the
# whole image. Default boxes (normalised xyxy), flat order:
#   0: [0, 0, .5, .5]   1: [.5, 0, 1, .5]   2: [0, .5, .5, 1]   3: [.5, .5, 1, 1]   4: [0, 0, 1, 1]
CFG = SSDConfig(image_size=100, feature_maps=(2, 1), steps=(50, 100), scales=(0.5, 1.0, 1.0),
                aspect_ratios=((1.0,), (1.0,)), extra_box=False, num_classes=3)
DB = default_boxes(CFG)
HW = (100, 200)  # a 2:1 image (H, W): normalised x * 200, y * 100
# GT 0 = default box 0 exactly; GT 1 = a 60x30 px box inside default box 2 (IoU 0.36).
GT_PX = torch.tensor([[0.0, 0.0, 100.0, 50.0], [20.0, 60.0, 80.0, 90.0]])
NAMES = ["cat", "dog"]


def test_matching_view_hand_checked():
    view = mv.matching_view(DB, CFG.image_size, GT_PX, NAMES, HW, iou_threshold=0.5)
    assert [r["default_index"] for r in view.records] == [0, 2]
    r0, r1 = view.records
    assert (r0["gt"], r0["iou"], r0["forced"], r0["level"], r0["row"], r0["col"]) == (0, 1.0, False, 0, 0, 0)
    assert (r1["gt"], r1["forced"], r1["row"], r1["col"]) == (1, True, 1, 0)
    assert r1["iou"] == pytest.approx(0.36)
    assert r0["w_input_px"] == 50 and r0["feature_map"] == "2x2"
    assert view.positive_px.tolist() == [[0, 0, 100, 50], [0, 50, 100, 100]]
    s0, s1 = view.summary
    assert s0["above_threshold"] and s0["matches"] == 1 and s0["best_level"] == 0
    assert not s1["above_threshold"] and s1["forced_matches"] == 1 and "forced" in s1["status"]
    # per (GT, level): GT 0 on level 1 (whole image) has IoU 0.25 and no match
    g0l1 = [r for r in view.per_gt_level if r["gt"] == 0 and r["level"] == 1][0]
    assert g0l1["matches"] == 0 and g0l1["best_iou_on_level"] == 0.25


def test_lower_threshold_adds_matches():
    view = mv.matching_view(DB, CFG.image_size, GT_PX, NAMES, HW, iou_threshold=0.2)
    assert {r["default_index"] for r in view.records} == {0, 2, 4}  # box 4: IoU 0.25 with GT 0
    assert not any(r["forced"] for r in view.records if r["default_index"] == 2)


def test_no_gt_no_positives():
    view = mv.matching_view(DB, CFG.image_size, torch.zeros((0, 4)), [], HW)
    assert view.records == [] and view.summary == [] and view.positive_px.shape == (0, 4)


def test_matching_figure_colours_levels_and_marks_forced():
    view = mv.matching_view(DB, CFG.image_size, GT_PX, NAMES, HW)
    fig = mv.matching_figure(view, "data:image/png;base64,AAAA", HW, GT_PX, NAMES, ["a", "b"])
    valid(fig)
    names = {t.name for t in fig.data}
    assert {"ground truth", "level 0 (a)", "level 0 (a) forced"} <= names
    forced_hover = [t for t in fig.data if t.name == "level 0 (a) forced" and t.mode == "markers"][0]
    assert "IoU 0.360" in forced_hover.text[0] and "forced" in forced_hover.text[0]


def test_loss_view_hand_checked():
    a, c = len(DB), 3
    logits = torch.zeros((a, c))  # uniform: every box's CE is log 3
    labels = torch.tensor([1, 2])
    gt_norm = px_to_norm(GT_PX, HW)
    deltas = torch.zeros((a, 4))
    deltas[0] = encode(gt_norm[:1], DB.cxcywh[:1])[0]  # perfect offsets for both positives
    deltas[2] = encode(gt_norm[1:], DB.cxcywh[2:3])[0]
    lv = mv.loss_view(logits, deltas, DB, GT_PX, labels, HW, ["background", "cat", "dog"], neg_pos_ratio=3)
    assert lv.num_pos == 2
    assert lv.num_hard_negative == 3  # min(3 * 2, 5 - 2)
    assert lv.conf_sum == pytest.approx(5 * math.log(3), rel=1e-5)
    assert lv.conf == pytest.approx(5 * math.log(3) / 2, rel=1e-5)
    assert lv.loc == pytest.approx(0.0, abs=1e-6) and lv.total == pytest.approx(lv.conf)
    assert [n["rank"] for n in lv.negatives] == [0, 1, 2]
    assert {n["default_index"] for n in lv.negatives} == {1, 3, 4}
    assert lv.negatives[0]["p_background"] == pytest.approx(1 / 3, abs=1e-4)
    lv1 = mv.loss_view(logits, deltas, DB, GT_PX, labels, HW, ["background", "cat", "dog"], neg_pos_ratio=1)
    assert lv1.num_hard_negative == 2


def test_loss_view_ranks_the_most_wrong_negative_first():
    logits = torch.zeros((len(DB), 3))
    logits[3, 1] = 5.0  # box 3 (a negative) confidently says "cat": the hardest negative
    lv = mv.loss_view(logits, torch.zeros((len(DB), 4)), DB, GT_PX, torch.tensor([1, 2]), HW,
                      ["background", "cat", "dog"], neg_pos_ratio=0.5)
    assert lv.num_hard_negative == 1
    assert lv.negatives[0]["default_index"] == 3 and lv.negatives[0]["top_class"] == "cat"
    assert lv.negative_px.tolist() == [[100, 50, 200, 100]]
    fig = mv.hard_negative_figure(lv, None, HW, GT_PX, NAMES)
    valid(fig)
    assert any("hard negatives" in (t.name or "") for t in fig.data)


def test_loss_view_rejects_bad_labels():
    with pytest.raises(ValueError):
        mv.loss_view(torch.zeros((len(DB), 3)), torch.zeros((len(DB), 4)), DB, GT_PX, torch.tensor([1, 7]), HW,
                     ["background", "cat", "dog"])


def test_forced_count_is_the_gts_whose_best_box_is_below_the_threshold():
    """What the Matching page says: a GT's best default box is 'forced' exactly when the
    threshold alone would not give it (best IoU < threshold), one per such GT."""
    from ssd.config import compact256
    from ssd.data.procedural import make_scene
    from ssd.priors import default_boxes

    cfg = compact256()
    db = default_boxes(cfg)
    img, boxes_px, labels = make_scene(7, size=256)
    names = [str(int(v)) for v in labels]
    for thr in (0.3, 0.5, 0.7, 0.95):
        view = mv.matching_view(db, cfg.image_size, boxes_px, names, img.size[::-1], thr)
        below = sum(s["best_possible_iou"] < thr for s in view.summary)
        assert sum(r["forced"] for r in view.records) == below, thr


def test_iou_text_never_rounds_up_to_a_threshold():
    """Issue 19 item 11: "best IoU 0.90" was shown for 0.8968 at threshold 0.90."""
    from explorer.views.matching import iou_text

    assert iou_text(0.8968) == "0.896" and iou_text(0.8999) == "0.899"
    assert iou_text(0.9) == "0.900" and iou_text(1.0) == "1.000" and iou_text(0.0) == "0.000"
