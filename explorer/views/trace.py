"""Trace one object through every stage of SSD: from its default boxes to its verdict.

A ground truth (GT) is followed link by link, each link computed by the library:
1. its candidate default boxes per level, with IoU (Sec. 2.2), and which of them the
   matching gives it: "forced" (its best default box, step 1) or "threshold" (IoU >= 0.5);
2. the encoded regression target of its best default box (Eq. 2, with the variances),
   next to what the network predicted there;
3. each level's prediction for it: the level's best-scoring default box whose decoded box
   overlaps it at IoU >= 0.5 (score, decoded box), and the detection the level makes on its
   own (`Stages.level_detections`);
4. the NMS fate of its candidates (`Stages.nms`): kept, suppressed by which box at what IoU,
   or cut by a count limit;
5. the verdict: detected (TIDE's greedy matching of the final detections, as the
   evaluation), or the cause of the miss, from `ssd.evaluation.error_types.causes.miss_cause` itself.

A detection (any default box and class) is traced the same way: its default box, raw
regression and decoded box, its NMS fate and the boxes it suppressed, and TIDE's verdict.

Letters: A = default boxes (all levels), C = classes incl. background 0, G = GT boxes,
N = candidates (before NMS), D = final detections.
Frames: `_px` = original-image pixels; `_px_in` = network-input pixels (S x S, the frame
NMS and the evaluation use); `_norm` = fractions of the input side (default boxes).
IoU is the same in the three frames (each is an axis-aligned rescale of the others).
The figure is `explorer.views.trace_figure`; the links shared by both traces are in
`explorer.views.trace_links`.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou

from explorer.views.numbers import against
from explorer.views.trace_links import (check_gt, decoded_box_px, default_box_px, encoding_with_prediction, fate_text,
                                        image_frames, postprocessed, prediction_fate, tide_matching, where)
from ssd.boxes import norm_to_px, px_to_norm
from ssd.evaluation.error_types.causes import miss_cause
from ssd.evaluation.error_types.tide import TP
from ssd.matching import match

MATCH_IOU = 0.5  # Sec. 2.2: a default box matches a GT at IoU >= 0.5; TIDE's true positive too

VERDICT_TEXT = {
    "detected": "Detected: final detection {detection_number} ({class_name}, score {score:.3f}) from level {level} "
                "({feature_map}), cell ({row}, {col}), overlaps it at IoU {iou:.2f}.",
    "no_default_box": "Missed, no default box: none reaches IoU 0.5 with it (best {best_default_iou_shown}), so "
                      "training never asked any default box to predict it.",
    "low_score": "Missed, low score: its default boxes (IoU >= 0.5) gave its class at most {score_shown}, not above "
                 "the score threshold {score_thresh:g}.",
    "count_limit": "Missed, cut by top-k: its best default box scored {score:.3f}, but a count limit removed it (the "
             "class's best {topk_candidates} candidates before NMS, or the first {max_dets} detections after).",
    "suppressed_by_nms": "Missed, suppressed by NMS: its best candidate ({score:.3f}) was removed by the kept "
                         "default box {suppressed_by_default_index} at IoU {suppress_iou_shown} > {nms_thresh:g}.",
    "mislocalized": "Missed, mislocalized: its best default box survived NMS, but its decoded box does not overlap "
                    "it at IoU >= 0.5 (or another ground truth took that detection).",
}

# ---------------------------------------------------------------- a ground truth
def _match_kind(m, a: int, g: int) -> str:
    """How matching (Sec. 2.2) assigned default box `a`, seen from GT `g`."""
    j = int(m.gt_index[a])
    if j == g:
        return "forced" if bool(m.forced[a]) else "threshold"
    return f"GT {j}" if j >= 0 else ""


def _candidate_rows(stages, m, g: int, label: int, iou_g: Tensor, dec_iou: Tensor, per_level: int) -> list[dict]:
    """Per level, the `per_level` default boxes of highest IoU with GT g and every box matched
    to it, best IoU first: IoU, match kind, class score, decoded box and its IoU, NMS fate."""
    db = stages.default_boxes
    h, w, _ = image_frames(stages)
    names = stages.class_names
    scores = stages.raw.scores
    rows = []
    for k in range(len(db.per_level)):
        sl = db.level_slice(k)
        top = (iou_g[sl].topk(min(per_level, sl.stop - sl.start)).indices + sl.start).tolist()
        mine = ((m.gt_index[sl] == g).nonzero().flatten() + sl.start).tolist()
        for a in sorted(set(top) | set(mine), key=lambda a: (-float(iou_g[a]), a)):
            p = scores[a].cpu()
            best = int(p[1:].argmax()) + 1
            fate = prediction_fate(stages, a, label)
            rows.append(dict(where(db, a), iou=round(float(iou_g[a]), 4), match=_match_kind(m, a, g),
                             score=round(float(p[label]), 4), top_class=names[best],
                             top_score=round(float(p[best]), 4), decoded_iou=round(float(dec_iou[a]), 4),
                             fate=fate["fate"], default_xyxy_px=default_box_px(db, a, h, w),
                             decoded_xyxy_px=decoded_box_px(stages, a)))
    return rows


def _level_detection_score(stages, k: int, label: int, gt_px: Tensor) -> float | None:
    """Best score of level k's own detections (`Stages.level_detections`) of class `label`
    overlapping the GT at IoU >= 0.5; None if it makes none."""
    det = stages.level_detections[k]
    same = (det.labels == label).nonzero().flatten()
    if not len(same):
        return None
    hit = same[box_iou(det.boxes_xyxy_px[same].float(), gt_px[None])[:, 0] >= MATCH_IOU]
    return round(float(det.scores[hit].max()), 4) if len(hit) else None


def _level_rows(stages, m, g: int, label: int, iou_g: Tensor, dec_iou: Tensor, gt_px: Tensor) -> list[dict]:
    """One row per level: its best default box for the GT (IoU, cell), its matches (forced /
    threshold), its prediction for the GT (the best-scoring default box of the level whose
    decoded box overlaps the GT at IoU >= 0.5), and its own detection of the GT."""
    db = stages.default_boxes
    cls_scores = stages.raw.scores[:, label].cpu()  # (A,)
    rows = []
    for k in range(len(db.per_level)):
        sl = db.level_slice(k)
        best_a = sl.start + int(iou_g[sl].argmax())
        mine = m.gt_index[sl] == g
        hits = (dec_iou[sl] >= MATCH_IOU).nonzero().flatten() + sl.start  # decoded boxes on the GT
        row = {"level": k, "feature_map": f"{db.feature_maps[k]}x{db.feature_maps[k]}",
               "best_default_iou": round(float(iou_g[best_a]), 4),
               "best_cell": f"({int(db.row[best_a])}, {int(db.col[best_a])})", "matches": int(mine.sum()),
               "forced": int((mine & m.forced[sl]).sum()), "prediction_default_index": None,
               "prediction_cell": None, "prediction_score": None, "prediction_iou": None,
               "prediction_xyxy_px": None, "level_detection_score": _level_detection_score(stages, k, label, gt_px)}
        if len(hits):
            a = int(hits[cls_scores[hits].argmax()])
            row.update(prediction_default_index=a, prediction_cell=f"({int(db.row[a])}, {int(db.col[a])})",
                       prediction_score=round(float(cls_scores[a]), 4),
                       prediction_iou=round(float(dec_iou[a]), 4), prediction_xyxy_px=decoded_box_px(stages, a))
        rows.append(row)
    return rows


def _nms_rows(stages, label: int, gt_px: Tensor, limit: int) -> list[dict]:
    """The candidates of the GT's class whose box overlaps it at IoU >= 0.5, best score
    first, each with its NMS fate (from `Stages.nms`)."""
    cand = stages.candidates
    same = (cand.labels == label).nonzero().flatten()
    if not len(same):
        return []
    iou_all = torch.zeros(len(cand))  # (N,) IoU with the GT, filled for its class
    iou_all[same] = box_iou(cand.boxes_xyxy_px[same].float(), gt_px[None])[:, 0]
    on_gt = same[iou_all[same] >= MATCH_IOU]
    on_gt = on_gt[cand.scores[on_gt].argsort(descending=True, stable=True)][:limit]
    rows = []
    for p in on_gt.tolist():
        a = int(cand.default_index[p])
        fate = prediction_fate(stages, a, label)
        rows.append(dict(candidate=p, **where(stages.default_boxes, a), score=round(float(cand.scores[p]), 4),
                         iou_with_gt=round(float(iou_all[p]), 4),
                         fate=fate["fate"], suppressed_by=fate.get("suppressor_name"),
                         suppress_iou=fate.get("suppress_iou"), detail=fate_text(fate),
                         box_xyxy_px=decoded_box_px(stages, a)))
    return rows


def _gt_verdict(stages, g: int, label: int, gt_norm: Tensor, gt_labels: Tensor, iou_g: Tensor,
                max_dets: int) -> dict:
    """Detected (TIDE's matching of the final detections) or the cause of the miss, from
    `ssd.evaluation.error_types.causes.miss_cause` on the same stages."""
    res = tide_matching(stages, gt_norm, gt_labels, max_dets)
    cfg, names = stages.config, stages.class_names
    if bool(res.gt_matched[g]):
        n = next(n for n, (kind, j) in enumerate(zip(res.kind, res.gt_index.tolist())) if kind == TP and j == g)
        d = int(res.order[n])
        det = stages.detections
        a = int(det.default_index[d])
        iou = float(box_iou(det.boxes_xyxy_px[d:d + 1].float(), norm_to_px(gt_norm[g], stages.image_hw)[None]))
        rec = dict(where(stages.default_boxes, a), verdict="detected", detection=d, detection_number=d + 1,
                   class_name=names[label],
                   score=round(float(det.scores[d]), 4), iou=round(iou, 4))
        return dict(rec, text=VERDICT_TEXT["detected"].format(**rec))
    # iou_g: (A,) IoU with every default box; the same in the network-input frame miss_cause names
    rec = miss_cause(label, iou_g, stages.raw.scores.cpu(), postprocessed(stages), cfg, max_dets)
    rec = dict(rec, verdict=rec["cause"])
    shown = {"best_default_iou_shown": against(rec["best_default_iou"], MATCH_IOU),  # never rounded across
             "score_shown": against(rec["score"], cfg.score_thresh, 3),
             "suppress_iou_shown": against(rec.get("suppress_iou", 0.0), cfg.nms_thresh)}
    text = VERDICT_TEXT[rec["cause"]].format(**rec, **shown, score_thresh=cfg.score_thresh, nms_thresh=cfg.nms_thresh,
                                             topk_candidates=cfg.topk_candidates,
                                             max_dets=min(cfg.detections_per_img, max_dets))
    if rec["default_index"] >= 0:  # the default box the cause is about, and what became of it
        rec.update(where(stages.default_boxes, rec["default_index"]),
                   fate=prediction_fate(stages, rec["default_index"], label))
        text += f" Its best default box: {fate_text(rec['fate'])}."
    return dict(rec, text=text)


def trace_gt(stages, gt_boxes_xyxy_px, gt_labels, gt_index: int, iou_threshold: float = MATCH_IOU,
             max_dets: int = 100, per_level: int = 3, max_nms_rows: int = 30) -> dict:
    """Follow ground truth `gt_index` from its default boxes to its verdict.

    Args:
        stages: `ssd.inference.Stages` of the image (its thresholds are the ones traced).
        gt_boxes_xyxy_px: (G, 4) every GT of the image, xyxy, original pixels (matching
            and TIDE's greedy matching depend on the other GTs too).
        gt_labels: (G,) their classes 1..C-1.
        gt_index: the GT to follow, 0..G-1.
        iou_threshold: the matching threshold (Sec. 2.2: 0.5).
        max_dets: detections per image the verdict considers (TIDE / COCO: 100).
        per_level: default boxes of highest IoU listed per level (besides every matched one).
        max_nms_rows: most candidates listed in the NMS table.
    Returns:
        JSON-ready dict: "kind" ("gt"), "gt_index", "label", "class_name", "box_xyxy_px",
        "matching" (counts), "candidates", "levels", "encodings", "nms" (tables: lists of
        dicts), "verdict" (dict with "verdict", "text" and the miss_cause record).
    Raises:
        ValueError: GT boxes or labels of the wrong shape, a label outside 1..C-1, or a
            `gt_index` outside 0..G-1.
    """
    boxes_px, labels = check_gt(gt_boxes_xyxy_px, gt_labels, len(stages.class_names))
    if not 0 <= int(gt_index) < len(labels):
        raise ValueError(f"gt_index {gt_index} is not a ground truth of this image (it has {len(labels)})")
    g, label = int(gt_index), int(labels[gt_index])
    h, w, _ = image_frames(stages)
    db = stages.default_boxes
    gt_norm = px_to_norm(boxes_px, (h, w))  # (G, 4)
    default_xyxy_norm = db.xyxy  # (A, 4), computed once
    m = match(default_xyxy_norm, gt_norm, iou_threshold)
    iou_g = box_iou(gt_norm[g:g + 1], default_xyxy_norm)[0]  # (A,) Sec. 2.2 matching frame
    dec_iou = box_iou(boxes_px[g:g + 1], stages.raw.boxes_xyxy_px.cpu().float())[0]  # (A,) decoded boxes
    mine = m.gt_index == g
    best_a = int(iou_g.argmax())
    forced = (mine & m.forced).nonzero().flatten()
    verdict = _gt_verdict(stages, g, label, gt_norm, labels, iou_g, max_dets)
    first = int(forced[0]) if len(forced) else best_a  # step 1's box: the GT's best default box
    how = _match_kind(m, first, g)
    enc_a = [(first, f"its best default box ({how + ' match' if how in ('forced', 'threshold') else 'not matched'})")]
    if verdict["verdict"] == "detected" and verdict["default_index"] != enc_a[0][0]:
        enc_a.append((verdict["default_index"], "the default box of its detection"))
    trace = {
        "kind": "gt", "gt_index": g, "label": label, "class_name": stages.class_names[label],
        "box_xyxy_px": [round(float(v), 1) for v in boxes_px[g]],
        "matching": {"iou_threshold": iou_threshold, "matches": int(mine.sum()), "forced": len(forced),
                     "threshold": int((mine & ~m.forced).sum()), "best_default_iou": round(float(iou_g[best_a]), 4),
                     "best_default": where(db, best_a)},
        "candidates": _candidate_rows(stages, m, g, label, iou_g, dec_iou, per_level),
        "levels": _level_rows(stages, m, g, label, iou_g, dec_iou, boxes_px[g]),
        "encodings": [dict(encoding_with_prediction(stages, gt_norm[g], a), why=why) for a, why in enc_a],
        "nms": _nms_rows(stages, label, boxes_px[g], max_nms_rows),
        "verdict": verdict,
    }
    return trace


# ---------------------------------------------------------------- a detection
DETECTION_VERDICT_TEXT = {
    "TP": "True positive: the detection of GT {gt} ({gt_name}) at IoU {iou:.2f}.",
    "Loc": "Mislocalized (TIDE Loc): right class, but IoU {iou_shown} with GT {gt} ({gt_name}) is below 0.5.",
    "Cls": "Wrong class (TIDE Cls): it overlaps GT {gt} ({gt_name}) at IoU {iou:.2f}.",
    "Dupe": "Duplicate (TIDE Dupe): GT {gt} ({gt_name}) was already taken by a higher-scoring detection.",
    "Bkg": "Background (TIDE Bkg): IoU <= 0.1 with every ground truth.",
    "Both": "Wrong class and mislocalized (TIDE Both).",
    "beyond_max_dets": "A final detection, but beyond the first {max_dets} that the evaluation counts.",
    "not_a_detection": "Not a final detection: {fate_text}.",
}


def _suppressed_rows(stages, p: int, limit: int) -> list[dict]:
    """The candidates that kept candidate `p` removed in NMS, by descending IoU."""
    nms, cand = stages.nms, stages.candidates
    victims = (nms.suppressed_by.cpu() == p).nonzero().flatten()
    victims = victims[nms.suppress_iou.cpu()[victims].argsort(descending=True, stable=True)][:limit]
    return [dict(candidate=int(q), **where(stages.default_boxes, int(cand.default_index[q])),
                 score=round(float(cand.scores[q]), 4), iou=round(float(nms.suppress_iou[q]), 4),
                 box_xyxy_px=[round(float(v), 1) for v in cand.boxes_xyxy_px[q]]) for q in victims.tolist()]


def _detection_verdict(stages, fate: dict, boxes_px: Tensor, labels: Tensor, max_dets: int) -> dict:
    """TIDE's verdict on a final detection (its matching, as the evaluation), else its fate."""
    if fate["fate"] != "final":
        return {"verdict": "not_a_detection", "gt": None,
                "text": DETECTION_VERDICT_TEXT["not_a_detection"].format(fate_text=fate_text(fate))}
    h, w, _ = image_frames(stages)
    res = tide_matching(stages, px_to_norm(boxes_px, (h, w)), labels, max_dets)
    hit = (res.order == fate["detection"]).nonzero().flatten()
    if not len(hit):
        return {"verdict": "beyond_max_dets", "gt": None,
                "text": DETECTION_VERDICT_TEXT["beyond_max_dets"].format(max_dets=max_dets)}
    n = int(hit[0])
    kind, j = res.kind[n], int(res.gt_index[n])
    det = stages.detections
    d = fate["detection"]
    iou = float(box_iou(det.boxes_xyxy_px[d:d + 1].float(), boxes_px[j:j + 1])) if j >= 0 else 0.0
    rec = {"verdict": kind, "gt": j if j >= 0 else None, "iou": round(iou, 4),
           "gt_name": stages.class_names[int(labels[j])] if j >= 0 else None}
    return dict(rec, text=DETECTION_VERDICT_TEXT[kind].format(**rec, iou_shown=against(iou, MATCH_IOU)))


def trace_detection(stages, default_index: int, label: int, gt_boxes_xyxy_px, gt_labels,
                    max_dets: int = 100, max_suppressed: int = 30) -> dict:
    """Follow the prediction of one default box for one class: what the network said there,
    what post-processing did with it, and the evaluation's verdict.

    Args:
        stages: `ssd.inference.Stages` of the image.
        default_index: the default box, 0..A-1 (a detection's `default_index`).
        label: the class, 1..C-1 (a detection's label).
        gt_boxes_xyxy_px: (G, 4) the image's GT, original pixels; gt_labels: (G,) 1..C-1.
        max_dets: detections per image the verdict considers (TIDE / COCO: 100).
        max_suppressed: most suppressed candidates listed.
    Returns:
        JSON-ready dict: "kind" ("detection"), "default_index", "label", "class_name",
        "where" (level, cell, box), "score", "class_scores" (top 3), "regression" (t_x..t_h),
        "default_xyxy_px", "box_xyxy_px" (decoded), "fate" (`prediction_fate`), "fate_text",
        "suppressed" (rows), "verdict" ({"verdict": TIDE's kind or "not_a_detection" /
        "beyond_max_dets", "gt", "text"}), "encodings" (the target of its GT, if any).
    Raises:
        ValueError: a default index outside 0..A-1, a class outside 1..C-1, or bad GT.
    """
    db, names = stages.default_boxes, stages.class_names
    if not 0 <= int(default_index) < len(db):
        raise ValueError(f"default_index {default_index} is not a default box of this model (0..{len(db) - 1})")
    if not 1 <= int(label) < len(names):
        raise ValueError(f"label {label} is not a class of this model (1..{len(names) - 1})")
    boxes_px, labels = check_gt(gt_boxes_xyxy_px, gt_labels, len(names))
    a, label = int(default_index), int(label)
    h, w, _ = image_frames(stages)
    p = stages.raw.scores[a].cpu()
    top = p[1:].topk(min(3, len(names) - 1))
    fate = prediction_fate(stages, a, label)
    verdict = _detection_verdict(stages, fate, boxes_px, labels, max_dets)
    j = verdict["gt"]
    trace = {
        "kind": "detection", "default_index": a, "label": label, "class_name": names[label], "where": where(db, a),
        "score": round(float(p[label]), 4),
        "class_scores": [{"class": names[int(c) + 1], "score": round(float(s), 4)} for s, c in zip(*top)],
        "regression": [round(float(v), 4) for v in stages.bbox_regression_flat()[a]],
        "default_xyxy_px": default_box_px(db, a, h, w), "box_xyxy_px": decoded_box_px(stages, a),
        "fate": fate, "fate_text": fate_text(fate),
        "suppressed": _suppressed_rows(stages, fate["candidate"], max_suppressed)
        if fate["fate"] in ("final", "cut_by_top_k") else [],
        "verdict": verdict,
        "gt_xyxy_px": [round(float(v), 1) for v in boxes_px[j]] if j is not None else None,
        "encodings": [dict(encoding_with_prediction(stages, px_to_norm(boxes_px[j], (h, w)), a),
                           why=f"the target of GT {j} ({names[int(labels[j])]}) at this default box")]
        if j is not None else [],
    }
    return trace


# ---------------------------------------------------------------- what to trace
def trace_targets(stages, gt_labels) -> list[dict]:
    """Everything the selector offers: each GT, then each final detection.

    Returns:
        dicts {"kind": "gt", "index": g, "label"} or {"kind": "detection", "default_index",
        "label"} (a detection is named by its default box and class, which stay the same when
        thresholds change), each with a "text" to show.
    """
    names = stages.class_names
    out = [{"kind": "gt", "index": g, "label": int(c), "text": f"GT {g}: {names[int(c)]}"}
           for g, c in enumerate(torch.as_tensor(gt_labels).reshape(-1).tolist())]
    det = stages.detections
    for d, (a, c, s, k) in enumerate(zip(det.default_index.tolist(), det.labels.tolist(), det.scores.tolist(),
                                         det.level.tolist())):
        out.append({"kind": "detection", "default_index": int(a), "label": int(c),
                    "text": f"detection {d + 1}: {names[c]} {s:.2f} (level {k}, default box {a})"})
    return out


def trace_target(stages, target: dict, gt_boxes_xyxy_px, gt_labels, **kw) -> dict:
    """`trace_gt` or `trace_detection` for a target of `trace_targets` (keywords passed on).

    Raises:
        ValueError: a target that is not a dict with kind "gt" (and "index") or "detection"
            (and "default_index", "label"), naming the missing field.
    """
    if not isinstance(target, dict) or target.get("kind") not in ("gt", "detection"):
        raise ValueError(f"trace target must be a dict with kind 'gt' or 'detection', got {target!r}")
    need = ("index",) if target["kind"] == "gt" else ("default_index", "label")
    missing = [f for f in need if not isinstance(target.get(f), int)]
    if missing:
        raise ValueError(f"trace target {target!r} lacks an integer {missing[0]!r}")
    if target["kind"] == "gt":
        return trace_gt(stages, gt_boxes_xyxy_px, gt_labels, target["index"], **kw)
    return trace_detection(stages, target["default_index"], target["label"], gt_boxes_xyxy_px, gt_labels,
                           **{k: v for k, v in kw.items() if k == "max_dets"})
