"""Why each missed object was missed, read from the stages post-processing kept.

A ground truth (GT) is missed when no final detection matched it (same class, IoU >= 0.5,
TIDE's greedy matching). Its cause, the first that applies:
- "no_default_box": no default box reaches the matching threshold (IoU 0.5, Sec. 2.2), so
  training never asked any default box to predict it.
- "low_score": its default boxes (IoU >= 0.5) never scored its class above the score threshold.
- "count_limit": the best-scoring of them did, but was cut by a count limit: the per-class
  `topk_candidates` before NMS, or `detections_per_img` / the evaluation's max detections after.
- "suppressed_by_nms": it was a candidate, and NMS removed it; the record names the kept
  candidate that removed it (its default box) and their IoU.
- "mislocalized": it survived as a final detection, but its decoded box did not match the
  GT (IoU < 0.5, or the GT went to another detection).
Counts over the five always sum to the misses.

Letters: A = default boxes, C = classes, N = candidates of the image.
"""
from __future__ import annotations

from torch import Tensor

from ssd.postprocess import PostprocessConfig, Postprocessed

CAUSES = ("no_default_box", "low_score", "count_limit", "suppressed_by_nms", "mislocalized")
MATCH_IOU = 0.5  # Sec. 2.2: a default box is matched to a GT at IoU >= 0.5 (Jaccard overlap)


def miss_cause(gt_label: int, iou_default: Tensor, scores: Tensor, post: Postprocessed,
               cfg: PostprocessConfig, max_dets: int) -> dict:
    """The cause of one missed GT.

    Args:
        gt_label: its class 1..C-1.
        iou_default: (A,) IoU of the GT with every default box (network-input frame).
        scores: (A, C) softmax scores of the image.
        post: the image's `Postprocessed`.
        cfg: the thresholds used; max_dets: detections per image the evaluation considered.
    Returns:
        {"cause", "best_default_iou", "default_index" (best-scoring matched default box or -1),
        "score", and for "suppressed_by_nms": "suppressed_by_default_index", "suppress_iou"}.
    """
    best_iou = float(iou_default.max()) if iou_default.numel() else 0.0
    rec = {"cause": "no_default_box", "best_default_iou": best_iou, "default_index": -1, "score": 0.0}
    if best_iou < MATCH_IOU:
        return rec
    matched = (iou_default >= MATCH_IOU).nonzero()[:, 0]  # (M,) default boxes matched to the GT
    sc = scores[matched, gt_label]
    best = int(sc.argmax())
    m, s = int(matched[best]), float(sc[best])
    rec.update(default_index=m, score=s)
    if s <= cfg.score_thresh:
        return dict(rec, cause="low_score")
    pos = ((post.candidate_index == m) & (post.candidate_labels == gt_label)).nonzero()[:, 0]
    if pos.numel() == 0:  # scored above the threshold, not among the class's topk_candidates
        return dict(rec, cause="count_limit")
    p = int(pos[0])
    if not bool(post.nms.kept[p]):
        by = int(post.nms.suppressed_by[p])
        return dict(rec, cause="suppressed_by_nms", suppressed_by_default_index=int(post.candidate_index[by]),
                    suppress_iou=float(post.nms.suppress_iou[p]))
    rank = int((post.nms.keep == p).nonzero()[0, 0])  # keep is by descending score
    if rank >= min(cfg.detections_per_img, max_dets):
        return dict(rec, cause="count_limit")
    return dict(rec, cause="mislocalized")
