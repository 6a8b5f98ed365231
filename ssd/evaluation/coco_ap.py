"""COCO box AP, vectorised: the numbers of pycocotools' `COCOeval` (`evaluate()` then
`accumulate()`, iouType "bbox"), batched over images, classes, area ranges and IoU
thresholds instead of pycocotools' Python loop per (image, class, area range).

The rules kept, exactly as pycocotools has them (tests check equality to 1e-9):
- per (image, class), detections by descending score (stable: ties keep their input
  order), at most max(max_dets) of them;
- IoU of COCO boxes [x, y, w, h] in float64 as its C `bbIou`: x2 = x + w, and against a
  crowd GT the union is the detection's own area;
- a GT is ignored in an area range when it is a crowd or its area is outside [lo, hi];
- greedy matching by score at each IoU threshold (min(t, 1 - 1e-10)): a detection takes
  the untaken non-ignored GT of highest IoU >= t (ties: the last one), else an ignored one
  the same way (a crowd GT can be taken any number of times); matched to an ignored GT,
  the detection is ignored; unmatched and outside the area range, it is ignored too;
- max_dets m keeps the first m of each (image, class) list (matching is done once, with
  the largest m, as pycocotools does);
- precision at the 101 recall points of the monotone precision envelope, -1 where the
  class has no non-ignored GT.

Letters: P = (image, class) pairs with detections and GTs, D = their most detections,
G = their most GTs, A = area ranges, T = IoU thresholds, R = recall points, K = classes
(1..C-1), M = max_dets values, N = detections, n = detections of one class.
Boxes: COCO [x, y, w, h] in one pixel frame, float64.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# pycocotools' Params.setDetParams, the same expressions (so 0.75 is found by ==).
IOU_THRESHOLDS = np.linspace(.5, 0.95, int(np.round((0.95 - .5) / .05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(.0, 1.00, int(np.round((1.00 - .0) / .01)) + 1, endpoint=True)
COCO_AREA_RANGES = {"all": (0.0, 1e5 ** 2), "small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2),
                    "large": (96.0 ** 2, 1e5 ** 2)}
COCO_MAX_DETS = (1, 10, 100)


@dataclass(frozen=True)
class FlatBoxes:
    """All boxes of an evaluation, one row each (GTs or detections).

    Attributes:
        image: (N,) int, index of the image (0..B-1).
        label: (N,) int, class 1..C-1.
        xywh: (N, 4) float64, COCO boxes [x, y, w, h] (w = x2 - x1 in float64, as the JSON).
        area: (N,) float64, the value area ranges test (the box area, or any per-box value).
        score: (N,) float64 detection score (GTs: zeros).
        crowd: (N,) bool, crowd GT (detections: False).
    """

    image: np.ndarray
    label: np.ndarray
    xywh: np.ndarray
    area: np.ndarray
    score: np.ndarray
    crowd: np.ndarray


@dataclass(frozen=True)
class Accumulated:
    """pycocotools' `COCOeval.eval` arrays.

    Attributes:
        precision: (T, R, K, A, M) float64, -1 where class k has no non-ignored GT in range a.
        recall: (T, K, A, M) float64, the final recall, -1 likewise.
        area_labels: A names; max_dets: M values; class_ids: K labels (1..C-1).
    """

    precision: np.ndarray
    recall: np.ndarray
    area_labels: tuple
    max_dets: tuple
    class_ids: tuple


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def flatten(items: list[dict], values: list | None = None, detections: bool = False) -> FlatBoxes:
    """Per-image dicts -> `FlatBoxes`.

    Args:
        items: per image {"boxes_xyxy_px_in": (N, 4), "labels": (N,)} plus "scores" (N,) for
            detections; GTs may carry "iscrowd" (N,) and "area" (N,) (default: not crowd, w * h).
        values: optional per image (N,) values replacing the area (e.g. the feature-map level).
        detections: read "scores".
    """
    n = sum(int(_np(it["labels"]).size) for it in items)
    image = np.repeat(np.arange(len(items)), [int(_np(it["labels"]).size) for it in items])

    def cat(key: str, dtype, shape: tuple = (-1,)) -> np.ndarray:  # every image's `key`, concatenated
        parts = [np.asarray(_np(it[key]), dtype=dtype).reshape(shape) for it in items]
        return np.concatenate(parts) if parts else np.zeros((0,) + shape[1:], dtype=dtype)

    xyxy = cat("boxes_xyxy_px_in", np.float64, (-1, 4))  # (N, 4)
    wh = xyxy[:, 2:] - xyxy[:, :2]  # as the COCO JSON: w = x2 - x1 in float64
    xywh = np.concatenate([xyxy[:, :2], wh], axis=1)  # (N, 4)
    has = lambda key: bool(items) and all(key in it for it in items)  # noqa: E731
    if values is not None:
        area = np.concatenate([np.asarray(_np(v), dtype=np.float64).reshape(-1) for v in values] or [np.zeros(0)])
    else:
        area = cat("area", np.float64) if not detections and has("area") else wh[:, 0] * wh[:, 1]
    if len(area) != n:
        raise ValueError(f"{len(area)} area values for {n} boxes")
    score = cat("scores", np.float64) if detections else np.zeros(n)
    crowd = cat("iscrowd", np.int64) != 0 if not detections and has("iscrowd") else np.zeros(n, dtype=bool)
    return FlatBoxes(image, cat("labels", np.int64), xywh, area, score, crowd)


def box_iou_coco(dt_xywh: np.ndarray, gt_xywh: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """pycocotools' `maskUtils.iou` for boxes (its C `bbIou`, same float64 operations).

    Args:
        dt_xywh: (..., D, 4); gt_xywh: (..., G, 4); crowd: (..., G) bool.
    Returns:
        (..., D, G) IoU; for a crowd GT, intersection over the detection's area.
    """
    d, g = dt_xywh[..., :, None, :], gt_xywh[..., None, :, :]  # (..., D, 1, 4), (..., 1, G, 4)
    w = np.minimum(d[..., 2] + d[..., 0], g[..., 2] + g[..., 0]) - np.maximum(d[..., 0], g[..., 0])
    h = np.minimum(d[..., 3] + d[..., 1], g[..., 3] + g[..., 1]) - np.maximum(d[..., 1], g[..., 1])
    inter = w * h
    da, ga = d[..., 2] * d[..., 3], g[..., 2] * g[..., 3]
    union = np.where(crowd[..., None, :], da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((w > 0) & (h > 0), inter / np.where((w > 0) & (h > 0), union, 1.0), 0.0)


def _rank_in_group(key: np.ndarray) -> np.ndarray:
    """(N,) position of each row within its run of equal `key` (key sorted)."""
    start = np.r_[0, np.flatnonzero(key[1:] != key[:-1]) + 1]
    return np.arange(len(key)) - np.repeat(start, np.diff(np.r_[start, len(key)]))


def _pad(groups: np.ndarray, pos: np.ndarray, num: int, width: int, rows: np.ndarray, fill=0):
    out = np.full((num, width) + rows.shape[1:], fill, dtype=rows.dtype)
    out[groups, pos] = rows
    return out


def _match(ious, gt_ignore, crowd, gt_valid, n_det, thresholds):
    """Greedy COCO matching of all pairs at once, one detection rank per step.

    Args:
        ious: (P, D, G); gt_ignore: (P, A, G) bool; crowd, gt_valid: (P, G) bool;
        n_det: (P,) detections per pair, non-increasing; thresholds: (T,).
    Returns:
        matched, matched_ignored: (P, A, T, D) bool (taken a GT; that GT was ignored).
    """
    p, d_max, g = ious.shape
    a, t = gt_ignore.shape[1], len(thresholds)
    taken = np.zeros((p, a, t, g), dtype=bool)
    matched = np.zeros((p, a, t, d_max), dtype=bool)
    matched_ig = np.zeros((p, a, t, d_max), dtype=bool)
    thr = np.minimum(thresholds, 1 - 1e-10)[None, None, :, None]  # (1, 1, T, 1)
    for d in range(d_max):
        n = int(np.searchsorted(-n_det, -d, side="left"))  # pairs with more than d detections
        iou = ious[:n, d][:, None, None, :]  # (n, G) -> (n, 1, 1, G)
        ig = gt_ignore[:n, :, None, :]  # (n, A, 1, G)
        ok = (~taken[:n] | crowd[:n, None, None, :]) & (iou >= thr) & gt_valid[:n, None, None, :]  # (n, A, T, G)
        plain = ok & ~ig
        cand = np.where(plain.any(-1, keepdims=True), plain, ok & ig)
        best = np.where(cand, iou, -1.0)
        m = g - 1 - np.argmax(best[..., ::-1], axis=-1)  # (n, A, T): the last GT of highest IoU
        hit = cand.any(-1)
        matched[:n, :, :, d] = hit
        matched_ig[:n, :, :, d] = hit & np.take_along_axis(np.broadcast_to(ig, cand.shape), m[..., None], -1)[..., 0]
        np.put_along_axis(taken[:n], m[..., None], np.take_along_axis(taken[:n], m[..., None], -1) | hit[..., None], -1)
    return matched, matched_ig


def _pairs(gt: FlatBoxes, dt: FlatBoxes, num_classes: int, max_det: int):
    """Detections sorted by (image, class, -score, input order), cut at `max_det` per pair,
    and the (image, class) pairs that have both detections and GTs, most detections first.

    Returns:
        keep (N',) detection rows kept, in that order; rank (N',) within the pair;
        det_pair (N',) pair index or -1; gt_rows (G',) GT rows in pairs (by pair, input
        order); gt_pair, gt_pos (G',); n_det (P,).
    """
    dkey = dt.image * num_classes + dt.label
    order = np.lexsort((np.arange(len(dkey)), -dt.score, dkey))
    rank = _rank_in_group(dkey[order])
    keep, rank = order[rank < max_det], rank[rank < max_det]
    gkey = gt.image * num_classes + gt.label
    gorder = np.argsort(gkey, kind="stable")
    keys, n_det = np.unique(dkey[keep], return_counts=True)
    has_gt = np.isin(keys, gkey)
    keys, n_det = keys[has_gt], n_det[has_gt]
    by_count = np.argsort(-n_det, kind="stable")
    keys, n_det = keys[by_count], n_det[by_count]
    pair_of_key = dict(zip(keys.tolist(), range(len(keys))))
    det_pair = np.array([pair_of_key.get(k, -1) for k in dkey[keep].tolist()], dtype=np.int64)
    gt_pair_all = np.array([pair_of_key.get(k, -1) for k in gkey[gorder].tolist()], dtype=np.int64)
    gt_pos_all = _rank_in_group(gkey[gorder])
    in_pair = gt_pair_all >= 0
    return keep, rank, det_pair, gorder[in_pair], gt_pair_all[in_pair], gt_pos_all[in_pair], n_det


def _outside(area: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """(..., A) bool: value outside each [lo, hi] (ranges (A, 2))."""
    return (area[..., None] < ranges[:, 0]) | (area[..., None] > ranges[:, 1])


def match_all(gt: FlatBoxes, dt: FlatBoxes, num_classes: int, area_ranges: dict, max_det: int,
              iou_thresholds: np.ndarray = IOU_THRESHOLDS):
    """pycocotools' `evaluate()` for every (image, class, area range) at once.

    Returns:
        keep (N',) detection rows considered (at most `max_det` per image and class);
        rank (N',) their rank in their (image, class) list; matched, ignored: (N', A, T) bool
        (dtMatches > 0, dtIgnore); gt_ignored (G, A) bool (gtIgnore).
    """
    ranges = np.array(list(area_ranges.values()), dtype=np.float64).reshape(-1, 2)  # (A, 2)
    gt_ignored = gt.crowd[:, None] | _outside(gt.area, ranges)  # (G, A)
    keep, rank, det_pair, g_rows, g_pair, g_pos, n_det = _pairs(gt, dt, num_classes, max_det)
    a, t = len(ranges), len(iou_thresholds)
    matched = np.zeros((len(keep), a, t), dtype=bool)
    ignored = np.zeros((len(keep), a, t), dtype=bool)
    if len(n_det):
        p, d_max, g_max = len(n_det), int(n_det.max()), int(np.bincount(g_pair).max())
        in_pair = det_pair >= 0
        d_box = _pad(det_pair[in_pair], rank[in_pair], p, d_max, dt.xywh[keep[in_pair]])  # (P, D, 4)
        g_box = _pad(g_pair, g_pos, p, g_max, gt.xywh[g_rows])  # (P, G, 4)
        crowd = _pad(g_pair, g_pos, p, g_max, gt.crowd[g_rows], False)  # (P, G)
        valid = _pad(g_pair, g_pos, p, g_max, np.ones(len(g_rows), dtype=bool), False)  # (P, G)
        g_ig = _pad(g_pair, g_pos, p, g_max, gt_ignored[g_rows], True).transpose(0, 2, 1)  # (P, G, A) -> (P, A, G)
        m, m_ig = _match(box_iou_coco(d_box, g_box, crowd), g_ig, crowd, valid, n_det, iou_thresholds)
        # (P, A, T, D) -> rows of the kept detections (N'', A, T)
        matched[in_pair] = m[det_pair[in_pair], :, :, rank[in_pair]]
        ignored[in_pair] = m_ig[det_pair[in_pair], :, :, rank[in_pair]]
    ignored |= ~matched & _outside(dt.area[keep], ranges)[:, :, None]
    return keep, rank, matched, ignored, gt_ignored


def _precision_curve(tps: np.ndarray, fps: np.ndarray, npig: int) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' per-class accumulation: tps, fps (T, n) in score order -> precision at
    the R recall points (T, R) and final recall (T,)."""
    tp = np.cumsum(tps, axis=1).astype(dtype=float)
    fp = np.cumsum(fps, axis=1).astype(dtype=float)
    t, nd = tp.shape
    if nd == 0:
        return np.zeros((t, len(RECALL_THRESHOLDS))), np.zeros(t)
    rc = tp / npig
    pr = tp / (fp + tp + np.spacing(1))
    pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]  # monotone envelope
    q = np.zeros((t, len(RECALL_THRESHOLDS)))
    for i in range(t):
        idx = np.searchsorted(rc[i], RECALL_THRESHOLDS, side="left")
        q[i] = np.where(idx < nd, pr[i, np.minimum(idx, nd - 1)], 0.0)
    return q, rc[:, -1]


def accumulate(gt: FlatBoxes, dt: FlatBoxes, num_classes: int, area_ranges: dict | None = None,
               max_dets: tuple = COCO_MAX_DETS, iou_thresholds: np.ndarray = IOU_THRESHOLDS) -> Accumulated:
    """COCO AP arrays of classes 1..num_classes-1 (pycocotools' `evaluate(); accumulate()`).

    Args:
        gt, dt: `flatten`ed GTs and detections (labels outside 1..C-1 are not evaluated).
        area_ranges: {name: (lo, hi)} on `FlatBoxes.area` (default COCO's all/small/medium/large).
        max_dets: detections per image and class, increasing (COCO: 1, 10, 100).
    Returns:
        `Accumulated`.
    """
    area_ranges = dict(COCO_AREA_RANGES if area_ranges is None else area_ranges)
    classes = tuple(range(1, num_classes))
    keep, rank, matched, ignored, gt_ignored = match_all(gt, dt, num_classes, area_ranges, max(max_dets),
                                                         iou_thresholds)
    t, a = len(iou_thresholds), len(area_ranges)
    precision = -np.ones((t, len(RECALL_THRESHOLDS), len(classes), a, len(max_dets)))
    recall = -np.ones((t, len(classes), a, len(max_dets)))
    for k, c in enumerate(classes):
        rows = np.flatnonzero(dt.label[keep] == c)
        # accumulate() concatenates images in order, each by score, then sorts by score (stable)
        rows = rows[np.lexsort((rank[rows], dt.image[keep[rows]], -dt.score[keep[rows]]))]
        npig = (~gt_ignored[gt.label == c]).sum(0)  # (A,)
        for mi, m in enumerate(max_dets):
            sel = rows[rank[rows] < m]
            for ai in range(a):
                if npig[ai] == 0:
                    continue
                ok = ~ignored[sel, ai].T  # (n, T) -> (T, n)
                hit = matched[sel, ai].T
                precision[:, :, k, ai, mi], recall[:, k, ai, mi] = _precision_curve(hit & ok, ~hit & ok,
                                                                                    int(npig[ai]))
    return Accumulated(precision, recall, tuple(area_ranges), tuple(max_dets), classes)


def mean_precision(acc: Accumulated, iou: float | None = None, area: str = "all", max_det: int = 100) -> float:
    """pycocotools' `summarize` AP line: mean precision over (T or the one IoU, R, K) where
    > -1, or -1 when nothing is."""
    s = acc.precision[..., acc.area_labels.index(area), acc.max_dets.index(max_det)]  # (T, R, K)
    if iou is not None:
        s = s[np.where(iou == IOU_THRESHOLDS)[0]]
    return -1.0 if not (s > -1).any() else float(np.mean(s[s > -1]))
