"""Data and figures for the matching & hard-negative page (Sec. 2.2 "Matching strategy",
"Training objective" Eq. 1, "Hard negative mining").

Frames: GT boxes arrive in pixels of the original image (W x H); default boxes are
normalised to the network input, which is the whole image stretched to a square,
so normalised x * W, y * H puts a default box on the original image. The figures
here are in original-image pixels; box shapes are also given in input pixels.
"""
from __future__ import annotations

import math

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor
from torchvision.ops import box_iou

from explorer.views.figures import GT_COLOR, box_traces, image_figure, level_color
from ssd.boxes import norm_to_px, px_to_norm
from ssd.loss import multibox_loss, negative_rank
from ssd.matching import Match, match
from ssd.priors import DefaultBoxes


@dataclass
class MatchingView:
    match: Match  # ssd.matching.match result over all A default boxes
    records: list[dict]  # one per positive default box (see `positive_records`)
    per_gt_level: list[dict]  # one per (GT, level): matches and best IoU on that level
    summary: list[dict]  # one per GT: best possible IoU, matched or not, forced only
    positive_px: np.ndarray  # (P, 4) positives, original pixels, same order as records


def matching_view(
    db: DefaultBoxes,
    image_size: int,
    gt_xyxy_px: Tensor,
    gt_names: list[str],
    image_hw: tuple[int, int],
    iou_threshold: float = 0.5,
) -> MatchingView:
    """Match the default boxes to the image's GT and lay the result out for display.

    Args:
        db: default boxes of the model (`ssd.priors.default_boxes(model.cfg)`).
        image_size: the network input side S (for box shapes in input pixels).
        gt_xyxy_px: (G, 4) GT boxes, original pixels. G may be 0.
        gt_names: (G,) class names.
        image_hw: (H, W) of the original image.
        iou_threshold: matching threshold (0.5 in the paper).
    """
    gt_norm = px_to_norm(gt_xyxy_px.float().reshape(-1, 4), image_hw)  # (G, 4)
    default_xyxy = db.xyxy
    m = match(default_xyxy, gt_norm, iou_threshold)
    num_gt = gt_norm.shape[0]
    # IoU of every default box with every GT: (G, A)
    iou_all = box_iou(gt_norm, default_xyxy) if num_gt else torch.zeros((0, len(db)))
    pos = m.gt_index.ge(0).nonzero().flatten()  # (P,)
    g_of = m.gt_index[pos]
    iou_assigned = iou_all[g_of, pos] if len(pos) else torch.zeros(0)
    wh_px = db.cxcywh[:, 2:] * image_size
    records = []
    for a, g, iou in zip(pos.tolist(), g_of.tolist(), iou_assigned.tolist()):
        k = int(db.level[a])
        b = int(db.box_index[a])
        f = db.feature_maps[k]
        records.append(
            {
                "default_index": a, "gt": g, "gt_label": gt_names[g], "level": k, "feature_map": f"{f}x{f}",
                "row": int(db.row[a]), "col": int(db.col[a]), "box": b, "ratio": db.labels_per_level[k][b],
                "w_input_px": round(float(wh_px[a, 0]), 1), "h_input_px": round(float(wh_px[a, 1]), 1),
                "iou": round(float(iou), 4), "forced": bool(m.forced[a]),
            }
        )
    per_gt_level, summary = [], []
    for g in range(num_gt):
        best_iou, best_a = (iou_all[g].max().item(), int(iou_all[g].argmax())) if len(db) else (0.0, -1)
        n_match = int((m.gt_index == g).sum())
        n_forced = int(((m.gt_index == g) & m.forced).sum())
        summary.append(
            {
                "gt": g, "label": gt_names[g], "matches": n_match, "forced_matches": n_forced,
                "best_possible_iou": round(best_iou, 4), "best_level": int(db.level[best_a]) if best_a >= 0 else None,
                "above_threshold": best_iou >= iou_threshold,
                "status": _status(n_match, n_forced, best_iou, iou_threshold),
            }
        )
        for k in range(len(db.feature_maps)):
            sl = db.level_slice(k)
            iou_k = iou_all[g, sl]
            mine = (m.gt_index[sl] == g)
            j = int(iou_k.argmax())
            a = sl.start + j
            f = db.feature_maps[k]
            per_gt_level.append(
                {
                    "gt": g, "label": gt_names[g], "level": k, "feature_map": f"{f}x{f}",
                    "matches": int(mine.sum()), "best_iou_on_level": round(float(iou_k[j]), 4),
                    "best_cell": f"({int(db.row[a])}, {int(db.col[a])})",
                    "best_ratio": db.labels_per_level[k][int(db.box_index[a])],
                }
            )
    positive_px = norm_to_px(default_xyxy[pos].reshape(-1, 4), image_hw).numpy()
    return MatchingView(m, records, per_gt_level, summary, positive_px)


def best_default_boxes(db: DefaultBoxes, gt_xyxy_px: Tensor, image_hw: tuple[int, int]) -> list[dict]:
    """For each GT box, the default box it overlaps best: the one matching forces on it
    (Sec. 2.2), and so the level and cell that should fire for this object.

    Args:
        db: the model's default boxes.
        gt_xyxy_px: (G, 4) GT boxes, original pixels.
        image_hw: (H, W) of the original image (the resize maps it onto the input square).
    Returns:
        G dicts: gt, level, row, col, box (index within the cell), default_index, iou.
    """
    gt_norm = px_to_norm(gt_xyxy_px.float().reshape(-1, 4), image_hw)  # (G, 4)
    if gt_norm.shape[0] == 0 or len(db) == 0:
        return []
    best_iou, best_a = box_iou(gt_norm, db.xyxy).max(dim=1)  # (G, A) -> (G,), (G,)
    return [{"gt": g, "level": int(db.level[a]), "row": int(db.row[a]), "col": int(db.col[a]),
             "box": int(db.box_index[a]), "default_index": int(a), "iou": round(float(iou), 4)}
            for g, (a, iou) in enumerate(zip(best_a.tolist(), best_iou.tolist()))]


def _status(n_match: int, n_forced: int, best_iou: float, thr: float) -> str:
    if n_match == 0:
        return "no default box overlaps it: never matched"
    if best_iou < thr:
        return f"no default box reaches IoU {thr:g}: only the forced best match"
    return "matched above the threshold"


def matching_figure(
    view: MatchingView,
    image_uri: str | None,
    image_hw: tuple[int, int],
    gt_xyxy_px: Tensor,
    gt_names: list[str],
    level_names: list[str] | None = None,
    fig_height: int = 600,
) -> go.Figure:
    """GT (green) and every positive default box coloured by level; forced matches dashed.

    Hover on a box centre: level, cell, ratio, shape (input px), IoU, GT.
    """
    h, w = image_hw
    gt = np.asarray(gt_xyxy_px, dtype=float).reshape(-1, 4)
    traces = box_traces(gt, GT_COLOR, "ground truth", width=4, hover=[f"GT {g}: {n}" for g, n in enumerate(gt_names)])
    recs = view.records
    levels = sorted({r["level"] for r in recs})
    for k in levels:
        for forced in (False, True):
            idx = [n for n, r in enumerate(recs) if r["level"] == k and r["forced"] == forced]
            if not idx:
                continue
            name = f"level {k}" + (f" ({level_names[k]})" if level_names else "") + (" forced" if forced else "")
            hover = [_hover(recs[n]) for n in idx]
            traces += box_traces(view.positive_px[idx], level_color(k), name, hover=hover,
                                 dash="dash" if forced else "solid", width=2, legendgroup=name)
    return image_figure(image_uri, w, h, fig_height=fig_height, traces=traces)


def _hover(r: dict) -> str:
    return (f"level {r['level']} ({r['feature_map']}), cell ({r['row']}, {r['col']}), ratio {r['ratio']}<br>"
            f"{r['w_input_px']:.0f} x {r['h_input_px']:.0f} input px, IoU {r['iou']:.3f} with GT {r['gt']} "
            f"({r['gt_label']})" + ("<br><b>forced</b>: best default box for this GT" if r["forced"] else ""))


# ---------------------------------------------------------------- loss and hard negatives
@dataclass
class LossView:
    conf: float  # L_conf / N
    loc: float  # L_loc / N (before alpha)
    total: float  # (L_conf + alpha L_loc) / N
    conf_sum: float  # L_conf before dividing by N
    loc_sum: float  # L_loc before dividing by N
    num_pos: int  # N
    num_hard_negative: int
    negatives: list[dict]  # the mined negatives, hardest first
    negative_px: np.ndarray  # (M, 4) original pixels, same order
    positive: Tensor  # (A,) bool
    hard_negative: Tensor  # (A,) bool


def loss_view(
    cls_logits: Tensor,
    bbox_regression: Tensor,
    db: DefaultBoxes,
    gt_xyxy_px: Tensor,
    gt_labels: Tensor,
    image_hw: tuple[int, int],
    class_names: list[str],
    iou_threshold: float = 0.5,
    neg_pos_ratio: float = 3.0,
    alpha: float = 1.0,
    variances: tuple[float, float] = (0.1, 0.2),
) -> LossView:
    """The MultiBox loss of one image (`ssd.loss.multibox_loss`), its mined negatives ranked.

    Args:
        cls_logits: (A, C) or (1, A, C) the model's class logits on this image.
        bbox_regression: (A, 4) or (1, A, 4) its box offsets.
        db: the model's default boxes.
        gt_xyxy_px, gt_labels: (G, 4) original pixels, (G,) classes 1..C-1.
    """

    cls_logits = cls_logits.reshape(1, -1, cls_logits.shape[-1]).float()  # (A, C) -> (1, A, C)
    bbox_regression = bbox_regression.reshape(1, -1, 4).float()  # (A, 4) -> (1, A, 4)
    target = {"boxes": px_to_norm(gt_xyxy_px.float().reshape(-1, 4), image_hw), "labels": gt_labels.long()}
    with torch.no_grad():
        res = multibox_loss(cls_logits, bbox_regression, db.cxcywh, [target], iou_threshold=iou_threshold,
                            neg_pos_ratio=neg_pos_ratio, alpha=alpha, variances=variances)
    n = res.num_pos
    positive, hard = res.positive[0], res.hard_negative[0]
    loss_box = res.conf_loss_per_box[0]
    rank = negative_rank(loss_box, positive)
    probs = cls_logits[0].softmax(-1)  # (A, C)
    neg_idx = hard.nonzero().flatten()
    neg_idx = neg_idx[rank[neg_idx].argsort()]  # hardest first
    negatives = []
    for a in neg_idx.tolist():
        k = int(db.level[a])
        b = int(db.box_index[a])
        p = probs[a]
        top = int(p[1:].argmax()) + 1 if p.shape[0] > 1 else 0
        negatives.append(
            {
                "rank": int(rank[a]), "default_index": a, "conf_loss": round(float(loss_box[a]), 4),
                "p_background": round(float(p[0]), 4),
                "top_class": class_names[top] if top < len(class_names) else str(top),
                "p_top_class": round(float(p[top]), 4), "level": k,
                "feature_map": f"{db.feature_maps[k]}x{db.feature_maps[k]}",
                "row": int(db.row[a]), "col": int(db.col[a]), "ratio": db.labels_per_level[k][b],
            }
        )
    denom = max(1, n)
    return LossView(
        conf=float(res.conf), loc=float(res.loc), total=float(res.total),
        conf_sum=float(res.conf) * denom, loc_sum=float(res.loc) * denom, num_pos=n,
        num_hard_negative=int(hard.sum()), negatives=negatives,
        negative_px=norm_to_px(db.xyxy[neg_idx].reshape(-1, 4), image_hw).numpy(), positive=positive, hard_negative=hard,
    )


def hard_negative_figure(
    lv: LossView,
    image_uri: str | None,
    image_hw: tuple[int, int],
    gt_xyxy_px: Tensor,
    gt_names: list[str],
    max_boxes: int = 300,
    fig_height: int = 600,
) -> go.Figure:
    """GT (green) and the mined hard negatives (red, darker = harder), hover = rank and loss."""
    h, w = image_hw
    traces = box_traces(np.asarray(gt_xyxy_px, dtype=float).reshape(-1, 4), GT_COLOR, "ground truth", width=4,
                        hover=[f"GT {g}: {n}" for g, n in enumerate(gt_names)])
    negs = lv.negatives[:max_boxes]
    # Three bands of hardness so the hardest stand out; one trace per band.
    bands = [(0, 0.1, "#ff0000", "hardest 10%"), (0.1, 0.5, "#ff6a00", "next 40%"),
             (0.5, 1.01, "#ffc400", "easiest 50%")]
    n = len(negs)
    for lo, hi, color, label in bands:
        idx = [i for i in range(n) if lo <= i / max(1, n) < hi]
        if not idx:
            continue
        hover = [f"hard negative rank {negs[i]['rank']}: conf loss {negs[i]['conf_loss']:.3f}<br>"
                 f"p(background) {negs[i]['p_background']:.3f}, top class {negs[i]['top_class']} "
                 f"{negs[i]['p_top_class']:.3f}<br>level {negs[i]['level']} ({negs[i]['feature_map']}), "
                 f"cell ({negs[i]['row']}, {negs[i]['col']}), ratio {negs[i]['ratio']}" for i in idx]
        traces += box_traces(lv.negative_px[idx], color, f"hard negatives, {label}", hover=hover, width=1.5)
    return image_figure(image_uri, w, h, fig_height=fig_height, traces=traces)


LOSS_FORMULA = r"L(x, c, l, g) = \frac{1}{N}\left(L_{conf}(x, c) + \alpha L_{loc}(x, l, g)\right)"


def iou_text(iou: float, decimals: int = 3) -> str:
    """An IoU as text, rounded down: a value below a threshold never reads as the
    threshold (0.8968 at threshold 0.90 read "0.90" with 2 decimals, rounded half up)."""
    scale = 10 ** decimals
    return f"{math.floor(float(iou) * scale + 1e-9) / scale:.{decimals}f}"
