"""Warnings about a default-box configuration that is valid but probably not meant
(issue 11): feature maps that do not fit the input size, and clipping that makes the
boxes of a level identical. `SSDConfig` itself rejects what cannot work at all; these
are the settings that build but draw something odd.

Frame: input pixels of the S x S network input; scales are fractions of S (Sec. 2.2).
Letters: S = input side (px), f = feature-map side (cells), K = boxes per cell.
"""
from __future__ import annotations

from dataclasses import dataclass

from ssd.config import SSDConfig
from ssd.priors import wh_pairs


@dataclass(frozen=True)
class ConfigWarning:
    """One thing about a configuration the page shows as a warning."""

    kind: str  # "maps_increasing", "map_larger_than_input", "grid_misfit" or "clip_identical"
    levels: tuple[int, ...]  # the levels it is about (0-based, as the page's level picker)
    message: str  # the sentence shown, with the numbers the rule compared


def _levels_warning(kind: str, bad: tuple[int, ...], message) -> ConfigWarning | None:
    """A `kind` warning on levels `bad`, its text `message(each level's words)`; None when none is bad."""
    return ConfigWarning(kind, bad, message(bad)) if bad else None


def _maps_increasing(cfg: SSDConfig) -> ConfigWarning | None:
    """SSD's maps go from fine to coarse (38, 19, 10, ...): a map larger than the one
    before it is almost always a typo."""
    fm = cfg.feature_maps
    return _levels_warning("maps_increasing", tuple(k for k in range(1, len(fm)) if fm[k] > fm[k - 1]), lambda bad: (
        "Feature maps should shrink from level to level (largest first), but "
        + ", ".join(f"level {k} ({fm[k]}x{fm[k]}) after level {k - 1} ({fm[k - 1]}x{fm[k - 1]})" for k in bad)
        + " grows."))


def _map_larger_than_input(cfg: SSDConfig) -> ConfigWarning | None:
    """A map with more cells per side than the input has pixels: cells under 1 px."""
    s, fm = cfg.image_size, cfg.feature_maps
    return _levels_warning("map_larger_than_input", tuple(k for k, f in enumerate(fm) if f > s), lambda bad: (
        ", ".join(f"level {k} ({fm[k]}x{fm[k]})" for k in bad)
        + f": more cells per side than the {s} px input has pixels (cells under 1 px)."))


def _grid_misfit(cfg: SSDConfig) -> ConfigWarning | None:
    """Rule: the f cells of step px span the input S within one step and within 10% of S,
    |f * step - S| <= min(step, S / 10).

    SSD300 passes (10 cells x 32 px = 320 px for 300 px: 20 px over, under one 32 px cell
    and under 30 px); a step left over from another input size fails (38 x 8 px = 304 px
    for a 512 px input: the cells cover its top-left 59% only; 1 cell of 300 px on 512 px:
    the one centre sits at 150 px, not 256). Past the rule, a row of cells has its centres
    outside the image, or a strip wider than a cell has no cell centred in it, or the grid
    is off-centre by more than 5% of S.
    """
    s = cfg.image_size
    bad, parts = [], []
    for k, (f, step) in enumerate(zip(cfg.feature_maps, cfg.steps)):
        span = f * step
        if abs(span - s) > min(step, s / 10):
            bad.append(k)
            how = "over" if span > s else "short"
            parts.append(f"level {k}: {f} cells x {step:g} px = {span:g} px, {abs(span - s):g} px {how} "
                         f"(the step that fits is S/f = {s / f:.4g} px)")
    if not bad:
        return None
    rule = f"cells x step within one step and within 10% of S = {s / 10:g} px"
    return ConfigWarning("grid_misfit", tuple(bad),
                         f"The feature maps do not fit the {s} px input (rule: {rule}): " + "; ".join(parts)
                         + ". Edit the steps, or re-enter the feature maps to reset the steps to S/f.")


def _clip_identical(cfg: SSDConfig) -> ConfigWarning | None:
    """With clipping on, box sides are cut at 1 (the input side): s_k >= 1 makes the ratio-1
    boxes (s_k and s'_k) the full input, all boxes of the level when it has ratio 1 only
    (ratio 2 keeps a side s_k / sqrt(2) < 1 while s_k < sqrt(2)); wide ratios can also make
    two boxes of a cell alike. Boxes equal before clipping are not reported."""
    if not cfg.clip:
        return None
    s = cfg.image_size
    bad, parts = [], []
    for k, f in enumerate(cfg.feature_maps):
        wh, labels = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, clip=True)
        raw, _ = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, clip=False)
        sizes = [tuple(round(v, 6) for v in row) for row in wh.tolist()]  # (K, 2) normalised w, h
        raw_sizes = [tuple(round(v, 6) for v in row) for row in raw.tolist()]
        where = f"level {k} ({f}x{f}, s_k = {cfg.scales[k]:g})"
        if all(wh_b == (1.0, 1.0) for wh_b in sizes):
            bad.append(k)
            which = f"all {len(sizes)} boxes of a cell are" if len(sizes) > 1 else "its one box per cell is"
            parts.append(f"{where}: {which} the full {s}x{s} input")
            continue
        groups: dict[tuple, list[int]] = {}
        for b, wh_b in enumerate(sizes):
            groups.setdefault(wh_b, []).append(b)
        for wh_b, bs in groups.items():
            if len(bs) > 1 and len({raw_sizes[b] for b in bs}) > 1:  # clipping made them alike
                bad.append(k)
                names = ", ".join(labels[b] for b in bs)
                parts.append(f"{where}: ratios {names} are all {wh_b[0] * s:.0f}x{wh_b[1] * s:.0f} px")
                break
    if not bad:
        return None
    return ConfigWarning("clip_identical", tuple(bad),
                         "Clipping box sizes to the image makes boxes the same size: " + "; ".join(parts)
                         + ". Lower those scales below 1, or turn clipping off.")


def config_warnings(cfg: SSDConfig) -> list[ConfigWarning]:
    """Everything odd about a valid `cfg`, in the order the page shows it (empty: nothing)."""
    checks = (_maps_increasing, _map_larger_than_input, _grid_misfit, _clip_identical)
    return [w for w in (check(cfg) for check in checks) if w is not None]
