"""The links every trace shares: where a default box sits, what post-processing did with
one prediction (its fate in `Stages.candidates` / `Stages.nms`), TIDE's matching of the
final detections, and the encoded target next to the network's prediction.

Letters: A = default boxes, C = classes incl. background 0, G = GT boxes, N = candidates.
Frames: `_px` = original-image pixels; `_px_in` = network-input pixels (S x S, the frame
NMS and the evaluation use); `_norm` = fractions of the input side (default boxes).
"""
from __future__ import annotations

import torch
from torch import Tensor

from explorer.views.encoding import encoding_rows
from explorer.views.figures import GT_COLOR
from ssd.boxes import cxcywh_to_xyxy, norm_to_px
from ssd.evaluation.error_types.tide import TideConfig, classify_image
from ssd.postprocess import Postprocessed


def image_frames(stages) -> tuple[int, int, int]:
    """(H, W) of the original image and the input side S."""
    h, w = stages.image_hw
    return h, w, int(stages.raw.input_tensor.shape[-1])


def check_gt(gt_boxes_xyxy_px, gt_labels, num_classes: int) -> tuple[Tensor, Tensor]:
    """(G, 4) float32 GT boxes and (G,) long labels, checked.

    Raises:
        ValueError: boxes not (G, 4), a label count that differs, a label outside 1..C-1.
    """
    boxes = torch.as_tensor(gt_boxes_xyxy_px, dtype=torch.float32)
    labels = torch.as_tensor(gt_labels, dtype=torch.long).reshape(-1)
    if boxes.numel() == 0:  # no GT: (0,) or (0, 4) alike
        boxes = boxes.reshape(0, 4)
    if boxes.dim() != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"gt_boxes_xyxy_px must be (G, 4) xyxy pixels, got shape {tuple(boxes.shape)}")
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"gt_labels has {labels.shape[0]} entries for {boxes.shape[0]} GT boxes")
    bad = ((labels < 1) | (labels >= num_classes)).nonzero().flatten()
    if len(bad):
        raise ValueError(f"gt_labels[{int(bad[0])}] = {int(labels[bad[0]])} is not a class 1..{num_classes - 1}")
    return boxes, labels


def default_box_px(db, a: int, h: int, w: int) -> list[float]:
    """Default box `a` (xyxy) in original-image pixels."""
    box_norm = cxcywh_to_xyxy(db.cxcywh[a:a + 1])[0]  # one box, not all A
    return [round(float(v), 1) for v in norm_to_px(box_norm, (h, w))]


def decoded_box_px(stages, a: int) -> list[float]:
    """Decoded, clipped box of default box `a`, original pixels."""
    return [round(float(v), 1) for v in stages.raw.boxes_xyxy_px[a].cpu()]


def where(db, a: int) -> dict:
    """Level, feature map, cell, box shape of default box `a`."""
    k, b = int(db.level[a]), int(db.box_index[a])
    f = db.feature_maps[k]
    return {"default_index": int(a), "level": k, "feature_map": f"{f}x{f}", "row": int(db.row[a]),
            "col": int(db.col[a]), "box": b, "ratio": db.labels_per_level[k][b]}


def postprocessed(stages) -> Postprocessed:
    """The `Postprocessed` that `stages` was built from (candidates, NMS trace, final), on the
    CPU, as `ssd.evaluation.error_types.causes.miss_cause` reads it."""
    cand = stages.candidates
    keep = stages.nms.keep.cpu()
    return Postprocessed(candidate_index=cand.default_index, candidate_scores=cand.scores,
                         candidate_labels=cand.labels,
                         candidate_boxes_px_in=stages.raw.boxes_px_in[cand.default_index.to(
                             stages.raw.boxes_px_in.device)].cpu(),
                         nms=stages.nms, final=keep[: stages.config.detections_per_img])


# ---------------------------------------------------------------- one numbering
# Detections are numbered as users count, by their place in the final list: 1, 2, ...
# (every page: NMS hover and tables, the pickers, Trace). A candidate that is not a final
# detection (suppressed by NMS, cut by top k) has no number: it is named by its class,
# score, level and cell, and, when NMS removed it, by the detection that suppressed it.
def detection_number(stages, candidate: int) -> int | None:
    """The final-list number (from 1) of candidate `candidate`, or None when it is not final."""
    hit = (stages.nms.keep.cpu() == candidate).nonzero().flatten()
    if not len(hit) or int(hit[0]) >= len(stages.detections):
        return None
    return int(hit[0]) + 1


def candidate_name(stages, candidate: int) -> str:
    """"detection 3" for a final detection, else "cat 0.412 (level 2, cell (3, 4))"."""
    n = detection_number(stages, candidate)
    if n is not None:
        return f"detection {n}"
    cand = stages.candidates
    return (f"{stages.class_names[int(cand.labels[candidate])]} {float(cand.scores[candidate]):.3f} "
            f"(level {int(cand.level[candidate])}, cell ({int(cand.row[candidate])}, {int(cand.col[candidate])}))")


def prediction_fate(stages, default_index: int, label: int) -> dict:
    """What post-processing did with the prediction of default box `default_index` for class
    `label`, read from `stages` (candidates, `nms` trace, final detections).

    Returns:
        {"fate": one of "below_score_threshold", "cut_before_nms" (not among the class's
        `topk_candidates`), "suppressed", "cut_by_top_k" (kept by NMS, beyond
        `detections_per_img`), "final"; "score"; "candidate" (index into candidates or None);
        "detection" (index into final detections or None) and "detection_number" (from 1,
        as shown); for "suppressed": "suppressed_by" (candidate), "suppressor" (its default
        box, level, cell, score), "suppressor_name" (`candidate_name`), "suppress_iou"}.
    """
    cfg, cand = stages.config, stages.candidates
    score = float(stages.raw.scores[default_index, label])
    rec = {"fate": "", "score": round(score, 4), "candidate": None, "detection": None}
    pos = ((cand.default_index == default_index) & (cand.labels == label)).nonzero().flatten()
    if pos.numel() == 0:
        return dict(rec, fate="below_score_threshold" if score <= cfg.score_thresh else "cut_before_nms")
    p = int(pos[0])
    rec["candidate"] = p
    nms = stages.nms
    if not bool(nms.kept[p]):
        by = int(nms.suppressed_by[p])
        sup = dict(where(stages.default_boxes, int(cand.default_index[by])), score=round(float(cand.scores[by]), 4),
                   box_xyxy_px=[round(float(v), 1) for v in cand.boxes_xyxy_px[by]])
        return dict(rec, fate="suppressed", suppressed_by=by, suppressor=sup,
                    suppressor_name=candidate_name(stages, by), suppress_iou=round(float(nms.suppress_iou[p]), 4))
    rank = int((nms.keep.cpu() == p).nonzero()[0, 0])  # keep is by descending score
    if rank >= len(stages.detections):
        return dict(rec, fate="cut_by_top_k", rank=rank)
    return dict(rec, fate="final", detection=rank, detection_number=rank + 1)


FATE_TEXT = {
    "below_score_threshold": "not a candidate: score {score:.3f} is not above the threshold",
    "cut_before_nms": "not a candidate: above the threshold, but not among its class's top-k before NMS",
    "suppressed": "suppressed by NMS: by {suppressor_name} (default box {sup_a}, score {sup_score:.3f}) "
                  "at IoU {suppress_iou:.2f}",
    "cut_by_top_k": "kept by NMS, then cut by the top-k detections limit (it would be detection {place})",
    "final": "kept: final detection {detection_number}",
}


def fate_text(fate: dict) -> str:
    """One line for a `prediction_fate` record."""
    extra = {}
    if fate["fate"] == "suppressed":
        extra = {"sup_a": fate["suppressor"]["default_index"], "sup_score": fate["suppressor"]["score"]}
    elif fate["fate"] == "cut_by_top_k":
        extra = {"place": fate["rank"] + 1}
    return FATE_TEXT[fate["fate"]].format(**fate, **extra)


def tide_matching(stages, gt_norm: Tensor, gt_labels: Tensor, max_dets: int):
    """TIDE's matching of the final detections to the GTs, in the network-input frame
    (as `ssd.evaluate`)."""
    s = image_frames(stages)[2]
    det = stages.detections
    det_px_in = stages.raw.boxes_px_in[det.default_index.to(stages.raw.boxes_px_in.device)].cpu()
    return classify_image(det_px_in, det.scores, det.labels, gt_norm * s, gt_labels, TideConfig(max_dets=max_dets))


def encoding_with_prediction(stages, gt_norm_g: Tensor, a: int) -> dict:
    """The encoded target of the GT against default box `a` (Eq. 2), with the network's
    prediction at `a` beside each target."""
    s = image_frames(stages)[2]
    enc = encoding_rows(gt_norm_g, stages.default_boxes.cxcywh[a], stages.raw.variances, s)
    predicted = stages.bbox_regression_flat()[a].tolist()
    for row, p in zip(enc["rows"], predicted):
        row["predicted"] = round(float(p), 4)
        row["error"] = round(float(p) - row["encoded"], 4)
    return dict(enc, **where(stages.default_boxes, a))


# ---------------------------------------------------------------- picks from a figure click
# A figure marks each object it lets the user pick with a key in its marker's customdata:
# "gt:G" for GT box G, "det:A:C" for the prediction of class C at default box A (a detection
# is named by its default box and class, which stay the same when thresholds change).
GT_PICK_SYMBOL = "diamond"  # GT pick markers sit on the box's top-left corner, off the detections' centres


def detection_key(default_index: int, label: int) -> str:
    """"det:A:C": the key of the prediction of class C at default box A."""
    return f"det:{int(default_index)}:{int(label)}"


def target_key(target: dict) -> str:
    """The key naming a trace target (a `trace.trace_targets` dict) in selectors and clicks."""
    if target["kind"] == "gt":
        return f"gt:{int(target['index'])}"
    return detection_key(target["default_index"], target["label"])


def is_pick_key(value) -> bool:
    """Whether a clicked point's customdata names an object (other points, like a heatmap
    cell or a frame corner, carry other customdata or none)."""
    return isinstance(value, str) and value.split(":", 1)[0] in ("gt", "det")


def target_from_key(key: str, num_gt: int, num_default_boxes: int, num_classes: int) -> dict:
    """`target_key` backwards: {"kind": "gt", "index"} or {"kind": "detection",
    "default_index", "label"}, checked against the image's G GT boxes, A default boxes and
    C classes (incl. background 0).

    Raises:
        ValueError: not "gt:G" / "det:A:C" with integers, or an index out of range (a click
            on a figure drawn for other ground truth or another model).
    """
    kind, *parts = str(key).split(":")
    sizes = {"gt": (num_gt,), "det": (num_default_boxes, num_classes)}.get(kind)
    if sizes is None or len(parts) != len(sizes) or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(f"clicked object {key!r}: expected 'gt:G' or 'det:A:C' with integers")
    values = [int(p) for p in parts]
    what = ("GT box",) if kind == "gt" else ("default box", "class")
    lows = (0,) if kind == "gt" else (0, 1)  # class 0 is the background, never a detection
    for v, n, low, name in zip(values, sizes, lows, what):
        if not low <= v < n:
            raise ValueError(f"clicked object {key!r}: {name} {v} is not in {low}..{n - 1} "
                             "(the figure was drawn for other ground truth or another model)")
    if kind == "gt":
        return {"kind": "gt", "index": values[0]}
    return {"kind": "detection", "default_index": values[0], "label": values[1]}


def clicked_target(customdata, targets: list[dict], stages, num_gt: int) -> dict | None:
    """The trace target a figure click picks, or None when the clicked point names no object.

    Args:
        customdata: the clicked point's customdata (a `target_key` string on pick markers).
        targets: `trace.trace_targets(stages, gt_labels)`: GT boxes and final detections.
        stages: the `Stages` the figure was drawn from (default boxes, class names).
        num_gt: G, the image's GT boxes.
    Returns:
        the matching entry of `targets` (with its "text"), or for a prediction that is not a
        final detection (a level's own detection, a suppressed candidate) a new
        {"kind": "detection", "default_index", "label", "text"}.
    Raises:
        ValueError: from `target_from_key`, for a malformed or out-of-range key.
    """
    if not is_pick_key(customdata):
        return None
    names = stages.class_names
    target = target_from_key(customdata, num_gt, len(stages.default_boxes), len(names))
    by_key = {target_key(t): t for t in targets}
    if customdata in by_key:
        return by_key[customdata]
    if target["kind"] == "gt":  # every GT is among the targets; one missing means stale targets
        raise ValueError(f"clicked object {customdata!r} is not among this image's targets")
    w = where(stages.default_boxes, target["default_index"])
    return dict(target, text=f"prediction: {names[target['label']]} at default box {target['default_index']} "
                             f"(level {w['level']}, cell ({w['row']}, {w['col']})), not a final detection")


def gt_pick_markers(gt_xyxy_px, gt_names, axes: tuple[str, str] | None = None) -> dict:
    """One marker trace on the top-left corner of each GT box (G, 4) xyxy (the figure's
    pixel frame), customdata `target_key` "gt:G", so a click picks that GT to trace.
    `axes` ("x2", "y2") puts it in another subplot."""
    boxes = torch.as_tensor(gt_xyxy_px, dtype=torch.float32).reshape(-1, 4).tolist()
    text = [f"GT {g}: {gt_names[g] if gt_names else ''} (click to trace)" for g in range(len(boxes))]
    out = {"type": "scatter", "x": [b[0] for b in boxes], "y": [b[1] for b in boxes], "mode": "markers",
           "marker": {"symbol": GT_PICK_SYMBOL, "size": 10, "color": GT_COLOR, "line": {"width": 1, "color": "black"}},
           "customdata": [f"gt:{g}" for g in range(len(boxes))], "text": text,
           "hovertemplate": "%{text}<extra></extra>", "name": "ground truth", "legendgroup": "ground truth",
           "showlegend": False}
    if axes:
        out.update(xaxis=axes[0], yaxis=axes[1])
    return out
