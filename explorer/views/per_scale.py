"""Data and figures for the per-scale page: what each feature map sees (Fig. 1 of the
paper: the cat is matched on the 8x8 map, the dog on the 4x4 map).

Input: an `ssd.inference.Stages` (per-level `scores` (H*W*K, C) softmax probabilities
and per-level `level_detections`, boxes in original pixels). Frame of the figures:
original-image pixels; the cell (i, j) of an f x f map with step s (input pixels) has
its centre at ((j + 0.5) s / S * W, (i + 0.5) s / S * H).
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.colors import sequential as _seq

from explorer.views.figures import GT_COLOR, box_traces, class_color, layout_image, to_figure

ANY_CLASS = -1  # "any object": best non-background class per cell


def _fading_inferno() -> list[list]:
    """Inferno as explicit stops whose alpha grows with the score, so cells scoring ~0
    leave the image visible and high scores light up. (Explicit stops also because the
    figures skip Plotly's validation, which is what resolves a name like "Inferno".)"""
    n = len(_seq.Inferno)
    stops = []
    for i, hex_colour in enumerate(_seq.Inferno):
        t = i / (n - 1)
        r, g, b = (int(hex_colour[k:k + 2], 16) for k in (1, 3, 5))
        stops.append([t, f"rgba({r},{g},{b},{min(0.95, 0.05 + 1.5 * t):.3f})"])
    return stops


_INFERNO = _fading_inferno()


def level_score_maps(scores_per_level, feature_sizes, class_index: int = ANY_CLASS):
    """Per level, the best score per cell of one class (or of any non-background class).

    Args:
        scores_per_level: L tensors (H_l*W_l*K_l, C) or (1, H_l*W_l*K_l, C), probabilities.
        feature_sizes: L pairs (H_l, W_l).
        class_index: class c in 1..C-1, or ANY_CLASS.
    Returns:
        (maps, best_class): L numpy arrays (H_l, W_l) of scores, and L arrays (H_l, W_l)
        of the class that gave each score.
    """
    maps, classes = [], []
    for s, (h, w) in zip(scores_per_level, feature_sizes):
        s = s.reshape(h, w, -1, s.shape[-1]).float()  # (H*W*K, C) -> (H, W, K, C)
        if class_index == ANY_CLASS:
            per_box, cls = s[..., 1:].max(dim=-1)  # (H, W, K): best non-background class
            cls = cls + 1
        else:
            per_box = s[..., class_index]
            cls = torch.full(per_box.shape, class_index, dtype=torch.long)
        best, b = per_box.max(dim=-1)  # (H, W): best box of the cell
        maps.append(best.numpy())
        classes.append(cls.gather(-1, b.unsqueeze(-1)).squeeze(-1).numpy())
    return maps, classes


def level_summary(maps, classes, level_detections, feature_sizes, class_names, level_names=None) -> list[dict]:
    """One row per level: its map, hottest cell and score, detections on it."""
    rows = []
    for k, (m, c, det) in enumerate(zip(maps, classes, level_detections)):
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        scores = det.scores.tolist() if len(det.scores) else []
        top = int(np.argmax(scores)) if scores else None
        rows.append(
            {
                "level": k,
                "source_layer": level_names[k] if level_names else "",
                "feature_map": f"{feature_sizes[k][0]}x{feature_sizes[k][1]}",
                "max_score": round(float(m[i, j]), 4),
                "hottest_cell": f"({i}, {j})",
                "hottest_class": class_names[int(c[i, j])],
                "detections": len(scores),
                "top_detection": (f"{class_names[int(det.labels[top])]} {scores[top]:.2f}" if top is not None else ""),
            }
        )
    return rows


def per_scale_figure(
    maps,
    classes,
    level_detections,
    feature_sizes,
    steps,
    image_size: int,
    image_uri: str | None,
    image_wh: tuple[int, int],
    class_names: list[str],
    level_names=None,
    cols: int = 3,
    opacity: float = 1.0,
    panel_height: int = 330,
    gt_xyxy_px=None,
    gt_names=None,
    gt_best=None,
) -> go.Figure:
    """One panel per level: the image, the level's score map as a heatmap over its grid,
    and the level's detections (boxes coloured by class). Shared colour scale 0..1.

    With ground truth (`gt_xyxy_px` (G, 4) original pixels, `gt_names`), every panel draws
    it in cyan, and `gt_best` (from `matching.best_default_boxes`) puts a cyan ring on the
    cell of each GT's best default box, in the panel of that level: where it should fire.

    Panels are laid out by hand (axis domains), as `make_subplots` alone costs ~50 ms.
    """
    n = len(maps)
    rows = (n + cols - 1) // cols
    W, H = image_wh
    gap_x, gap_y = 0.02, 0.10 / max(1, rows)
    pw = (1 - gap_x * (cols - 1)) / cols
    ph = (1 - gap_y * (rows - 1)) / rows
    traces: list[dict] = []
    layout: dict = {"images": [], "annotations": []}
    shown_classes: set[int] = set()
    for k in range(n):
        r, c = k // cols, k % cols
        suffix = "" if k == 0 else str(k + 1)
        xa, ya = f"x{suffix}", f"y{suffix}"
        x0 = c * (pw + gap_x)
        y1 = 1 - r * (ph + gap_y)
        # Equal pixel aspect by shrinking the panel (constrain="domain"), kept under its title.
        layout[f"xaxis{suffix}"] = {"domain": [x0, x0 + pw], "range": [0, W], "anchor": ya, "showgrid": False,
                                    "zeroline": False, "showticklabels": False, "constrain": "domain"}
        layout[f"yaxis{suffix}"] = {"domain": [y1 - ph, y1], "range": [H, 0], "anchor": xa, "showgrid": False,
                                    "zeroline": False, "showticklabels": False, "scaleanchor": xa, "scaleratio": 1,
                                    "constrain": "domain", "constraintoward": "top"}
        h, w = feature_sizes[k]
        title = f"level {k}: {h}x{w}" + (f" ({level_names[k]})" if level_names else "")
        layout["annotations"].append({"text": title, "x": x0 + pw / 2, "y": y1, "xref": "paper", "yref": "paper",
                                      "xanchor": "center", "yanchor": "bottom", "showarrow": False,
                                      "font": {"size": 13}})
        if image_uri is not None:
            layout["images"].append(layout_image(image_uri, W, H, xa, ya))
        dx = steps[k] / image_size * W
        dy = steps[k] / image_size * H
        names = [[f"cell ({i}, {j}): {class_names[int(classes[k][i, j])]}" for j in range(w)] for i in range(h)]
        heat = {
            "type": "heatmap", "z": maps[k], "x0": dx / 2, "dx": dx, "y0": dy / 2, "dy": dy, "zmin": 0, "zmax": 1,
            "colorscale": _INFERNO, "opacity": opacity, "showscale": k == 0, "customdata": names,
            "hovertemplate": "%{customdata} %{z:.3f}<extra>level " + str(k) + "</extra>", "xaxis": xa, "yaxis": ya,
        }
        if k == 0:
            heat["colorbar"] = {"title": {"text": "score"}, "len": 0.8}
        traces.append(heat)
        det = level_detections[k]
        boxes = det.boxes_xyxy_px.reshape(-1, 4).numpy() if len(det.scores) else np.zeros((0, 4))
        labels = det.labels.tolist() if len(det.scores) else []
        det_scores, det_row, det_col = det.scores.tolist(), det.row.tolist(), det.col.tolist()
        for cls in sorted(set(labels)):
            idx = [q for q, lab in enumerate(labels) if lab == cls]
            name = class_names[cls]
            text = [f"{name} {det_scores[q]:.3f}, cell ({det_row[q]}, {det_col[q]})<br>level {k}" for q in idx]
            traces += box_traces(boxes[idx], class_color(cls), name, hover=text, width=2.5, legendgroup=name,
                                 showlegend=cls not in shown_classes, axes=(xa, ya))
            shown_classes.add(cls)
        if gt_xyxy_px is not None and len(gt_xyxy_px):
            first_ring = min((b["level"] for b in gt_best or []), default=-1) == k  # one legend entry
            traces += _gt_traces(k, gt_xyxy_px, gt_names, gt_best or [], feature_sizes[k], image_wh, (xa, ya),
                                 first_ring)
    layout.update({
        "height": panel_height * rows + 90, "margin": {"l": 10, "r": 10, "t": 90, "b": 10},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0,
                   "title": {"text": "detections per level:"}},
        "plot_bgcolor": "white",
    })
    return to_figure(traces, layout)


def _gt_traces(level: int, gt_xyxy_px, gt_names, gt_best: list[dict], feature_size, image_wh, axes,
               ring_legend: bool = True) -> list[dict]:
    """Cyan GT boxes on one panel, and rings on the cells whose default box is some GT's best."""
    W, H = image_wh
    h, w = feature_size
    boxes = np.asarray(gt_xyxy_px, dtype=float).reshape(-1, 4)
    out = box_traces(boxes, GT_COLOR, "ground truth", width=1.5, dash="dot", legendgroup="ground truth",
                     showlegend=level == 0, axes=axes)
    mine = [b for b in gt_best if b["level"] == level]
    if mine:
        # The cell centre in original pixels: the input square is the image stretched.
        xs = [(b["col"] + 0.5) / w * W for b in mine]
        ys = [(b["row"] + 0.5) / h * H for b in mine]
        text = [f"GT {b['gt']} ({gt_names[b['gt']]}): best default box here, cell ({b['row']}, {b['col']}), "
                f"IoU {b['iou']:.2f}" for b in mine]
        out.append({"type": "scatter", "x": xs, "y": ys, "mode": "markers", "text": text, "hoverinfo": "text",
                    "marker": {"symbol": "circle-open", "size": 16, "color": GT_COLOR, "line": {"width": 3}},
                    "name": "best default box of a GT", "legendgroup": "gt best", "showlegend": ring_legend,
                    "xaxis": axes[0], "yaxis": axes[1]})
    return out
