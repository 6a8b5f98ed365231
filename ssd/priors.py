"""Default boxes (torchvision: anchors; the paper's Caffe code: priors), Sec. 2.2.

For level k with an f x f feature map, scale s_k and ratios a_r, each cell (i, j)
gets one box per ratio, centred at ((j + 0.5) / f_k', (i + 0.5) / f_k') where
f_k' = image_size / step_k, with width s_k * sqrt(a_r) and height s_k / sqrt(a_r);
ratio 1 also gets the extra box of scale s'_k = sqrt(s_k * s_{k+1}).

Order (as torchvision's `DefaultBoxGenerator`, so its weights line up): level, then
row i, then column j, then box within the cell:
    [ratio 1 (s_k), extra (s'_k), then the other ratios in config order].

Letters: A = total default boxes, L = levels, K_l = boxes per cell on level l.

Command line: `python -m ssd.priors --preset ssd300_voc` prints the per-level table.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass

import torch
from torch import Tensor

from ssd.boxes import cxcywh_to_xyxy
from ssd.config import PRESETS, SSDConfig, preset, ssd_linear


@dataclass(frozen=True)
class DefaultBoxes:
    """All default boxes of a config, with where each one comes from.

    Attributes (A = total boxes):
        cxcywh: (A, 4) float32, normalised to [0, 1] of the input side.
        level: (A,) long, level index 0..L-1.
        row, col: (A,) long, feature-map cell (i, j) on that level.
        box_index: (A,) long, index 0..K_l-1 of the box within its cell.
        per_level: boxes on each level (sum = A).
        feature_maps: the feature-map side per level.
        wh_per_level: per level, (K_l, 2) normalised (w, h) of the boxes of one cell.
        labels_per_level: per level, K_l short names ("1", "1'", "2", "1/2", ...).
    """

    cxcywh: Tensor
    level: Tensor
    row: Tensor
    col: Tensor
    box_index: Tensor
    per_level: tuple[int, ...]
    feature_maps: tuple[int, ...]
    wh_per_level: tuple[Tensor, ...]
    labels_per_level: tuple[tuple[str, ...], ...]

    @property
    def xyxy(self) -> Tensor:
        """(A, 4) xyxy, normalised."""
        return cxcywh_to_xyxy(self.cxcywh)

    def __len__(self) -> int:
        return self.cxcywh.shape[0]

    def level_slice(self, k: int) -> slice:
        """Rows of level k in the flat (A, ...) order."""
        start = sum(self.per_level[:k])
        return slice(start, start + self.per_level[k])

    def flat_index(self, k: int, i: int, j: int, b: int) -> int:
        """Flat index of box b of cell (i, j) on level k."""
        f = self.feature_maps[k]
        n_b = self.wh_per_level[k].shape[0]
        return self.level_slice(k).start + (i * f + j) * n_b + b


def _ratio_label(r: float) -> str:
    if r >= 1:
        return f"{r:g}"
    inv = 1.0 / r
    return f"1/{inv:g}" if abs(inv - round(inv)) < 1e-6 else f"{r:.3g}"


def wh_pairs(scales: tuple[float, ...], ratios: tuple[float, ...], k: int, extra_box: bool, clip: bool):
    """(K, 2) normalised (w, h) of the boxes of one cell on level k, and their labels."""
    s_k = scales[k]
    pairs: list[tuple[float, float]] = []
    labels: list[str] = []
    for r in ratios:
        if r == 1.0:
            pairs.append((s_k, s_k))
            labels.append("1")
            if extra_box:
                s_prime = math.sqrt(s_k * scales[k + 1])  # Sec. 2.2: s'_k
                pairs.append((s_prime, s_prime))
                labels.append("1'")
    for r in ratios:
        if r != 1.0:
            pairs.append((s_k * math.sqrt(r), s_k / math.sqrt(r)))
            labels.append(_ratio_label(r))
    wh = torch.tensor(pairs, dtype=torch.float32)
    if clip:
        wh = wh.clamp(min=0.0, max=1.0)
    return wh, tuple(labels)


def default_boxes(cfg: SSDConfig) -> DefaultBoxes:
    """Generate every default box of `cfg` (see module docstring for the order).

    Per level, one flat index n in [0, f*f*K) splits into cell = n // K = i * f + j and
    box b = n % K. Only element-wise ops, `repeat` and `cat` (no gather/index kernels:
    those go multi-threaded and crawl on a busy CPU); SSD300's 8732 boxes take ~1.5 ms.
    """
    cxcywh, level, row, col, box_index, per_level, whs, labels = [], [], [], [], [], [], [], []
    for k, f in enumerate(cfg.feature_maps):
        wh, lab = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip)
        n_b = wh.shape[0]
        n = f * f * n_b
        flat = torch.arange(n)
        b, cell = flat % n_b, flat // n_b
        i, j = cell // f, cell % f
        # Same arithmetic as torchvision: centre (j + 0.5) / f_k with f_k = image_size / step.
        f_k = cfg.image_size / cfg.steps[k]
        cx = (j.to(torch.float32) + 0.5) / f_k
        cy = (i.to(torch.float32) + 0.5) / f_k
        # (n, 2) centres next to (K, 2) -> (f*f*K, 2) sizes: every cell repeats its K boxes
        cxcywh.append(torch.cat([torch.stack([cx, cy], dim=1), wh.repeat(f * f, 1)], dim=1))  # (n, 4)
        row.append(i)
        col.append(j)
        box_index.append(b)
        level.append(torch.full((n,), k, dtype=torch.long))
        per_level.append(n)
        whs.append(wh)
        labels.append(lab)
    return DefaultBoxes(
        cxcywh=torch.cat(cxcywh),
        level=torch.cat(level),
        row=torch.cat(row),
        col=torch.cat(col),
        box_index=torch.cat(box_index),
        per_level=tuple(per_level),
        feature_maps=cfg.feature_maps,
        wh_per_level=tuple(whs),
        labels_per_level=tuple(labels),
    )


def level_table(cfg: SSDConfig) -> list[dict]:
    """One row per level: feature map, boxes per location, boxes, scale, box sizes (px)."""
    rows = []
    for k, f in enumerate(cfg.feature_maps):
        wh, labels = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip)
        sizes = [
            f"{lab}:{w * cfg.image_size:.0f}x{h * cfg.image_size:.0f}"
            for lab, (w, h) in zip(labels, wh.tolist())
        ]
        rows.append(
            {
                "level": k,
                "feature_map": f"{f}x{f}",
                "boxes_per_location": len(labels),
                "boxes": f * f * len(labels),
                "scale": cfg.scales[k],
                "step_px": cfg.steps[k],
                "box_sizes_px": sizes,
            }
        )
    return rows


def _parse_ratios(text: str) -> tuple[float, ...]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "/" in part:
            a, b = part.split("/", 1)
            if float(b) == 0:
                raise ValueError(f"ratios: {part!r} divides by zero")
            out.append(float(a) / float(b))
        else:
            out.append(float(part))
    return tuple(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m ssd.priors", description="Print the default boxes of an SSD config per level."
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="a named preset (default ssd300_voc)")
    p.add_argument("--s-min", type=float, help="paper's linear rule: smallest scale (fraction)")
    p.add_argument("--s-max", type=float, help="paper's linear rule: largest scale (fraction)")
    p.add_argument("--image-size", type=int, default=300)
    p.add_argument("--feature-maps", type=str, default="38,19,10,5,3,1", help="comma list of map sides")
    p.add_argument("--ratios", type=str, default="1,2,1/2,3,1/3", help="comma list, e.g. 1,2,1/2")
    p.add_argument("--no-extra-box", action="store_true", help="drop the s'_k box")
    p.add_argument("--no-clip", action="store_true", help="do not clip box sizes to the image")
    args = p.parse_args(argv)
    try:
        if args.s_min is not None or args.s_max is not None:
            cfg = ssd_linear(
                s_min=args.s_min if args.s_min is not None else 0.2,
                s_max=args.s_max if args.s_max is not None else 0.9,
                image_size=args.image_size,
                feature_maps=tuple(int(x) for x in args.feature_maps.split(",") if x.strip()),
                aspect_ratios=_parse_ratios(args.ratios),
                extra_box=not args.no_extra_box,
                clip=not args.no_clip,
            )
        else:
            cfg = preset(args.preset or "ssd300_voc")
            if args.no_extra_box or args.no_clip:
                cfg = dataclasses.replace(cfg, extra_box=not args.no_extra_box, clip=not args.no_clip)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    rows = level_table(cfg)
    print(f"{cfg.name}: input {cfg.image_size}x{cfg.image_size}")
    print(f"{'level':>5} {'map':>7} {'k':>3} {'boxes':>7} {'scale':>7} {'step':>6}  box sizes (px, w x h)")
    for r in rows:
        print(
            f"{r['level']:>5} {r['feature_map']:>7} {r['boxes_per_location']:>3} {r['boxes']:>7} "
            f"{r['scale']:>7.3f} {r['step_px']:>6g}  {' '.join(r['box_sizes_px'])}"
        )
    print(f"total default boxes: {sum(r['boxes'] for r in rows)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
