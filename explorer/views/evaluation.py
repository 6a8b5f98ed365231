"""Figures and tables of the Evaluation page, from an evaluation's `result.json`
(`explorer.evaluation.runner`: `ssd.evaluation.evaluate.score_with_errors` plus per-image counts).

Every builder is pure: a result dict (or two) in, a Plotly figure or a list of row dicts
out. AP values are fractions in [0, 1]; TIDE's dAP is in AP50 points (x 100), as TIDE
reports it. No streamlit import.
"""
from __future__ import annotations

import plotly.graph_objects as go

from explorer.views.figures import class_color, level_color, log_axis

_LAYOUT = {"height": 340, "margin": {"l": 50, "r": 10, "t": 40, "b": 40}}


def _r(v, nd: int = 4):
    return None if v is None else round(float(v), nd)


def error_types(result: dict) -> list[str]:
    """TIDE's types in TIDE's order (Cls, Loc, Both, Dupe, Bkg, Miss)."""
    return list(result.get("error_types") or result["errors"]["dAP"])


def causes(result: dict) -> list[str]:
    """Causes of a miss in the pipeline's order (no default box ... mislocalized)."""
    return list(result.get("causes") or result["misses_by_cause"])


def class_order(result: dict) -> list[str]:
    """Object classes in the model's order (background left out)."""
    return [n for n in result["class_names"][1:] if n in result["per_class"]]


def summary_rows(result: dict) -> list[dict]:
    """The headline figures: COCO AP@[.5:.95], AP50, AP75, AP by size, VOC07 mAP, TIDE AP50."""
    keys = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "voc07_map")
    rows = [{"metric": k, "value": _r(result.get(k))} for k in keys]
    if "errors" in result:
        rows.append({"metric": "TIDE AP50 (points)", "value": _r(result["errors"]["tide_AP50"], 2)})
    rows.append({"metric": "images", "value": result.get("num_images")})
    return rows


def ap_table(result: dict) -> list[dict]:
    """Per class: COCO AP@[.5:.95], AP50, VOC07 11-point AP, GT count (PR curves' num_gt)."""
    rows = []
    for name in class_order(result):
        ap = result["per_class"][name]
        curve = result.get("curves", {}).get(name, {})
        rows.append({"class": name, "AP": _r(ap), "AP50": _r(result["per_class_AP50"].get(name)),
                     "VOC07 AP": _r(result.get("voc07_per_class", {}).get(name)), "GT": curve.get("num_gt")})
    return rows


def tide_figure(result: dict, title: str = "TIDE: AP50 lost to each error type") -> go.Figure:
    """Bars of dAP (AP50 points gained by fixing that error type alone), count in the label."""
    e = result["errors"]
    types = error_types(result)
    fig = go.Figure(go.Bar(x=types, y=[e["dAP"][t] for t in types], text=[f"{e['counts'][t]}" for t in types],
                           textposition="outside", marker_color=[class_color(k + 1) for k in range(len(types))],
                           hovertemplate="%{x}: dAP %{y:.2f} points, %{text} errors<extra></extra>"))
    fig.update_layout(title=title, yaxis_title="dAP (AP50 points)", **_LAYOUT)
    return fig


def level_label(lv: dict) -> str:
    h, w = lv["feature_map"]
    return f"L{lv['level']} {h}x{w}"


def level_figure(result: dict, title: str = "Per feature map: TP / FP / FN") -> go.Figure:
    """Per level, stacked: detections that are true positives and false positives (level of
    the detection's default box), and missed GTs, FN (level of the GT's best default box)."""
    levels = result["per_level"]
    x = [level_label(lv) for lv in levels]
    series = (("TP", [lv["tp"] for lv in levels], "#2ca02c"), ("FP", [lv["fp"] for lv in levels], "#d62728"),
              ("FN (missed GT)", [lv["gt"] - lv["gt_matched"] for lv in levels], "#7f7f7f"))
    fig = go.Figure([go.Bar(name=n, x=x, y=y, marker_color=c) for n, y, c in series])
    fig.update_layout(title=title, barmode="group", yaxis_title="count", **_LAYOUT)
    return fig


# The per-level table counts two different things; its column names say which (issue 19
# item 9: "TP 0, GT 1, recall 1" read as a contradiction). Detections are counted at the
# level of their own default box; GTs at the level that owns them (their best default box),
# found by a detection of any level. Recall = found / owned, on the same row's numbers.
LEVEL_COLUMNS_NOTE = ("Two counts per level. Its detections: the detections whose default box is on this level, "
                      "true (TP) or false (FP, by error type). Its ground truths: the GTs whose best default box is "
                      "on this level (owned), how many of them some detection found (of any level), and the "
                      "recall = found / owned. AP and AP50 are over the GTs it owns.")


def level_rows(result: dict) -> list[dict]:
    """The per-level table (`LEVEL_COLUMNS_NOTE`): its detections (TP, FP by type), its
    ground truths (owned, found, recall = found / owned), AP, AP50."""
    rows = []
    for lv in result["per_level"]:
        by_type = {f"its FP: {t}": lv["fp_by_type"][t] for t in error_types(result) if t in lv["fp_by_type"]}
        owned = lv["gt"]
        found = lv.get("gt_matched", round((lv["recall"] or 0) * owned))
        rows.append({"level": level_label(lv), "its detections: TP": lv["tp"], "its detections: FP": lv["fp"],
                     **by_type, "GTs it owns": owned, "of them found": found,
                     "recall (found / owned)": _r(found / owned) if owned else None,
                     "AP": _r(lv["AP"]), "AP50": _r(lv["AP50"])})
    return rows


def causes_figure(result: dict, title: str = "Why the missed objects were missed") -> go.Figure:
    """Bars of missed GTs per cause (`ssd.evaluation.error_types.causes`), in the pipeline's order."""
    order = causes(result)
    fig = go.Figure(go.Bar(x=[c.replace("_", " ") for c in order], y=[result["misses_by_cause"][c] for c in order],
                           marker_color="#9467bd", hovertemplate="%{x}: %{y} misses<extra></extra>"))
    fig.update_layout(title=title, yaxis_title="missed GTs", **_LAYOUT)
    return fig


def pr_figure(result: dict, title: str = "Precision-recall per class (IoU 0.5)") -> go.Figure:
    """One precision-recall curve per class over detections ranked by score."""
    names = list(result["class_names"])
    fig = go.Figure()
    for name in class_order(result):
        cur = result.get("curves", {}).get(name)
        if cur is None:
            continue
        c = names.index(name)
        fig.add_trace(go.Scatter(x=cur["recall"], y=cur["precision"], mode="lines", line={"color": class_color(c)},
                                 name=f"{name} (VOC07 AP {cur['ap_voc07']:.3f})"))
    fig.update_layout(title=title, xaxis={"title": "recall", "range": [0, 1.02]},
                      yaxis={"title": "precision", "range": [0, 1.02]}, **_LAYOUT)
    return fig


def confusion_figure(result: dict, title: str | None = None, matrix=None, diverging: bool = False) -> go.Figure:
    """Heatmap of GT class (rows) x predicted class (columns); "background" row = fired
    on background, column = missed. `matrix` overrides the result's (a difference)."""
    conf = result["confusion"]
    names = list(conf["classes"])
    z = conf["matrix"] if matrix is None else matrix
    title = title or f"Confusion (detections scoring >= {conf['score_thresh']}, IoU >= 0.5)"
    scale = {"colorscale": "RdBu", "zmid": 0} if diverging else {"colorscale": "Blues"}
    fig = go.Figure(go.Heatmap(z=z, x=[f"pred {n}" for n in names], y=[f"GT {n}" for n in names], text=z,
                               texttemplate="%{text}", hovertemplate="%{y} -> %{x}: %{z}<extra></extra>", **scale))
    fig.update_layout(title=title, yaxis={"autorange": "reversed"}, height=420,
                      margin={"l": 90, "r": 10, "t": 40, "b": 60})
    return fig


# ---------------------------------------------------------------- two checkpoints
def side_by_side(builder, results: list[dict]) -> list[go.Figure]:
    """`builder(result)` for each evaluation (A, B), on one scale so that equal bars look
    equal: the y range of bar and line charts (unless the builder fixed one) and the
    colour range of heatmaps are the union of both figures' data."""
    figs = [builder(r) for r in results]
    if len(figs) < 2:
        return figs
    ys = [float(v) for f in figs for t in f.data if t.type in ("bar", "scatter") and t.y is not None
          for v in t.y if v is not None]
    if ys and all(f.layout.yaxis.range is None for f in figs) and figs[0].layout.yaxis.type != "log":
        lo, hi = min(0.0, min(ys)), max(0.0, max(ys))
        pad = 0.12 * ((hi - lo) or 1.0)  # room for the counts printed above the bars
        for f in figs:
            f.update_yaxes(range=[lo - (pad if lo < 0 else 0.0), hi + pad])
    zs = [float(v) for f in figs for t in f.data if t.type == "heatmap" for row in t.z for v in row]
    if zs:
        for f in figs:
            f.update_traces(zmin=min(zs), zmax=max(zs), selector={"type": "heatmap"})
    return figs


def compare_rows(a: dict, b: dict) -> list[dict]:
    """What changed from evaluation A to B: headline AP, per class AP, TIDE dAP per type,
    recall per level, misses per cause; "B - A" for each."""
    rows = []

    def add(group: str, name: str, va, vb) -> None:
        diff = None if va is None or vb is None else vb - va
        rows.append({"group": group, "item": name, "A": _r(va), "B": _r(vb), "B - A": _r(diff)})

    for k in ("AP", "AP50", "AP75", "voc07_map"):
        add("overall", k, a.get(k), b.get(k))
    for name in class_order(a):
        add("AP per class", name, a["per_class"].get(name), b["per_class"].get(name))
    for t in error_types(a):
        add("TIDE dAP (points)", t, a["errors"]["dAP"][t], b["errors"]["dAP"].get(t))
    for la, lb in zip(a["per_level"], b["per_level"]):
        add("recall per level", level_label(la), la["recall"], lb["recall"])
    for c in causes(a):
        add("misses by cause", c, a["misses_by_cause"][c], b["misses_by_cause"].get(c))
    return rows


def diff_figure(a: dict, b: dict, title: str = "B - A: AP per class and TIDE dAP") -> go.Figure:
    """Two bar groups of B - A: AP per class (x 100, points) and dAP per error type
    (points; negative = B loses less AP to that error)."""
    classes = class_order(a)
    d_ap = [100 * ((b["per_class"].get(c) or 0.0) - (a["per_class"].get(c) or 0.0)) for c in classes]
    types = error_types(a)
    d_tide = [b["errors"]["dAP"].get(t, 0.0) - a["errors"]["dAP"][t] for t in types]
    fig = go.Figure([
        go.Bar(name="AP per class (points)", x=classes, y=d_ap, marker_color=[level_color(0)] * len(classes)),
        go.Bar(name="TIDE dAP (points)", x=types, y=d_tide, marker_color=[level_color(1)] * len(types)),
    ])
    fig.update_layout(title=title, yaxis_title="B - A (points)", **_LAYOUT)
    return fig


def confusion_diff(a: dict, b: dict) -> list[list[int]]:
    """B's confusion matrix minus A's (same classes required)."""
    ma, mb = a["confusion"]["matrix"], b["confusion"]["matrix"]
    if a["confusion"]["classes"] != b["confusion"]["classes"]:
        raise ValueError("the two evaluations have different classes: their confusion matrices do not compare")
    return [[y - x for x, y in zip(ra, rb)] for ra, rb in zip(ma, mb)]


def tuner_level_figure(tuned: dict, title: str = "Per feature map at these thresholds") -> go.Figure:
    """Per level: candidates entering NMS, kept by NMS, final detections (log y)."""
    rows = tuned["per_level"]
    x = [f"L{r['level']} {r['feature map']}" for r in rows]
    keys = (("candidates (into NMS)", "#1f77b4"), ("kept by NMS", "#ff7f0e"), ("detections", "#2ca02c"))
    fig = go.Figure([go.Bar(name=k, x=x, y=[r[k] for r in rows], marker_color=c) for k, c in keys])
    fig.update_layout(title=title, barmode="group", yaxis=log_axis([r[k] for r in rows for k, _ in keys], "boxes"),
                      **_LAYOUT)
    return fig
