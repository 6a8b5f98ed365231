"""Coverage: how well a config's default boxes can reach a dataset's ground truth (Sec. 2.2).

For G ground-truth boxes (xyxy, normalised to the image; SSD's resize maps the image
onto the S x S network input, so the same numbers hold there) and the A default boxes
of an `SSDConfig`, `coverage` gives per box the best IoU any default box reaches, which
one reaches it, and how many default boxes reach the threshold (the positives the
matcher would give it, Sec. 2.2). The best possible recall (BPR) is the share of boxes
whose best IoU reaches the threshold: a box below it is only matched by the forced
best-default-box rule.

Exact, but fast, by using the grid instead of all A boxes:
  * Default boxes of one level and one shape ("type": level k, box b of the cell) differ
    only by their centres, on the grid ((j + 0.5) / f'_k, (i + 0.5) / f'_k). Their
    overlap with a box of width W in x is ox(dx) = clamp(0, min(W, w), (W + w)/2 - |dx|),
    a non-increasing function of the centre distance |dx|; the same holds in y. The
    intersection is ox * oy over a product grid, so the best cell of a type is the
    column nearest the box centre times the row nearest it (both bracketing grid
    centres are evaluated, so float rounding at equal distances cannot miss it).
  * IoU >= t  <=>  I >= c = t (A_g + A_d) / (1 + t). Since oy <= min(H, h), a positive
    needs ox >= c / min(H, h), i.e. |dx| <= (W + w)/2 - c / min(H, h) (and likewise in
    y): a window of cells around the centre that contains every positive. The window is
    widened by a margin far above float32 rounding, and every cell in it is evaluated.
Every IoU that decides a result is computed with torchvision's `box_iou` arithmetic on
the very float32 corners `ssd.priors` produces, so `num_positive` equals brute force
exactly and `best_iou` to float32 rounding (tests check both against `box_iou`).

Letters: G = ground-truth boxes, T = box types (sum of boxes per cell over levels),
A = default boxes, L = levels, P = (box, type) pairs that may have positives,
F = largest feature-map side.

Command line: `python -m ssd.coverage --dataset procedural --preset compact256 [--json]`.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou

from ssd.config import PRESETS, SSDConfig, load_config_json, preset
from ssd.data import gt_boxes
from ssd.models import default_config
from ssd.priors import default_boxes
from ssd.tuning.coverage_summary import print_summary, summarize

_CHUNK_BOXES = 32768  # boxes per step of the best-IoU pass: (chunk, T) tensors stay small
_CELL_BUDGET = 1 << 21  # window cells per step of the positives pass
_MARGIN = 1e-3  # window widening, as a fraction of (W + w): float32 errors are ~1e-7


@dataclass(frozen=True)
class Coverage:
    """Per-box coverage of G ground-truth boxes by the default boxes of one config.

    Attributes:
        best_iou: (G,) float32, the highest IoU any default box reaches with the box.
        best_index: (G,) long, flat default-box index (`ssd.priors` order) reaching it.
        best_level: (G,) long, level of that default box.
        num_positive: (G,) long, default boxes with IoU >= iou_threshold.
        positives_per_level: (L,) long, positives summed over boxes, per level.
        iou_threshold: the matching threshold t.
    """

    best_iou: Tensor
    best_index: Tensor
    best_level: Tensor
    num_positive: Tensor
    positives_per_level: Tensor
    iou_threshold: float

    @property
    def bpr(self) -> float:
        """Best possible recall: share of boxes whose best IoU reaches the threshold (0 if G = 0)."""
        n = self.best_iou.numel()
        return float((self.best_iou >= self.iou_threshold).sum()) / n if n else 0.0

    def __len__(self) -> int:
        return self.best_iou.numel()


@dataclass(frozen=True)
class _Grids:
    """Per box type t: the corners of its default boxes, per column (x) and per row (y).

    x1, x2, y1, y2: (T, F) float32, the exact corners `ssd.priors` gives (column j of
    type t: x1[t, j]; columns past f_t repeat the last). f, start, num_b, level: (T,)
    long (start = flat index of cell (0, 0), num_b = boxes per cell). f_in: (T,) float32
    = image_size / step (cell centres at (j + 0.5) / f_in). w, h: (T,) float32 box size.
    """

    x1: Tensor
    x2: Tensor
    y1: Tensor
    y2: Tensor
    f: Tensor
    start: Tensor
    num_b: Tensor
    level: Tensor
    f_in: Tensor
    w: Tensor
    h: Tensor


def _grids(cfg: SSDConfig) -> _Grids:
    db = default_boxes(cfg)
    xyxy = db.xyxy  # (A, 4) float32, the corners brute force uses
    f_max = max(cfg.feature_maps)
    cols: dict[str, list[Tensor]] = {"x1": [], "x2": [], "y1": [], "y2": []}
    meta: dict[str, list[float]] = {k: [] for k in ("f", "start", "num_b", "level", "f_in")}
    for k, f in enumerate(cfg.feature_maps):
        level_start = db.level_slice(k).start
        num_b = db.wh_per_level[k].shape[0]
        pad = torch.arange(f_max).clamp(max=f - 1)  # (F,) column/row index, repeated past f
        for b in range(num_b):
            col_idx = level_start + pad * num_b + b  # cell (0, j)
            row_idx = level_start + pad * f * num_b + b  # cell (i, 0)
            cols["x1"].append(xyxy[col_idx, 0])
            cols["x2"].append(xyxy[col_idx, 2])
            cols["y1"].append(xyxy[row_idx, 1])
            cols["y2"].append(xyxy[row_idx, 3])
            for key, v in (("f", f), ("start", level_start + b), ("num_b", num_b), ("level", k),
                           ("f_in", cfg.image_size / cfg.steps[k])):
                meta[key].append(v)
    x1, x2, y1, y2 = (torch.stack(cols[k]) for k in ("x1", "x2", "y1", "y2"))  # (T, F) each
    longs = {k: torch.tensor(meta[k], dtype=torch.long) for k in ("f", "start", "num_b", "level")}
    return _Grids(x1=x1, x2=x2, y1=y1, y2=y2, f_in=torch.tensor(meta["f_in"], dtype=torch.float32),
                  w=x2[:, 0] - x1[:, 0], h=y2[:, 0] - y1[:, 0], **longs)


def check_boxes(gt_xyxy_norm: Tensor, what: str = "gt_xyxy_norm") -> Tensor:
    """(G, 4) float32 copy of the boxes; ValueError naming the first bad box and its problem."""
    gt = torch.as_tensor(gt_xyxy_norm)
    if gt.dim() != 2 or gt.shape[1] != 4:
        raise ValueError(f"{what}: expected (G, 4) xyxy boxes, got shape {tuple(gt.shape)}")
    gt = gt.to(torch.float32)
    bad = ~torch.isfinite(gt).all(dim=1)
    if bad.any():
        g = int(bad.nonzero()[0])
        raise ValueError(f"{what}: box {g} has a NaN or infinite coordinate: {gt[g].tolist()}")
    bad = (gt[:, 2] <= gt[:, 0]) | (gt[:, 3] <= gt[:, 1])
    if bad.any():
        g = int(bad.nonzero()[0])
        raise ValueError(f"{what}: box {g} has zero or negative size (x2 <= x1 or y2 <= y1): {gt[g].tolist()}")
    return gt


def coverage(gt_xyxy_norm: Tensor, cfg: SSDConfig, iou_threshold: float = 0.5) -> Coverage:
    """Best IoU, best default box and positives of each ground-truth box (see module docstring).

    Args:
        gt_xyxy_norm: (G, 4) xyxy, normalised to the image (= the network input).
        cfg: the config whose default boxes (`ssd.priors.default_boxes(cfg)`) are tested.
        iou_threshold: t in (0, 1]; a default box with IoU >= t is a positive (Sec. 2.2).
    Returns:
        `Coverage`, equal to `coverage_brute` (exactly for counts, to 1e-6 for IoUs).
    Raises:
        ValueError naming the box for NaN/infinite coordinates or zero/negative size,
        and for a threshold outside (0, 1].
    """
    if not (isinstance(iou_threshold, (int, float)) and 0 < iou_threshold <= 1):
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    grids = _grids(cfg)

    def per_chunk(chunk: Tensor):
        ub = _upper_bound(chunk, grids)  # (chunk, T)
        return (*_best(chunk, grids, ub), *_positives(chunk, grids, float(iou_threshold), ub, cfg.num_levels))

    return _chunked(check_boxes(gt_xyxy_norm), cfg, iou_threshold, _CHUNK_BOXES, per_chunk)


def _chunked(gt: Tensor, cfg: SSDConfig, iou_threshold: float, chunk: int, per_chunk) -> Coverage:
    """`Coverage` of the (G, 4) boxes `gt`, `chunk` boxes at a time: `per_chunk(boxes)` gives
    (best IoU, best index, positives) per box and the positives per level of the chunk."""
    n = gt.shape[0]
    best_iou = torch.zeros(n, dtype=torch.float32)
    best_index = torch.zeros(n, dtype=torch.long)
    num_positive = torch.zeros(n, dtype=torch.long)
    per_level = torch.zeros(cfg.num_levels, dtype=torch.long)
    for lo in range(0, n, chunk):
        rows = slice(lo, min(lo + chunk, n))
        best_iou[rows], best_index[rows], num_positive[rows], level_counts = per_chunk(gt[rows])
        per_level += level_counts
    return Coverage(best_iou=best_iou, best_index=best_index, best_level=default_boxes(cfg).level[best_index],
                    num_positive=num_positive, positives_per_level=per_level, iou_threshold=float(iou_threshold))


def _overlap_1d(lo: Tensor, hi: Tensor, d_lo: Tensor, d_hi: Tensor) -> Tensor:
    """Overlap length of [lo, hi] and [d_lo, d_hi], with `box_iou`'s arithmetic: (min - max).clamp(0)."""
    return (torch.minimum(hi, d_hi) - torch.maximum(lo, d_lo)).clamp(min=0)


def _upper_bound(gt: Tensor, g: _Grids) -> Tensor:
    """(G, T) the IoU each type would reach centred on the box: no cell of it does better."""
    bw, bh = gt[:, 2:3] - gt[:, 0:1], gt[:, 3:4] - gt[:, 1:2]  # (G, 1) each
    inter = torch.minimum(bw, g.w) * torch.minimum(bh, g.h)  # (G, T)
    return inter / (bw * bh + g.w * g.h - inter)


def _nearest(centre: Tensor, lo: Tensor, hi: Tensor, types: Tensor, g: _Grids, d_lo: Tensor, d_hi: Tensor):
    """Of the two grid lines bracketing each centre, the one whose boxes overlap [lo, hi] more.

    All (P,) for P (box, type) pairs; d_lo/d_hi: (T, F) corners. Returns (index, overlap, extent).
    """
    f_last = g.f[types] - 1
    i0 = torch.minimum((centre * g.f_in[types] - 0.5).floor().long().clamp(min=0), f_last)
    flat = types * d_lo.shape[1]
    lo0, hi0 = d_lo.reshape(-1)[flat + i0], d_hi.reshape(-1)[flat + i0]  # (T, F) -> (T*F,) -> (P,)
    i1 = torch.minimum(i0 + 1, f_last)
    lo1, hi1 = d_lo.reshape(-1)[flat + i1], d_hi.reshape(-1)[flat + i1]
    o0, o1 = _overlap_1d(lo, hi, lo0, hi0), _overlap_1d(lo, hi, lo1, hi1)
    take1 = o1 > o0
    return (torch.where(take1, i1, i0), torch.where(take1, o1, o0),
            torch.where(take1, hi1 - lo1, hi0 - lo0))


def _pair_best(gt: Tensor, types: Tensor, g: _Grids) -> tuple[Tensor, Tensor]:
    """Best cell of each (box, type) pair: (IoU (P,), flat default index (P,))."""
    x1, y1, x2, y2 = gt.unbind(dim=1)  # (P,) each
    j, ox, dx = _nearest((x1 + x2) / 2, x1, x2, types, g, g.x1, g.x2)
    i, oy, dy = _nearest((y1 + y2) / 2, y1, y2, types, g, g.y1, g.y2)
    inter = ox * oy
    iou = inter / ((x2 - x1) * (y2 - y1) + dx * dy - inter)  # box_iou's order of operations
    return iou, g.start[types] + (i * g.f[types] + j) * g.num_b[types]


def _best(gt: Tensor, g: _Grids, ub: Tensor) -> tuple[Tensor, Tensor]:
    """(best IoU (G,), flat default index (G,)).

    The type with the highest upper bound gives a first best; only types whose upper
    bound beats it can do better, and those are evaluated too.
    """
    rows = torch.arange(gt.shape[0])
    first = ub.argmax(dim=1)  # (G,)
    best, index = _pair_best(gt, first, g)
    maybe = ub * (1 + 1e-6) > best[:, None]  # (G, T); the margin covers float32 rounding
    maybe[rows, first] = False
    box_idx, type_idx = torch.nonzero(maybe, as_tuple=True)  # (P,) each
    if box_idx.numel():
        iou, idx = _pair_best(gt[box_idx], type_idx, g)
        better = iou > best[box_idx]
        box_idx, iou, idx = box_idx[better], iou[better], idx[better]
        best = best.scatter_reduce(0, box_idx, iou, reduce="amax")
        winner = iou == best[box_idx]
        index[box_idx[winner]] = idx[winner]
    return best, index


def _window(centre: Tensor, radius: Tensor, f_in: Tensor, f: Tensor) -> tuple[Tensor, Tensor]:
    """First grid index and count of cells whose centre lies within `radius` of `centre` (P,)."""
    lo = torch.ceil((centre - radius) * f_in - 0.5).clamp(min=0)
    hi = torch.minimum(torch.floor((centre + radius) * f_in - 0.5), (f - 1).to(centre.dtype))
    return lo.long(), (hi - lo + 1).clamp(min=0).long()


def _positives(gt: Tensor, g: _Grids, t: float, ub: Tensor, num_levels: int) -> tuple[Tensor, Tensor]:
    """(positives per box (G,), positives per level (L,)): every cell of each window evaluated."""
    counts = torch.zeros(gt.shape[0], dtype=torch.long)
    per_level = torch.zeros(num_levels, dtype=torch.long)
    box_idx, types = torch.nonzero(ub >= t * (1 - 1e-6), as_tuple=True)  # (P,): no other pair reaches t
    if box_idx.numel() == 0:
        return counts, per_level
    x1, y1, x2, y2 = gt[box_idx].unbind(dim=1)  # (P,) each
    bw, bh, w, h = x2 - x1, y2 - y1, g.w[types], g.h[types]
    c = t * (bw * bh + w * h) / (1 + t)  # intersection a positive needs
    # oy <= min(H, h), so a positive needs ox >= c / min(H, h): |dx| <= (W + w)/2 - that.
    rx = (bw + w) / 2 - c / torch.minimum(bh, h) + _MARGIN * (bw + w)
    ry = (bh + h) / 2 - c / torch.minimum(bw, w) + _MARGIN * (bh + h)
    j_lo, nx = _window((x1 + x2) / 2, rx, g.f_in[types], g.f[types])
    i_lo, ny = _window((y1 + y2) / 2, ry, g.f_in[types], g.f[types])
    keep = (nx > 0) & (ny > 0)
    box_idx, types, j_lo, nx, i_lo, ny = (v[keep] for v in (box_idx, types, j_lo, nx, i_lo, ny))
    if box_idx.numel() == 0:  # upper bounds allowed it, but no cell centre is near enough
        return counts, per_level
    # One step per window shape (nx, ny): no padding, so every evaluated cell is a real one.
    shape_key = nx * (int(ny.max()) + 1) + ny
    for key in torch.unique(shape_key).tolist():
        group = torch.nonzero(shape_key == key).flatten()
        wx, wy = int(nx[group[0]]), int(ny[group[0]])
        step = max(1, _CELL_BUDGET // (wx * wy))
        for lo in range(0, group.numel(), step):
            sel = group[lo:lo + step]
            pos = _count_windows(gt[box_idx[sel]], types[sel], j_lo[sel], i_lo[sel], wx, wy, g, t)
            counts.index_add_(0, box_idx[sel], pos)
            per_level.index_add_(0, g.level[types[sel]], pos)
    return counts, per_level


def _count_windows(gt, types, j_lo, i_lo, wx: int, wy: int, g: _Grids, t: float) -> Tensor:
    """Positives of P (box, type) pairs, each over its window of wy rows x wx columns."""
    base = types[:, None] * g.x1.shape[1]
    cols = j_lo[:, None] + torch.arange(wx) + base  # (P, wx) into (T*F,)
    rows = i_lo[:, None] + torch.arange(wy) + base  # (P, wy)
    dx1, dx2 = g.x1.reshape(-1)[cols], g.x2.reshape(-1)[cols]  # (P, wx)
    dy1, dy2 = g.y1.reshape(-1)[rows], g.y2.reshape(-1)[rows]  # (P, wy)
    x1, y1, x2, y2 = (gt[:, c:c + 1] for c in range(4))  # (P, 1)
    ox = _overlap_1d(x1, x2, dx1, dx2)[:, None, :]  # (P, wx) -> (P, 1, wx)
    oy = _overlap_1d(y1, y2, dy1, dy2)[:, :, None]  # (P, wy) -> (P, wy, 1)
    inter = ox * oy  # (P, wy, wx)
    area1 = ((x2 - x1) * (y2 - y1))[:, :, None]  # (P, 1, 1)
    area2 = (dx2 - dx1)[:, None, :] * (dy2 - dy1)[:, :, None]
    iou = inter / (area1 + area2 - inter)  # box_iou's order of operations
    return (iou >= t).sum(dim=(1, 2))


def coverage_brute(gt_xyxy_norm: Tensor, cfg: SSDConfig, iou_threshold: float = 0.5,
                   chunk: int = 2048) -> Coverage:
    """The reference: `torchvision.ops.box_iou` of every box against all A default boxes,
    `chunk` boxes at a time. Same result type as `coverage`; O(G * A) time."""
    db = default_boxes(cfg)

    def per_chunk(boxes: Tensor):
        iou = box_iou(boxes, db.xyxy)  # (chunk, A)
        pos = iou >= iou_threshold
        return (*iou.max(dim=1), pos.sum(dim=1),
                torch.stack([pos[:, db.level_slice(k)].sum() for k in range(cfg.num_levels)]))

    return _chunked(check_boxes(gt_xyxy_norm), cfg, iou_threshold, chunk, per_chunk)


def config_from_args(preset_name: str | None, box_config: str | None, model: str | None = None) -> SSDConfig:
    """The config a command line names: `--preset NAME`, or `--box-config FILE` (an
    `SSDConfig.to_dict()` JSON, checked against `--model`'s geometry when given), or
    the model's own config. ValueError naming the problem."""
    reference = default_config(model) if model else None
    if preset_name and box_config:
        raise ValueError("give --preset or --box-config, not both")
    if box_config:
        return load_config_json(box_config, reference)
    if preset_name:
        return preset(preset_name)
    return reference if reference is not None else preset("compact256")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssd.coverage",
                                description="How well a config's default boxes cover a dataset's boxes.")
    gt_boxes.add_dataset_args(p)
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named config (default: the model's, else compact256)")
    p.add_argument("--box-config", help="an SSDConfig JSON (as `ssd.tune_boxes` writes)")
    p.add_argument("--model", help="check --box-config against this model's feature maps")
    p.add_argument("--iou", type=float, default=0.5, help="matching threshold (default 0.5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = p.parse_args(argv)
    try:
        cfg = config_from_args(args.preset, args.box_config, args.model)
        data = gt_boxes.from_args(args)
        cov = coverage(data.boxes_xyxy_norm, cfg, args.iou)
    except ValueError as e:  # DatasetError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    s = summarize(cov, data.boxes_xyxy_norm, cfg, data.labels, data.class_names, data.image_index, data.image_names)
    s["dataset"] = data.source
    if data.skipped:
        s["skipped"] = [list(x) for x in data.skipped]
    if args.json:
        print(json.dumps(s, indent=1))
    else:
        print_summary(s, data.source)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
