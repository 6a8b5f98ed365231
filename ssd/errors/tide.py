"""TIDE's error types and the AP each one costs (Bolya et al. 2020, "TIDE: A General
Toolbox for Identifying Object Detection Errors"; the reference code is `tidecv`).

Per image, detections are taken by descending score (at most `max_dets`, TIDE's 100) and
matched greedily to the same-class ground truth of highest IoU >= `pos_thresh` (0.5) not
yet taken. Each unmatched detection gets the first error type that fits, in TIDE's order:
- Loc: IoU with a same-class GT in [bg_thresh, pos_thresh] (mislocalised);
- Cls: IoU >= pos_thresh with a GT of another class (wrong class);
- Dupe: IoU >= pos_thresh with a same-class GT that a higher-scoring detection took;
- Bkg: IoU <= bg_thresh (0.1) with every GT (fired on background);
- Both: none of these (wrong class and mislocalised).
A GT that no detection took and no Cls/Loc error points at is a Miss.

dAP of a type (the "oracle", TIDE's `fix_main_errors`): AP50 after fixing only that type,
minus AP50, in points x 100. Fixing Cls/Loc turns the highest-scoring such error of each
untaken GT into a true positive (moved to the GT's class for Cls) and drops the others;
fixing Dupe/Bkg/Both drops those detections; fixing Miss removes those GTs from the count.
AP is TIDE's (COCO's 101-point interpolated precision, mean over classes).

Letters: D = detections of one image, G = its ground truths.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")  # TIDE's order
TP = "TP"


@dataclass(frozen=True)
class TideConfig:
    """TIDE's thresholds (its defaults)."""

    pos_thresh: float = 0.5  # foreground IoU: a detection is a true positive at IoU >= this
    bg_thresh: float = 0.1  # background IoU: below this with every GT is a Bkg error
    max_dets: int = 100  # detections per image considered, best first (COCO / TIDE)


@dataclass
class ImageErrors:
    """TIDE's verdict on one image.

    Attributes:
        order: (D',) long, the detections considered (indices into the image's detections),
            by descending score; D' = min(D, max_dets).
        kind: D' strings, "TP" or an error type, per entry of `order`.
        gt_index: (D',) long, the GT a TP matched or a Cls/Loc/Dupe error points at; -1 if none.
        gt_matched: (G,) bool, GT taken by a true positive.
        gt_missed: (G,) bool, TIDE Miss: not taken and no Cls/Loc error points at it.
    """

    order: Tensor
    kind: list[str]
    gt_index: Tensor
    gt_matched: Tensor
    gt_missed: Tensor


def _classify(iou: Tensor, same: Tensor, gt_used: Tensor, cfg: TideConfig) -> tuple[str, int]:
    """Error type of one unmatched detection (TIDE's tests, in its order) and its GT."""
    if iou.numel() == 0:
        return "Bkg", -1
    cls_iou = iou * same
    j = int(cls_iou.argmax())
    if cfg.bg_thresh <= float(cls_iou[j]) <= cfg.pos_thresh:
        return "Loc", j
    other = iou * ~same
    j = int(other.argmax())
    if float(other[j]) >= cfg.pos_thresh:
        return "Cls", j
    used_cls = cls_iou * gt_used
    j = int(used_cls.argmax())
    if float(used_cls[j]) >= cfg.pos_thresh:
        return "Dupe", j
    if float(iou.max()) <= cfg.bg_thresh:
        return "Bkg", -1
    return "Both", -1


def classify_image(det_boxes: Tensor, det_scores: Tensor, det_labels: Tensor, gt_boxes: Tensor,
                   gt_labels: Tensor, cfg: TideConfig = TideConfig()) -> ImageErrors:
    """TIDE's matching and error types for one image (boxes xyxy, one frame for both).

    Args:
        det_boxes (D, 4), det_scores (D,), det_labels (D,); gt_boxes (G, 4), gt_labels (G,).
    Returns:
        `ImageErrors`.
    """
    order = torch.sort(det_scores, descending=True, stable=True).indices[: cfg.max_dets]
    d_lab, g_lab = det_labels[order].long(), gt_labels.long()
    g = int(g_lab.shape[0])
    iou = box_iou(det_boxes[order].float(), gt_boxes.float()) if g else torch.zeros(len(order), 0)
    same = d_lab[:, None] == g_lab[None, :]  # (D', G)
    buffer = iou * same
    gt_used = torch.zeros(g, dtype=torch.bool)
    kind, gt_index = [], torch.full((len(order),), -1, dtype=torch.long)
    for n in range(len(order)):  # greedy by score, as TIDE: best same-class GT not yet taken
        if g:
            j = int(buffer[n].argmax())
            if float(buffer[n, j]) >= cfg.pos_thresh:
                gt_used[j] = True
                buffer[:, j] = 0
                kind.append(TP)
                gt_index[n] = j
                continue
        kind.append(None)
    usable = torch.zeros(g, dtype=torch.bool)
    for n in range(len(order)):
        if kind[n] is None:
            kind[n], gt_index[n] = _classify(iou[n], same[n], gt_used, cfg)
            if kind[n] in ("Cls", "Loc") and not bool(gt_used[gt_index[n]]):
                usable[gt_index[n]] = True
    return ImageErrors(order, kind, gt_index, gt_used, ~gt_used & ~usable)


def tide_ap(scores: np.ndarray, correct: np.ndarray, num_gt: int) -> float:
    """TIDE's AP of one class, x 100: precision made monotone, read at 101 recall points
    (searchsorted, side='left', as COCO), averaged. 0 when the class has no GT."""
    if num_gt <= 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(correct[order])
    fp = np.cumsum(~correct[order])
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / num_gt
    precision = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
    idx = np.searchsorted(recall, np.linspace(0, 1, 101), side="left")
    y = np.where(idx < len(precision), precision[np.minimum(idx, max(len(precision) - 1, 0))], 0.0) \
        if len(precision) else np.zeros(101)
    return float(y.sum() / 101 * 100)


class TideAccumulator:
    """Collects TIDE's data points over images; `errors()` gives counts and dAP per type."""

    def __init__(self, cfg: TideConfig = TideConfig()):
        self.cfg = cfg
        self.cls, self.score, self.kind, self.gt_key, self.fix_cls = [], [], [], [], []
        self.num_gt: dict[int, int] = {}
        self.miss_cls: list[int] = []
        self._num_images = 0

    def add(self, det_scores: Tensor, det_labels: Tensor, gt_labels: Tensor, res: ImageErrors) -> None:
        """Add one image's `classify_image` result (det_* as given to it)."""
        img = self._num_images
        self._num_images += 1
        for c in gt_labels.tolist():
            self.num_gt[int(c)] = self.num_gt.get(int(c), 0) + 1
        sc, lab = det_scores[res.order].tolist(), det_labels[res.order].tolist()
        g_lab = gt_labels.tolist()
        for n, k in enumerate(res.kind):
            j = int(res.gt_index[n])
            self.cls.append(int(lab[n]))
            self.score.append(float(sc[n]))
            self.kind.append(k)
            # Cls/Loc errors fix onto an untaken GT; the key makes "best error per GT" global.
            fixable = k in ("Cls", "Loc") and not bool(res.gt_matched[j])
            self.gt_key.append((img, j) if fixable else None)
            self.fix_cls.append(int(g_lab[j]) if k == "Cls" else int(lab[n]))
        self.miss_cls += [int(g_lab[j]) for j in torch.where(res.gt_missed)[0].tolist()]

    def _map(self, cls: np.ndarray, score: np.ndarray, correct: np.ndarray, num_gt: dict[int, int]) -> float:
        # TIDE averages over the classes with any GT or any detection left.
        classes = {c for c, n in num_gt.items() if n > 0} | set(cls.tolist())
        aps = [tide_ap(score[cls == c], correct[cls == c], num_gt.get(c, 0)) for c in sorted(classes)]
        return float(np.mean(aps)) if aps else 0.0

    def errors(self) -> dict:
        """{"AP50": TIDE's AP50 x 100, "counts": {type: n}, "dAP": {type: dAP x 100}}."""
        cls, score = np.array(self.cls, dtype=np.int64), np.array(self.score, dtype=np.float64)
        kind = np.array(self.kind, dtype=object)
        correct = kind == TP
        base = self._map(cls, score, correct, self.num_gt)
        best = {}  # the highest-scoring Cls/Loc error of each untaken GT is the one fixed
        for n, key in enumerate(self.gt_key):
            if key is not None and (key not in best or score[n] > score[best[key]]):
                best[key] = n
        best_rows = np.zeros(len(kind), dtype=bool)
        best_rows[list(best.values())] = True
        d_ap = {}
        for t in ERROR_TYPES:
            keep, c, ok, num_gt = np.ones(len(kind), dtype=bool), cls.copy(), correct.copy(), dict(self.num_gt)
            if t == "Miss":
                for m in self.miss_cls:
                    num_gt[m] -= 1
            else:
                is_t = kind == t
                fixed = is_t & best_rows if t in ("Cls", "Loc") else np.zeros_like(is_t)
                keep &= ~is_t | fixed
                ok |= fixed
                c[fixed] = np.array(self.fix_cls, dtype=np.int64)[fixed]
            d_ap[t] = max(self._map(c[keep], score[keep], ok[keep], num_gt) - base, 0.0)
        counts = {t: int((kind == t).sum()) for t in ERROR_TYPES if t != "Miss"}
        counts["Miss"] = len(self.miss_cls)
        return {"AP50": base, "counts": {t: counts[t] for t in ERROR_TYPES}, "dAP": d_ap}
