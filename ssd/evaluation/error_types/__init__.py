"""Evaluation that explains errors: what `python -m ssd.evaluate --errors` adds.

`ErrorAnalysis` is fed image by image during evaluation (`add_batch`, with the stages
post-processing kept) and `report()` gives, next to the AP figures:
- "errors": TIDE's six error types (Cls, Loc, Both, Dupe, Bkg, Miss) with their count and
  the AP50 each costs (dAP x 100, as TIDE reports), `ssd.evaluation.error_types.tide`;
- "per_level": per feature map, the detections it made that are TP / FP (by error type),
  the GTs it owns (the level of each GT's best default box), their recall, and the AP
  over the GTs it owns (`ssd.evaluation.metrics.coco_eval_by`);
- "misses_by_cause" and "misses": why each missed GT was missed, `ssd.evaluation.error_types.causes`;
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
from ssd.evaluation.error_types.causes import CAUSES, miss_cause
from ssd.evaluation.error_types.tide import (ERROR_TYPES, KINDS, TideAccumulator, TideConfig, batched_box_iou,
                                             classify_batch, greedy_match, pad)
from ssd.evaluation.metrics import coco_eval_by
from ssd.postprocess import PostprocessConfig, Postprocessed, default_boxes_px_in


def _confusion_batch(conf: Tensor, dets: list[dict], gts: list[dict], score_thresh: float,
                     iou_thresh: float = 0.5) -> None:
    """Add a batch to the (C, C) confusion matrix: per image, detections above `score_thresh`,
    best first, each matched to the untaken GT of highest IoU >= iou_thresh, whatever its class."""
    keeps = [d["scores"] >= score_thresh for d in dets]
    d_box, d_valid = pad([d["boxes_xyxy_px_in"][k].float().reshape(-1, 4) for d, k in zip(dets, keeps)])
    d_lab, _ = pad([d["labels"][k].long().reshape(-1) for d, k in zip(dets, keeps)])
    g_box, g_valid = pad([g["boxes_xyxy_px_in"].float().reshape(-1, 4) for g in gts])
    g_lab, _ = pad([g["labels"].long().reshape(-1) for g in gts])
    pair = d_valid[:, :, None] & g_valid[:, None, :]  # (B, D, G)
    iou = batched_box_iou(d_box, g_box).double().masked_fill(~pair, -1.0)
    j, taken = greedy_match(iou, d_valid, iou_thresh)  # detections are by descending score
    g_lab0 = torch.cat([g_lab, torch.zeros(len(gts), 1, dtype=torch.long)], 1)  # (B, G + 1): gather never empty
    row = torch.where(j >= 0, torch.gather(g_lab0, 1, j.clamp(min=0)), 0)  # GT class, 0 = fired on background
    conf.index_put_((row[d_valid], d_lab[d_valid]), torch.ones(int(d_valid.sum()), dtype=conf.dtype), accumulate=True)
    missed = g_valid & ~taken
    conf.index_put_((g_lab[missed], torch.zeros_like(g_lab[missed])), torch.ones(int(missed.sum()), dtype=conf.dtype),
                    accumulate=True)


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
        # per level: detections by `KINDS` code (TP, Cls, Loc, Both, Dupe, Bkg); GTs owned; of them matched
        self.level_kinds = torch.zeros(n_levels, len(KINDS), dtype=torch.long)
        self.level_gt = torch.zeros(n_levels, dtype=torch.long)
        self.level_gt_matched = torch.zeros(n_levels, dtype=torch.long)
        self.misses: list[dict] = []
        self.gts: list[dict] = []
        self.dets: list[dict] = []
        self.gt_level: list[Tensor] = []
        self.det_level: list[Tensor] = []

    def add_batch(self, gts: list[dict], dets: list[dict], scores: Tensor, boxes_px_in: Tensor,
                  posts: list[Postprocessed]) -> None:
        """One batch: gts / dets per image as `ssd.evaluation.evaluate.collect` builds them,
        scores (B, A, C) and boxes_px_in (B, A, 4) from `forward_batch`, and the `Postprocessed`."""
        raw, gts = gts, [{"boxes_xyxy_px_in": g["boxes_xyxy_px_in"].float().reshape(-1, 4),
                          "labels": g["labels"].long().reshape(-1)} for g in gts]
        results = classify_batch(dets, gts, self.tide_cfg)
        sizes = [len(g["labels"]) for g in gts]
        all_gt = torch.cat([g["boxes_xyxy_px_in"] for g in gts])  # (sum G, 4)
        iou_default = box_iou(all_gt, self.default_xyxy_px_in)  # (sum G, A)
        g_levels = self.level_of_default[iou_default.argmax(1)] if len(all_gt) else torch.zeros(0, dtype=torch.long)
        starts = [sum(sizes[:b]) for b in range(len(gts))]
        for b, (gt, det, post, res) in enumerate(zip(gts, dets, posts, results)):
            rows = slice(starts[b], starts[b] + sizes[b])
            self._add_image(gt, det, scores[b].cpu(), post, res, g_levels[rows], iou_default[rows])
            self.gts[-1] = raw[b]
        _confusion_batch(self.confusion, dets, gts, self.confusion_score_thresh)

    def _add_image(self, gt: dict, det: dict, scores: Tensor, post: Postprocessed, res, g_level: Tensor,
                   iou_default: Tensor) -> None:
        image = len(self.gts)
        g_lab = gt["labels"]
        self.tide.add(det["scores"], det["labels"], g_lab, res)
        d_level = self.level_of_default[det["default_index"].cpu()]
        self.level_kinds.index_put_((d_level[res.order], res.code), torch.ones(len(res.order), dtype=torch.long),
                                    accumulate=True)
        self.level_gt += torch.bincount(g_level, minlength=len(self.feature_maps))
        self.level_gt_matched += torch.bincount(g_level[res.gt_matched], minlength=len(self.feature_maps))
        for j in torch.where(~res.gt_matched)[0].tolist():
            rec = miss_cause(int(g_lab[j]), iou_default[j], scores, post, self.post_cfg, self.tide_cfg.max_dets)
            self.misses.append(dict(rec, image=image, gt=j, label=self.class_names[int(g_lab[j])],
                                    level=int(g_level[j])))
        self.gts.append(gt)
        self.dets.append(det)
        self.gt_level.append(g_level)
        self.det_level.append(d_level)

    def _per_level(self) -> list[dict]:
        ranges = {str(k): (float(k), float(k)) for k in range(len(self.feature_maps))}
        ap = coco_eval_by(self.gts, self.dets, self.class_names, self.gt_level, self.det_level, ranges)
        out = []
        for k in range(len(self.feature_maps)):
            kinds = dict(zip(KINDS, self.level_kinds[k].tolist()))
            gt, gt_matched = int(self.level_gt[k]), int(self.level_gt_matched[k])
            out.append({"level": k, "feature_map": [self.feature_maps[k]] * 2, "tp": kinds["TP"],
                        "fp": sum(kinds[t] for t in ERROR_TYPES[:-1]),
                        "fp_by_type": {t: kinds[t] for t in ERROR_TYPES[:-1]}, "gt": gt,
                        "gt_matched": gt_matched, "recall": gt_matched / gt if gt else None,
                        "AP": ap[str(k)]["AP"], "AP50": ap[str(k)]["AP50"]})
        return out

    def report(self) -> dict:
        """{"errors", "per_level", "misses_by_cause", "misses", "confusion"} (JSON-ready); AP by
        size comes from the main pycocotools run (`ssd.evaluation.metrics.coco_eval`'s "by_size")."""
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
