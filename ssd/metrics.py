"""Detection metrics: COCO AP through pycocotools (built in memory), and the VOC2007
11-point mAP the SSD paper reports (Sec. 3.1-3.3), with precision/recall curves.

Inputs everywhere: per image a ground-truth dict {"boxes_xyxy_px_in": (G, 4), "labels": (G,)}
and a detection dict {"boxes_xyxy_px_in": (N, 4), "scores": (N,), "labels": (N,)}; labels
are 1..C-1 (0 = background never appears). Boxes are in network-input pixels, the frame
`ssd.evaluate` scores in (any one pixel frame works if both sides share it).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torchvision.ops import box_iou


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def coco_gt_json(gts: list[dict], class_names, image_hw: tuple[int, int] = (1, 1)) -> dict:
    """Ground truth as a COCO instances dict (image ids 1..B, bbox = [x, y, w, h] px).

    Each annotation also carries its box as a polygon `segmentation`, so tools that need
    one (tidecv's COCO reader) accept the file. `image_hw` = (H, W) written for every image.
    """
    images, annotations = [], []
    for i, g in enumerate(gts):
        images.append({"id": i + 1, "file_name": f"image_{i:06d}", "width": int(image_hw[1]), "height": int(image_hw[0])})
        for b, lab in zip(_np(g["boxes_xyxy_px_in"]).reshape(-1, 4).tolist(), _np(g["labels"]).reshape(-1).tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(lab),
                                "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0,
                                "segmentation": [[b[0], b[1], b[2], b[1], b[2], b[3], b[0], b[3]]]})
    cats = [{"id": k, "name": n} for k, n in enumerate(class_names) if k > 0]
    return {"images": images, "annotations": annotations, "categories": cats}


def coco_results_json(dets: list[dict]) -> list[dict]:
    """Detections as a COCO results list: {"image_id" (1..B), "category_id", "bbox" [x, y, w, h], "score"}."""
    results = []
    for i, d in enumerate(dets):
        for b, s, lab in zip(_np(d["boxes_xyxy_px_in"]).reshape(-1, 4).tolist(),
                             _np(d["scores"]).reshape(-1).tolist(), _np(d["labels"]).reshape(-1).tolist()):
            results.append({"image_id": i + 1, "category_id": int(lab), "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                            "score": float(s)})
    return results


def check_coco_results(results, gt: dict, source: str = "detections") -> None:
    """Raise ValueError naming `source` if a results list does not fit the ground truth
    `gt` (a `coco_gt_json` dict): not a list of dicts with image_id / category_id / bbox /
    score, an image id or category id the ground truth does not have."""
    if not isinstance(results, list):
        raise ValueError(f"{source}: expected a COCO results list, got {type(results).__name__}")
    image_ids = {im["id"] for im in gt["images"]}
    cat_ids = {c["id"] for c in gt["categories"]}
    for n, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(r):
            raise ValueError(f"{source}: entry {n} needs image_id, category_id, bbox and score")
        if r["image_id"] not in image_ids:
            raise ValueError(f"{source}: entry {n} has image_id {r['image_id']!r}, which the ground truth does "
                             f"not have (its ids are {min(image_ids)}..{max(image_ids)})" if image_ids else
                             f"{source}: entry {n} has image_id {r['image_id']!r} but the ground truth has no images")
        if r["category_id"] not in cat_ids:
            raise ValueError(f"{source}: entry {n} has category_id {r['category_id']!r}, not one of {sorted(cat_ids)}")
        if len(r["bbox"]) != 4:
            raise ValueError(f"{source}: entry {n} bbox must be [x, y, w, h], got {r['bbox']!r}")


def coco_eval(gts: list[dict], dets: list[dict], class_names) -> dict:
    """COCO-style AP with pycocotools.

    Returns {"AP": AP@[.5:.95], "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "per_class": {name: AP@[.5:.95]}, "per_class_AP50": {name: AP50}, "by_size": {"small" |
    "medium" | "large": {"AP", "AP50", "num_gt"}}}; a class with no
    ground truth gets nan-free -1 excluded from means (pycocotools' convention) and is
    reported as None.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    names = list(class_names)
    gt_json = coco_gt_json(gts, names)
    images, annotations, results = gt_json["images"], gt_json["annotations"], coco_results_json(dets)
    empty = {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AP_small": 0.0, "AP_medium": 0.0, "AP_large": 0.0,
             "per_class": {n: 0.0 for n in names[1:]}, "per_class_AP50": {n: 0.0 for n in names[1:]},
             "by_size": {}}
    if not annotations:
        raise ValueError("coco_eval needs at least one ground-truth box")
    if not results:
        return empty
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    precision = ev.eval["precision"]  # (T iou thresholds, R recall points, K classes, A areas, M maxDets)
    per_class, per_class50 = {}, {}
    for k, cat_id in enumerate(ev.params.catIds):
        p_all = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        name = names[cat_id]
        per_class[name] = float(p_all[p_all > -1].mean()) if (p_all > -1).any() else None
        per_class50[name] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else None
    out = {"AP": s[0], "AP50": s[1], "AP75": s[2], "AP_small": s[3], "AP_medium": s[4], "AP_large": s[5]}
    out = {k: max(0.0, float(v)) for k, v in out.items()}  # -1 = "no such boxes" -> 0
    out["per_class"], out["per_class_AP50"] = per_class, per_class50
    out["by_size"] = _by_area(ev, annotations)
    return out


def _by_area(ev, annotations: list[dict]) -> dict:
    """{"small" | "medium" | "large": {"AP", "AP50", "num_gt"}} from a finished COCOeval
    (COCO's area bins, pixels^2 of the frame the boxes are in); None where no GT."""
    out = {}
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    for a, name in enumerate(ev.params.areaRngLbl):
        if name == "all":
            continue
        lo, hi = ev.params.areaRng[a]
        p_all, p50 = precision[:, :, :, a, -1], precision[0, :, :, a, -1]
        has = (p_all > -1).any()
        out[name] = {"AP": float(p_all[p_all > -1].mean()) if has else None,
                     "AP50": float(p50[p50 > -1].mean()) if has else None,
                     "num_gt": sum(1 for g in annotations if lo <= g["area"] <= hi)}
    return out


def voc07_ap(recall, precision) -> float:
    """VOC2007 11-point interpolated AP: mean over t in {0, 0.1, ..., 1} of the best
    precision at recall >= t (0 where recall never reaches t)."""
    rec, prec = _np(recall).astype(float), _np(precision).astype(float)
    if rec.shape != prec.shape:
        raise ValueError(f"recall {rec.shape} and precision {prec.shape} differ in shape")
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        mask = rec >= t - 1e-12
        ap += (prec[mask].max() if mask.any() else 0.0) / 11.0
    return float(ap)


def pr_curves(gts: list[dict], dets: list[dict], num_classes: int, iou_threshold: float = 0.5) -> dict:
    """Per class precision/recall over detections ranked by score (VOC protocol: a
    detection is a true positive if its best-IoU same-class GT has IoU >= threshold and
    was not already taken by a higher-scoring detection).

    Returns {label: {"recall": [...], "precision": [...], "scores": [...], "num_gt": int,
    "ap_voc07": float}} for labels 1..num_classes-1.
    """
    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    out = {}
    for c in range(1, num_classes):
        records = []  # (score, is_tp)
        num_gt = 0
        for g, d in zip(gts, dets):
            g_boxes = torch.as_tensor(g["boxes_xyxy_px_in"], dtype=torch.float32).reshape(-1, 4)
            g_lab = torch.as_tensor(g["labels"]).reshape(-1)
            gb = g_boxes[g_lab == c]
            num_gt += gb.shape[0]
            d_lab = torch.as_tensor(d["labels"]).reshape(-1)
            keep = d_lab == c
            db = torch.as_tensor(d["boxes_xyxy_px_in"], dtype=torch.float32).reshape(-1, 4)[keep]
            ds = torch.as_tensor(d["scores"], dtype=torch.float32).reshape(-1)[keep]
            order = torch.argsort(ds, descending=True)
            db, ds = db[order], ds[order]
            taken = torch.zeros(gb.shape[0], dtype=torch.bool)
            iou = box_iou(db, gb) if gb.numel() and db.numel() else torch.zeros(db.shape[0], gb.shape[0])
            for n in range(db.shape[0]):
                tp = False
                if gb.shape[0]:
                    best, j = iou[n].max(0)
                    if best >= iou_threshold and not taken[j]:
                        taken[j] = True
                        tp = True
                records.append((float(ds[n]), tp))
        records.sort(key=lambda r: -r[0])
        tp = np.cumsum([r[1] for r in records]).astype(float)
        fp = np.cumsum([not r[1] for r in records]).astype(float)
        recall = tp / max(num_gt, 1)
        precision = tp / np.maximum(tp + fp, 1e-12)
        out[c] = {
            "recall": recall.tolist(),
            "precision": precision.tolist(),
            "scores": [r[0] for r in records],
            "num_gt": int(num_gt),
            "ap_voc07": voc07_ap(recall, precision) if num_gt else 0.0,
        }
    return out


def voc07_map(curves: dict) -> float:
    """Mean of the classes' 11-point AP over classes that have ground truth."""
    aps = [v["ap_voc07"] for v in curves.values() if v["num_gt"] > 0]
    return float(np.mean(aps)) if aps else 0.0


def coco_eval_by(gts: list[dict], dets: list[dict], class_names, gt_values: list, det_values: list,
                 ranges: dict[str, tuple[float, float]]) -> dict:
    """COCO AP (pycocotools) split by a per-box value, with COCO's own area-range rule:
    ground truths whose value is outside a range are ignored there, and so are detections
    that match them or, unmatched, have a value outside the range. With the box area as the
    value this is pycocotools' AP_small/medium/large; with the level that owns each GT and
    the level of each detection's default box it is the AP per level.

    Args:
        gts, dets: as `coco_eval`; gt_values: per image (G,) values; det_values: per image (N,).
        ranges: {name: (lo, hi)}, a box is in when lo <= value <= hi.
    Returns:
        {name: {"AP": AP@[.5:.95] or None, "AP50": or None, "num_gt": int}} (None: no GT there).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_json = coco_gt_json(gts, class_names)
    for ann, v in zip(gt_json["annotations"], [float(v) for vs in gt_values for v in _np(vs).reshape(-1)]):
        ann["area"] = v
    results = coco_results_json(dets)
    flat_det_values = [float(v) for vs in det_values for v in _np(vs).reshape(-1)]
    out = {name: {"AP": None, "AP50": None,
                  "num_gt": sum(1 for a in gt_json["annotations"] if lo <= a["area"] <= hi)}
           for name, (lo, hi) in ranges.items()}
    if not results or not gt_json["annotations"]:
        return out
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        for ann_id, v in zip(sorted(coco_dt.anns), flat_det_values):  # loadRes numbers them 1..N in order
            coco_dt.anns[ann_id]["area"] = v
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.areaRng = [list(r) for r in ranges.values()]
        ev.params.maxDets = [100]  # AP reads only maxDets=100: skip accumulating 1 and 10
        ev.params.areaRngLbl = list(ranges)
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # (T, R, K, A, M)
    for a, name in enumerate(ranges):
        p_all, p50 = precision[:, :, :, a, -1], precision[0, :, :, a, -1]
        if out[name]["num_gt"] and (p_all > -1).any():
            out[name]["AP"] = float(p_all[p_all > -1].mean())
            out[name]["AP50"] = float(p50[p50 > -1].mean())
    return out
