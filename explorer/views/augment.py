"""Data and figures for the augmentation page (Sec. 2.2 "Data augmentation", Sec. 3.6,
Table 2: data augmentation is worth +8.8 mAP).

Samples of the training augmentation (`ssd.data.transforms`, the very transform training
uses) of one image, each replayed step by step (`trace_augmentation`): the photometric
distortion, the zoom out onto a mean-coloured canvas, every crop the minimum-IoU sampler
tried with the reason it was accepted or rejected, the flip, and the resize; then the
matching re-run on the result: for each ground truth, the level of its best default box
before and after (zoom out shrinks objects onto earlier, finer feature maps).

Frames: "original" = pixels of the user's image (W x H); "canvas" = pixels of the image
the crop samples from (after zoom out, Wc x Hc); "output" = the network input (S x S).

Letters: G = GT boxes, G' = GT boxes kept in a sample, N = samples, S = input side.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from torch import Tensor

from explorer.views.figures import GT_COLOR, box_traces, image_data_uri, image_figure, layout_image, to_figure
from explorer.views.matching import best_default_boxes
from ssd.data.transforms import CROP_OUTCOMES, AugmentSteps, AugmentTrace, ssd_transform, trace_augmentation
from ssd.priors import DefaultBoxes

MAX_SAMPLES = 32  # most samples one call draws (each keeps every intermediate image)
DROPPED_COLOR = "#ff1744"  # GT boxes a sample lost
ATTEMPT_STYLE = {  # crop outcome -> (colour, dash, width)
    "accepted": ("#00e676", "solid", 4), "whole image": ("#00e676", "solid", 4),
    "IoU below minimum": ("#ff9100", "dash", 1.5), "no centre inside": ("#9e9e9e", "dot", 1.5),
    "empty": ("#9e9e9e", "dot", 1.5),
}


def augment_samples(image: Image.Image, gt_xyxy_px: Tensor, labels: Tensor, size: int,
                    steps: AugmentSteps = AugmentSteps(), seed: int = 0, n: int = 8) -> list[AugmentTrace]:
    """N augmented samples of one image, as training draws them.

    `torch.manual_seed(seed)`, then N successive draws of `ssd_transform(size, steps)`, as
    a training loop meeting this image N times. The caller's torch RNG state is restored.

    Args:
        image: the original image (RGB PIL).
        gt_xyxy_px: (G, 4) GT boxes, original pixels; labels: (G,) class indices.
        size: the network input side S.
    Returns:
        N `AugmentTrace`s (every step's image and boxes, every crop tried, the output).
    Raises:
        ValueError naming the argument for a bad n, seed or size.
    """
    if not (isinstance(n, int) and 1 <= n <= MAX_SAMPLES):
        raise ValueError(f"number of samples must be a whole number in [1, {MAX_SAMPLES}], got {n!r}")
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if not (isinstance(size, int) and size >= 8):
        raise ValueError(f"input size must be a whole number of pixels >= 8, got {size!r}")
    transform = ssd_transform(size, steps)
    boxes = gt_xyxy_px.float().reshape(-1, 4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return [trace_augmentation(transform, image, boxes, labels.reshape(-1)) for _ in range(n)]


# ---------------------------------------------------------------- per-sample words and rows
def _to_pil(image_chw: Tensor) -> Image.Image:
    """(3, H, W) uint8 or float in [0, 1] -> RGB PIL."""
    if image_chw.dtype != torch.uint8:
        image_chw = (image_chw * 255).round().clamp(0, 255).to(torch.uint8)
    return Image.fromarray(image_chw.permute(1, 2, 0).contiguous().numpy())  # (3, H, W) -> (H, W, 3)


def zoom_factor(trace: AugmentTrace) -> float:
    """Canvas side / image side of the zoom out (1.0 when it did not fire or is off)."""
    zoom = trace.stage("zoom out")
    if zoom is None or not zoom.fired:
        return 1.0
    return zoom.image.shape[-1] / trace.stages[0].image.shape[-1]


def crop_canvas(trace: AugmentTrace):
    """The stage the crop sampled from (the one just before "IoU crop"), or None."""
    names = [s.name for s in trace.stages]
    return trace.stages[names.index("IoU crop") - 1] if "IoU crop" in names else None


def _photometric_words(trace: AugmentTrace) -> str:
    st = trace.stage("photometric distort")
    if st is None:
        return "off"
    if not st.fired:
        return "none drawn"
    p = st.params
    words = [f"{k.split('_')[0]} {p[k]:.2f}" for k in ("brightness_factor", "saturation_factor", "hue_factor")
             if p[k] is not None]
    if p["contrast_factor"] is not None:
        words.insert(1, f"contrast {p['contrast_factor']:.2f} ({'before' if p['contrast_before'] else 'after'})")
    if p["channel_permutation"] is not None:
        words.append(f"channels {p['channel_permutation']}")
    return ", ".join(words)


def _crop_words(trace: AugmentTrace) -> str:
    if trace.stage("IoU crop") is None:
        return "off"
    last = trace.crop_attempts[-1]
    tried = len(trace.crop_attempts)
    if last.outcome == "whole image":
        return f"whole image (after {tried - 1} rejected)" if tried > 1 else "whole image"
    l, t, r, b = last.crop_xyxy
    return f"{r - l}x{b - t} px at min IoU {last.min_iou:g}, attempt {tried}"


def sample_rows(traces: list[AugmentTrace]) -> list[dict]:
    """One row per sample: what each step drew, and how many GT boxes it kept."""
    rows = []
    for i, tr in enumerate(traces):
        flip = tr.stage("flip")
        zoom = tr.stage("zoom out")
        g = tr.stages[0].boxes_xyxy_px.shape[0]
        rows.append({
            "sample": i,
            "photometric": _photometric_words(tr),
            "zoom out": "off" if zoom is None else (f"x{zoom_factor(tr):.2f}" if zoom.fired else "no"),
            "crop": _crop_words(tr),
            "crops tried": len(tr.crop_attempts),
            "flip": "off" if flip is None else ("yes" if flip.fired else "no"),
            "GT kept": f"{tr.gt_index.numel()} of {g}",
        })
    return rows


def crop_attempt_rows(trace: AugmentTrace) -> list[dict]:
    """One row per crop tried, in order: where, its sampled minimum IoU, the outcome and why."""
    rows = []
    for n, a in enumerate(trace.crop_attempts):
        rows.append({
            "attempt": n + 1, "round": a.round, "trial": a.trial, "min IoU": a.min_iou,
            "crop (l, t, r, b) canvas px": list(a.crop_xyxy) if a.crop_xyxy is not None else None,
            "size (w x h)": f"{a.size_wh[0]}x{a.size_wh[1]}" if a.size_wh else None,
            "best IoU": round(a.best_iou, 4) if a.best_iou is not None else None,
            "GT centred inside": [g for g, inside in enumerate(a.centre_inside) if inside] if a.centre_inside else None,
            "accepted": a.accepted, "outcome": a.outcome, "reason": a.reason,
        })
    return rows


def outcome_counts(trace: AugmentTrace) -> dict[str, int]:
    """How many crops ended with each outcome (every outcome listed, zeros included)."""
    counts = dict.fromkeys(CROP_OUTCOMES, 0)
    for a in trace.crop_attempts:
        counts[a.outcome] += 1
    return counts


# ---------------------------------------------------------------- matching, re-run
def _side_input_px(boxes_xyxy: Tensor, scale_xy: tuple[float, float]) -> list[float]:
    """sqrt(w * h) of (G, 4) boxes after scaling x and y by `scale_xy` (to input pixels)."""
    w = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * scale_xy[0]
    h = (boxes_xyxy[:, 3] - boxes_xyxy[:, 1]) * scale_xy[1]
    return (w * h).clamp(min=0).sqrt().tolist()


def _drop_reason(trace: AugmentTrace, g: int) -> str:
    crop = trace.stage("IoU crop")
    last = trace.crop_attempts[-1] if trace.crop_attempts else None
    if crop is not None and crop.fired and last is not None and not last.centre_inside[g]:
        return "dropped: its centre left the crop"
    return "dropped: under 1 px after the resize"


def matching_rows(db: DefaultBoxes, trace: AugmentTrace, gt_xyxy_px: Tensor, gt_names: list[str],
                  image_hw: tuple[int, int], size: int, sample: int = 0) -> list[dict]:
    """Per GT box of one sample: its best default box (the one matching forces on it,
    `matching.best_default_boxes`) before augmentation and after, and where it moved.

    Args:
        db: the model's default boxes; size: its input side S.
        trace: the sample; gt_xyxy_px: (G, 4) its input GT, original pixels (H, W = image_hw).
    Returns:
        G dicts: sample, gt, class, side (input px) / level / cell IoU before and after,
        and "move": "earlier map (finer)", "same map", "later map (coarser)" or why dropped.
    """
    h, w = image_hw
    gt = gt_xyxy_px.float().reshape(-1, 4)
    before = best_default_boxes(db, gt, image_hw)
    after_px = trace.target["boxes"] * size  # (G', 4) normalised -> output px
    after = dict(zip(trace.gt_index.tolist(), best_default_boxes(db, after_px, (size, size))))
    side_after = dict(zip(trace.gt_index.tolist(), _side_input_px(after_px, (1.0, 1.0))))
    side_before = _side_input_px(gt, (size / w, size / h))
    rows = []
    for g, b in enumerate(before):
        a = after.get(g)
        row = {"sample": sample, "gt": g, "class": gt_names[g], "side before (input px)": round(side_before[g], 1),
               "level before": _level_label(db, b["level"]), "IoU before": b["iou"]}
        if a is None:
            row.update({"side after (input px)": None, "level after": None, "IoU after": None,
                        "move": _drop_reason(trace, g)})
        else:
            move = ("earlier map (finer)" if a["level"] < b["level"] else
                    "later map (coarser)" if a["level"] > b["level"] else "same map")
            row.update({"side after (input px)": round(side_after[g], 1), "level after": _level_label(db, a["level"]),
                        "IoU after": a["iou"], "move": move})
        rows.append(row)
    return rows


def _level_label(db: DefaultBoxes, k: int) -> str:
    m = db.feature_maps[k]
    return f"{k} ({m}x{m})"


MOVES = ("earlier map (finer)", "same map", "later map (coarser)", "dropped")


def move_counts(rows: list[dict]) -> dict[str, int]:
    """How many (sample, GT) pairs moved to an earlier / the same / a later map, or were dropped."""
    counts = dict.fromkeys(MOVES, 0)
    for r in rows:
        counts["dropped" if r["move"].startswith("dropped") else r["move"]] += 1
    return counts


# ---------------------------------------------------------------- figures
def _panel(layout: dict, k: int, n: int, cols: int, wh: tuple[int, int], uri: str | None, title: str) -> tuple:
    """Axes of panel k of n on a `cols`-wide grid, over a (W, H) pixel frame, y down,
    with its image and title; returns the (xaxis, yaxis) names for its traces."""
    rows = (n + cols - 1) // cols
    gap_x, gap_y = 0.02, 0.12 / max(1, rows)
    pw, ph = (1 - gap_x * (cols - 1)) / cols, (1 - gap_y * (rows - 1)) / rows
    r, c = k // cols, k % cols
    suffix = "" if k == 0 else str(k + 1)
    xa, ya = f"x{suffix}", f"y{suffix}"
    x0, y1 = c * (pw + gap_x), 1 - r * (ph + gap_y)
    w, h = wh
    layout[f"xaxis{suffix}"] = {"domain": [x0, x0 + pw], "range": [0, w], "anchor": ya, "showgrid": False,
                                "zeroline": False, "showticklabels": False, "constrain": "domain"}
    layout[f"yaxis{suffix}"] = {"domain": [y1 - ph, y1], "range": [h, 0], "anchor": xa, "showgrid": False,
                                "zeroline": False, "showticklabels": False, "scaleanchor": xa, "scaleratio": 1,
                                "constrain": "domain", "constraintoward": "top"}
    layout["annotations"].append({"text": title, "x": x0 + pw / 2, "y": y1, "xref": "paper", "yref": "paper",
                                  "xanchor": "center", "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
    if uri is not None:
        layout["images"].append(layout_image(uri, w, h, xa, ya))
    return xa, ya


def _grid_figure(traces: list[dict], layout: dict, rows: int, panel_height: int) -> go.Figure:
    layout.update({"height": panel_height * rows + 80, "margin": {"l": 10, "r": 10, "t": 70, "b": 10},
                   "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0},
                   "plot_bgcolor": "white", "dragmode": "zoom"})
    return to_figure(traces, layout)


def _gt_hover(boxes_xyxy: np.ndarray, idx: list[int], gt_names: list[str]) -> list[str]:
    return [f"GT {g}: {gt_names[g]}, {b[2] - b[0]:.0f} x {b[3] - b[1]:.0f} px" for g, b in zip(idx, boxes_xyxy)]


def samples_grid_figure(traces: list[AugmentTrace], gt_names: list[str], cols: int = 4,
                        panel_height: int = 260) -> go.Figure:
    """One panel per sample: the network input (S x S) training gets, with the GT it kept."""
    layout: dict = {"images": [], "annotations": []}
    traces_out: list[dict] = []
    for i, tr in enumerate(traces):
        s_h, s_w = tr.image.shape[-2:]
        flip = tr.stage("flip")
        title = f"sample {i}: zoom x{zoom_factor(tr):.1f}" + (", flipped" if flip is not None and flip.fired else "")
        xa, ya = _panel(layout, i, len(traces), cols, (s_w, s_h), image_data_uri(_to_pil(tr.image)), title)
        boxes = (tr.target["boxes"] * torch.tensor([s_w, s_h, s_w, s_h])).numpy()  # (G', 4) norm -> output px
        idx = tr.gt_index.tolist()
        traces_out += box_traces(boxes, GT_COLOR, "ground truth kept", hover=_gt_hover(boxes, idx, gt_names),
                                 width=2.5, showlegend=i == 0, legendgroup="gt", axes=(xa, ya))
    return _grid_figure(traces_out, layout, (len(traces) + cols - 1) // cols, panel_height)


def stages_figure(trace: AugmentTrace, gt_names: list[str], cols: int = 3, panel_height: int = 300) -> go.Figure:
    """One panel per step of one sample (input, photometric, zoom out, crop, flip, resize),
    each in its own pixels, with the GT boxes still in the sample at that step."""
    layout: dict = {"images": [], "annotations": []}
    traces_out: list[dict] = []
    kept = set(range(trace.stages[0].boxes_xyxy_px.shape[0]))
    for k, st in enumerate(trace.stages):
        h, w = st.image.shape[-2:]
        if st.name == "IoU crop" and st.fired:
            kept = {g for g, inside in enumerate(trace.crop_attempts[-1].centre_inside) if inside}
        words = "" if st.name in ("input", "resize") else (" (applied)" if st.fired else " (not drawn)")
        xa, ya = _panel(layout, k, len(trace.stages), cols, (w, h), image_data_uri(_to_pil(st.image)),
                        f"{k}. {st.name}{words}: {w}x{h}")
        idx = sorted(kept)
        boxes = st.boxes_xyxy_px[idx].numpy() if idx else np.zeros((0, 4))
        traces_out += box_traces(boxes, GT_COLOR, "ground truth", hover=_gt_hover(boxes, idx, gt_names), width=2,
                                 showlegend=k == 0, legendgroup="gt", axes=(xa, ya))
    return _grid_figure(traces_out, layout, (len(trace.stages) + cols - 1) // cols, panel_height)


def crop_attempts_figure(trace: AugmentTrace, gt_names: list[str], show_rejected: bool = True,
                         fig_height: int = 600) -> go.Figure:
    """Every crop the sampler tried, on the canvas it sampled from (canvas pixels).

    The accepted crop is solid green; rejected ones are dashed orange (IoU below the
    sampled minimum) or dotted grey (no GT centre inside). GT boxes are cyan when the
    sample keeps them, red when their centre fell outside the accepted crop; the marker
    at each GT's centre is what the centre-in-crop rule tests. Hover gives the reason.
    Crops rejected for their aspect ratio have no position and are only in the table.
    """
    canvas = crop_canvas(trace)
    if canvas is None:
        raise ValueError("this sample has no crop step (the IoU crop is switched off)")
    h, w = canvas.image.shape[-2:]
    gt = canvas.boxes_xyxy_px.numpy()
    last = trace.crop_attempts[-1]
    inside = list(last.centre_inside) if last.centre_inside else [True] * gt.shape[0]
    traces: list[dict] = []
    for keep, color, name in ((True, GT_COLOR, "GT kept"), (False, DROPPED_COLOR, "GT dropped (centre outside)")):
        idx = [g for g in range(gt.shape[0]) if inside[g] == keep]
        traces += box_traces(gt[idx], color, name, hover=_gt_hover(gt[idx], idx, gt_names), width=3)
    for outcome, (color, dash, width) in ATTEMPT_STYLE.items():
        nums = [n for n, a in enumerate(trace.crop_attempts) if a.outcome == outcome and a.crop_xyxy is not None]
        if not nums or (not show_rejected and not CROP_OUTCOMES[outcome][0]):
            continue
        boxes = np.array([trace.crop_attempts[n].crop_xyxy for n in nums], dtype=float)
        traces += box_traces(boxes, color, f"{outcome} ({len(nums)})", hover=[_attempt_hover(trace, n) for n in nums],
                             width=width, dash=dash)
    return image_figure(image_data_uri(_to_pil(canvas.image)), w, h, fig_height=fig_height, traces=traces)


def _attempt_hover(trace: AugmentTrace, n: int) -> str:
    a = trace.crop_attempts[n]
    best = f", best IoU {a.best_iou:.3f}" if a.best_iou is not None else ""
    return (f"attempt {n + 1} (round {a.round}, trial {a.trial}): min IoU {a.min_iou:g}{best}<br>"
            f"{a.outcome}: {a.reason}")
