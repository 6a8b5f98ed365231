"""Controls, configurations and tables for the default-box page (Sec. 2.2, "Choosing
scales and aspect ratios for default boxes"); its figures are in
`explorer.views.default_box_figure` (re-exported here for the page).

Frame: the network input, S x S pixels (the image is stretched to a square, as SSD
resizes it), x right, y down. Default boxes come normalised from `ssd.priors` and
are multiplied by S here.
"""
from __future__ import annotations

import math

from explorer.views.default_box_figure import (  # noqa: F401 (the page's figures, one import)
    CELL_FILL_COLOR, CELL_LINE_COLOR, DOT_INK_MAX, GRID_INK_MAX, MIN_LINE_GAP_PX, PLOT_PX, GridStyle,
    box_size_figure, default_box_figure, grid_style, ratio_color)
from ssd.config import SSDConfig, linear_scales, ssd300_coco, ssd300_voc, ssd512_voc
from ssd.priors import DefaultBoxes, level_table

# Session-state key of the configuration the pages share: Default boxes edits it, the
# Dataset page measures it (and its optimizer replaces it).
TUNED_CFG_KEY = "tuned_cfg"  # retired: the workspace (explorer.workspace) holds the box configuration

# The ratios a user can pick; label -> value (Sec. 2.2: a_r in {1, 2, 3, 1/2, 1/3}).
RATIO_CHOICES = {"1": 1.0, "2": 2.0, "3": 3.0, "1/2": 0.5, "1/3": 1 / 3}

PRESETS = {
    "SSD300 (VOC, paper)": ssd300_voc,
    "SSD300 (COCO, torchvision)": ssd300_coco,
    "SSD512 (VOC, paper)": ssd512_voc,
}


def _entries(text: str) -> list[str]:
    """"0.1, 1/2; 3" -> ["0.1", "1/2", "3"]: the entries of a typed list (commas or semicolons)."""
    return [part.strip() for part in str(text).replace(";", ",").split(",") if part.strip()]


def _numbers(text: str, what: str) -> list[float]:
    """"0.1, 1/2; 3" -> [0.1, 0.5, 3.0]; ValueError naming the entry that is not a number."""
    out = []
    for part in _entries(text):
        try:
            if "/" in part:
                a, b = part.split("/", 1)
                out.append(float(a) / float(b))
            else:
                out.append(float(part))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{what}: {part!r} is not a number") from None
        if not math.isfinite(out[-1]) or out[-1] <= 0:
            raise ValueError(f"{what}: {part!r} must be a positive number")
    return out


def parse_feature_maps(text: str) -> tuple[int, ...]:
    """"38, 19, 10" -> (38, 19, 10). ValueError naming the entry that is not a positive int."""
    out = []
    for part in _entries(text):
        try:
            v = int(part)
        except ValueError:
            raise ValueError(f"feature-map size {part!r} is not a whole number") from None
        if v <= 0:
            raise ValueError(f"feature-map size {v} must be positive")
        out.append(v)
    if len(out) < 2:
        raise ValueError("give at least two feature-map sizes (the linear scale rule needs m >= 2)")
    return tuple(out)


def ratio_label(r: float) -> str:
    """2.0 -> "2", 0.5 -> "1/2", 1/3 -> "1/3", 1.5 -> "1.5"."""
    if r >= 1:
        return f"{r:g}"
    inv = 1 / r
    return f"1/{round(inv)}" if abs(inv - round(inv)) < 1e-9 else f"{r:g}"


def format_ratio_sets(aspect_ratios) -> str:
    """Per-level ratio sets as text: levels split by ";", ratios by ","."""
    return "; ".join(", ".join(ratio_label(r) for r in rs) for rs in aspect_ratios)


def parse_ratio_sets(text: str, num_levels: int) -> tuple[tuple[float, ...], ...]:
    """Inverse of `format_ratio_sets`; one set given alone applies to every level.
    Labels of the exact fractions 1/2 and 1/3 give exactly 1/2 and 1/3."""
    levels = [part for part in str(text).split(";") if part.strip()]
    if len(levels) == 1:
        levels = levels * num_levels
    if len(levels) != num_levels:
        raise ValueError(f"aspect ratios: {len(levels)} level sets for {num_levels} feature maps "
                         "(separate the levels with ';')")
    return tuple(tuple(_numbers(part, f"aspect ratios of level {k}")) for k, part in enumerate(levels))


def rule_scales(s_min: float, s_max: float, num_levels: int, first: float | None = None) -> tuple[float, ...]:
    """The paper's rule (Sec. 2.2) as the presets use it: s_min..s_max spread linearly over
    the levels it covers, s_(m+1) one step further. With `first`, level 0 gets that scale
    on its own and the rule covers levels 1..m-1 (SSD300: 0.1 for conv4_3, then 0.2..0.88)."""
    if first is None:
        return linear_scales(float(s_min), float(s_max), num_levels)
    if first <= 0:
        raise ValueError(f"the first level's scale must be positive, got {first}")
    return (float(first),) + linear_scales(float(s_min), float(s_max), num_levels - 1)


def _fmt(v: float) -> str:
    """Shortest text that reads back as the same float."""
    return repr(float(v))


def controls_from_config(cfg: SSDConfig) -> dict:
    """Control values that reproduce `cfg` exactly (every scale, step and ratio set), and
    the rule settings (s_min, s_max, separate first level) that describe its scales."""
    m = cfg.num_levels
    first_separate = m >= 3 and not math.isclose(cfg.scales[1] - cfg.scales[0], cfg.scales[2] - cfg.scales[1],
                                                 rel_tol=1e-6, abs_tol=1e-9)
    lo = 1 if first_separate else 0
    return {
        "image_size": int(cfg.image_size),
        "feature_maps": ", ".join(str(f) for f in cfg.feature_maps),
        "steps": ", ".join(f"{s:g}" if s == int(s) else _fmt(s) for s in cfg.steps),
        "scales": ", ".join(_fmt(s) for s in cfg.scales),
        "ratio_sets": format_ratio_sets(cfg.aspect_ratios),
        "extra_box": bool(cfg.extra_box),
        "clip": bool(cfg.clip),
        "s_min": round(float(cfg.scales[lo]), 2),
        "s_max": round(float(cfg.scales[m - 1]), 2),
        "first_separate": bool(first_separate),
        "s_first": round(float(cfg.scales[0]), 3),
    }


def config_from_controls(c: dict, name: str = "custom", num_classes: int = 21) -> SSDConfig:
    """The `SSDConfig` the controls describe (inverse of `controls_from_config`).
    ValueError (from here or `SSDConfig`) naming the control that is wrong."""
    maps = parse_feature_maps(c["feature_maps"])
    steps = _numbers(c["steps"], "steps")
    if len(steps) != len(maps):
        raise ValueError(f"steps: {len(steps)} entries for {len(maps)} feature maps")
    return SSDConfig(
        image_size=int(c["image_size"]),
        feature_maps=maps,
        steps=tuple(steps),
        scales=tuple(_numbers(c["scales"], "scales")),
        aspect_ratios=parse_ratio_sets(c["ratio_sets"], len(maps)),
        extra_box=bool(c["extra_box"]),
        clip=bool(c["clip"]),
        num_classes=num_classes,
        name=name,
    )


def scales_text_from_rule(c: dict, num_levels: int) -> str:
    """The scales field after a rule control moved: `rule_scales` of the rule controls."""
    # With fewer than 3 levels the rule needs all of them: no separate first level.
    first = float(c["s_first"]) if c["first_separate"] and num_levels >= 3 else None
    return ", ".join(_fmt(round(s, 12)) for s in rule_scales(c["s_min"], c["s_max"], num_levels, first))


def controls_for_new_maps(c: dict) -> dict:
    """After the feature maps change: steps S / f, scales from the rule, ratio sets
    extended (last level repeated) or cut to the new number of levels."""
    maps = parse_feature_maps(c["feature_maps"])
    m = len(maps)
    sets = [part for part in str(c["ratio_sets"]).split(";") if part.strip()] or ["1, 2, 1/2"]
    sets = (sets + [sets[-1]] * m)[:m]
    return {**c, "steps": ", ".join(_fmt(int(c["image_size"]) / f) for f in maps),
            "scales": scales_text_from_rule(c, m), "ratio_sets": "; ".join(s.strip() for s in sets)}


def custom_config(
    image_size: int,
    s_min: float,
    s_max: float,
    feature_maps: tuple[int, ...],
    ratios: tuple[float, ...],
    extra_box: bool = True,
    clip: bool = True,
    four_box_levels: bool = False,
) -> SSDConfig:
    """A config by the paper's linear rule (Sec. 2.2), the same ratios on every level.

    four_box_levels: as SSD300/SSD512, the first and the last two levels keep only
    the ratios 1, 2, 1/2 (4 boxes with the extra box; Sec. 3, "conv4_3, conv10_2 and
    conv11_2 ... only 4 default boxes"). Raises ValueError (from SSDConfig or here)
    naming what is wrong.
    """
    if not ratios:
        raise ValueError("pick at least one aspect ratio")
    m = len(feature_maps)
    ordered = tuple(sorted(set(float(r) for r in ratios), key=lambda r: (r != 1.0, abs(math.log(r)), r < 1)))
    per_level = []
    for k in range(m):
        rs = ordered
        if four_box_levels and (k == 0 or k >= m - 2):
            rs = tuple(r for r in ordered if r in (1.0, 2.0, 0.5)) or ordered
        per_level.append(rs)
    return SSDConfig(
        image_size=int(image_size),
        feature_maps=tuple(feature_maps),
        steps=tuple(image_size / f for f in feature_maps),
        scales=linear_scales(float(s_min), float(s_max), m),
        aspect_ratios=tuple(per_level),
        extra_box=extra_box,
        clip=clip,
        name="custom",
    )


def default_level(num_levels: int) -> int:
    """The level the page opens on: the middle one, (m - 1) // 2 (SSD300's 10x10, SSD512's
    8x8, like the 8x8 map of the paper's Fig. 1), where a cell's boxes are large enough to
    read; the 38x38 map's 30 px boxes are a click away."""
    return max(0, (num_levels - 1) // 2)


def valid_level(value, num_levels: int) -> int:
    """A level index from a widget's stored value; `default_level` for anything stale or
    not an int (a selectbox can keep a label of the previous config, e.g. "6: 1x1")."""
    ok = isinstance(value, int) and not isinstance(value, bool) and 0 <= value < num_levels
    return value if ok else default_level(num_levels)


def level_rows(cfg: SSDConfig) -> list[dict]:
    """`ssd.priors.level_table` plus the scale in pixels, as flat rows for a table/CSV."""
    rows = []
    for r in level_table(cfg):
        rows.append(
            {
                "level": r["level"],
                "feature_map": r["feature_map"],
                "boxes_per_location": r["boxes_per_location"],
                "boxes": r["boxes"],
                "scale_s_k": round(r["scale"], 4),
                "scale_px": round(r["scale"] * cfg.image_size, 1),
                "step_px": r["step_px"],
                "box_sizes_px (w x h)": " ".join(r["box_sizes_px"]),
            }
        )
    return rows


def cell_box_rows(db: DefaultBoxes, cfg: SSDConfig, k: int, i: int, j: int) -> list[dict]:
    """The default boxes of cell (i, j) on level k, in input pixels."""
    s = cfg.image_size
    rows = []
    for b, lab in enumerate(db.labels_per_level[k]):
        a = db.flat_index(k, i, j, b)
        cx, cy, w, h = (db.cxcywh[a] * s).tolist()
        rows.append(
            {
                "default_index": a, "level": k, "row": i, "col": j, "box": b, "ratio": lab,
                "cx": round(cx, 1), "cy": round(cy, 1), "w": round(w, 1), "h": round(h, 1),
            }
        )
    return rows


def cell_from_customdata(customdata) -> tuple[int, int] | None:
    """(row, col) of a clicked cell centre from a plotly point's `customdata`.

    The figure stores `[row, col]` per point; the browser sends it back as a list, or as a
    dict `{"0": row, "1": col}` (what Streamlit's selection event really carries). Anything
    else (another trace's point, a malformed event) gives None.
    """
    if isinstance(customdata, dict):
        customdata = [customdata.get("0", customdata.get(0)), customdata.get("1", customdata.get(1))]
    if not isinstance(customdata, (list, tuple)) or len(customdata) != 2:
        return None
    try:
        row, col = (int(v) for v in customdata)
    except (TypeError, ValueError):
        return None
    return row, col
