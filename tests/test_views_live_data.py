"""explorer/views/live_data.py: what Python sends to the live figures, without Streamlit."""
import json

import numpy as np
import pytest
import torch

from explorer.views import live_data as ld
from ssd.config import compact256, ssd300_voc
from ssd.loss import multibox_loss
from ssd.postprocess import PostprocessConfig, postprocess
from ssd.priors import default_boxes


def test_f32_b64_round_trips_float32_exactly():
    x = torch.tensor([[0.1, 1 / 3], [1e-30, -2.5]], dtype=torch.float32)
    back = ld.f32_from_b64(ld.f32_b64(x))
    assert back.dtype == np.float32 and np.array_equal(back, x.numpy().reshape(-1))
    assert ld.f32_b64([]) == ""


def test_box_config_data_is_json_and_describes_the_config():
    cfg = ssd300_voc()
    d = ld.box_config_data(cfg)
    assert json.loads(json.dumps(d)) == d
    assert d["feature_maps"] == list(cfg.feature_maps) and d["scales"] == list(cfg.scales)
    assert len(d["aspect_ratios"]) == cfg.num_levels


def test_default_boxes_data_carries_rule_controls_and_pick():
    cfg = ssd300_voc()
    controls = {"s_min": 0.2, "s_max": 0.88, "first_separate": True, "s_first": 0.1}
    d = ld.default_boxes_data(cfg, controls, 2, (5, 4), None)
    json.dumps(d)  # JSON-safe (raises otherwise)
    assert (d["level"], d["row"], d["col"]) == (2, 5, 4) and d["rule"]["s_max"] == 0.88


def test_background_conf_loss_is_the_loss_mining_ranks_negatives_by():
    torch.manual_seed(0)
    cfg = compact256()
    db = default_boxes(cfg)
    logits = torch.randn(len(db), cfg.num_classes)
    gt = torch.tensor([[0.1, 0.1, 0.5, 0.6]])
    loss = ld.background_conf_loss(logits, db.cxcywh)
    res = multibox_loss(logits[None], torch.zeros(1, len(db), 4), db.cxcywh, [{"boxes": gt, "labels": torch.tensor([1])}])
    neg = ~res.positive[0]
    assert loss.shape == (len(db),) and torch.equal(loss[neg], res.conf_loss_per_box[0][neg])


def test_nms_data_sends_the_candidates_at_the_floor():
    torch.manual_seed(1)
    a, c = 300, 4
    scores = torch.randn(a, c).softmax(-1)
    xy = torch.rand(a, 2) * 200
    boxes = torch.cat([xy, xy + 30], 1)
    level = torch.zeros(a, dtype=torch.long)
    th = {"score_thresh": 0.3, "nms_thresh": 0.45, "detections_per_img": 200}
    d = ld.nms_data(scores, boxes, boxes * 2, level, ["bg", "a", "b", "c"], (600, 600), th, {"show_links": True}, None)
    json.dumps(d)
    floor = postprocess(scores, boxes, PostprocessConfig(score_thresh=ld.SCORE_THRESH_RANGE[0]))
    assert d["labels"] == floor.candidate_labels.tolist()
    assert np.array_equal(ld.f32_from_b64(d["scores"]), floor.candidate_scores.numpy())
    assert np.array_equal(ld.f32_from_b64(d["boxes_px"]).reshape(-1, 4), (boxes * 2)[floor.candidate_index].numpy())
    assert d["score_thresh"] == 0.3 and d["class_names"][1] == "a"
    assert "row" not in d and d["num_levels"] == 1  # no cells given; one level in `level`
    row, col = torch.arange(a) // 20, torch.arange(a) % 20
    cells = ld.nms_data(scores, boxes, boxes * 2, level, ["bg", "a", "b", "c"], (600, 600), th, {}, None,
                        row=row, col=col, num_levels=6)
    assert cells["row"] == row[floor.candidate_index].tolist() and cells["col"] == col[floor.candidate_index].tolist()
    assert cells["num_levels"] == 6


def test_ranges_match_the_server_sliders():
    assert ld.SCORE_THRESH_RANGE == (0.01, 0.95, 0.01)
    assert ld.MATCH_IOU_RANGE == (0.05, 0.95, 0.05)
    with pytest.raises(ValueError):
        ld.f32_from_b64("abc")
