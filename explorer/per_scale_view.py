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
from plotly.subplots import make_subplots

from explorer.figures import class_color, rect_lines

ANY_CLASS = -1  # "any object": best non-background class per cell


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
    opacity: float = 0.55,
    panel_height: int = 330,
) -> go.Figure:
    """One panel per level: the image, the level's score map as a heatmap over its grid,
    and the level's detections (boxes coloured by class). Shared colour scale 0..1."""
    n = len(maps)
    rows = (n + cols - 1) // cols
    titles = [f"level {k}: {h}x{w}" + (f" ({level_names[k]})" if level_names else "")
              for k, (h, w) in enumerate(feature_sizes)]
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.02,
                        vertical_spacing=0.08)
    W, H = image_wh
    shown_classes: set[int] = set()
    for k in range(n):
        r, c = k // cols + 1, k % cols + 1
        axis = "" if k == 0 else str(k + 1)
        h, w = feature_sizes[k]
        dx = steps[k] / image_size * W
        dy = steps[k] / image_size * H
        if image_uri is not None:
            fig.add_layout_image(source=image_uri, xref=f"x{axis}", yref=f"y{axis}", x=0, y=0, sizex=W, sizey=H,
                                 sizing="stretch", layer="below", xanchor="left", yanchor="top")
        names = [[f"cell ({i}, {j}): {class_names[int(classes[k][i, j])]}" for j in range(w)] for i in range(h)]
        fig.add_trace(
            go.Heatmap(
                z=maps[k], x0=dx / 2, dx=dx, y0=dy / 2, dy=dy, zmin=0, zmax=1, colorscale="Inferno",
                opacity=opacity, showscale=(k == 0), customdata=names,
                colorbar={"title": "score", "len": 0.8} if k == 0 else None,
                hovertemplate="%{customdata} %{z:.3f}<extra>level "
                              + str(k) + "</extra>",
            ),
            row=r, col=c,
        )
        det = level_detections[k]
        boxes = det.boxes_xyxy.reshape(-1, 4).numpy() if len(det.scores) else np.zeros((0, 4))
        labels = det.labels.tolist() if len(det.scores) else []
        for cls in sorted(set(labels)):
            idx = [q for q, lab in enumerate(labels) if lab == cls]
            xs, ys = rect_lines(boxes[idx])
            name = class_names[cls]
            fig.add_trace(
                go.Scatter(x=xs, y=ys, mode="lines", line={"color": class_color(cls), "width": 2.5}, name=name,
                           legendgroup=name, showlegend=cls not in shown_classes, hoverinfo="skip"),
                row=r, col=c,
            )
            cx = (boxes[idx, 0] + boxes[idx, 2]) / 2
            cy = (boxes[idx, 1] + boxes[idx, 3]) / 2
            text = [f"{name} {float(det.scores[q]):.3f}, cell ({int(det.row[q])}, {int(det.col[q])})" for q in idx]
            fig.add_trace(
                go.Scatter(x=cx, y=cy, mode="markers", marker={"color": class_color(cls), "size": 7}, text=text,
                           hovertemplate="%{text}<extra>level " + str(k) + "</extra>", legendgroup=name,
                           showlegend=False),
                row=r, col=c,
            )
            shown_classes.add(cls)
        fig.update_xaxes(range=[0, W], showgrid=False, zeroline=False, showticklabels=False, row=r, col=c)
        fig.update_yaxes(range=[H, 0], showgrid=False, zeroline=False, showticklabels=False,
                         scaleanchor=f"x{axis}", scaleratio=1, row=r, col=c)
    fig.update_layout(height=panel_height * rows + 90, margin={"l": 10, "r": 10, "t": 90, "b": 10},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0,
                              "title": {"text": "detections per level:"}},
                      plot_bgcolor="white")
    # Subplot titles sit just above each panel; keep them clear of the legend.
    fig.update_annotations(yshift=2, font={"size": 13})
    return fig
