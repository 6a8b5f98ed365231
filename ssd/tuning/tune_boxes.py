"""Default boxes tuned to a dataset: a local search over scales, aspect ratios and the extra box.

What stays: the starting configuration's input size, feature maps and steps (the model's
layers fix them). Pass the configuration the user is looking at as `base`: before/after
compare against it.
What moves: the scales s_1..s_(m+1), each level's aspect-ratio set (one of
`RATIO_SETS`, the paper's {1}, {1, 2, 1/2}, {1, 2, 1/2, 3, 1/3}) and the extra box s'_k.
Budget: the total number of default boxes stays <= `max_boxes` (default: the model's).
Objective, in this order: the best possible recall (BPR) at IoU 0.5 (share of boxes
some default box reaches at the threshold, `ssd.coverage`), then the mean number of
positive default boxes per ground-truth box (more positives = more training signal).

The search: start from the model's config and from scales spread geometrically over the
data's box sizes; then, in rounds, try each scale (alone, and with the next one, which
moves a level's extra box along) times/divided by a factor, each level's
other ratio sets and toggling the extra box, keeping any change that improves the
objective on a fixed random sample of the boxes; the factor shrinks (1.5, 1.2, 1.07, 1.02) when
a round improves nothing. Before/after figures are on all the boxes.

Rules the result keeps: the scales grow from level to level (finer maps, smaller boxes:
Sec. 2.2's ordering) unless `monotone=False`; every scale is rounded to `ROUND_DECIMALS`
(what is written is what was scored); and `notes` warns when the data has fewer boxes
than `min_boxes_needed` (a search over that many free numbers on few boxes fits those
boxes, not the data set).

Command line:
    python -m ssd.tune_boxes --dataset procedural --object-size 0.03,0.12 --model compact256 --out tuned.json
writes the tuned `SSDConfig.to_dict()` as JSON (atomically), for `--box-config FILE`.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from ssd.config import SSDConfig
from ssd.data import gt_boxes
from ssd.io import write_json_atomic
from ssd.models import MODEL_NAMES, default_config
from ssd.priors import level_table
from ssd.tuning.coverage import check_boxes, coverage

RATIO_SETS = ((1.0,), (1.0, 2.0, 0.5), (1.0, 2.0, 0.5, 3.0, 1 / 3))  # the paper's per-level choices
FACTORS = (1.5, 1.2, 1.07, 1.02)  # scale steps, coarse to fine
ROUND_DECIMALS = 3  # decimals of the scales the tuner returns and writes
BOXES_PER_PARAMETER = 20  # boxes wanted per number the search moves (scales, ratio sets, extra box)


def num_default_boxes(cfg: SSDConfig) -> int:
    """Total default boxes: sum over levels of f^2 * boxes per cell."""
    return sum(f * f * k for f, k in zip(cfg.feature_maps, cfg.boxes_per_location()))


def score(gt_xyxy_norm: Tensor, cfg: SSDConfig, iou_threshold: float = 0.5) -> tuple[float, float]:
    """The objective: (BPR at the threshold, mean positives per box)."""
    cov = coverage(gt_xyxy_norm, cfg, iou_threshold)
    return cov.bpr, float(cov.num_positive.float().mean()) if len(cov) else 0.0


def min_boxes_needed(cfg: SSDConfig) -> int:
    """Ground-truth boxes the tuner wants for `cfg`: BOXES_PER_PARAMETER per number it
    moves (m + 1 scales, m ratio sets, the extra box)."""
    return BOXES_PER_PARAMETER * (2 * cfg.num_levels + 2)


def scales_grow(cfg: SSDConfig) -> bool:
    """Whether s_1 <= s_2 <= ... <= s_(m+1): box sides grow as the maps get coarser."""
    return all(a <= b + 1e-12 for a, b in zip(cfg.scales, cfg.scales[1:]))


def rounded(cfg: SSDConfig, decimals: int = ROUND_DECIMALS) -> SSDConfig:
    """`cfg` with its scales rounded (at least 10^-decimals, so none becomes 0)."""
    floor = 10.0 ** -decimals
    return dataclasses.replace(cfg, scales=tuple(max(floor, round(s, decimals)) for s in cfg.scales))


@dataclass(frozen=True)
class TuneResult:
    """cfg: the tuned config (scales rounded). before/after: {"bpr", "mean_positives",
    "default_boxes"} on all boxes, for the starting config (`base`) and the tuned one.
    evaluations: configs scored. notes: warnings to show with the result (too few boxes)."""

    cfg: SSDConfig
    before: dict
    after: dict
    evaluations: int
    notes: tuple[str, ...] = ()


def _better(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Lexicographic: BPR first, then mean positives (ties within 1e-9 are not better)."""
    if a[0] > b[0] + 1e-9:
        return True
    return abs(a[0] - b[0]) <= 1e-9 and a[1] > b[1] + 1e-9


def _fit_budget(cfg: SSDConfig, max_boxes: int) -> SSDConfig:
    """Fewer ratios on the finest levels (then no extra box) until the budget holds."""
    while num_default_boxes(cfg) > max_boxes:
        levels = [k for k in range(cfg.num_levels) if len(cfg.aspect_ratios[k]) > 1]
        if levels:
            k = max(levels, key=lambda k: cfg.feature_maps[k])
            smaller = [rs for rs in RATIO_SETS if len(rs) < len(cfg.aspect_ratios[k])][-1]
            cfg = dataclasses.replace(cfg, aspect_ratios=tuple(
                smaller if i == k else rs for i, rs in enumerate(cfg.aspect_ratios)))
        elif cfg.extra_box:
            cfg = dataclasses.replace(cfg, extra_box=False)
        else:
            raise ValueError(f"max_boxes {max_boxes} is below the smallest layout of feature maps "
                             f"{list(cfg.feature_maps)} (one box per cell: {num_default_boxes(cfg)})")
    return cfg


def data_spread_config(gt_xyxy_norm: Tensor, base: SSDConfig) -> SSDConfig:
    """`base` with scales spread geometrically from the 5th to the 95th percentile of the
    boxes' sizes sqrt(w * h) (normalised), one step further for s_(m+1)."""
    sizes = ((gt_xyxy_norm[:, 2] - gt_xyxy_norm[:, 0]) * (gt_xyxy_norm[:, 3] - gt_xyxy_norm[:, 1])).sqrt()
    lo, hi = (float(torch.quantile(sizes, q)) for q in (0.05, 0.95))
    m = base.num_levels
    ratio = (hi / lo) ** (1 / max(1, m - 1)) if hi > lo else 1.05
    return dataclasses.replace(base, scales=tuple(lo * ratio ** k for k in range(m + 1)))


def _neighbours(cfg: SSDConfig, factor: float):
    """Every one-change variant of `cfg`: one scale times or divided by `factor`, one level's
    ratio set, or the extra box toggled."""
    for k in range(len(cfg.scales)):
        for f in (factor, 1 / factor):
            yield dataclasses.replace(cfg, scales=tuple(s * f if i == k else s for i, s in enumerate(cfg.scales)))
            if k + 1 < len(cfg.scales):  # a level and its extra box s'_k together
                yield dataclasses.replace(cfg, scales=tuple(s * f if i in (k, k + 1) else s
                                                            for i, s in enumerate(cfg.scales)))
    for k in range(cfg.num_levels):
        for rs in RATIO_SETS:
            if set(rs) != set(cfg.aspect_ratios[k]):
                yield dataclasses.replace(cfg, aspect_ratios=tuple(
                    rs if i == k else r for i, r in enumerate(cfg.aspect_ratios)))
    yield dataclasses.replace(cfg, extra_box=not cfg.extra_box)


def _start_configs(gt: Tensor, base: SSDConfig, max_boxes: int, monotone: bool) -> list[SSDConfig]:
    """The search's starting points: `base` (its scales sorted when they must grow) and the
    data-spread scales, each fitted to the budget."""
    first = base if not monotone or scales_grow(base) else dataclasses.replace(base, scales=tuple(sorted(base.scales)))
    return [_fit_budget(rounded(first), max_boxes), _fit_budget(rounded(data_spread_config(gt, base)), max_boxes)]


def _few_boxes_note(n: int, base: SSDConfig) -> tuple[str, ...]:
    need = min_boxes_needed(base)
    if n >= need:
        return ()
    return (f"Tuned on {n} ground-truth box(es), fewer than the {need} this search needs for "
            f"{base.num_levels} levels ({BOXES_PER_PARAMETER} per scale, ratio set and the extra box): the "
            "result fits these boxes and may not carry over to new data. Use more images.",)


def tune(gt_xyxy_norm: Tensor, base: SSDConfig, max_boxes: int | None = None, iou_threshold: float = 0.5,
         sample: int = 5000, max_evals: int = 300, seed: int = 0,
         progress: Callable[[int, int, float], None] | None = None, monotone: bool = True) -> TuneResult:
    """Search scales, ratio sets and the extra box of `base` for the boxes (module docstring).

    Args:
        gt_xyxy_norm: (G, 4) ground-truth boxes, xyxy normalised.
        base: the configuration the user looks at (the model's, or the Default boxes page's);
            its input size, feature maps and steps are kept, and before/after compare to it.
        max_boxes: budget on the total default boxes (default: base's own count).
        iou_threshold: the BPR threshold (0.5 as in the paper's matching).
        sample: boxes the search scores on (a fixed random subset; all if fewer).
        max_evals: most configs scored.
        seed: the sample's seed.
        progress: called as progress(evaluations, max_evals, best BPR so far).
        monotone: keep s_1 <= ... <= s_(m+1) (box sides grow with coarser maps); False lets
            the search order them freely.
    Returns:
        `TuneResult` (scales rounded to ROUND_DECIMALS; notes when the boxes are too few);
        ValueError for bad boxes or a budget below one box per cell.
    """
    gt = check_boxes(gt_xyxy_norm)
    if len(gt) == 0:
        raise ValueError("no ground-truth boxes to tune for")
    max_boxes = num_default_boxes(base) if max_boxes is None else int(max_boxes)
    g = torch.Generator().manual_seed(seed)
    subset = gt[torch.randperm(len(gt), generator=g)[:sample]] if len(gt) > sample else gt
    evals = 0

    def scored(cfg: SSDConfig) -> tuple[float, float]:
        nonlocal evals
        evals += 1
        return score(subset, cfg, iou_threshold)

    starts = _start_configs(gt, base, max_boxes, monotone)
    best_score, best = max(((scored(c), c) for c in starts), key=lambda sc: (sc[0][0], sc[0][1]))
    for factor in FACTORS:
        improved = True
        while improved and evals < max_evals:
            improved = False
            for cand in _neighbours(best, factor):
                if evals >= max_evals:
                    break
                cand = rounded(cand)
                if num_default_boxes(cand) > max_boxes or min(cand.scales) > 2.0 or (monotone and not scales_grow(cand)):
                    continue
                s = scored(cand)
                if _better(s, best_score):
                    best_score, best, improved = s, cand, True
                if progress is not None:
                    progress(evals, max_evals, best_score[0])
    tuned = dataclasses.replace(best, name=f"tuned_{base.name}")
    before, after = score(gt, base, iou_threshold), score(gt, tuned, iou_threshold)
    return TuneResult(
        cfg=tuned,
        before={"bpr": before[0], "mean_positives": before[1], "default_boxes": num_default_boxes(base)},
        after={"bpr": after[0], "mean_positives": after[1], "default_boxes": num_default_boxes(tuned)},
        evaluations=evals,
        notes=_few_boxes_note(len(gt), base),
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssd.tune_boxes",
                                description="Tune default-box scales and ratios to a dataset's boxes.")
    gt_boxes.add_dataset_args(p)
    p.add_argument("--model", required=True, choices=MODEL_NAMES, help="whose feature maps and input size to keep")
    p.add_argument("--max-boxes", type=int, default=None, help="budget on default boxes (default: the model's)")
    p.add_argument("--out", required=True, help="where to write the tuned SSDConfig JSON")
    p.add_argument("--iou", type=float, default=0.5, help="BPR threshold (default 0.5)")
    p.add_argument("--sample", type=int, default=5000, help="boxes the search scores on")
    p.add_argument("--max-evals", type=int, default=300, help="most configs scored")
    p.add_argument("--any-order", action="store_true",
                   help="let scales shrink on coarser maps (default: box sides grow with the map)")
    args = p.parse_args(argv)
    try:
        base = default_config(args.model)
        data = gt_boxes.from_args(args)
        res = tune(data.boxes_xyxy_norm, base, args.max_boxes, args.iou, args.sample, args.max_evals,
                   monotone=not args.any_order)
    except ValueError as e:  # DatasetError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(data)} boxes from {data.source}; {res.evaluations} configs scored")
    for note in res.notes:
        print(f"warning: {note}", file=sys.stderr)
    print(f"{'':>8} {'BPR@' + format(args.iou, 'g'):>8} {'pos/box':>8} {'boxes':>7}")
    for name, r in (("before", res.before), ("after", res.after)):
        print(f"{name:>8} {r['bpr']:>8.4f} {r['mean_positives']:>8.3f} {r['default_boxes']:>7}")
    for row in level_table(res.cfg):
        print(f"  level {row['level']} {row['feature_map']:>6}: scale {row['scale']:.4f}  {' '.join(row['box_sizes_px'])}")
    write_json_atomic(args.out, res.cfg.to_dict())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
