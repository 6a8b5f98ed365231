"""explorer/nms_view.py: who suppressed whom, counts before/after, the figure."""
import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from torchvision.ops import box_iou

from explorer.views import nms as nv
from ssd.data.procedural import CLASSES, make_scene
from ssd.inference import run_stages
from ssd.models import build


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())


def test_keep_mask_from_indices_or_mask():
    assert nv.keep_mask(torch.tensor([2, 0]), 4).tolist() == [True, False, True, False]
    assert nv.keep_mask(torch.tensor([False, True]), 2).tolist() == [False, True]
    assert nv.keep_mask(torch.zeros(0, dtype=torch.long), 3).tolist() == [False] * 3


@pytest.fixture(scope="module")
def stages():
    torch.manual_seed(1)
    model = build("compact256", num_classes=len(CLASSES)).eval()
    img, _, _ = make_scene(3)
    return run_stages(model, img, score_thresh=0.05, nms_thresh=0.45, detections_per_img=20)


def test_records_name_a_kept_same_class_suppressor_with_its_iou(stages):
    recs = nv.candidate_records(stages, list(CLASSES))
    assert len(recs) == len(stages.candidates) > 0
    assert sum(r["kept"] for r in recs) == len(stages.nms.keep)
    final = sorted(r["candidate"] for r in recs if r["final"])
    assert final == sorted(stages.nms.keep[: len(stages.detections)].tolist())
    assert all(r["kept"] for r in recs if r["final"])
    suppressed = [r for r in recs if not r["kept"]]
    assert suppressed, "a random model proposes overlapping boxes"
    boxes = stages.candidates.boxes_xyxy_px
    for r in suppressed:
        s = recs[r["suppressed_by"]]
        assert s["kept"] and s["class"] == r["class"] and s["score"] >= r["score"]
        iou = float(box_iou(boxes[r["candidate"]][None], boxes[s["candidate"]][None]))
        assert r["iou_with_suppressor"] == pytest.approx(iou, abs=1e-3)
        assert iou > 0.45


def test_counts_before_and_after(stages):
    recs = nv.candidate_records(stages, list(CLASSES))
    per_class, per_level = nv.count_table(recs, stages.detections, list(CLASSES), len(stages.feature_sizes))
    assert sum(r["candidates"] for r in per_class) == len(recs)
    assert sum(r["kept_by_nms"] for r in per_level) == len(stages.nms.keep)
    assert sum(r["detections"] for r in per_level) == len(stages.detections) <= 20
    assert all(r["detections"] <= r["kept_by_nms"] <= r["candidates"] for r in per_class + per_level)


def test_nms_figure_traces(stages):
    recs = nv.candidate_records(stages, list(CLASSES))
    fig = nv.nms_figure(recs, "data:image/png;base64,AAAA", stages.image_hw)
    valid(fig)
    names = [t.name for t in fig.data]
    assert any(n.endswith(": kept") for n in names) and any(n.endswith(": suppressed") for n in names)
    assert "suppressed -> suppressor" in names
    hover = [t for t in fig.data if (t.name or "").endswith(": suppressed") and t.mode == "markers"][0].text[0]
    assert "suppressed by " in hover and "#" not in hover and "IoU" in hover  # named, not numbered
    quiet = nv.nms_figure(recs, None, stages.image_hw, show_suppressed=False)
    assert not any((t.name or "").endswith(": suppressed") for t in quiet.data)


def test_nms_legend_is_below_the_plot_clear_of_the_toolbar(stages):
    """Issue 19 item 11: the legend sat above the plot, where Plotly's mode bar (top right)
    covered its last entries; below the plot, and the top margin holds the mode bar."""
    from explorer.views.figures import MODEBAR_PX, legend_clear_of_modebar

    fig = nv.nms_figure(nv.candidate_records(stages, list(CLASSES)), None, stages.image_hw)
    assert legend_clear_of_modebar(fig.layout), fig.layout.legend
    assert fig.layout.legend.orientation == "h" and fig.layout.margin.t >= MODEBAR_PX


def test_class_filter_and_rounded_final_rows():
    records = [{"class": "cat", "kept": True}, {"class": "dog", "kept": False}, {"class": "cat", "kept": False}]
    assert nv.filter_by_class(records, nv.ALL_CLASSES) == records
    assert [r["kept"] for r in nv.filter_by_class(records, "cat")] == [True, False]
    assert nv.filter_by_class(records, "bird") == []
    rows = nv.detection_rows([{"label": "cat", "score": 0.912345678, "box_xyxy": [1.23456789, 2.0, 30.98765, 40.5],
                               "level": 2, "cell": [3, 4], "default_index": 17}])
    assert rows == [{"detection": 1, "class": "cat", "score": 0.9123, "x1": 1.2, "y1": 2.0, "x2": 31.0, "y2": 40.5, "level": 2,
                     "cell": "3,4", "default_index": 17}]


def test_nms_figure_draws_the_ground_truth():
    fig = nv.nms_figure([], None, (80, 100), gt_xyxy_px=np.array([[10, 10, 50, 40]]), gt_names=["cat"])
    gt = [t for t in fig.data if t.name == "ground truth"]
    assert gt and "GT 0: cat" in [t for t in gt if t.mode == "markers"][0].text[0]


def test_markers_carry_the_pick_key_of_their_candidate(stages):
    """A click on a box's centre marker names (default box, class) of that candidate; a GT's
    corner marker names the GT. One GT marker trace, no trace per box."""
    recs = nv.candidate_records(stages, list(CLASSES))
    fig = nv.nms_figure(recs, None, stages.image_hw, gt_xyxy_px=np.array([[10, 10, 50, 40], [5, 6, 7, 8]]),
                        gt_names=["cat", "dog"])
    valid(fig)
    markers = [t for t in fig.data if t.mode == "markers" and t.customdata is not None]
    dets = [(cd, x, y) for t in markers for cd, x, y in zip(t.customdata, t.x, t.y) if cd.startswith("det:")]
    by_key = {f"det:{r['default_index']}:{r['label']}": r for r in recs}
    drawn = [r for r in recs if r["kept"]] + [r for r in recs if not r["kept"]][:400]  # max_suppressed
    assert sorted(cd for cd, _, _ in dets) == sorted(f"det:{r['default_index']}:{r['label']}" for r in drawn)
    for cd, x, y in dets:  # at its box's centre
        r = by_key[cd]
        assert (x, y) == pytest.approx(((r["x1"] + r["x2"]) / 2, (r["y1"] + r["y2"]) / 2))
    gt = [t for t in markers if list(t.customdata) == ["gt:0", "gt:1"]]
    assert len(gt) == 1 and list(gt[0].x) == [10, 5] and list(gt[0].y) == [10, 6]  # top-left corners
