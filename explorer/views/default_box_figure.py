"""The default-box page's figures (Sec. 2.2): one level's grid over the network input
with the default boxes of one cell, and the box sizes of every level.

Frame: the network input, S x S pixels (the image stretched to a square, as SSD resizes
it), x right, y down. Default boxes come normalised from `ssd.priors` and are multiplied
by S here. The page's controls and tables are in `explorer.views.default_boxes`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from explorer.views.figures import image_figure, level_color, log_axis, rect_lines, to_figure
from ssd.config import SSDConfig
from ssd.priors import DefaultBoxes, wh_pairs


# Overlay budget (issue 11): the grid and the cell-centre dots together may cover at most
# this fraction of the image, counted as ink = opacity x area on screen, so that the image
# stays readable at 38x38 and 64x64 (cells of 14 px and 8 px in a 540 px plot).
GRID_INK_MAX = 0.04  # grid lines' share of the image (opacity x covered area)
DOT_INK_MAX = 0.03  # cell-centre dots' share of the image (opacity x covered area)
MIN_LINE_GAP_PX = 12  # closer grid lines than this on screen: draw only every n-th line
# Side of the square plot on screen (px) the budgets are computed for: measured 448 px in a
# 1400 px wide Chromium window, where the page column's width (not the 560 px height) limits
# it. Ink scales as 1/side (lines) and 1/side^2 (dots): a wider window stays under budget.
PLOT_PX = 448
# The selected cell: a black outline over a translucent white fill, colours no box uses.
CELL_LINE_COLOR = "#000000"
CELL_FILL_COLOR = "rgba(255,255,255,0.35)"
# Box colours by index within the cell (ratio 1 first); pairwise CIE76 Delta E >= 25, and
# >= 40 from the selected cell's black and white (tests/test_views_default_boxes.py).
_RATIO_PALETTE = ("#ffdd00", "#00e5ff", "#ff4fd8", "#7cff4f", "#ff8a00", "#b388ff", "#ff5252", "#2f6bff")


def ratio_color(b: int) -> str:
    """Colour of box b of a cell (b = 0 is ratio 1); cycles after 8 boxes."""
    return _RATIO_PALETTE[b % len(_RATIO_PALETTE)]


@dataclass(frozen=True)
class GridStyle:
    """How the grid and the cell-centre dots of one level are drawn on screen."""

    cell_px: float  # side of one cell on screen (screen px)
    every: int  # a grid line every `every` cells (1: every cell border)
    line_width: float  # grid line width (screen px)
    line_alpha: float  # grid line opacity, 0..1
    dot_size: float  # cell-centre marker diameter (screen px)
    dot_opacity: float  # cell-centre marker opacity, 0..1


def grid_style(f: int, step_px_in: float, image_size: int, plot_px: float) -> GridStyle:
    """The style of an f x f grid of `step_px_in` input px cells drawn over the `image_size`
    input in a `plot_px` screen-px plot, within the GRID_INK_MAX and DOT_INK_MAX budgets.

    Grid lines: 1 px wide, every n-th one so that lines are >= MIN_LINE_GAP_PX apart on
    screen; their opacity is capped so that (number of lines x length inside the image x
    width) x opacity <= GRID_INK_MAX x plot_px^2. Dots: 30% of the cell side (3..10 px),
    opacity capped so that f^2 x (pi d^2 / 4) x opacity <= DOT_INK_MAX x plot_px^2.
    """
    cell_px = float(step_px_in) * float(plot_px) / float(image_size)
    every = max(1, math.ceil(MIN_LINE_GAP_PX / cell_px))
    n_lines = 2 * _grid_edges(f, every).size  # vertical and horizontal
    length_px = min(f * cell_px, float(plot_px))  # the part inside the image
    line_width = 1.0
    line_alpha = min(0.55, GRID_INK_MAX * plot_px**2 / (n_lines * length_px * line_width))
    dot_size = min(10.0, max(3.0, 0.3 * cell_px))
    dot_opacity = min(0.6, DOT_INK_MAX * plot_px**2 / (f * f * math.pi * dot_size**2 / 4))
    # Rounded down so the budgets hold after rounding.
    return GridStyle(cell_px, every, line_width, math.floor(line_alpha * 1000) / 1000, round(dot_size, 2),
                     math.floor(dot_opacity * 1000) / 1000)


def _grid_edges(f: int, every: int) -> np.ndarray:
    """Indices 0..f of the cell borders drawn: every `every`-th one and the last."""
    return np.unique(np.append(np.arange(0, f + 1, every), f))


def _grid_trace(f: int, step: float, style: GridStyle) -> dict:
    """Cell borders at multiples of the step, every `style.every`-th one and the last (they
    may pass the image edge when f * step > S, as for SSD300's 10x10 map with step 32)."""
    idx = _grid_edges(f, style.every)
    n = idx.size
    edges, far = idx * step, np.full(n, f * step)
    zero, gap = np.zeros(n), np.full(n, np.nan)
    # (n, 6): a vertical and a horizontal line per edge, NaN gaps -> (6n,)
    gx = np.stack([edges, edges, gap, zero, far, gap], axis=1).reshape(-1)
    gy = np.stack([zero, far, gap, edges, edges, gap], axis=1).reshape(-1)
    name = f"{f}x{f} grid" + (f" (a line every {style.every} cells)" if style.every > 1 else "")
    return {"type": "scatter", "x": gx, "y": gy, "mode": "lines", "hoverinfo": "skip", "name": name,
            "line": {"color": f"rgba(255,255,255,{style.line_alpha})", "width": style.line_width}}


def _centres_trace(f: int, step: float, style: GridStyle, color: str) -> dict:
    """Clickable cell centres: customdata [row, col], one hovertemplate (no per-point text)."""
    ii, jj = np.meshgrid(np.arange(f), np.arange(f), indexing="ij")
    ii, jj = ii.reshape(-1), jj.reshape(-1)  # (f, f) -> (f*f,)
    # float32 centres halve their JSON (64x64: 4096 points); Plotly already sends the int
    # cells as the smallest integer type (uint8 below 256 cells).
    return {
        "type": "scatter", "x": ((jj + 0.5) * step).astype(np.float32), "y": ((ii + 0.5) * step).astype(np.float32),
        "mode": "markers", "marker": {"size": style.dot_size, "color": color, "opacity": style.dot_opacity},
        "customdata": np.stack([ii, jj], axis=1), "name": "cell centres (click one)",
        "hovertemplate": "cell (row %{customdata[0]}, col %{customdata[1]})<extra></extra>",
    }


def default_box_figure(
    cfg: SSDConfig,
    db: DefaultBoxes,
    level: int,
    cell: tuple[int, int],
    image_uri: str | None = None,
    fig_height: int = 560,
    plot_px: float = PLOT_PX,
) -> go.Figure:
    """The grid of `level` over the input image and the default boxes of `cell` (row, col).

    Traces: frame, grid (one line trace), cell centres (one marker trace, customdata
    [row, col], so a click with points selection picks a cell), the selected cell, then
    one trace per default box of the cell (K <= ~8: each its own colour and legend entry).
    Dense grids are drawn fainter and sparser (`grid_style` for a `plot_px` screen-px plot)
    so the image stays readable.
    """
    s = float(cfg.image_size)
    f, step = cfg.feature_maps[level], cfg.steps[level]
    i, j = cell
    style = grid_style(f, step, cfg.image_size, plot_px)
    traces = [_grid_trace(f, step, style), _centres_trace(f, step, style, level_color(level))]
    xs, ys = rect_lines(np.array([[j * step, i * step, (j + 1) * step, (i + 1) * step]]))
    traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "fill": "toself",
                   "fillcolor": CELL_FILL_COLOR, "line": {"color": CELL_LINE_COLOR, "width": 2},
                   "hoverinfo": "skip", "name": f"cell ({i}, {j})"})
    k_boxes = db.wh_per_level[level].shape[0]
    first = db.flat_index(level, i, j, 0)
    cxcywh_px = (db.cxcywh[first:first + k_boxes] * s).tolist()  # (K, 4) input pixels
    for b, (cx, cy, w, h) in enumerate(cxcywh_px):
        lab = db.labels_per_level[level][b]
        xs, ys = rect_lines(np.array([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]]))
        traces.append({
            "type": "scatter", "x": xs, "y": ys, "mode": "lines", "fill": "toself", "fillcolor": "rgba(0,0,0,0)",
            "line": {"color": ratio_color(b), "width": 2.5}, "hoveron": "fills+points",
            "name": f"ratio {lab}: {w:.0f}x{h:.0f}px",
            "hovertemplate": f"level {level} ({f}x{f}), cell ({i}, {j}), box {b}: ratio {lab}, "
                             f"{w:.1f} x {h:.1f} px, index {first + b}<extra></extra>",
        })
    fig = image_figure(image_uri, s, s, fig_height=fig_height, traces=traces)
    fig.layout.clickmode = "event+select"
    return fig


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
        "xaxis": log_axis([t["x"] for t in traces[:-1]], "box width (input px)"),
        "yaxis": log_axis([t["y"] for t in traces[:-1]], "box height (input px)"),
        "height": fig_height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "title": {"text": "Box sizes per level (one cell)"},
    }
    return to_figure(traces, layout)
