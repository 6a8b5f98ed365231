"""Evaluation that explains errors: what `python -m ssd.evaluate --errors` adds.

`ErrorAnalysis` is fed image by image during evaluation (`add_batch`, with the stages
post-processing kept) and `report()` gives, next to the AP figures:
- "errors": TIDE's six error types (Cls, Loc, Both, Dupe, Bkg, Miss) with their count and
  the AP50 each costs (dAP x 100, as TIDE reports), `ssd.errors.tide`;
- "per_level": per feature map, the detections it made that are TP / FP (by error type),
  the GTs it owns (the level of each GT's best default box), their recall, and the AP
  over the GTs it owns (`ssd.metrics.coco_eval_by`);
- "misses_by_cause" and "misses": why each missed GT was missed, `ssd.errors.causes`;
- "confusion": GT class (rows, background first) x predicted class (columns, background
  first = missed) for detections scoring >= `confusion_score_thresh`, IoU >= 0.5.

Letters: B = images of a batch, A = default boxes, C = classes incl. background, G = GTs, D = detections.
Boxes: `_px_in` = network-input pixels, the evaluation frame.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from ssd.config import SSDConfig
from ssd.errors.causes import CAUSES, miss_cause
from ssd.errors.tide import ERROR_TYPES, TP, TideAccumulator, TideConfig, classify_image
from ssd.postprocess import PostprocessConfig, Postprocessed, default_boxes_px_in

def _confusion_image(conf: Tensor, det: dict, gt: dict, score_thresh: float, iou_thresh: float = 0.5) -> None:
    """Add one image to the (C, C) confusion matrix: detections above `score_thresh`, best
    first, each matched to the untaken GT of highest IoU >= iou_thresh, whatever its class."""
    keep = det["scores"] >= score_thresh
    d_box, d_lab = det["boxes_xyxy_px_in"][keep], det["labels"][keep].long()
    g_box, g_lab = gt["boxes_xyxy_px_in"], gt["labels"].long()
    taken = torch.zeros(len(g_lab), dtype=torch.bool)
    iou = box_iou(d_box, g_box) if len(g_lab) and len(d_lab) else torch.zeros(len(d_lab), len(g_lab))
    for n in range(len(d_lab)):  # detections are by descending score
        row = iou[n].masked_fill(taken, -1.0)
        j = int(row.argmax()) if len(g_lab) else -1
        if j >= 0 and float(row[j]) >= iou_thresh:
            taken[j] = True
            conf[int(g_lab[j]), int(d_lab[n])] += 1
        else:
            conf[0, int(d_lab[n])] += 1  # fired on background
    for j in torch.where(~taken)[0].tolist():
        conf[int(g_lab[j]), 0] += 1  # missed


class ErrorAnalysis:
    """Accumulates the error analysis over an evaluation (see module docstring).

    Args:
        model_cfg: the model's `SSDConfig` (default boxes and feature maps).
        class_names: C names, background first.
        post_cfg: the post-processing thresholds the detections were made with.
        tide_cfg: TIDE's thresholds (foreground IoU 0.5, background IoU 0.1, 100 detections).
        confusion_score_thresh: detections counted in the confusion matrix score >= this.
    """

    def __init__(self, model_cfg: SSDConfig, class_names, post_cfg: PostprocessConfig = PostprocessConfig(),
                 tide_cfg: TideConfig = TideConfig(), confusion_score_thresh: float = 0.5):
        self.class_names = list(class_names)
        self.post_cfg, self.tide_cfg = post_cfg, tide_cfg
        self.feature_maps = list(model_cfg.feature_maps)
        db, self.default_xyxy_px_in = default_boxes_px_in(model_cfg)
        self.level_of_default = db.level
        self.confusion_score_thresh = confusion_score_thresh
        self.tide = TideAccumulator(tide_cfg)
        c, n_levels = len(self.class_names), len(self.feature_maps)
        self.confusion = torch.zeros(c, c, dtype=torch.long)
        self.level_counts = [dict({"tp": 0, "fp": 0, "gt": 0, "gt_matched": 0}, **{t: 0 for t in ERROR_TYPES[:-1]})
                             for _ in range(n_levels)]
        self.misses: list[dict] = []
        self.gts: list[dict] = []
        self.dets: list[dict] = []
        self.gt_level: list[Tensor] = []
        self.det_level: list[Tensor] = []

    def add_batch(self, gts: list[dict], dets: list[dict], scores: Tensor, boxes_px_in: Tensor,
                  posts: list[Postprocessed]) -> None:
        """One batch: gts / dets per image as `ssd.evaluate.collect` builds them,
        scores (B, A, C) and boxes_px_in (B, A, 4) from `forward_batch`, and the `Postprocessed`."""
        for b, (gt, det, post) in enumerate(zip(gts, dets, posts)):
            self._add_image(gt, det, scores[b].cpu(), post)

    def _add_image(self, gt: dict, det: dict, scores: Tensor, post: Postprocessed) -> None:
        image = len(self.gts)
        g_box, g_lab = gt["boxes_xyxy_px_in"].float(), gt["labels"].long()
        res = classify_image(det["boxes_xyxy_px_in"], det["scores"], det["labels"], g_box, g_lab, self.tide_cfg)
        self.tide.add(det["scores"], det["labels"], g_lab, res)
        iou_default = box_iou(g_box, self.default_xyxy_px_in)  # (G, A)
        g_level = self.level_of_default[iou_default.argmax(1)] if len(g_lab) else torch.zeros(0, dtype=torch.long)
        d_level = self.level_of_default[det["default_index"].cpu()]
        for n, kind in zip(res.order.tolist(), res.kind):
            counts = self.level_counts[int(d_level[n])]
            counts["tp" if kind == TP else "fp"] += 1
            if kind != TP:
                counts[kind] += 1
        for j in range(len(g_lab)):
            counts = self.level_counts[int(g_level[j])]
            counts["gt"] += 1
            counts["gt_matched"] += int(res.gt_matched[j])
            if not bool(res.gt_matched[j]):
                rec = miss_cause(int(g_lab[j]), iou_default[j], scores, post, self.post_cfg, self.tide_cfg.max_dets)
                self.misses.append(dict(rec, image=image, gt=j, label=self.class_names[int(g_lab[j])],
                                        level=int(g_level[j])))
        _confusion_image(self.confusion, det, gt, self.confusion_score_thresh)
        self.gts.append(gt)
        self.dets.append(det)
        self.gt_level.append(g_level)
        self.det_level.append(d_level)

    def _per_level(self) -> list[dict]:
        from ssd.metrics import coco_eval_by

        ranges = {str(k): (float(k), float(k)) for k in range(len(self.feature_maps))}
        ap = coco_eval_by(self.gts, self.dets, self.class_names, self.gt_level, self.det_level, ranges)
        out = []
        for k, c in enumerate(self.level_counts):
            out.append({"level": k, "feature_map": [self.feature_maps[k]] * 2, "tp": c["tp"], "fp": c["fp"],
                        "fp_by_type": {t: c[t] for t in ERROR_TYPES[:-1]}, "gt": c["gt"],
                        "gt_matched": c["gt_matched"], "recall": c["gt_matched"] / c["gt"] if c["gt"] else None,
                        "AP": ap[str(k)]["AP"], "AP50": ap[str(k)]["AP50"]})
        return out

    def report(self) -> dict:
        """{"errors", "per_level", "misses_by_cause", "misses", "confusion"} (JSON-ready); AP by
        size comes from the main pycocotools run (`ssd.metrics.coco_eval`'s "by_size")."""
        by_cause = {c: 0 for c in CAUSES}
        for m in self.misses:
            by_cause[m["cause"]] += 1
        tide = self.tide.errors()
        return {
            "errors": {"tide_AP50": tide["AP50"], "dAP": tide["dAP"], "counts": tide["counts"],
                       "pos_thresh": self.tide_cfg.pos_thresh, "bg_thresh": self.tide_cfg.bg_thresh,
                       "max_dets": self.tide_cfg.max_dets},
            "per_level": self._per_level(),
            "misses_by_cause": by_cause,
            "misses": self.misses,
            "confusion": {"classes": self.class_names, "score_thresh": self.confusion_score_thresh,
                          "matrix": self.confusion.tolist()},
        }


def format_report(res: dict) -> str:
    """The error analysis of `report()` as a few lines of text."""
    e = res["errors"]
    lines = [f"TIDE (AP50 {e['tide_AP50']:.2f}): " + "  ".join(
        f"{t} {e['dAP'][t]:.2f} ({e['counts'][t]})" for t in ERROR_TYPES) + "   [dAP (count)]"]
    for lv in res["per_level"]:
        rec = "-" if lv["recall"] is None else f"{lv['recall']:.3f}"
        lines.append(f"  level {lv['level']} {lv['feature_map'][0]}x{lv['feature_map'][1]}: TP {lv['tp']} "
                     f"FP {lv['fp']}  GT {lv['gt']} recall {rec}  AP50 {lv['AP50']}")
    lines.append("  misses by cause: " + ", ".join(f"{k} {v}" for k, v in res["misses_by_cause"].items()))
    if "ap_by_size" in res:
        lines.append("  AP by size (px_in): " + ", ".join(
            f"{k} {v['AP']} ({v['num_gt']} GT)" for k, v in res["ap_by_size"].items()))
    return "\n".join(lines)
