"""The dataset threshold tuner: new thresholds over an evaluated dataset, without the network.

`tune` re-runs only `ssd.postprocess.postprocess` on the kept network outputs
(`explorer.evaluation.kept`) and then the library's scoring (`ssd.evaluation.evaluate.score`, and
`ssd.evaluation.error_types.ErrorAnalysis` for TP / FP / recall per level when asked): AP, recall and
precision per class, the candidates entering NMS and the post-processing time, per
class and per level.
"""
from __future__ import annotations

import time

import torch

from explorer.evaluation.kept import KeptOutputs
from ssd.evaluation.error_types import ErrorAnalysis
from ssd.evaluation.evaluate import score
from ssd.postprocess import DEFAULTS, PostprocessConfig, default_boxes_px_in, postprocess


def _last(values: list, default: float = 0.0) -> float:
    return float(values[-1]) if len(values) else default


def _class_rows(res: dict, class_names, cand_per_class, det_per_class) -> tuple[list[dict], dict]:
    """Per class AP / AP50 / recall / precision at IoU 0.5 of the final detections (the end
    of `ssd.evaluation.metrics.pr_curves`' curve), and the totals over classes."""
    rows, tp_all, gt_all, det_all = [], 0.0, 0, 0
    for c, name in enumerate(class_names[1:], start=1):
        cur = res["curves"][name]
        n_det = len(cur["precision"])
        recall, precision = _last(cur["recall"]), _last(cur["precision"])
        tp_all += recall * cur["num_gt"]
        gt_all += cur["num_gt"]
        det_all += n_det
        ap = res["per_class"].get(name)
        ap50 = res["per_class_AP50"].get(name)
        rows.append({"class": name, "AP": None if ap is None else round(ap, 4),
                     "AP50": None if ap50 is None else round(ap50, 4), "recall": round(recall, 4),
                     "precision": round(precision, 4), "GT": cur["num_gt"],
                     "candidates (into NMS)": int(cand_per_class[c]), "detections": int(det_per_class[c])})
    totals = {"recall": tp_all / gt_all if gt_all else 0.0, "precision": tp_all / det_all if det_all else 0.0,
              "true_positives": round(tp_all), "num_gt": gt_all, "num_detections": det_all}
    return rows, totals


def tune(kept: KeptOutputs, class_names, model_cfg, score_thresh: float, nms_thresh: float, detections_per_img: int,
         topk_candidates: int = DEFAULTS.topk_candidates, num_images: int | None = None, errors: bool = False) -> dict:
    """Post-processing at new thresholds over the first `num_images` evaluated images.

    Args:
        kept: the evaluation's kept outputs; score_thresh must be >= kept.floor.
        class_names: C names, background first; model_cfg: the model's `SSDConfig` (levels).
        score_thresh, nms_thresh, detections_per_img, topk_candidates: the `PostprocessConfig`
            fields of those names.
        errors: also run `ssd.evaluation.error_types.ErrorAnalysis` (TIDE dAP, TP / FP / recall / AP per level).
    Returns:
        {"AP", "AP50", "recall", "precision", "num_images", "candidates", "detections",
        "postprocess_ms_per_image", "per_class": rows, "per_level": rows, "errors"?: report}.
    Raises ValueError for a score threshold below the kept floor or images without any GT.
    """

    if score_thresh < kept.floor:
        raise ValueError(f"score threshold {score_thresh} is below {kept.floor}, the lowest score the "
                         f"evaluation kept; pick >= {kept.floor}")
    cfg = PostprocessConfig(score_thresh=score_thresh, nms_thresh=nms_thresh, topk_candidates=int(topk_candidates),
                            detections_per_img=int(detections_per_img))
    n = kept.num_images if num_images is None else max(1, min(int(num_images), kept.num_images))
    level_of_default = default_boxes_px_in(model_cfg)[0].level  # (A,)
    n_levels, c = len(model_cfg.feature_maps), len(class_names)
    analysis = None
    if errors:
        analysis = ErrorAnalysis(model_cfg, class_names, cfg)
    counts = {k: torch.zeros(size, dtype=torch.long) for k, size in
              (("cand_class", c), ("det_class", c), ("cand_level", n_levels), ("kept_level", n_levels),
               ("det_level", n_levels))}
    gts, dets, post_s = [], [], 0.0
    for i in range(n):
        scores, boxes = kept.dense_image(i)
        t0 = time.perf_counter()
        post = postprocess(scores, boxes, cfg)
        det = post.detections()
        post_s += time.perf_counter() - t0
        cand_level = level_of_default[post.candidate_index]
        counts["cand_class"] += torch.bincount(post.candidate_labels, minlength=c)
        counts["det_class"] += torch.bincount(det["labels"], minlength=c)
        counts["cand_level"] += torch.bincount(cand_level, minlength=n_levels)
        counts["kept_level"] += torch.bincount(cand_level[post.nms.keep], minlength=n_levels)
        counts["det_level"] += torch.bincount(level_of_default[det["default_index"]], minlength=n_levels)
        gt = kept.gt(i)
        if analysis is not None:
            analysis.add_batch([gt], [det], scores[None], boxes[None], [post])
        gts.append(gt)
        dets.append(det)
    if not any(len(g["labels"]) for g in gts):
        raise ValueError(f"the first {n} evaluated images have no ground-truth box: AP is undefined; "
                         f"tune over more images")
    res = score(gts, dets, class_names, curves=True)
    per_class, totals = _class_rows(res, class_names, counts["cand_class"], counts["det_class"])
    per_level = [{"level": k, "feature map": f"{model_cfg.feature_maps[k]}x{model_cfg.feature_maps[k]}",
                  "candidates (into NMS)": int(counts["cand_level"][k]), "kept by NMS": int(counts["kept_level"][k]),
                  "detections": int(counts["det_level"][k])} for k in range(n_levels)]
    out = {"AP": res["AP"], "AP50": res["AP50"], "recall": totals["recall"], "precision": totals["precision"],
           "num_images": n, "candidates": int(counts["cand_class"].sum()), "detections": totals["num_detections"],
           "postprocess_ms_per_image": 1000.0 * post_s / n, "per_class": per_class, "per_level": per_level,
           "thresholds": {"score_thresh": score_thresh, "nms_thresh": nms_thresh, "detections_per_img": int(detections_per_img)}}
    if analysis is not None:
        rep = analysis.report()
        for row, lv in zip(per_level, rep["per_level"]):
            # Named as the Evaluation page's per-level table (explorer.views.evaluation.LEVEL_COLUMNS_NOTE).
            row.update({"its detections: TP": lv["tp"], "its detections: FP": lv["fp"], "GTs it owns": lv["gt"],
                        "of them found": lv["gt_matched"], "recall (found / owned)": lv["recall"],
                        "AP50": lv["AP50"]})
        out["errors"] = rep["errors"]
        out["misses_by_cause"] = rep["misses_by_cause"]
    return out


def detect_flags(checkpoint: str, score_thresh: float, nms_thresh: float, detections_per_img: int) -> str:
    """The `python -m ssd.detect` command that uses these thresholds (its parser's flags)."""
    return (f"python -m ssd.detect IMAGE... --checkpoint {checkpoint} --score-thresh {score_thresh:g} "
            f"--nms-thresh {nms_thresh:g} --detections-per-img {int(detections_per_img)}")
