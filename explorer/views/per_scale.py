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

from explorer.views.figures import GT_COLOR, box_traces, class_color, to_figure
from explorer.views.trace_links import detection_key, gt_pick_markers

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


# Figure geometry, in browser pixels. The page's chart stretches to its column, so the
# figure is laid out for the width it is expected to get there.
FIG_WIDTH_PX = 940  # expected chart width: measured in Chromium, 1400 px window, sidebar open
MARGIN_PX = {"l": 15, "r": 70, "t": 70, "b": 15}  # the legend sits in the top margin, the colour bar in the right
TITLE_PX = 22  # room above each panel for its title
GAP_X_PX = 12  # between panel columns
MAX_PANEL_PX = 420  # tallest panel (a portrait image on a wide screen stays on screen)
PHOTO = "photo"  # name of the one template image every panel's layout image points to


def panel_grid(n: int, cols: int, image_hw: tuple[int, int], fig_width_px: int = FIG_WIDTH_PX,
               max_panel_px: int = MAX_PANEL_PX) -> tuple[list[tuple[list, list]], int]:
    """Axis domains for n panels of an image, `cols` per row, sized so each panel has the
    image's aspect ratio and the rows fill the figure (no empty band under them).

    Args:
        n: panels; cols: panels per row.
        image_hw: (H, W) of the image, pixels.
        fig_width_px: the figure's width in the browser; max_panel_px: cap on a panel's height.
    Returns:
        (domains, fig_height_px): per panel ([x0, x1], [y0, y1]) fractions of the plot area
        (inside `MARGIN_PX`), row by row from the top; and the figure height in pixels.
        A panel is domain_w * plot_w px wide and domain_h * plot_h px tall, plot_w / plot_h
        the figure's size less the margins: domain_h * plot_h / (domain_w * plot_w) = H / W.
    """
    h, w = image_hw
    if n < 1 or cols < 1 or h < 1 or w < 1:
        raise ValueError(f"panel_grid needs n, cols >= 1 and an image (H, W) >= 1 px, got n={n}, cols={cols}, "
                         f"image_hw={image_hw}")
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    plot_w = fig_width_px - MARGIN_PX["l"] - MARGIN_PX["r"]
    slot_w = (plot_w - GAP_X_PX * (cols - 1)) / cols
    panel_h = max(1, round(min(slot_w * h / w, max_panel_px)))  # whole pixels: the figure height is an int
    panel_w = min(slot_w, panel_h * w / h)  # narrower than its slot when the height is capped
    plot_h = rows * (TITLE_PX + panel_h)
    domains = []
    for k in range(n):
        r, c = divmod(k, cols)
        x0 = c * (slot_w + GAP_X_PX) + (slot_w - panel_w) / 2  # centred in its slot
        top = r * (TITLE_PX + panel_h) + TITLE_PX  # px from the plot area's top
        domains.append(([x0 / plot_w, (x0 + panel_w) / plot_w], [1 - (top + panel_h) / plot_h, 1 - top / plot_h]))
    return domains, plot_h + MARGIN_PX["t"] + MARGIN_PX["b"]


def _default_template() -> dict:
    """The current default Plotly template as a dict (what `to_figure` would apply), cached
    per template name: the figure replaces it by a copy that also holds the image."""
    import plotly.io as pio

    name = pio.templates.default
    if name not in _TEMPLATES:
        _TEMPLATES[name] = pio.templates[name].to_plotly_json() if name else {}
    return _TEMPLATES[name]


_TEMPLATES: dict = {}


def shared_image_layout(image_uri: str, image_hw: tuple[int, int], axes: list[tuple[str, str]]) -> dict:
    """Layout entries that draw one image behind every (xaxis, yaxis) pair in `axes`, with
    the image's `source` in the figure once: a named image in `layout.template.layout.images`
    (the source, position and size), and per panel a `layout.images` item that refers to it
    by `templateitemname` and sets only its axes (Plotly's template array items).

    Returns: {"template": ..., "images": [...]} to merge into a layout dict.
    """
    h, w = image_hw
    base = _default_template()
    photo = {"name": PHOTO, "source": image_uri, "x": 0, "y": 0, "sizex": w, "sizey": h, "sizing": "stretch",
             "layer": "below", "xanchor": "left", "yanchor": "top"}
    template = {"data": base.get("data", {}),
                "layout": dict(base.get("layout", {}), images=list(base.get("layout", {}).get("images", [])) + [photo])}
    return {"template": template, "images": [{"templateitemname": PHOTO, "xref": xa, "yref": ya} for xa, ya in axes]}


def per_scale_figure(
    maps,
    classes,
    level_detections,
    feature_sizes,
    steps,
    image_size: int,
    image_uri: str | None,
    image_hw: tuple[int, int],
    class_names: list[str],
    level_names=None,
    cols: int = 3,
    opacity: float = 1.0,
    fig_width_px: int = FIG_WIDTH_PX,
    gt_xyxy_px=None,
    gt_names=None,
    gt_best=None,
) -> go.Figure:
    """One panel per level: the image, the level's score map as a heatmap over its grid,
    and the level's detections (boxes coloured by class). Shared colour scale 0..1.

    With ground truth (`gt_xyxy_px` (G, 4) original pixels, `gt_names`), every panel draws
    it in cyan, and `gt_best` (from `matching.best_default_boxes`) puts a cyan ring on the
    cell of each GT's best default box, in the panel of that level: where it should fire.

    Clicking picks an object to trace: each detection's centre marker carries customdata
    "det:A:C" (its default box A, class C), each GT's corner marker "gt:G"
    (`trace_links.target_key`).

    `image_uri` (a data URI or a URL) is put in the figure once (`shared_image_layout`).
    Panels have the image's aspect and fill the figure (`panel_grid`), for a chart
    `fig_width_px` wide. Laid out by hand (axis domains), as `make_subplots` alone costs ~50 ms.
    """
    n = len(maps)
    H, W = image_hw
    domains, fig_height = panel_grid(n, cols, image_hw, fig_width_px)
    traces: list[dict] = []
    layout: dict = {"annotations": []}
    shown_classes: set[int] = set()
    axes = [("x" + ("" if k == 0 else str(k + 1)), "y" + ("" if k == 0 else str(k + 1))) for k in range(n)]
    ring_level = min((b["level"] for b in gt_best or []), default=-1)  # the ring's one legend entry
    for k, ((xd, yd), (xa, ya)) in enumerate(zip(domains, axes)):
        _panel_axes(layout, k, xd, yd, (xa, ya), image_hw, feature_sizes[k], level_names)
        traces.append(_heatmap(k, maps[k], classes[k], steps[k] / image_size * W, steps[k] / image_size * H,
                               class_names, opacity, (xa, ya)))
        traces += _detection_traces(k, level_detections[k], class_names, shown_classes, (xa, ya))
        if gt_xyxy_px is not None and len(gt_xyxy_px):
            traces += _gt_traces(k, gt_xyxy_px, gt_names, gt_best or [], feature_sizes[k], image_hw, (xa, ya),
                                 ring_level == k)
    if image_uri is not None:
        layout.update(shared_image_layout(image_uri, image_hw, axes))
    layout.update({
        "height": fig_height, "margin": dict(MARGIN_PX),
        "legend": {"orientation": "h", "yref": "container", "yanchor": "top", "y": 1, "x": 0,
                   "title": {"text": "detections per level:"}},
        "plot_bgcolor": "white",
    })
    return to_figure(traces, layout)


def _panel_axes(layout: dict, k: int, x_domain, y_domain, axes, image_hw, feature_size, level_names) -> None:
    """Axes of panel k (image pixels, y down, equal pixel aspect) and its title, into `layout`."""
    H, W = image_hw
    suffix = "" if k == 0 else str(k + 1)
    xa, ya = axes
    # Equal pixel aspect: the domains have it already; constrain="domain" keeps it if the
    # chart is narrower or wider than laid out for.
    layout[f"xaxis{suffix}"] = {"domain": x_domain, "range": [0, W], "anchor": ya, "showgrid": False,
                                "zeroline": False, "showticklabels": False, "constrain": "domain"}
    layout[f"yaxis{suffix}"] = {"domain": y_domain, "range": [H, 0], "anchor": xa, "showgrid": False,
                                "zeroline": False, "showticklabels": False, "scaleanchor": xa, "scaleratio": 1,
                                "constrain": "domain", "constraintoward": "top"}
    h, w = feature_size
    title = f"level {k}: {h}x{w}" + (f" ({level_names[k]})" if level_names else "")
    layout["annotations"].append({"text": title, "x": (x_domain[0] + x_domain[1]) / 2, "y": y_domain[1],
                                  "xref": "paper", "yref": "paper", "xanchor": "center", "yanchor": "bottom",
                                  "showarrow": False, "font": {"size": 13}})


def _heatmap(k: int, score_map, class_map, dx: float, dy: float, class_names, opacity: float, axes) -> dict:
    """Level k's best score per cell over its grid; cells dx x dy original pixels."""
    h, w = score_map.shape
    names = [[f"cell ({i}, {j}): {class_names[int(class_map[i, j])]}" for j in range(w)] for i in range(h)]
    heat = {
        "type": "heatmap", "z": score_map, "x0": dx / 2, "dx": dx, "y0": dy / 2, "dy": dy, "zmin": 0, "zmax": 1,
        "colorscale": _INFERNO, "opacity": opacity, "showscale": k == 0, "customdata": names,
        "hovertemplate": "%{customdata} %{z:.3f}<extra>level " + str(k) + "</extra>",
        "xaxis": axes[0], "yaxis": axes[1],
    }
    if k == 0:
        # Inside the right margin: a colour bar that pushed the margin (automargin) would
        # narrow the panels below the width `panel_grid` sized them for.
        heat["colorbar"] = {"title": {"text": "score"}, "len": 0.8, "thickness": 14, "x": 1.01, "xanchor": "left"}
    return heat


def _detection_traces(k: int, det, class_names, shown_classes: set, axes) -> list[dict]:
    """Level k's own detections, one box trace (+ clickable centre markers) per class;
    a class's legend entry only on its first panel (`shown_classes` is updated)."""
    if not len(det.scores):
        return []
    boxes = det.boxes_xyxy_px.reshape(-1, 4).numpy()
    labels, det_scores = det.labels.tolist(), det.scores.tolist()
    det_row, det_col, default_index = det.row.tolist(), det.col.tolist(), det.default_index.tolist()
    out = []
    for cls in sorted(set(labels)):
        idx = [q for q, lab in enumerate(labels) if lab == cls]
        name = class_names[cls]
        text = [f"{name} {det_scores[q]:.3f}, cell ({det_row[q]}, {det_col[q]})<br>level {k} (click to trace)"
                for q in idx]
        keys = [detection_key(default_index[q], cls) for q in idx]
        out += box_traces(boxes[idx], class_color(cls), name, hover=text, width=2.5, legendgroup=name,
                          showlegend=cls not in shown_classes, axes=axes, customdata=keys)
        shown_classes.add(cls)
    return out


def _gt_traces(level: int, gt_xyxy_px, gt_names, gt_best: list[dict], feature_size, image_hw, axes,
               ring_legend: bool = True) -> list[dict]:
    """Cyan GT boxes on one panel with a clickable marker on each box's corner, and rings on
    the cells whose default box is some GT's best (a click on a ring picks that GT too)."""
    H, W = image_hw
    h, w = feature_size
    boxes = np.asarray(gt_xyxy_px, dtype=float).reshape(-1, 4)
    out = box_traces(boxes, GT_COLOR, "ground truth", width=1.5, dash="dot", legendgroup="ground truth",
                     showlegend=level == 0, axes=axes)
    out.append(gt_pick_markers(boxes, gt_names, axes))
    mine = [b for b in gt_best if b["level"] == level]
    if mine:
        # The cell centre in original pixels: the input square is the image stretched.
        xs = [(b["col"] + 0.5) / w * W for b in mine]
        ys = [(b["row"] + 0.5) / h * H for b in mine]
        text = [f"GT {b['gt']} ({gt_names[b['gt']]}): best default box here, cell ({b['row']}, {b['col']}), "
                f"IoU {b['iou']:.2f} (click to trace)" for b in mine]
        out.append({"type": "scatter", "x": xs, "y": ys, "mode": "markers", "text": text, "hoverinfo": "text",
                    "marker": {"symbol": "circle-open", "size": 16, "color": GT_COLOR, "line": {"width": 3}},
                    "customdata": [f"gt:{b['gt']}" for b in mine],
                    "name": "best default box of a GT", "legendgroup": "gt best", "showlegend": ring_legend,
                    "xaxis": axes[0], "yaxis": axes[1]})
    return out
