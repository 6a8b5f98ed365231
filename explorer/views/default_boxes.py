"""Data and figures for the default-box page (Sec. 2.2, "Choosing scales and aspect
ratios for default boxes").

Frame: the network input, S x S pixels (the image is stretched to a square, as SSD
resizes it), x right, y down. Default boxes come normalised from `ssd.priors` and
are multiplied by S here.
"""
from __future__ import annotations

import math
import numpy as np
import plotly.graph_objects as go

from explorer.views.figures import image_figure, level_color, rect_lines, to_figure
from ssd.config import SSDConfig, linear_scales, ssd300_coco, ssd300_voc, ssd512_voc
from ssd.priors import DefaultBoxes, level_table, wh_pairs

# The ratios a user can pick; label -> value (Sec. 2.2: a_r in {1, 2, 3, 1/2, 1/3}).
RATIO_CHOICES = {"1": 1.0, "2": 2.0, "3": 3.0, "1/2": 0.5, "1/3": 1 / 3}

PRESETS = {
    "SSD300 (VOC, paper)": ssd300_voc,
    "SSD300 (COCO, torchvision)": ssd300_coco,
    "SSD512 (VOC, paper)": ssd512_voc,
}


def parse_feature_maps(text: str) -> tuple[int, ...]:
    """"38, 19, 10" -> (38, 19, 10). ValueError naming the entry that is not a positive int."""
    out = []
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
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


def controls_from_config(cfg: SSDConfig) -> dict:
    """Slider values that describe `cfg` (its first and last scale, its maps, the union
    of its ratios) -- what the page shows when a preset is picked."""
    ratios = sorted({r for rs in cfg.aspect_ratios for r in rs})
    labels = [lab for lab, v in RATIO_CHOICES.items() if any(abs(v - r) < 1e-6 for r in ratios)]
    m = cfg.num_levels
    return {
        "image_size": int(cfg.image_size),
        "s_min": round(float(cfg.scales[0]), 3),
        "s_max": round(float(cfg.scales[m - 1]), 3),
        "feature_maps": ", ".join(str(f) for f in cfg.feature_maps),
        "ratios": labels or ["1"],
        "extra_box": bool(cfg.extra_box),
        "clip": bool(cfg.clip),
        "four_box_levels": len({len(rs) for rs in cfg.aspect_ratios}) > 1,
    }


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


def default_box_figure(
    cfg: SSDConfig,
    db: DefaultBoxes,
    level: int,
    cell: tuple[int, int],
    image_uri: str | None = None,
    fig_height: int = 560,
) -> go.Figure:
    """The grid of `level` over the input image and the default boxes of `cell`.

    Cell centres are a marker trace with customdata [row, col] so a click on the
    chart (points selection) picks a cell.
    """
    s = float(cfg.image_size)
    f = cfg.feature_maps[level]
    step = cfg.steps[level]
    i, j = cell
    traces = []
    # Grid: cell borders at multiples of the step (they may pass the image edge when
    # f * step > S, as for SSD300's 10x10 map with step 32).
    edges = np.arange(f + 1) * step
    far = np.full(f + 1, f * step)
    zero, gap = np.zeros(f + 1), np.full(f + 1, np.nan)
    # (f+1, 6): a vertical and a horizontal line per edge, NaN gaps -> (6(f+1),)
    gx = np.stack([edges, edges, gap, zero, far, gap], axis=1).reshape(-1)
    gy = np.stack([zero, far, gap, edges, edges, gap], axis=1).reshape(-1)
    traces.append({"type": "scatter", "x": gx, "y": gy, "mode": "lines", "hoverinfo": "skip",
                   "line": {"color": "rgba(255,255,255,0.55)", "width": 1}, "name": f"{f}x{f} grid"})
    # Clickable cell centres: (f, f) -> (f*f,)
    ii, jj = np.meshgrid(np.arange(f), np.arange(f), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)
    traces.append({
        "type": "scatter", "x": (jj + 0.5) * step, "y": (ii + 0.5) * step, "mode": "markers",
        "marker": {"size": max(3, min(10, 300 / f)), "color": level_color(level), "opacity": 0.6},
        "customdata": np.stack([ii, jj], axis=1), "name": "cell centres (click one)",
        "hovertemplate": "cell (row %{customdata[0]}, col %{customdata[1]})<extra></extra>",
    })
    # The picked cell.
    xs, ys = rect_lines(np.array([[j * step, i * step, (j + 1) * step, (i + 1) * step]]))
    traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "line": {"color": "yellow", "width": 3},
                   "hoverinfo": "skip", "name": f"cell ({i}, {j})"})
    # Its default boxes, one trace each (K <= ~8) so each has its own legend entry and hover.
    k_boxes = db.wh_per_level[level].shape[0]
    first = db.flat_index(level, i, j, 0)
    cxcywh_px = (db.cxcywh[first:first + k_boxes] * s).tolist()  # (K, 4) input pixels
    for b, (cx, cy, w, h) in enumerate(cxcywh_px):
        lab = db.labels_per_level[level][b]
        xs, ys = rect_lines(np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]))
        traces.append({
            "type": "scatter", "x": xs, "y": ys, "mode": "lines", "fill": "toself", "fillcolor": "rgba(0,0,0,0)",
            "line": {"color": _ratio_color(b), "width": 2.5}, "hoveron": "fills+points",
            "name": f"ratio {lab}: {w:.0f}x{h:.0f}px",
            "text": f"level {level} ({f}x{f}), cell ({i}, {j}), box {b}: ratio {lab}, "
                    f"{w:.1f} x {h:.1f} px, index {first + b}",
            "hovertemplate": "%{text}<extra></extra>",
        })
    fig = image_figure(image_uri, s, s, fig_height=fig_height, traces=traces)
    fig.layout.clickmode = "event+select"
    return fig


_RATIO_PALETTE = ("#ffdd00", "#00e5ff", "#ff4fd8", "#7cff4f", "#ff8a00", "#b388ff", "#ffffff", "#ff5252")


def _ratio_color(b: int) -> str:
    return _RATIO_PALETTE[b % len(_RATIO_PALETTE)]


def box_size_figure(cfg: SSDConfig, fig_height: int = 380) -> go.Figure:
    """Width vs height (input pixels, log axes) of the boxes of one cell, per level."""
    s = cfg.image_size
    traces = []
    for k, f in enumerate(cfg.feature_maps):
        wh, labels = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip)
        wh_px = wh.numpy() * s
        traces.append({
            "type": "scatter", "x": wh_px[:, 0], "y": wh_px[:, 1], "mode": "markers+text", "text": list(labels),
            "textposition": "top center", "marker": {"color": level_color(k), "size": 10},
            "name": f"level {k} ({f}x{f})",
            "hovertemplate": "ratio %{text}: %{x:.1f} x %{y:.1f} px<extra>level " + str(k) + "</extra>",
        })
    lo, hi = 1.0, 2.0 * s
    traces.append({"type": "scatter", "x": [lo, hi], "y": [lo, hi], "mode": "lines",
                   "line": {"color": "#bbb", "dash": "dot"}, "name": "square (w = h)", "hoverinfo": "skip"})
    layout = {
        "xaxis": {"type": "log", "title": {"text": "box width (input px)"}},
        "yaxis": {"type": "log", "title": {"text": "box height (input px)"}},
        "height": fig_height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "title": {"text": "Box sizes per level (one cell)"},
    }
    return to_figure(traces, layout)


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
