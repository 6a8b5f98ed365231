"""Plotly figures for a training run: loss curves and the validation mAP curve.

Inputs are the rows of `explorer.jobs.metrics.read_metrics(run_dir)`:
log rows {"step", "epoch", "loss", "conf", "loc", "lr", "images_per_s", "time"} and
eval rows {"step", "epoch", "map", "ap50", "time"}. No streamlit import.
"""
from __future__ import annotations

import plotly.graph_objects as go

# Sec. 2.2, Eq. 1: L = (L_conf + alpha * L_loc) / N; the three curves shown.
LOSS_SERIES = (("loss", "total"), ("conf", "confidence (L_conf)"), ("loc", "localisation (L_loc)"))
EVAL_SERIES = (("map", "mAP@[.5:.95]"), ("ap50", "AP50"))


def _empty(title: str, note: str) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(
        title=title, height=320, margin=dict(l=40, r=10, t=40, b=40),
        annotations=[dict(text=note, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)],
        xaxis=dict(visible=False), yaxis=dict(visible=False),
    )
    return fig


def loss_figure(log_rows: list[dict], title: str = "Training loss") -> go.Figure:
    """Loss per logged step: total, confidence and localisation parts, one line each.
    x: optimiser step; y: loss value (log scale when it spans > 1 decade)."""
    rows = [r for r in log_rows if r.get("step") is not None]
    if not rows:
        return _empty(title, "no loss logged yet")
    fig = go.Figure()
    values = []
    for key, label in LOSS_SERIES:
        pts = [(r["step"], r[key]) for r in rows if r.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            values += [y for y in ys if y > 0]
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers" if len(pts) < 30 else "lines",
                                     name=label))
    log_y = bool(values) and max(values) / min(values) > 10
    fig.update_layout(
        title=title, height=320, margin=dict(l=40, r=10, t=40, b=40),
        xaxis_title="step", yaxis_title="loss", yaxis_type="log" if log_y else "linear",
        legend=dict(orientation="h", y=-0.25), hovermode="x unified",
    )
    return fig


def map_figure(eval_rows: list[dict], title: str = "Validation mAP") -> go.Figure:
    """mAP (COCO-style @[.5:.95]) and AP50 per evaluation, against the step of the
    evaluation; y in [0, 1]."""
    rows = [r for r in eval_rows if r.get("map") is not None]
    if not rows:
        return _empty(title, "no evaluation yet")
    use_step = all(r.get("step") is not None for r in rows)
    x_key = "step" if use_step else "epoch"
    fig = go.Figure()
    for key, label in EVAL_SERIES:
        pts = [(r.get(x_key), r[key]) for r in rows if r.get(key) is not None]
        if pts:
            xs, ys = zip(*pts)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines+markers", name=label))
    fig.update_layout(
        title=title, height=320, margin=dict(l=40, r=10, t=40, b=40),
        xaxis_title=x_key, yaxis_title="AP", yaxis_range=[0, 1],
        legend=dict(orientation="h", y=-0.25), hovermode="x unified",
    )
    return fig


def throughput_figure(log_rows: list[dict], title: str = "Throughput") -> go.Figure:
    """Images per second per logged step."""
    pts = [(r["step"], r["images_per_s"]) for r in log_rows
           if r.get("step") is not None and r.get("images_per_s") is not None]
    if not pts:
        return _empty(title, "no throughput logged yet")
    xs, ys = zip(*pts)
    fig = go.Figure(go.Scatter(x=xs, y=ys, mode="lines", name="images/s"))
    fig.update_layout(title=title, height=260, margin=dict(l=40, r=10, t=40, b=40),
                      xaxis_title="step", yaxis_title="images / s")
    return fig
