"""Plotly building blocks shared by the pages: an image as a figure background,
many boxes as one trace, colours per level.

Frames: every figure here is drawn in pixels of the frame it says, with x to the
right and y down (the y axis is reversed), so box coordinates go in unchanged.
Drawing N boxes as one line trace (rectangles separated by NaN gaps) plus one marker
trace at the box centres (hover text, clickable) keeps figures fast with thousands
of boxes, where one trace per box would not be.

Speed: builders assemble plain dicts (traces and layout) and wrap them once with
`to_figure`, which skips Plotly's per-property validation; building a figure trace by
trace through `go.Scatter` objects costs ~7x more, too slow for a slider. Tests
validate every builder's output with Plotly's full validation (`go.Figure(fig.to_dict())`).
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from PIL import Image

PAPER_URL = "https://arxiv.org/abs/1512.02325"

# One colour per feature-map level (Plotly's "D3" palette); level k -> LEVEL_COLORS[k % 10].
LEVEL_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
# Ground-truth boxes: a colour no level or class uses (levels cycle the D3 palette).
GT_COLOR = "#00ffff"
# One colour per class index (background never drawn); same palette, shifted.
CLASS_COLORS = ("#7f7f7f",) + LEVEL_COLORS


def level_color(k: int) -> str:
    return LEVEL_COLORS[int(k) % len(LEVEL_COLORS)]


def class_color(c: int) -> str:
    return CLASS_COLORS[int(c) % len(CLASS_COLORS)]


def image_jpeg(image: Image.Image, max_side: int = 768, quality: int = 85) -> bytes:
    """JPEG bytes of `image`, shrunk so its longer side is <= max_side pixels.

    Figures stretch the image back to their frame's size, so shrinking only saves bytes
    sent to the browser (and encoding time), never moves a box.
    """
    img = image if image.mode == "RGB" else image.convert("RGB")  # no full-size copy of an RGB image
    scale = max_side / max(img.size)
    if scale < 1:
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), reducing_gap=3.0)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_data_uri(image: Image.Image, max_side: int = 768, quality: int = 85) -> str:
    """A JPEG data URI of `image` (`image_jpeg`): the figure carries the image itself."""
    return "data:image/jpeg;base64," + base64.b64encode(image_jpeg(image, max_side, quality)).decode("ascii")


# Below the plot, clear of the x tick labels: the top strip holds Plotly's toolbar (the
# mode bar), which a legend above the plot ran under on Trace and NMS (issue 19 item 11).
# Paper coordinates: a legend outside [0, 1] pushes the figure's margin (automargin).
LEGEND_BELOW = {"orientation": "h", "xanchor": "left", "x": 0, "yanchor": "top", "y": -0.07}
MODEBAR_PX = 34  # Plotly's mode bar: 23 px tall, 10 px from the figure's top


def legend_clear_of_modebar(layout) -> bool:
    """True when a figure's legend cannot run under the mode bar: no legend shown, or a
    legend anchored below the plot area (the mode bar sits at the top right)."""
    legend = layout.legend
    if layout.showlegend is False:
        return True
    return legend.yanchor == "top" and legend.y is not None and legend.y < 0


def image_layout(
    image_uri: str | None,
    width: float,
    height: float,
    title: str | None = None,
    fig_height: int = 560,
) -> dict:
    """Layout of a figure whose data frame is [0, width] x [0, height] pixels, y down,
    with `image_uri` (may be None) stretched over it."""
    layout = {
        "xaxis": {"range": [0, width], "showgrid": False, "zeroline": False, "constrain": "domain"},
        "yaxis": {"range": [height, 0], "showgrid": False, "zeroline": False, "scaleanchor": "x",
                  "scaleratio": 1, "constrain": "domain"},
        "height": fig_height,
        # The top margin holds the mode bar (shown on hover) above the image, not over it.
        "margin": {"l": 10, "r": 10, "t": 40 if title else MODEBAR_PX, "b": 10},
        "legend": dict(LEGEND_BELOW),
        "plot_bgcolor": "white",
        "dragmode": "zoom",
        "images": [],
    }
    if title:
        layout["title"] = {"text": title}
    if image_uri is not None:
        layout["images"].append(layout_image(image_uri, width, height))
    return layout


def layout_image(image_uri: str, width: float, height: float, xref: str = "x", yref: str = "y") -> dict:
    """The image stretched over [0, width] x [0, height] of axes (xref, yref), behind the data."""
    return {"source": image_uri, "xref": xref, "yref": yref, "x": 0, "y": 0, "sizex": width, "sizey": height,
            "sizing": "stretch", "layer": "below", "xanchor": "left", "yanchor": "top"}


def frame_trace(width: float, height: float) -> dict:
    """Invisible points at two corners: box/point selection needs a trace to select on,
    even when a page adds no other."""
    return {"type": "scatter", "x": [0, width], "y": [0, height], "mode": "markers", "marker": {"opacity": 0},
            "hoverinfo": "skip", "showlegend": False, "name": "frame"}


def to_figure(traces: list[dict], layout: dict) -> go.Figure:
    """Plain trace and layout dicts -> a `go.Figure`, without per-property validation."""
    return go.Figure({"data": traces, "layout": layout}, _validate=False)


def image_figure(
    image_uri: str | None,
    width: float,
    height: float,
    title: str | None = None,
    fig_height: int = 560,
    traces: list[dict] | None = None,
) -> go.Figure:
    """A figure in the [0, width] x [0, height] pixel frame, y down, with the image
    behind, the invisible frame trace and then `traces`."""
    return to_figure([frame_trace(width, height)] + list(traces or []),
                     image_layout(image_uri, width, height, title, fig_height))


def rect_lines(boxes_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) xyxy -> x and y arrays (6N,) that draw N closed rectangles, NaN between them.

    NumPy arrays with NaN gaps (sent as null, which breaks a Plotly line) instead of
    Python lists with None: Plotly validates and serialises arrays ~30x faster.
    """
    boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    n = boxes.shape[0]
    x1, y1, x2, y2 = boxes.T
    nan = np.full(n, np.nan)
    # (N, 6) per rectangle: 5 corners (closed) + a gap -> (6N,)
    xs = np.stack([x1, x2, x2, x1, x1, nan], axis=1).reshape(-1)
    ys = np.stack([y1, y1, y2, y2, y1, nan], axis=1).reshape(-1)
    return xs, ys


def box_traces(
    boxes_xyxy: np.ndarray,
    color: str,
    name: str,
    hover: Sequence[str] | None = None,
    width: float = 2.0,
    dash: str = "solid",
    opacity: float = 1.0,
    customdata: Sequence | None = None,
    showlegend: bool = True,
    legendgroup: str | None = None,
    axes: tuple[str, str] | None = None,
) -> list[dict]:
    """N boxes (xyxy, the figure's pixel frame) as one rectangle trace plus, when
    `hover` is given, one marker trace at their centres (same legend group).

    axes: ("x2", "y2") to draw in another subplot.
    """
    boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    group = legendgroup or name
    xs, ys = rect_lines(boxes)
    where = {"xaxis": axes[0], "yaxis": axes[1]} if axes else {}
    out = [{
        "type": "scatter", "x": xs, "y": ys, "mode": "lines",
        "line": {"color": color, "width": width, "dash": dash}, "opacity": opacity,
        "hoverinfo": "skip", "name": name, "legendgroup": group,
        "showlegend": bool(showlegend and len(boxes) > 0), **where,
    }]
    if len(boxes) and hover is not None:
        centre = {
            "type": "scatter", "x": (boxes[:, 0] + boxes[:, 2]) / 2, "y": (boxes[:, 1] + boxes[:, 3]) / 2,
            "mode": "markers", "opacity": opacity,
            "marker": {"color": color, "size": 7, "symbol": "star" if dash != "solid" else "circle"},
            "text": list(hover), "hovertemplate": "%{text}<extra></extra>",
            "name": name, "legendgroup": group, "showlegend": False, **where,
        }
        if customdata is not None:
            centre["customdata"] = np.asarray(customdata)
        out.append(centre)
    return out


def records_to_csv(records: Sequence[dict]) -> str:
    """A list of flat dicts as CSV text (header from the union of keys, first-seen order)."""
    import csv

    keys: list[str] = []
    for r in records:
        for k in r:
            if k not in keys:
                keys.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    for r in records:
        w.writerow({k: _csv_value(r.get(k)) for k in keys})
    return buf.getvalue()


def _csv_value(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (list, tuple)):
        return " ".join(str(x) for x in v)
    return v


def gt_figure(image_uri: str | None, image_hw: tuple[int, int], boxes_xyxy, names: Sequence[str],
              fig_height: int = 520) -> go.Figure:
    """The image (original pixels) with its ground-truth boxes, hover = label and size.
    Box selection (drag) on this figure draws a new GT box."""
    h, w = image_hw
    boxes = np.asarray(boxes_xyxy, dtype=float).reshape(-1, 4)
    hover = [f"GT {n}: {names[n]} ({b[0]:.0f}, {b[1]:.0f}, {b[2]:.0f}, {b[3]:.0f}), "
             f"{b[2] - b[0]:.0f}x{b[3] - b[1]:.0f} px" for n, b in enumerate(boxes)]
    fig = image_figure(image_uri, w, h, fig_height=fig_height,
                       traces=box_traces(boxes, GT_COLOR, "ground truth", hover=hover, width=3))
    fig.layout.dragmode = "select"
    return fig


# ---------------------------------------------------------------- log axes
def _tick_text(v: float) -> str:
    """A tick value as people write it: 1, 20, 500, 2,000; 0.5, 0.02 below 1."""
    return f"{v:,.0f}" if v >= 1 else f"{v:g}"


def log_axis(values, title: str | None = None) -> dict:
    """A log axis whose ticks read: 1, 2, 5 x 10^k over the data's range, every one
    labelled in full (Plotly's own log ticks label only "2, 5" between decades, or
    print 10^k as superscripts). `values`: the data on that axis, numbers or arrays (one
    per trace); values <= 0, NaN and None are ignored."""
    axis: dict = {"type": "log"}
    if title is not None:
        axis["title"] = {"text": title}
    parts = [np.asarray(v, dtype=float).reshape(-1) for v in values]  # numbers or arrays (one per trace)
    vals = [float(v) for v in (np.concatenate(parts) if parts else []) if np.isfinite(v) and v > 0]
    if not vals:
        return axis
    lo, hi = min(vals), max(vals)
    k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
    if k1 - k0 > 5:  # many decades: the decades alone
        step_sets = [[10.0 ** k for k in range(k0, k1 + 1)]]
    else:  # 1-2-5; under a decade wide, every digit
        step_sets = [[round(m * 10.0 ** k, 12) for k in range(k0, k1 + 1) for m in mantissas]
                     for mantissas in ((1, 2, 5), tuple(range(1, 10)))]
    for steps in step_sets:
        first = max(v for v in steps if v <= lo * (1 + 1e-9))  # the step at or below the smallest value
        last = min(v for v in steps if v >= hi * (1 - 1e-9))  # and at or above the largest
        ticks = [v for v in steps if first <= v <= last]
        if len(ticks) >= 4:
            break
    axis.update({"tickmode": "array", "tickvals": ticks, "ticktext": [_tick_text(v) for v in ticks],
                 "range": [float(np.log10(first)) - 0.05, float(np.log10(last)) + 0.05]})
    return axis
