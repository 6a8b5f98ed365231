"""Data and figures for the NMS page: candidates before non-maximum suppression, the
kept boxes after, and for each suppressed box the kept box that suppressed it (Sec. 3,
"... non-maximum suppression (nms) with jaccard overlap of 0.45 per class and keep the
top 200 detections per image").

Input: an `ssd.inference.Stages`: `candidates` (Detections, original pixels), `nms`
(`NMSTrace` over the candidates: `keep`, `suppressed_by`, `suppress_iou`) and the final
`detections`.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import plotly.graph_objects as go
import torch

from explorer.views.figures import GT_COLOR, box_traces, class_color, image_figure
from explorer.views.trace_links import detection_key, gt_pick_markers


def keep_mask(keep, n: int) -> torch.Tensor:
    """`NMSTrace.keep` as an (n,) bool mask, whether it is a mask or kept indices."""
    keep = torch.as_tensor(keep)
    if keep.dtype == torch.bool:
        return keep.reshape(n)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[keep.long()] = True
    return mask


def candidate_records(stages, class_names: list[str]) -> list[dict]:
    """One row per candidate box: class, score, level, cell, kept or which kept box
    suppressed it and their IoU. Indices are positions in `stages.candidates`."""
    cand = stages.candidates
    n = len(cand.scores)
    kept = keep_mask(stages.nms.keep, n).tolist()
    # Final detections are the first detections_per_img kept boxes (keep is by descending score).
    keep_idx = torch.as_tensor(stages.nms.keep)
    if keep_idx.dtype == torch.bool:
        keep_idx = keep_idx.nonzero().flatten()
    # The one numbering (`trace_links.detection_number`): a final detection's place in the list, from 1.
    number = {int(q): n + 1 for n, q in enumerate(keep_idx[: len(stages.detections)].tolist())}
    final = set(number)
    by = stages.nms.suppressed_by.tolist()
    iou = stages.nms.suppress_iou.tolist()
    boxes = cand.boxes_xyxy_px.reshape(-1, 4).tolist()
    # Plain lists once: indexing tensors element by element costs microseconds each.
    labels, scores, level = cand.labels.tolist(), cand.scores.tolist(), cand.level.tolist()
    row, col, default_index = cand.row.tolist(), cand.col.tolist(), cand.default_index.tolist()
    def name(q: int) -> str:  # `trace_links.candidate_name` from the plain lists
        if q in number:
            return f"detection {number[q]}"
        return f"{class_names[int(labels[q])]} {scores[q]:.3f} (level {int(level[q])}, cell ({int(row[q])}, {int(col[q])}))"

    rows = []
    for q in range(n):
        s = by[q]
        rows.append(
            {
                "detection": number.get(q),
                "candidate": q,
                "label": int(labels[q]),
                "class": class_names[int(labels[q])],
                "score": round(scores[q], 4),
                "level": int(level[q]),
                "row": int(row[q]),
                "col": int(col[q]),
                "default_index": int(default_index[q]),
                "x1": round(boxes[q][0], 1), "y1": round(boxes[q][1], 1),
                "x2": round(boxes[q][2], 1), "y2": round(boxes[q][3], 1),
                "kept": bool(kept[q]),
                "final": q in final,
                "suppressed_by": int(s) if s >= 0 else None,
                "suppressed_by_name": name(s) if s >= 0 else None,
                "suppressor_score": round(scores[s], 4) if s >= 0 else None,
                "iou_with_suppressor": round(iou[q], 4) if s >= 0 else None,
            }
        )
    return rows


def count_table(records: list[dict], detections, class_names: list[str], num_levels: int) -> tuple[list, list]:
    """Counts per class and per level: candidates before NMS, kept by NMS, final detections
    (after the top-k cut)."""
    before_c = Counter(r["class"] for r in records)
    kept_c = Counter(r["class"] for r in records if r["kept"])
    final_c = Counter(class_names[int(c)] for c in detections.labels.tolist())
    per_class = [
        {"class": c, "candidates": before_c[c], "kept_by_nms": kept_c[c], "detections": final_c[c]}
        for c in class_names[1:] if before_c[c] or final_c[c]
    ]
    before_l = Counter(r["level"] for r in records)
    kept_l = Counter(r["level"] for r in records if r["kept"])
    final_l = Counter(int(k) for k in detections.level.tolist())
    per_level = [
        {"level": k, "candidates": before_l[k], "kept_by_nms": kept_l[k], "detections": final_l[k]}
        for k in range(num_levels)
    ]
    return per_class, per_level


def nms_figure(
    records: list[dict],
    image_uri: str | None,
    image_hw: tuple[int, int],
    show_suppressed: bool = True,
    show_links: bool = True,
    max_suppressed: int = 400,
    fig_height: int = 620,
    gt_xyxy_px=None,
    gt_names=None,
) -> go.Figure:
    """Kept boxes (solid, per class; dashed when the top-k cut drops them) and suppressed
    candidates (dotted, same class colour),
    with a thin line from each suppressed box's centre to its suppressor's centre.
    Hover: score, level, cell, and for suppressed boxes who suppressed them at what IoU.

    Clicking picks an object to trace: each box's centre marker carries customdata "det:A:C"
    (its default box A, class C), each GT's corner marker "gt:G" (`trace_links.target_key`)."""
    h, w = image_hw
    traces: list[dict] = []
    by_index = {r["candidate"]: r for r in records}

    def centre(r):
        return (r["x1"] + r["x2"]) / 2, (r["y1"] + r["y2"]) / 2

    suppressed = [r for r in records if not r["kept"]][:max_suppressed]
    if show_suppressed:
        for cls in sorted({r["class"] for r in suppressed}):
            rs = [r for r in suppressed if r["class"] == cls]
            color = class_color(rs[0]["label"])
            hover = [
                f"{cls} {r['score']:.3f} (level {r['level']}, cell ({r['row']}, {r['col']}))<br>"
                + (f"suppressed by {r['suppressed_by_name']} ({r['suppressor_score']:.3f}), "
                   f"IoU {r['iou_with_suppressor']:.3f}"
                   if r["suppressed_by"] is not None else "not kept (top-k cut)")
                for r in rs
            ]
            traces += box_traces(np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in rs]), color,
                                 f"{cls}: suppressed", hover=hover, dash="dot", width=1, opacity=0.7,
                                 customdata=_pick_keys(rs))
        if show_links:
            pairs = [(centre(r), centre(by_index[r["suppressed_by"]])) for r in suppressed
                     if r["suppressed_by"] is not None and r["suppressed_by"] in by_index]
            # (P, 2 points + gap) -> (3P,) arrays, NaN gaps
            seg = np.array([[a[0], b[0], np.nan, a[1], b[1], np.nan] for a, b in pairs]).reshape(-1, 6)
            xs, ys = seg[:, :3].reshape(-1), seg[:, 3:].reshape(-1)
            if len(xs):
                # A dark casing under a bright line: readable on light and dark images alike.
                traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "hoverinfo": "skip",
                               "line": {"color": "rgba(0,0,0,0.75)", "width": 4}, "showlegend": False,
                               "name": "suppressed -> suppressor (casing)"})
                traces.append({"type": "scatter", "x": xs, "y": ys, "mode": "lines", "hoverinfo": "skip",
                               "line": {"color": "rgba(255,230,0,0.95)", "width": 2},
                               "name": "suppressed -> suppressor"})
    kept = [r for r in records if r["kept"]]
    for cls in sorted({r["class"] for r in kept}):
        for final in (True, False):
            rs = [r for r in kept if r["class"] == cls and r["final"] == final]
            if not rs:
                continue
            color = class_color(rs[0]["label"])
            what = "KEPT" if final else "kept by NMS, cut by top k"
            hover = [(f"detection {r['detection']}: " if r["detection"] else "") + f"{cls} {r['score']:.3f} {what} "
                     f"(level {r['level']}, cell ({r['row']}, {r['col']}))" for r in rs]
            traces += box_traces(np.array([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in rs]), color,
                                 f"{cls}: kept" if final else f"{cls}: cut by top k", hover=hover,
                                 width=3 if final else 1.5, dash="solid" if final else "dash",
                                 customdata=_pick_keys(rs))
    if gt_xyxy_px is not None and len(gt_xyxy_px):
        gt = np.asarray(gt_xyxy_px, dtype=float).reshape(-1, 4)
        traces += box_traces(gt, GT_COLOR, "ground truth", width=1.5, dash="dot")
        traces.append(gt_pick_markers(gt, gt_names))
    return image_figure(image_uri, w, h, fig_height=fig_height, traces=traces)


def _pick_keys(rows: list[dict]) -> list[str]:
    """Each candidate row's `target_key` ("det:A:C"): what a click on its marker picks."""
    return [detection_key(r["default_index"], r["label"]) for r in rows]


ALL_CLASSES = "all classes"  # the class filter's "no filter" choice


def filter_by_class(records: list[dict], class_name: str) -> list[dict]:
    """Candidate rows of one class (NMS runs per class, so this is that class's NMS alone);
    `ALL_CLASSES` keeps every row."""
    return list(records) if class_name == ALL_CLASSES else [r for r in records if r["class"] == class_name]


def detection_rows(detection_records: list[dict], decimals: int = 1) -> list[dict]:
    """Final detections as table rows: pixel coordinates rounded to `decimals` (the model
    is not sub-pixel exact; 14 decimals only hide the numbers), score to 4 decimals,
    the box split into x1, y1, x2, y2 columns."""
    rows = []
    for n, d in enumerate(detection_records, start=1):  # the one numbering: the final list's order, from 1
        x1, y1, x2, y2 = (round(float(v), decimals) for v in d["box_xyxy"])
        rows.append({"detection": n, "class": d["label"], "score": round(float(d["score"]), 4), "x1": x1, "y1": y1, "x2": x2,
                     "y2": y2, "level": d["level"], "cell": f"{d['cell'][0]},{d['cell'][1]}",
                     "default_index": d["default_index"]})
    return rows
