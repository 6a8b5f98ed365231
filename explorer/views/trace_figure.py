"""The figure of a trace (`explorer.views.trace`): the image with the traced object's boxes.

A GT trace draws the GT, its matched default boxes (threshold matches dashed, forced ones
dash-dot), each level's prediction for it (decoded, solid) and the suppressor when NMS
removed its best candidate. A detection trace draws its default box, its decoded box, the
candidates it suppressed, its GT and its suppressor. Frame: original-image pixels.
"""
from __future__ import annotations

import plotly.graph_objects as go

from explorer.views.figures import GT_COLOR, box_traces, class_color, image_figure, level_color

SUPPRESSOR_COLOR = "#ff0000"  # the kept box that removed the traced one


def _layer(name: str, boxes: list, color: str, hover: list[str], width: float = 2.0, dash: str = "solid") -> dict:
    return {"name": name, "boxes_xyxy_px": boxes, "color": color, "hover": hover, "width": width, "dash": dash}


def _gt_layers(trace: dict) -> list[dict]:
    """Boxes of a GT trace: the GT, its matched default boxes (forced ones dash-dot), each
    level's prediction (decoded), and the suppressor when NMS removed it."""
    layers = [_layer(f"GT {trace['gt_index']} ({trace['class_name']})", [trace["box_xyxy_px"]], GT_COLOR,
                     [f"GT {trace['gt_index']}: {trace['class_name']}"], width=4)]
    for kind, dash, width in (("threshold", "dash", 1.5), ("forced", "dashdot", 3)):
        for k in sorted({r["level"] for r in trace["candidates"] if r["match"] == kind}):
            rs = [r for r in trace["candidates"] if r["match"] == kind and r["level"] == k]
            layers.append(_layer(f"level {k}: {kind} matches", [r["default_xyxy_px"] for r in rs], level_color(k),
                                 [f"default box {r['default_index']}, level {k} ({r['feature_map']}) cell "
                                  f"({r['row']}, {r['col']}) ratio {r['ratio']}<br>IoU {r['iou']:.3f}, {kind} match"
                                  for r in rs], width=width, dash=dash))
    for r in trace["levels"]:
        if r["prediction_xyxy_px"] is not None:
            layers.append(_layer(f"level {r['level']}: prediction", [r["prediction_xyxy_px"]], level_color(r["level"]),
                                 [f"level {r['level']} ({r['feature_map']}) predicts {trace['class_name']} "
                                  f"{r['prediction_score']:.3f}, IoU {r['prediction_iou']:.2f} with the GT"], width=3))
    sup = trace["verdict"].get("fate", {}).get("suppressor")
    if sup:
        layers.append(_layer("suppressor", [sup["box_xyxy_px"]], SUPPRESSOR_COLOR,
                             [f"kept default box {sup['default_index']} ({sup['score']:.3f}) removed its best "
                              "candidate"], width=3, dash="dot"))
    return layers


def _detection_layers(trace: dict) -> list[dict]:
    """Boxes of a detection trace: its matched GT, its default box, the decoded box, the
    candidates it suppressed and, if it was suppressed, its suppressor."""
    layers = []
    if trace["gt_xyxy_px"] is not None:
        layers.append(_layer(f"GT {trace['verdict']['gt']}", [trace["gt_xyxy_px"]], GT_COLOR,
                             [f"GT {trace['verdict']['gt']}: {trace['verdict']['gt_name']}"], width=4))
    where = trace["where"]
    layers.append(_layer("its default box", [trace["default_xyxy_px"]], level_color(where["level"]),
                         [f"default box {trace['default_index']}: level {where['level']} ({where['feature_map']}) "
                          f"cell ({where['row']}, {where['col']}) ratio {where['ratio']}"], dash="dash"))
    if trace["suppressed"]:
        layers.append(_layer("boxes it suppressed", [r["box_xyxy_px"] for r in trace["suppressed"]], "#aaaaaa",
                             [f"candidate {r['candidate']} ({r['score']:.3f}), IoU {r['iou']:.2f}"
                              for r in trace["suppressed"]], width=1, dash="dot"))
    sup = trace["fate"].get("suppressor")
    if sup:
        layers.append(_layer("suppressor", [sup["box_xyxy_px"]], SUPPRESSOR_COLOR,
                             [f"kept default box {sup['default_index']} ({sup['score']:.3f}), IoU "
                              f"{trace['fate']['suppress_iou']:.2f}"], width=3, dash="dot"))
    layers.append(_layer(f"{trace['class_name']} {trace['score']:.2f}", [trace["box_xyxy_px"]],
                         class_color(trace["label"]), [f"{trace['class_name']} {trace['score']:.3f}: "
                                                       f"{trace['fate_text']}"], width=4))
    return layers


def trace_figure(trace: dict, image_uri: str | None, image_hw: tuple[int, int], fig_height: int = 560) -> go.Figure:
    """The image (original pixels) with the boxes of a `trace_gt` / `trace_detection` result
    , one legend entry each; hover a box's centre for its numbers."""
    layers = _gt_layers(trace) if trace["kind"] == "gt" else _detection_layers(trace)
    traces = []
    for layer in layers:
        traces += box_traces(layer["boxes_xyxy_px"], layer["color"], layer["name"], hover=layer["hover"],
                             width=layer["width"], dash=layer["dash"])
    h, w = image_hw
    return image_figure(image_uri, w, h, fig_height=fig_height, traces=traces)
