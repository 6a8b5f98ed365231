"""Figures and tables for the Dataset page: how well the shared default-box configuration
covers a whole dataset's ground truth (Sec. 2.2 scales and ratios, Sec. 2.2 matching).

Frame: the S x S network input (every image stretched to it, as SSD resizes), pixels.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from explorer.views.figures import level_color, log_axis, to_figure
from ssd.config import SSDConfig
from ssd.data.gt_boxes import DatasetBoxes
from ssd.priors import wh_pairs
from ssd.tuning.coverage import Coverage, coverage
from ssd.tuning.coverage_summary import summarize
from ssd.tuning.tune_boxes import TuneResult, num_default_boxes  # noqa: F401 (pages call dsv.num_default_boxes)
from ssd.tuning.tune_boxes import tune as _tune

MAX_POINTS = 8000  # ground-truth points drawn in the size figure (an even subsample beyond)


def measure(data: DatasetBoxes, cfg: SSDConfig, iou_threshold: float = 0.5) -> tuple[Coverage, dict]:
    """(per-box coverage, `ssd.tuning.coverage_summary.summarize` dict) of the dataset's boxes."""
    cov = coverage(data.boxes_xyxy_norm, cfg, iou_threshold)
    s = summarize(cov, data.boxes_xyxy_norm, cfg, data.labels, data.class_names, data.image_index,
                  data.image_names)
    s["dataset"] = data.source
    return cov, s


def tune(data: DatasetBoxes, base: SSDConfig, max_boxes: int, max_evals: int = 200,
         monotone: bool = True) -> TuneResult:
    """`ssd.tuning.tune_boxes.tune` of the dataset's boxes from `base` (the configuration
    the user looks at), keeping its geometry and comparing against it."""
    return _tune(data.boxes_xyxy_norm, base, max_boxes, max_evals=max_evals, monotone=monotone)


def size_figure(data: DatasetBoxes, cfg: SSDConfig, cov: Coverage, fig_height: int = 460) -> go.Figure:
    """Ground-truth w x h on the network input (log axes), covered or not at the threshold,
    over the default-box shapes (w x h) of every level."""
    s = cfg.image_size
    wh_px = ((data.boxes_xyxy_norm[:, 2:] - data.boxes_xyxy_norm[:, :2]) * s).numpy()  # (G, 2)
    covered = (cov.best_iou >= cov.iou_threshold).numpy()
    keep = np.arange(len(wh_px))
    if len(keep) > MAX_POINTS:  # an even subsample keeps the picture, not every point
        keep = np.linspace(0, len(wh_px) - 1, MAX_POINTS).astype(int)
    traces = []
    for flag, name, colour in ((True, "covered", "rgba(23,190,207,0.45)"), (False, "not covered", "rgba(214,39,40,0.8)")):
        sel = keep[covered[keep] == flag]
        traces.append({
            "type": "scattergl", "x": wh_px[sel, 0], "y": wh_px[sel, 1], "mode": "markers",
            "marker": {"size": 4, "color": colour}, "name": f"ground truth, {name} ({int((covered == flag).sum())})",
            "customdata": cov.best_iou.numpy()[sel],
            "hovertemplate": "%{x:.1f} x %{y:.1f} px, best IoU %{customdata:.2f}<extra></extra>",
        })
    for k, f in enumerate(cfg.feature_maps):
        wh, labels = wh_pairs(cfg.scales, cfg.aspect_ratios[k], k, cfg.extra_box, cfg.clip)
        box_px = wh.numpy() * s
        traces.append({
            "type": "scatter", "x": box_px[:, 0], "y": box_px[:, 1], "mode": "markers+text", "text": list(labels),
            "textposition": "top center", "name": f"default boxes, level {k} ({f}x{f})",
            "marker": {"symbol": "square-open", "size": 13, "line": {"width": 2.5}, "color": level_color(k)},
            "hovertemplate": "ratio %{text}: %{x:.1f} x %{y:.1f} px<extra>level " + str(k) + "</extra>",
        })
    layout = {
        "xaxis": log_axis([t["x"] for t in traces], "width (network-input px)"),
        "yaxis": log_axis([t["y"] for t in traces], "height (network-input px)"),
        "height": fig_height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
        "title": {"text": f"Ground-truth sizes over the default-box shapes ({cfg.image_size} px input)"},
    }
    return to_figure(traces, layout)


def ownership_figure(summary: dict, fig_height: int = 300) -> go.Figure:
    """Per level: boxes whose best default box is there, and that level's share of all positives."""
    rows = summary["per_level"]
    x = [f"{r['level']}: {r['feature_map']}" for r in rows]
    traces = [
        {"type": "bar", "x": x, "y": [r["owned_boxes"] for r in rows], "name": "boxes it owns (best match)",
         "marker": {"color": [level_color(r["level"]) for r in rows]}},
        {"type": "scatter", "x": x, "y": [100 * r["positives_share"] for r in rows], "yaxis": "y2",
         "mode": "lines+markers", "name": "share of all positives (%)", "line": {"color": "#444"}},
    ]
    layout = {"height": fig_height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
              "title": {"text": "Which level owns each box"}, "yaxis": {"title": {"text": "boxes"}},
              "yaxis2": {"overlaying": "y", "side": "right", "title": {"text": "% of positives"}, "range": [0, 100]},
              "legend": {"orientation": "h"}}
    return to_figure(traces, layout)


def histogram_figure(summary: dict, fig_height: int = 300) -> go.Figure:
    """Boxes with 0, 1, 2, ... positive default boxes at the threshold (0 = forced match only)."""
    rows = summary["positives_histogram"]
    colours = ["#d62728" if r["positives"] == "0" else "#1f77b4" for r in rows]
    traces = [{"type": "bar", "x": [r["positives"] for r in rows], "y": [r["boxes"] for r in rows],
               "marker": {"color": colours}, "name": "boxes"}]
    layout = {"height": fig_height, "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
              "title": {"text": f"Positive default boxes per ground-truth box (IoU >= {summary['iou_threshold']:g})"},
              "xaxis": {"title": {"text": "positives", "standoff": 4}, "type": "category"},
              "yaxis": {"title": {"text": "boxes"}}}
    return to_figure(traces, layout)
