"""Detection metrics: COCO AP (`ssd.evaluation.coco_ap`, vectorised, equal to pycocotools, which
stays the reference: `reference=True`), and the VOC2007 11-point mAP the SSD paper
reports (Sec. 3.1-3.3), with precision/recall curves.

Inputs everywhere: per image a ground-truth dict {"boxes_xyxy_px_in": (G, 4), "labels": (G,)}
and a detection dict {"boxes_xyxy_px_in": (N, 4), "scores": (N,), "labels": (N,)}; labels
are 1..C-1 (0 = background never appears). A ground-truth dict may also carry "iscrowd"
(G,) (crowd regions, COCO's rule) and "area" (G,) (the area COCO's size bins read). Boxes are in network-input pixels, the frame
`ssd.evaluate` scores in (any one pixel frame works if both sides share it).
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
import torch
from torchvision.ops import box_iou

from ssd.evaluation.coco_ap import COCO_AREA_RANGES, COCO_MAX_DETS, Accumulated, accumulate, flatten, mean_precision


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
        labels = _np(g["labels"]).reshape(-1).tolist()
        crowd = _np(g["iscrowd"]).reshape(-1).tolist() if "iscrowd" in g else [0] * len(labels)
        areas = _np(g["area"]).reshape(-1).tolist() if "area" in g else [None] * len(labels)
        for b, lab, cr, ar in zip(_np(g["boxes_xyxy_px_in"]).reshape(-1, 4).tolist(), labels, crowd, areas):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(lab),
                                "bbox": [b[0], b[1], w, h], "area": w * h if ar is None else float(ar),
                                "iscrowd": int(cr),
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


def _pycocotools(gts: list[dict], dets: list[dict], class_names, area_ranges: dict, max_dets: tuple,
                 gt_values: list | None = None, det_values: list | None = None) -> Accumulated:
    """The reference: pycocotools' COCOeval on the same boxes (built in memory), with
    `gt_values` / `det_values` (per image) written into the annotations' "area"."""
    # lazy: pycocotools is the optional reference (reference=True, tests, benchmarks); the vectorised
    # ssd.evaluation.coco_ap does the real work without it
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt_json = coco_gt_json(gts, class_names)
    if gt_values is not None:
        for ann, v in zip(gt_json["annotations"], flatten(gts, gt_values).area.tolist()):
            ann["area"] = v
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt_json
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(coco_results_json(dets))
        if det_values is not None:  # loadRes numbers them 1..N in order
            for ann_id, v in zip(sorted(coco_dt.anns), flatten(dets, det_values, detections=True).area.tolist()):
                coco_dt.anns[ann_id]["area"] = v
        ev = COCOeval(coco_gt, coco_dt, iouType="bbox")
        ev.params.areaRng = [list(r) for r in area_ranges.values()]
        ev.params.areaRngLbl = list(area_ranges)
        ev.params.maxDets = list(max_dets)
        ev.evaluate()
        ev.accumulate()
    return Accumulated(ev.eval["precision"], ev.eval["recall"], tuple(area_ranges), tuple(max_dets),
                       tuple(ev.params.catIds))


def coco_accumulate(gts: list[dict], dets: list[dict], class_names, area_ranges: dict | None = None,
                    max_dets: tuple = COCO_MAX_DETS, gt_values: list | None = None, det_values: list | None = None,
                    reference: bool = False) -> Accumulated:
    """COCO's precision (T, R, K, A, M) and recall arrays (`ssd.evaluation.coco_ap.Accumulated`) of
    detections against ground truth, by `ssd.evaluation.coco_ap` or, with `reference`, pycocotools.

    Args:
        gts, dets: per image dicts (module docstring); class_names: C names, background first.
        area_ranges: {name: (lo, hi)} (default COCO's all / small / medium / large, px^2).
        max_dets: detections per image and class (COCO's 1, 10, 100).
        gt_values, det_values: per image values the ranges test instead of the box area.
    """
    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    area_ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    if reference:
        return _pycocotools(gts, dets, class_names, area_ranges, max_dets, gt_values, det_values)
    gt, dt = flatten(gts, gt_values), flatten(dets, det_values, detections=True)
    return accumulate(gt, dt, len(class_names), area_ranges, max_dets)


def _class_mean(p: np.ndarray) -> float | None:
    return float(p[p > -1].mean()) if (p > -1).any() else None


def coco_eval(gts: list[dict], dets: list[dict], class_names, reference: bool = False) -> dict:
    """COCO-style AP (`ssd.evaluation.coco_ap`; pycocotools with `reference`, same numbers).

    Returns {"AP": AP@[.5:.95], "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "per_class": {name: AP@[.5:.95]}, "per_class_AP50": {name: AP50}, "by_size": {"small" |
    "medium" | "large": {"AP", "AP50", "num_gt"}}}; a class with no
    ground truth gets nan-free -1 excluded from means (pycocotools' convention) and is
    reported as None.
    """
    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    names = list(class_names)
    gt = flatten(gts)
    if not len(gt.label):
        raise ValueError("coco_eval needs at least one ground-truth box")
    if not sum(int(_np(d["labels"]).size) for d in dets):
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0, "AP_small": 0.0, "AP_medium": 0.0, "AP_large": 0.0,
                "per_class": {n: 0.0 for n in names[1:]}, "per_class_AP50": {n: 0.0 for n in names[1:]},
                "by_size": {}}
    acc = coco_accumulate(gts, dets, names, reference=reference)
    out = {"AP": mean_precision(acc), "AP50": mean_precision(acc, iou=.5), "AP75": mean_precision(acc, iou=.75)}
    for size in ("small", "medium", "large"):
        out[f"AP_{size}"] = mean_precision(acc, area=size)
    out = {k: max(0.0, float(v)) for k, v in out.items()}  # -1 = "no such boxes" -> 0
    precision = acc.precision  # (T iou thresholds, R recall points, K classes, A areas, M maxDets)
    out["per_class"] = {names[c]: _class_mean(precision[:, :, k, 0, -1]) for k, c in enumerate(acc.class_ids)}
    out["per_class_AP50"] = {names[c]: _class_mean(precision[0, :, k, 0, -1]) for k, c in enumerate(acc.class_ids)}
    out["by_size"] = _by_area(acc, gt.area, COCO_AREA_RANGES)
    return out


def _by_area(acc: Accumulated, gt_area: np.ndarray, ranges: dict) -> dict:
    """{name: {"AP", "AP50", "num_gt"}} for every range but "all" (None where no GT)."""
    out = {}
    for a, name in enumerate(acc.area_labels):
        if name == "all":
            continue
        lo, hi = ranges[name]
        num_gt = int(((gt_area >= lo) & (gt_area <= hi)).sum())
        p_all, p50 = acc.precision[:, :, :, a, -1], acc.precision[0, :, :, a, -1]
        has = num_gt > 0 and (p_all > -1).any()
        out[name] = {"AP": _class_mean(p_all) if has else None, "AP50": _class_mean(p50) if has else None,
                     "num_gt": num_gt}
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


def _voc_best_gt(gts: list[dict], dets: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Per detection (all images, in order): IoU with its best same-class GT of the image and
    that GT's global row (-1 when the image has none of its class)."""
    best, row, g_start = [], [], 0
    for g, d in zip(gts, dets):
        g_boxes = torch.as_tensor(g["boxes_xyxy_px_in"], dtype=torch.float32).reshape(-1, 4)
        g_lab = torch.as_tensor(g["labels"]).reshape(-1)
        d_boxes = torch.as_tensor(d["boxes_xyxy_px_in"], dtype=torch.float32).reshape(-1, 4)
        d_lab = torch.as_tensor(d["labels"]).reshape(-1)
        if len(g_lab) and len(d_lab):
            same = d_lab[:, None] == g_lab[None, :]  # (D, G)
            iou = box_iou(d_boxes, g_boxes).masked_fill(~same, -1.0)
            j = iou.argmax(1)  # the first of the best (argmax: max(dim) stalls on a busy CPU)
            b = iou.gather(1, j[:, None])[:, 0]
            best.append(b.numpy())
            row.append(torch.where(same.any(1), j + g_start, -1).numpy())
        else:
            best.append(np.full(len(d_lab), -1.0, dtype=np.float32))
            row.append(np.full(len(d_lab), -1, dtype=np.int64))
        g_start += len(g_lab)
    return (np.concatenate(best) if best else np.zeros(0, np.float32)), \
        (np.concatenate(row) if row else np.zeros(0, np.int64))


def pr_curves(gts: list[dict], dets: list[dict], num_classes: int, iou_threshold: float = 0.5) -> dict:
    """Per class precision/recall over detections ranked by score (VOC protocol: a
    detection is a true positive if its best-IoU same-class GT has IoU >= threshold and
    was not already taken by a higher-scoring detection). Ties in score keep the input
    order (image, then detection).

    Returns {label: {"recall": [...], "precision": [...], "scores": [...], "num_gt": int,
    "ap_voc07": float}} for labels 1..num_classes-1.
    """
    if len(gts) != len(dets):
        raise ValueError(f"{len(gts)} ground-truth images but {len(dets)} detection lists")
    gt, dt = flatten(gts), flatten(dets, detections=True)
    best, gt_row = _voc_best_gt(gts, dets)
    score32 = np.concatenate([_np(d["scores"]).reshape(-1) for d in dets]).astype(np.float32) if dets else \
        np.zeros(0, np.float32)
    order = np.lexsort((np.arange(len(dt.score)), -dt.score))  # by score, stable
    out = {}
    for c in range(1, num_classes):
        rows = order[dt.label[order] == c]
        hit = rows[(gt_row[rows] >= 0) & (best[rows] >= iou_threshold)]
        # the first detection (by score) on a GT takes it; the later ones are false positives
        _, first = np.unique(gt_row[hit], return_index=True)
        is_tp = np.zeros(len(dt.score), dtype=bool)
        is_tp[hit[first]] = True
        num_gt = int((gt.label == c).sum())
        tp = np.cumsum(is_tp[rows]).astype(float)
        fp = np.cumsum(~is_tp[rows]).astype(float)
        recall = tp / max(num_gt, 1)
        precision = tp / np.maximum(tp + fp, 1e-12)
        out[c] = {
            "recall": recall.tolist(),
            "precision": precision.tolist(),
            "scores": score32[rows].astype(float).tolist(),
            "num_gt": num_gt,
            "ap_voc07": voc07_ap(recall, precision) if num_gt else 0.0,
        }
    return out


def voc07_map(curves: dict) -> float:
    """Mean of the classes' 11-point AP over classes that have ground truth."""
    aps = [v["ap_voc07"] for v in curves.values() if v["num_gt"] > 0]
    return float(np.mean(aps)) if aps else 0.0


def coco_eval_by(gts: list[dict], dets: list[dict], class_names, gt_values: list, det_values: list,
                 ranges: dict[str, tuple[float, float]], reference: bool = False) -> dict:
    """COCO AP split by a per-box value, with COCO's own area-range rule:
    ground truths whose value is outside a range are ignored there, and so are detections
    that match them or, unmatched, have a value outside the range. With the box area as the
    value this is pycocotools' AP_small/medium/large; with the level that owns each GT and
    the level of each detection's default box it is the AP per level.

    Args:
        gts, dets: as `coco_eval`; gt_values: per image (G,) values; det_values: per image (N,).
        ranges: {name: (lo, hi)}, a box is in when lo <= value <= hi.
        reference: compute with pycocotools (same numbers, slower).
    Returns:
        {name: {"AP": AP@[.5:.95] or None, "AP50": or None, "num_gt": int}} (None: no GT there).
    """
    gt_value = flatten(gts, gt_values).area
    out = {name: {"AP": None, "AP50": None, "num_gt": int(((gt_value >= lo) & (gt_value <= hi)).sum())}
           for name, (lo, hi) in ranges.items()}
    if not len(gt_value) or not sum(int(_np(d["labels"]).size) for d in dets):
        return out
    # AP reads only maxDets=100: skip accumulating 1 and 10
    acc = coco_accumulate(gts, dets, class_names, dict(ranges), (100,), gt_values, det_values, reference)
    for a, name in enumerate(ranges):
        p_all, p50 = acc.precision[:, :, :, a, -1], acc.precision[0, :, :, a, -1]
        if out[name]["num_gt"] and (p_all > -1).any():
            out[name]["AP"], out[name]["AP50"] = _class_mean(p_all), _class_mean(p50)
    return out
