"""ssd/postprocess.py: one PostprocessConfig, validated; the pipeline equals torchvision's
SSD.postprocess_detections on the same head outputs; every stage is kept."""
from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from ssd.config import compact256
from ssd.postprocess import (PostprocessConfig, decode_boxes_px_in, default_boxes_px_in,
                             level_detections, postprocess, select_candidates)


def test_config_validation_and_overrides():
    cfg = PostprocessConfig()
    assert (cfg.score_thresh, cfg.nms_thresh, cfg.topk_candidates, cfg.detections_per_img) == (0.01, 0.45, 400, 200)
    for bad, match in (({"score_thresh": 1.5}, "score_thresh"), ({"nms_thresh": float("nan")}, "nms_thresh"),
                       ({"detections_per_img": -1}, "detections_per_img"), ({"topk_candidates": 0}, "topk_candidates"),
                       ({"level_score_thresh": "a"}, "level_score_thresh")):
        with pytest.raises(ValueError, match=match):
            PostprocessConfig(**bad)
    assert cfg.with_overrides(detections_per_img=5, score_thresh=None) == PostprocessConfig(detections_per_img=5)
    assert cfg.with_overrides() is cfg
    with pytest.raises(TypeError, match="iou"):
        cfg.with_overrides(iou=0.5)
    with pytest.raises(ValueError, match="detections_per_img"):
        cfg.with_overrides(detections_per_img=-1)


@pytest.fixture(scope="module")
def outputs():
    cfg = compact256(num_classes=5)
    db, default_px_in = default_boxes_px_in(cfg)
    a = default_px_in.shape[0]
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, a, 5, generator=gen) * 2.0  # spread scores: many candidates
    reg = torch.randn(2, a, 4, generator=gen)
    return cfg, db, default_px_in, logits, reg


def test_equals_torchvision_postprocess_detections(outputs):
    cfg, _, default_px_in, logits, reg = outputs
    post_cfg = PostprocessConfig(score_thresh=0.3, topk_candidates=50, detections_per_img=30)
    s = cfg.image_size
    tv_self = types.SimpleNamespace(box_coder=BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)),
                                    score_thresh=post_cfg.score_thresh, topk_candidates=post_cfg.topk_candidates,
                                    nms_thresh=post_cfg.nms_thresh, detections_per_img=post_cfg.detections_per_img)
    theirs = SSD.postprocess_detections(tv_self, {"bbox_regression": reg, "cls_logits": logits},
                                        [default_px_in, default_px_in], [(s, s), (s, s)])
    boxes_px_in = decode_boxes_px_in(reg, default_px_in, s, cfg.variances)  # (2, A, 4)
    assert float(boxes_px_in.min()) >= 0 and float(boxes_px_in.max()) <= s
    for b, t in enumerate(theirs):
        post = postprocess(F.softmax(logits[b], -1), boxes_px_in[b], post_cfg)
        det = post.detections()
        assert 0 < len(det["scores"]) == len(t["scores"]) <= 30
        assert torch.equal(det["labels"], t["labels"]) and torch.equal(det["scores"], t["scores"])
        assert torch.equal(det["boxes_xyxy_px_in"], t["boxes"])
        # stages kept: candidates are per class the best topk_candidates above the threshold
        assert torch.bincount(post.candidate_labels).max() <= 50 and (post.candidate_scores > 0.3).all()
        assert torch.equal(post.final, post.nms.keep[:30])
        assert torch.equal(det["default_index"], post.candidate_index[post.final])


def test_select_candidates_by_hand():
    scores = torch.tensor([[0.1, 0.9, 0.0], [0.5, 0.5, 0.0], [0.3, 0.2, 0.5], [0.0, 0.6, 0.4]])
    idx, sc, lab = select_candidates(scores, PostprocessConfig(score_thresh=0.3, topk_candidates=2))
    assert idx.tolist() == [0, 3, 2, 3] and lab.tolist() == [1, 1, 2, 2]
    assert sc.tolist() == pytest.approx([0.9, 0.6, 0.5, 0.4])


def test_level_detections_keep_levels_and_classes_apart(outputs):
    cfg, db, default_px_in, logits, reg = outputs
    scores = F.softmax(logits[0], -1)
    boxes_px_in = decode_boxes_px_in(reg[0], default_px_in, cfg.image_size)
    post_cfg = PostprocessConfig(level_score_thresh=0.5, level_nms_thresh=0.3)
    idx, lab, sc = level_detections(scores, boxes_px_in, db.level, post_cfg)
    assert len(idx) > 0 and (sc >= 0.5).all() and (sc[1:] <= sc[:-1]).all()
    assert torch.equal(sc, scores[idx, lab])
    lvl = db.level[idx]
    iou = box_iou(boxes_px_in[idx], boxes_px_in[idx])
    same_group = (lvl[:, None] == lvl[None, :]) & (lab[:, None] == lab[None, :])
    same_group.fill_diagonal_(False)
    assert not bool((iou[same_group] > 0.3).any())  # NMS ran within each (level, class)
