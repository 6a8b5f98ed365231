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

Everything is batched over the images of a batch: the greedy matching takes one
detection rank per step for all images at once, the error types are tensor tests.

Letters: B = images of a batch, D = detections of one image (padded to the batch's
most), G = its ground truths (padded likewise).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils.rnn import pad_sequence
from torchvision.ops import box_iou

ERROR_TYPES = ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss")  # TIDE's order
TP = "TP"
KINDS = (TP,) + ERROR_TYPES[:-1]  # the codes of `ImageErrors.code`: 0 = TP, 1 = Cls, ... 5 = Bkg
_CLS, _LOC, _BOTH, _DUPE, _BKG = range(1, 6)


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
        code: (D',) long, index into `KINDS` ("TP" or an error type) per entry of `order`.
        gt_index: (D',) long, the GT a TP matched or a Cls/Loc/Dupe error points at; -1 if none.
        gt_matched: (G,) bool, GT taken by a true positive.
        gt_missed: (G,) bool, TIDE Miss: not taken and no Cls/Loc error points at it.
    """

    order: Tensor
    code: Tensor
    gt_index: Tensor
    gt_matched: Tensor
    gt_missed: Tensor

    @property
    def kind(self) -> list[str]:
        """D' strings, "TP" or an error type, per entry of `order`."""
        return [KINDS[c] for c in self.code.tolist()]


def pad(rows: list[Tensor], fill: float = 0.0) -> tuple[Tensor, Tensor]:
    """Per-image (N_b, ...) tensors -> (B, N, ...) padded with `fill`, and valid (B, N) bool."""
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    out = pad_sequence(rows, batch_first=True, padding_value=fill)  # (B, N, ...)
    return out, torch.arange(out.shape[1])[None, :] < lengths[:, None]


# torchvision's box_iou of each image's detections with its GTs: (B, D, 4), (B, G, 4) xyxy -> (B, D, G).
batched_box_iou = torch.vmap(box_iou)


def greedy_match(affinity: Tensor, det_valid: Tensor, thresh: float) -> tuple[Tensor, Tensor]:
    """Greedy matching of every image at once: detection d (in order) takes the untaken GT
    of highest affinity (the first on ties) if that is >= `thresh`.

    Args:
        affinity: (B, D, G) float64, -1 where a pair may not match; det_valid: (B, D) bool.
    Returns:
        gt_index (B, D) long (-1: unmatched), taken (B, G) bool.
    """
    b, d_max, g = affinity.shape
    taken = torch.zeros(b, g, dtype=torch.bool)
    gt_index = torch.full((b, d_max), -1, dtype=torch.long)
    if g == 0:
        return gt_index, taken
    rows = torch.arange(b)
    for d in range(d_max):
        row = affinity[:, d].masked_fill(taken, -1.0)  # (B, G)
        j = row.argmax(1)  # (B,): the first maximum (argmax, not max(dim): that one stalls on a busy CPU)
        best = row.gather(1, j[:, None])[:, 0]
        hit = (best >= thresh) & det_valid[:, d]
        gt_index[:, d] = torch.where(hit, j, -1)
        taken[rows[hit], j[hit]] = True
    return gt_index, taken


def _first_argmax(x: Tensor) -> tuple[Tensor, Tensor]:
    """(max, index of its first occurrence) over the last dim, as `Tensor.argmax`; (0, 0) if empty."""
    if x.shape[-1] == 0:
        return torch.zeros(x.shape[:-1], dtype=x.dtype), torch.zeros(x.shape[:-1], dtype=torch.long)
    j = x.argmax(-1)
    return x.gather(-1, j[..., None])[..., 0], j


def _error_codes(iou: Tensor, same: Tensor, gt_used: Tensor, has_gt: Tensor, cfg: TideConfig):
    """TIDE's tests for every detection (in its order: Loc, Cls, Dupe, Bkg, Both).

    Args: iou (B, D, G) float64 (0 on padding); same (B, D, G) bool same class (valid GTs);
        gt_used (B, G) bool; has_gt (B,) bool.
    Returns: code (B, D) long, gt index (B, D) long (-1 for Bkg / Both).
    """
    cls_iou = iou * same
    v_loc, j_loc = _first_argmax(cls_iou)
    v_cls, j_cls = _first_argmax(iou * ~same)
    v_dupe, j_dupe = _first_argmax(cls_iou * gt_used[:, None, :])
    is_bkg = _first_argmax(iou)[0] <= cfg.bg_thresh
    code = torch.full(iou.shape[:2], _BOTH, dtype=torch.long)
    j = torch.full(iou.shape[:2], -1, dtype=torch.long)
    for mask, c, jj in ((is_bkg, _BKG, None), (v_dupe >= cfg.pos_thresh, _DUPE, j_dupe),
                        (v_cls >= cfg.pos_thresh, _CLS, j_cls),
                        ((cfg.bg_thresh <= v_loc) & (v_loc <= cfg.pos_thresh), _LOC, j_loc)):  # last wins
        mask = mask & has_gt[:, None] if c != _BKG else mask | ~has_gt[:, None]
        code = torch.where(mask, c, code)
        j = torch.where(mask, -1 if jj is None else jj, j)
    return code, j


def classify_batch(dets: list[dict], gts: list[dict], cfg: TideConfig = TideConfig()) -> list[ImageErrors]:
    """TIDE's matching and error types for a batch of images (boxes xyxy, one frame for both).

    Args:
        dets: per image {"boxes_xyxy_px_in" (D, 4), "scores" (D,), "labels" (D,)};
        gts: per image {"boxes_xyxy_px_in" (G, 4), "labels" (G,)}.
    Returns:
        B `ImageErrors`.
    """
    orders = [torch.sort(d["scores"], descending=True, stable=True).indices[: cfg.max_dets] for d in dets]
    d_box, d_valid = pad([d["boxes_xyxy_px_in"][o].float().reshape(-1, 4) for d, o in zip(dets, orders)])
    d_lab, _ = pad([d["labels"][o].long().reshape(-1) for d, o in zip(dets, orders)], -1)
    g_box, g_valid = pad([g["boxes_xyxy_px_in"].float().reshape(-1, 4) for g in gts])
    g_lab, _ = pad([g["labels"].long().reshape(-1) for g in gts], -2)
    pair = d_valid[:, :, None] & g_valid[:, None, :]  # (B, D, G)
    # float64 so that the thresholds compare as the Python floats they are
    iou = torch.nan_to_num(batched_box_iou(d_box, g_box)).double().masked_fill(~pair, 0.0)
    same = (d_lab[:, :, None] == g_lab[:, None, :]) & pair
    # greedy by score, as TIDE: best same-class GT not yet taken
    tp_index, gt_used = greedy_match(iou.masked_fill(~same, -1.0), d_valid, cfg.pos_thresh)
    code, err_index = _error_codes(iou, same, gt_used, g_valid.any(1), cfg)
    code = torch.where(tp_index >= 0, 0, code)
    gt_index = torch.where(tp_index >= 0, tp_index, err_index)
    # a Cls / Loc error on an untaken GT keeps that GT from being a Miss
    usable = torch.zeros_like(gt_used)
    fix = ((code == _CLS) | (code == _LOC)) & d_valid
    bi = torch.arange(len(dets))[:, None].expand_as(fix)
    usable[bi[fix], gt_index[fix]] = True
    usable &= ~gt_used
    out = []
    for b, o in enumerate(orders):
        n, g = len(o), len(gts[b]["labels"])
        out.append(ImageErrors(o, code[b, :n], gt_index[b, :n], gt_used[b, :g], ~gt_used[b, :g] & ~usable[b, :g]))
    return out


def classify_image(det_boxes: Tensor, det_scores: Tensor, det_labels: Tensor, gt_boxes: Tensor,
                   gt_labels: Tensor, cfg: TideConfig = TideConfig()) -> ImageErrors:
    """`classify_batch` of one image.

    Args:
        det_boxes (D, 4), det_scores (D,), det_labels (D,); gt_boxes (G, 4), gt_labels (G,).
    Returns:
        `ImageErrors`.
    """
    return classify_batch([{"boxes_xyxy_px_in": det_boxes, "scores": det_scores, "labels": det_labels}],
                          [{"boxes_xyxy_px_in": gt_boxes, "labels": gt_labels}], cfg)[0]


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
        # per image chunks of per-detection arrays (detection rows in `ImageErrors.order`)
        self._cls, self._score, self._code, self._fix_gt, self._fix_cls = [], [], [], [], []
        self.num_gt: dict[int, int] = {}
        self.miss_cls: list[int] = []
        self._num_gt_seen = 0

    def add(self, det_scores: Tensor, det_labels: Tensor, gt_labels: Tensor, res: ImageErrors) -> None:
        """Add one image's `classify_image` result (det_* as given to it)."""
        g_lab = gt_labels.long().reshape(-1)
        for c, n in zip(*np.unique(g_lab.numpy(), return_counts=True)):
            self.num_gt[int(c)] = self.num_gt.get(int(c), 0) + int(n)
        lab = det_labels[res.order].long().reshape(-1)
        code, j = res.code, res.gt_index
        # Cls/Loc errors fix onto an untaken GT; a global GT number makes "best error per GT" global.
        fixable = ((code == _CLS) | (code == _LOC)) & ~res.gt_matched[j.clamp(min=0)] if len(g_lab) else \
            torch.zeros(len(code), dtype=torch.bool)
        self._fix_gt.append(torch.where(fixable, j + self._num_gt_seen, -1).numpy())
        self._fix_cls.append(torch.where(code == _CLS, g_lab[j.clamp(min=0)] if len(g_lab) else lab, lab).numpy())
        self._cls.append(lab.numpy())
        self._score.append(det_scores[res.order].double().reshape(-1).numpy())
        self._code.append(code.numpy())
        self._num_gt_seen += len(g_lab)
        self.miss_cls += g_lab[res.gt_missed].tolist()

    def _map(self, cls: np.ndarray, score: np.ndarray, correct: np.ndarray, num_gt: dict[int, int]) -> float:
        # TIDE averages over the classes with any GT or any detection left.
        classes = {c for c, n in num_gt.items() if n > 0} | set(cls.tolist())
        aps = [tide_ap(score[cls == c], correct[cls == c], num_gt.get(c, 0)) for c in sorted(classes)]
        return float(np.mean(aps)) if aps else 0.0

    def _cat(self, chunks: list, dtype) -> np.ndarray:
        return np.concatenate(chunks).astype(dtype) if chunks else np.zeros(0, dtype=dtype)

    def errors(self) -> dict:
        """{"AP50": TIDE's AP50 x 100, "counts": {type: n}, "dAP": {type: dAP x 100}}."""
        cls, score = self._cat(self._cls, np.int64), self._cat(self._score, np.float64)
        code, fix_gt, fix_cls = self._cat(self._code, np.int64), self._cat(self._fix_gt, np.int64), \
            self._cat(self._fix_cls, np.int64)
        correct = code == 0
        base = self._map(cls, score, correct, self.num_gt)
        # the highest-scoring Cls/Loc error of each untaken GT is the one fixed (the first on ties)
        rows = np.flatnonzero(fix_gt >= 0)
        rows = rows[np.lexsort((rows, -score[rows], fix_gt[rows]))]
        first = np.r_[True, fix_gt[rows][1:] != fix_gt[rows][:-1]] if len(rows) else np.zeros(0, dtype=bool)
        best_rows = np.zeros(len(code), dtype=bool)
        best_rows[rows[first]] = True
        d_ap = {}
        for t in ERROR_TYPES:
            keep, c, ok, num_gt = np.ones(len(code), dtype=bool), cls.copy(), correct.copy(), dict(self.num_gt)
            if t == "Miss":
                for m in self.miss_cls:
                    num_gt[m] -= 1
            else:
                is_t = code == KINDS.index(t)
                fixed = is_t & best_rows if t in ("Cls", "Loc") else np.zeros_like(is_t)
                keep &= ~is_t | fixed
                ok |= fixed
                c[fixed] = fix_cls[fixed]
            d_ap[t] = max(self._map(c[keep], score[keep], ok[keep], num_gt) - base, 0.0)
        counts = {t: int((code == KINDS.index(t)).sum()) for t in ERROR_TYPES if t != "Miss"}
        counts["Miss"] = len(self.miss_cls)
        return {"AP50": base, "counts": {t: counts[t] for t in ERROR_TYPES}, "dAP": d_ap}
