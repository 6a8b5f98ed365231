"""Coverage aggregated over a dataset: what `python -m ssd.coverage` prints and the app shows.

All sizes are in network-input pixels: a box normalised to its image is w * S by h * S
on the S x S input (SSD stretches the image to a square). A box's size is
sqrt(w * h) there.

Letters: G = ground-truth boxes, L = levels.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ssd.config import SSDConfig
from ssd.priors import default_boxes

if TYPE_CHECKING:  # the type of `cov` only: ssd.tuning.coverage imports this module to report
    from ssd.tuning.coverage import Coverage

# Size buckets, input pixels: sqrt(w * h) in [edge_k, edge_k+1).
SIZE_EDGES_PX = (0.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, math.inf)
HISTOGRAM_MAX = 10  # positives-per-box histogram: 0..9, then "10+"


def smallest_default_side(cfg: SSDConfig) -> float:
    """sqrt(w * h) of the smallest default box, normalised."""
    return min(math.sqrt(float((wh[:, 0] * wh[:, 1]).min())) for wh in default_boxes(cfg).wh_per_level)


def _stats(cov: Coverage, mask: Tensor) -> dict:
    """Boxes, BPR, mean best IoU and mean positives of the boxes in `mask` (G,) bool."""
    n = int(mask.sum())
    if n == 0:
        return {"boxes": 0, "bpr": None, "mean_best_iou": None, "mean_positives": None}
    return {
        "boxes": n,
        "bpr": round(float((cov.best_iou[mask] >= cov.iou_threshold).float().mean()), 4),
        "mean_best_iou": round(float(cov.best_iou[mask].mean()), 4),
        "mean_positives": round(float(cov.num_positive[mask].float().mean()), 3),
    }


def size_px(gt_xyxy_norm: Tensor, image_size: int) -> Tensor:
    """(G,) sqrt(w * h) of each box on the network input, pixels."""
    wh = (gt_xyxy_norm[:, 2:] - gt_xyxy_norm[:, :2]) * image_size  # (G, 2)
    return (wh[:, 0] * wh[:, 1]).sqrt()


def _size_label(lo: float, hi: float) -> str:
    return f">= {lo:g} px" if math.isinf(hi) else f"{lo:g}-{hi:g} px"


def per_level_rows(cov: Coverage, cfg: SSDConfig) -> list[dict]:
    """One row per level: boxes whose best default box is there, their BPR, and positives."""
    rows = []
    total_pos = max(1, int(cov.positives_per_level.sum()))
    for k, f in enumerate(cfg.feature_maps):
        owned = cov.best_level == k
        s = _stats(cov, owned)
        rows.append({
            "level": k, "feature_map": f"{f}x{f}", "scale_px": round(cfg.scales[k] * cfg.image_size, 1),
            "owned_boxes": s["boxes"], "owned_share": round(s["boxes"] / max(1, len(cov)), 4),
            "owned_bpr": s["bpr"], "positives": int(cov.positives_per_level[k]),
            "positives_share": round(int(cov.positives_per_level[k]) / total_pos, 4),
        })
    return rows


def per_size_rows(cov: Coverage, sizes_px: Tensor) -> list[dict]:
    """One row per size bucket (`SIZE_EDGES_PX`), input pixels."""
    rows = []
    for lo, hi in zip(SIZE_EDGES_PX[:-1], SIZE_EDGES_PX[1:]):
        mask = (sizes_px >= lo) & (sizes_px < hi)
        rows.append({"size": _size_label(lo, hi), **_stats(cov, mask)})
    return rows


def per_class_rows(cov: Coverage, labels: Tensor, class_names) -> list[dict]:
    """One row per class that has boxes."""
    rows = []
    for c in sorted(set(labels.tolist())):
        name = class_names[c] if 0 <= c < len(class_names) else str(c)
        rows.append({"class": name, **_stats(cov, labels == c)})
    return rows


def positives_histogram(cov: Coverage) -> list[dict]:
    """Boxes with 0, 1, ..., 9 and 10+ positive default boxes."""
    counts = torch.bincount(cov.num_positive.clamp(max=HISTOGRAM_MAX), minlength=HISTOGRAM_MAX + 1)
    return [{"positives": (f"{k}+" if k == HISTOGRAM_MAX else str(k)), "boxes": int(n)}
            for k, n in enumerate(counts.tolist())]


def uncovered_rows(cov: Coverage, gt_xyxy_norm: Tensor, cfg: SSDConfig, labels: Tensor | None = None,
                   class_names=None, image_index: Tensor | None = None, image_names=None,
                   limit: int = 200) -> list[dict]:
    """The boxes whose best IoU stays below the threshold, worst first (at most `limit`)."""
    idx = torch.nonzero(cov.best_iou < cov.iou_threshold).flatten()
    idx = idx[torch.argsort(cov.best_iou[idx], stable=True)][:limit]
    s = cfg.image_size
    rows = []
    for g in idx.tolist():
        x1, y1, x2, y2 = gt_xyxy_norm[g].tolist()
        row = {"box": g}
        if image_index is not None:
            n = int(image_index[g])
            row["image"] = image_names[n] if image_names is not None else n
        if labels is not None:
            c = int(labels[g])
            row["class"] = class_names[c] if class_names is not None and c < len(class_names) else c
        row.update({"w_px": round((x2 - x1) * s, 1), "h_px": round((y2 - y1) * s, 1),
                    "best_iou": round(float(cov.best_iou[g]), 4), "best_level": int(cov.best_level[g])})
        rows.append(row)
    return rows


def summarize(cov: Coverage, gt_xyxy_norm: Tensor, cfg: SSDConfig, labels: Tensor | None = None,
              class_names=None, image_index: Tensor | None = None, image_names=None,
              uncovered_limit: int = 200) -> dict:
    """Everything about one coverage run as a JSON-ready dict.

    Keys: num_boxes, iou_threshold, bpr, mean_best_iou, mean_positives, forced_only (boxes
    no default box reaches at the threshold: only the forced best match, Sec. 2.2, gives
    them a positive), smaller_than_smallest_default (sqrt(w h) below the smallest default
    box's), per_level, per_size, per_class (if labels), positives_histogram, uncovered.
    """
    sizes = size_px(gt_xyxy_norm, cfg.image_size)
    overall = _stats(cov, torch.ones(len(cov), dtype=torch.bool))
    out = {
        "config": cfg.name, "num_default_boxes": int(sum(f * f * k for f, k in zip(cfg.feature_maps,
                                                                                     cfg.boxes_per_location()))),
        "num_boxes": len(cov), "iou_threshold": cov.iou_threshold, "bpr": round(cov.bpr, 4),
        "mean_best_iou": overall["mean_best_iou"], "mean_positives": overall["mean_positives"],
        "forced_only": int((cov.num_positive == 0).sum()),
        "smaller_than_smallest_default": int((sizes < smallest_default_side(cfg) * cfg.image_size).sum()),
        "per_level": per_level_rows(cov, cfg),
        "per_size": per_size_rows(cov, sizes),
        "positives_histogram": positives_histogram(cov),
    }
    if labels is not None:
        out["per_class"] = per_class_rows(cov, labels, class_names or ())
    out["uncovered"] = uncovered_rows(cov, gt_xyxy_norm, cfg, labels, class_names, image_index, image_names,
                                      uncovered_limit)
    return out


def _print_table(title: str, rows: list[dict]) -> None:
    if not rows:
        return
    cols = list(rows[0])
    widths = [max(len(str(c)), *(len(str(r[c])) for r in rows)) for c in cols]
    print(f"\n{title}")
    print("  ".join(str(c).rjust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)))


def print_summary(s: dict, source: str) -> None:
    """The text report of `ssd.tuning.coverage_summary.summarize`."""
    print(f"{s['config']} ({s['num_default_boxes']} default boxes) on {source}: {s['num_boxes']} boxes")
    print(f"BPR at IoU {s['iou_threshold']:g}: {s['bpr']:.4f}   mean best IoU {s['mean_best_iou']}   "
          f"mean positives per box {s['mean_positives']}")
    print(f"only reached by the forced best match: {s['forced_only']}   "
          f"smaller than the smallest default box: {s['smaller_than_smallest_default']}")
    _print_table("per level (the level of each box's best default box)", s["per_level"])
    _print_table("per size (sqrt(w*h) on the network input)", s["per_size"])
    if "per_class" in s:
        _print_table("per class", s["per_class"])
    _print_table("positives per box", s["positives_histogram"])
    _print_table(f"uncovered boxes (worst {min(20, len(s['uncovered']))})", s["uncovered"][:20])
