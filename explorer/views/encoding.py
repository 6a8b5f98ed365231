"""The box encoding of one matched pair (Sec. 2.2, Eq. 2), with the variances made visible.

The paper writes the regression targets as offsets of the ground truth's centre relative
to the default box, in units of its width and height, and the log of the size ratios.
Every SSD code base (the released Caffe code, torchvision's `BoxCoder(10, 10, 5, 5)`)
also divides them by "variances" (0.1 for the centre, 0.2 for the size): a scaling that
brings the targets to about unit spread, not in the paper. This view shows both, where
each target falls on the Smooth L1 curve of L_loc, and the decode round trip.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import torch

from ssd.boxes import cxcywh_to_xyxy, decode, encode, xyxy_to_cxcywh

TARGET_NAMES = ("t_x = Δcx / w", "t_y = Δcy / h", "t_w = log(g_w / w)", "t_h = log(g_h / h)")


def smooth_l1(x: np.ndarray | float) -> np.ndarray:
    """Smooth L1 with beta 1 (Sec. 2.2, as in Fast R-CNN): 0.5 x^2 if |x| < 1 else |x| - 0.5."""
    a = np.abs(np.asarray(x, dtype=float))
    return np.where(a < 1, 0.5 * a * a, a - 0.5)


def encoding_rows(gt_xyxy_norm, default_cxcywh_norm, variances=(0.1, 0.2), image_size: int = 300) -> dict:
    """The encoding of one (ground truth, default box) pair, step by step.

    Args:
        gt_xyxy_norm: (4,) the ground-truth box, xyxy, fractions of the input side.
        default_cxcywh_norm: (4,) the matched default box, cxcywh, same frame.
        variances: (v_centre, v_size), the model's.
        image_size: input side S (px), only for the pixel columns.
    Returns:
        {"rows": 4 dicts (target, raw offset, variance, encoded target = raw / variance,
        its Smooth L1 loss if predicted as 0), "gt_cxcywh_px_in", "default_cxcywh_px_in",
        "decoded_xyxy_norm" (the round trip), "round_trip_error" (max abs, normalised)}.
    """
    gt = torch.as_tensor(gt_xyxy_norm, dtype=torch.float64).reshape(1, 4)
    d = torch.as_tensor(default_cxcywh_norm, dtype=torch.float64).reshape(1, 4)
    encoded = encode(gt, d, variances)[0]  # (4,) the targets the loss sees
    g = xyxy_to_cxcywh(gt)[0]
    raw = [float((g[0] - d[0, 0]) / d[0, 2]), float((g[1] - d[0, 1]) / d[0, 3]),
           math.log(float(g[2] / d[0, 2])), math.log(float(g[3] / d[0, 3]))]
    var = [variances[0], variances[0], variances[1], variances[1]]
    rows = [{"target": name, "raw_offset": round(r, 4), "variance": v, "encoded": round(float(e), 4),
             "smooth_l1_if_predicted_0": round(float(smooth_l1(float(e))), 4)}
            for name, r, v, e in zip(TARGET_NAMES, raw, var, encoded.tolist())]
    decoded = decode(encoded.reshape(1, 4), d, variances)[0]
    return {
        "rows": rows,
        "gt_cxcywh_px_in": [round(float(v) * image_size, 1) for v in g],
        "default_cxcywh_px_in": [round(float(v) * image_size, 1) for v in d[0]],
        "decoded_xyxy_norm": [float(v) for v in decoded],
        "round_trip_error": float((decoded - gt[0]).abs().max()),
    }


def smooth_l1_figure(rows: list[dict], fig_height: int = 320) -> go.Figure:
    """The Smooth L1 curve with each encoded target (the loss when the network predicts 0):
    targets inside |t| < 1 sit on the quadratic part, the rest on the linear part."""
    lim = max(3.0, max(abs(r["encoded"]) for r in rows) * 1.15) if rows else 3.0
    xs = np.linspace(-lim, lim, 241)
    fig = go.Figure()
    fig.add_scatter(x=xs, y=smooth_l1(xs), mode="lines", name="Smooth L1", line={"color": "#888"})
    fig.add_scatter(x=[r["encoded"] for r in rows], y=[r["smooth_l1_if_predicted_0"] for r in rows],
                    mode="markers+text", text=[r["target"].split(" ")[0] for r in rows], textposition="top center",
                    marker={"size": 11, "color": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"][: len(rows)]},
                    name="encoded targets")
    fig.add_vrect(x0=-1, x1=1, fillcolor="rgba(0,150,255,0.08)", line_width=0)
    fig.update_layout(height=fig_height, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                      xaxis_title="target (prediction 0)", yaxis_title="loss", showlegend=False,
                      title={"text": "Where each target falls on Smooth L1 (shaded: quadratic part)", "font": {"size": 13}})
    return fig


def default_box_xyxy(default_cxcywh_norm) -> list[float]:
    """(4,) cxcywh -> xyxy, same frame (for drawing the pair)."""
    return [float(v) for v in cxcywh_to_xyxy(torch.as_tensor(default_cxcywh_norm).reshape(1, 4))[0]]
