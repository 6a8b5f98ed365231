"""What Python sends once to the page's live figures (`pages/_live.py`, `pages/live/*.js`):
JSON-safe dicts, one per image / model / box configuration. The page recomputes the
figure from them on every slider step; the library stays the owner of the maths and
`tests/test_browser_live.py` proves the page's mirror equal to it on the same data.

Large float arrays travel as base64 of little-endian float32 bytes (`f32_b64`): a third
of the size of JSON numbers, and bit-exact, so the page computes on the very float32
values the library used.

Frames: `_norm` = fractions of the network input side; `_px_in` = network-input pixels
(S x S, the NMS frame); `_px` = original-image pixels (the figures' frame).
Letters: A = default boxes, G = ground-truth boxes, N = candidates before NMS, C = classes.
"""
from __future__ import annotations

import base64

import numpy as np
import torch
from torch import Tensor

from explorer.views.figures import CLASS_COLORS, GT_COLOR, LEVEL_COLORS
from explorer.views.default_box_figure import ratio_color
from ssd.config import SSDConfig
from ssd.loss import multibox_loss
from ssd.postprocess import DEFAULTS, PostprocessConfig, postprocess

# The live controls' ranges (shared with the pages' server-side sliders).
SCORE_THRESH_RANGE = (DEFAULTS.score_thresh, 0.95, 0.01)  # NMS page: min (= the library's candidate floor), max, step
NMS_THRESH_RANGE = (0.05, 0.95, 0.05)
DETECTIONS_PER_IMG_RANGE = (1, 400, 1)
MATCH_IOU_RANGE = (0.05, 0.95, 0.05)
NEG_POS_RANGE = (0.0, 10.0, 0.5)
S_MIN_RANGE = (0.02, 1.0, 0.01)
S_MAX_RANGE = (0.05, 1.5, 0.01)
IMAGE_SIZE_RANGE = (64, 1024, 4)


def f32_b64(values) -> str:
    """(any shape) numbers -> base64 of their float32 little-endian bytes, flattened (C order)."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    arr = np.ascontiguousarray(np.asarray(values, dtype="<f4")).reshape(-1)
    return base64.b64encode(arr.tobytes()).decode("ascii")


def f32_from_b64(text: str) -> np.ndarray:
    """Inverse of `f32_b64`: a flat float32 array."""
    return np.frombuffer(base64.b64decode(text), dtype="<f4").copy()


def box_config_data(cfg: SSDConfig) -> dict:
    """The default-box part of `cfg` (what `ssd.priors.default_boxes` reads)."""
    return {"image_size": int(cfg.image_size), "feature_maps": [int(f) for f in cfg.feature_maps],
            "steps": [float(s) for s in cfg.steps], "scales": [float(s) for s in cfg.scales],
            "aspect_ratios": [[float(r) for r in rs] for rs in cfg.aspect_ratios],
            "extra_box": bool(cfg.extra_box), "clip": bool(cfg.clip)}


def default_boxes_data(cfg: SSDConfig, controls: dict, level: int, cell: tuple[int, int],
                       image_uri: str | None) -> dict:
    """The Default boxes figure's data: the configuration, the paper's-rule controls
    (`s_min`, `s_max`, first level on its own and its scale), the picked level and cell
    (row, col), the whole configuration (`config_dict`: its `to_dict`, for the page's JSON
    download), and the figure background (the image stretched to S x S)."""
    return {"config": box_config_data(cfg), "config_dict": cfg.to_dict(),
            "rule": {"s_min": float(controls["s_min"]), "s_max": float(controls["s_max"]),
                     "first_separate": bool(controls["first_separate"]), "s_first": float(controls["s_first"])},
            "level": int(level), "row": int(cell[0]), "col": int(cell[1]),
            "ranges": {"s_min": S_MIN_RANGE, "s_max": S_MAX_RANGE, "image_size": IMAGE_SIZE_RANGE},
            "colors": {"ratio": [ratio_color(b) for b in range(8)], "level": list(LEVEL_COLORS)}, "image_uri": image_uri}


def background_conf_loss(cls_logits: Tensor, default_cxcywh: Tensor) -> Tensor:
    """(A,) float32: each default box's confidence loss against background, the key hard
    negative mining ranks negatives by (`ssd.loss.multibox_loss`'s `conf_loss_per_box` on
    an image without ground truth: every target is background)."""
    logits = cls_logits.reshape(1, -1, cls_logits.shape[-1]).float()  # (A, C) -> (1, A, C)
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    with torch.no_grad():
        res = multibox_loss(logits, torch.zeros((1, logits.shape[1], 4)), default_cxcywh.float(), [empty])
    return res.conf_loss_per_box[0]


def matching_data(cfg: SSDConfig, gt_xyxy_norm: Tensor, gt_names: list[str], gt_xyxy_px: Tensor,
                  image_hw: tuple[int, int], iou_thresh: float, neg_pos_ratio: float, image_uri: str | None,
                  class_names: list[str], section: str = "positives") -> dict:
    """The Matching figure's data: the model's box configuration (the page generates the
    default boxes), the GT normalised (`ssd.boxes.px_to_norm`, the boxes
    `ssd.matching.match` gets) and in pixels (to draw), the model's class names, the
    current IoU threshold and neg:pos ratio, and the page's section whose tables the page
    draws ("positives", "loss" or "encoding": none). The per-box losses come with it
    (`explorer.views.live_matching.matching_box_data`)."""
    g = gt_xyxy_norm.reshape(-1, 4)
    return {"config": box_config_data(cfg), "gt_norm": f32_b64(g), "num_gt": int(g.shape[0]),
            "gt_px": [[float(v) for v in row] for row in gt_xyxy_px.reshape(-1, 4).tolist()],
            "gt_names": [str(n) for n in gt_names], "class_names": [str(n) for n in class_names],
            "image_hw": [int(image_hw[0]), int(image_hw[1])], "iou_thresh": float(iou_thresh),
            "neg_pos_ratio": float(neg_pos_ratio), "section": section,
            "ranges": {"iou_thresh": MATCH_IOU_RANGE, "neg_pos_ratio": NEG_POS_RANGE},
            "colors": {"gt": GT_COLOR, "level": list(LEVEL_COLORS)}, "image_uri": image_uri}


def nms_candidates(scores: Tensor, boxes_px_in: Tensor, floor: float = SCORE_THRESH_RANGE[0],
                   topk_candidates: int = PostprocessConfig.topk_candidates):
    """The candidates at the score floor (`ssd.postprocess.postprocess`): every slider
    position at or above the floor selects a subset of them. (A, C) softmax scores,
    (A, 4) decoded boxes in input px -> `Postprocessed`."""
    return postprocess(scores, boxes_px_in, PostprocessConfig(score_thresh=floor, topk_candidates=topk_candidates))


def nms_data(scores: Tensor, boxes_px_in: Tensor, boxes_xyxy_px: Tensor, level: Tensor, class_names: list[str],
             image_hw: tuple[int, int], thresholds: dict, draw: dict, image_uri: str | None,
             row: Tensor | None = None, col: Tensor | None = None, num_levels: int | None = None) -> dict:
    """The NMS figure's data: the candidates at the score floor, in the library's order
    (classes in order, each by score), with their boxes in input px (the frame NMS runs
    in) and original px (to draw), scores, labels, default box, level and cell (`row`,
    `col`: (A,) per default box, when given); the class names (drawn as text) and the
    number of levels (the per-level table); the thresholds (`score_thresh`, `nms_thresh`,
    `detections_per_img`) and drawing options (`show_suppressed`, `show_links`, `only_class`)."""
    post = nms_candidates(scores, boxes_px_in)
    idx = post.candidate_index
    cells = {} if row is None or col is None else {"row": row[idx].tolist(), "col": col[idx].tolist()}
    return {"boxes_px_in": f32_b64(post.candidate_boxes_px_in), "boxes_px": f32_b64(boxes_xyxy_px[idx]),
            "scores": f32_b64(post.candidate_scores), "labels": post.candidate_labels.tolist(),
            "default_index": idx.tolist(), "level": level[idx].tolist(), **cells,
            "num_levels": int(num_levels if num_levels is not None else int(level.max()) + 1 if len(level) else 0),
            "class_names": [str(n) for n in class_names], "image_hw": [int(image_hw[0]), int(image_hw[1])],
            "score_thresh": float(thresholds["score_thresh"]), "nms_thresh": float(thresholds["nms_thresh"]),
            "detections_per_img": int(thresholds["detections_per_img"]),
            "ranges": {"score_thresh": SCORE_THRESH_RANGE, "nms_thresh": NMS_THRESH_RANGE,
                       "detections_per_img": DETECTIONS_PER_IMG_RANGE},
            "draw": dict(draw), "colors": {"class": list(CLASS_COLORS), "gt": GT_COLOR}, "image_uri": image_uri}
