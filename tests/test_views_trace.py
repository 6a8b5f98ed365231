"""explorer/views/trace.py (+ trace_links.py, trace_figure.py): one object followed from its
default boxes to its verdict, on the cat-and-dog scene with the shipped checkpoint.

The verdicts are checked against an independent run of the evaluation's error analysis
(`ssd.evaluation.error_types.ErrorAnalysis` on a fresh `ssd.postprocess.postprocess`), the NMS fates
against `Stages.nms` and the NMS page's table, IoUs against torchvision's `box_iou`, and
each level's prediction against a brute-force loop over the default boxes."""
import json
from pathlib import Path

import plotly.graph_objects as go
import pytest
import torch
from torchvision.ops import box_iou

from explorer.views import nms as nv
from explorer.views import trace as tv
from explorer.views import trace_links as tl
from explorer.views.matching import matching_view
from explorer.views.figures import legend_clear_of_modebar
from explorer.views.trace_figure import trace_figure
from explorer.views.trace_links import prediction_fate
from ssd.data.procedural import CLASSES, cat_and_dog_scene
from ssd.evaluation.error_types import ErrorAnalysis
from ssd.inference import run_stages
from ssd.postprocess import postprocess
from ssd.training import checkpoint

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "compact256_shapes.pt"
CAT, DOG = CLASSES.index("cat"), CLASSES.index("dog")


@pytest.fixture(scope="module")
def scene():
    model, _ = checkpoint.load(CKPT)
    img, boxes, labels = cat_and_dog_scene()
    return model, img, boxes, labels


@pytest.fixture(scope="module")
def stages(scene):
    model, img, _, _ = scene
    return run_stages(model, img, score_thresh=0.3)


def _reference_causes(model, stg, boxes, labels) -> dict:
    """The evaluation's own error analysis on the same image, post-processed afresh:
    {gt index: cause} of its misses."""
    s = model.cfg.image_size
    h, w = stg.image_hw
    post = postprocess(stg.raw.scores, stg.raw.boxes_px_in, stg.config)
    gt = {"boxes_xyxy_px_in": boxes * torch.tensor([s / w, s / h, s / w, s / h]), "labels": labels}
    analysis = ErrorAnalysis(model.cfg, stg.class_names, stg.config)
    analysis.add_batch([gt], [post.detections()], stg.raw.scores[None], stg.raw.boxes_px_in[None], [post])
    return {m["gt"]: m["cause"] for m in analysis.misses}


def _with(boxes, labels, box, label):
    return torch.cat([boxes, torch.as_tensor(box, dtype=torch.float32).reshape(1, 4)]), \
        torch.cat([labels, torch.tensor([label])])


def test_cat_via_8x8_and_dog_via_4x4(scene, stages):
    model, _, boxes, labels = scene
    assert _reference_causes(model, stages, boxes, labels) == {}  # the evaluation finds both too
    for g, level, fm in ((0, 2, "8x8"), (1, 3, "4x4")):
        tr = tv.trace_gt(stages, boxes, labels, g)
        v = tr["verdict"]
        assert v["verdict"] == "detected" and v["level"] == level and v["feature_map"] == fm, v
        d = v["detection"]
        assert v["default_index"] == int(stages.detections.default_index[d])
        assert int(stages.detections.labels[d]) == labels[g]
        assert v["iou"] == pytest.approx(float(box_iou(stages.detections.boxes_xyxy_px[d:d + 1], boxes[g:g + 1])),
                                         abs=1e-4)
        assert f"level {level} ({fm})" in v["text"]
        # that level's own detection of the object is the final one (Fig. 1)
        assert tr["levels"][level]["level_detection_score"] == pytest.approx(v["score"], abs=1e-4)
        json.dumps(tr)  # JSON-ready for the downloads


def test_matching_and_ious_agree_with_the_matching_page_and_torchvision(scene, stages):
    model, img, boxes, labels = scene
    db = stages.default_boxes
    mv = matching_view(db, model.cfg.image_size, boxes, [CLASSES[c] for c in labels], img.size[::-1])
    w, h = img.size
    iou_px = box_iou(boxes, db.xyxy * torch.tensor([w, h, w, h]))  # (G, A) torchvision, pixels
    for g in range(2):
        tr = tv.trace_gt(stages, boxes, labels, g)
        page = {r["default_index"]: r for r in mv.records if r["gt"] == g}
        rows = {r["default_index"]: r for r in tr["candidates"]}
        matched = {a for a, r in rows.items() if r["match"] in ("forced", "threshold")}
        assert matched == set(page)  # every matched box is listed, none more
        assert tr["matching"]["matches"] == len(page)
        assert tr["matching"]["forced"] == sum(r["forced"] for r in page.values())
        for a, r in rows.items():
            assert r["iou"] == pytest.approx(float(iou_px[g, a]), abs=1e-4)
            if a in page:
                assert (r["match"] == "forced") == page[a]["forced"]
        # per level, the listed boxes include the level's best IoU
        for k, lv in enumerate(tr["levels"]):
            sl = db.level_slice(k)
            assert lv["best_default_iou"] == pytest.approx(float(iou_px[g, sl].max()), abs=1e-4)
            assert lv["matches"] == sum(1 for a in page if sl.start <= a < sl.stop)


def test_each_level_prediction_is_the_brute_force_best(scene, stages):
    _, _, boxes, labels = scene
    db = stages.default_boxes
    decoded = stages.raw.boxes_xyxy_px
    for g in range(2):
        tr = tv.trace_gt(stages, boxes, labels, g)
        label = int(labels[g])
        for k, lv in enumerate(tr["levels"]):
            best, best_a = -1.0, None
            for a in range(db.level_slice(k).start, db.level_slice(k).stop):  # brute force, box by box
                iou = float(box_iou(decoded[a:a + 1], boxes[g:g + 1]))
                if iou >= 0.5 and float(stages.raw.scores[a, label]) > best:
                    best, best_a = float(stages.raw.scores[a, label]), a
            assert lv["prediction_default_index"] == best_a, (g, k)
            if best_a is not None:
                assert lv["prediction_score"] == pytest.approx(best, abs=1e-4)


def test_encoded_target_round_trips_and_shows_the_prediction(scene, stages):
    _, _, boxes, labels = scene
    tr = tv.trace_gt(stages, boxes, labels, 0)
    enc = tr["encodings"][0]
    assert enc["default_index"] == tr["matching"]["best_default"]["default_index"]
    assert enc["round_trip_error"] < 1e-6  # decode(encode(GT)) is the GT
    predicted = stages.bbox_regression_flat()[enc["default_index"]].tolist()
    for row, p in zip(enc["rows"], predicted):
        assert row["predicted"] == pytest.approx(p, abs=1e-4)
        assert row["error"] == pytest.approx(row["predicted"] - row["encoded"], abs=1e-3)
    assert "threshold match" in enc["why"]  # the cat's best box reaches IoU 0.9: not forced


def test_nms_fate_agrees_with_the_nms_trace_and_page(scene, stages):
    _, _, boxes, labels = scene
    page = {r["candidate"]: r for r in nv.candidate_records(stages, list(stages.class_names))}
    for g in range(2):
        rows = tv.trace_gt(stages, boxes, labels, g)["nms"]
        assert sum(r["fate"] == "final" for r in rows) == 1 and any(r["fate"] == "suppressed" for r in rows)
        for r in rows:
            p = r["candidate"]
            assert (r["fate"] == "suppressed") == (not bool(stages.nms.kept[p]))
            assert (r["fate"] == "final") == page[p]["final"]
            if r["fate"] == "suppressed":
                by = int(stages.nms.suppressed_by[p])
                assert by == page[p]["suppressed_by"]
                # One numbering (issue 19 item 8): the suppressor by the same name on both pages,
                # "detection N" (from 1) when it is a final detection.
                name = page[p]["suppressed_by_name"]
                assert r["suppressed_by"] == name and f"by {name} " in r["detail"]
                assert name == tl.candidate_name(stages, by)
                if page[by]["final"]:
                    assert name == f"detection {page[by]['detection']}" and page[by]["detection"] >= 1
                assert r["suppress_iou"] == pytest.approx(float(stages.nms.suppress_iou[p]), abs=1e-4)


def test_a_cat_candidate_suppressed_by_nms(scene, stages):
    """A GT placed on the cat's level-1 prediction: its best candidate is the one the
    cat's 8x8 detection suppressed."""
    model, _, boxes, labels = scene
    cat = tv.trace_gt(stages, boxes, labels, 0)
    a = cat["levels"][1]["prediction_default_index"]
    b, l = _with(boxes, labels, stages.default_boxes.xyxy[a] * 256, CAT)
    v = tv.trace_gt(stages, b, l, 2)["verdict"]
    assert v["verdict"] == _reference_causes(model, stages, b, l)[2] == "suppressed_by_nms"
    assert v["suppressed_by_default_index"] == cat["verdict"]["default_index"]
    assert v["fate"]["fate"] == "suppressed" and v["fate"]["suppressor"]["default_index"] == cat["verdict"]["default_index"]
    assert v["suppress_iou"] > stages.config.nms_thresh
    # the figure draws the suppressor
    assert "suppressor" in {t.name for t in trace_figure(tv.trace_gt(stages, b, l, 2), None, (256, 256)).data}


@pytest.mark.parametrize("case", ["low_score", "count_limit_after_nms", "count_limit_before_nms", "no_default_box",
                                  "mislocalized"])
def test_each_miss_cause_agrees_with_the_evaluation(scene, stages, case):
    model, img, boxes, labels = scene
    g, b, l, stg = 0, boxes, labels, stages
    if case == "low_score":
        stg = run_stages(model, img, score_thresh=0.99)  # above both objects' scores
    elif case == "count_limit_after_nms":
        stg = run_stages(model, img, score_thresh=0.3, detections_per_img=1)  # the dog (0.98) takes the one place
    elif case == "count_limit_before_nms":  # the cat's level-1 box is not its class's best candidate
        a = tv.trace_gt(stages, boxes, labels, 0)["levels"][1]["prediction_default_index"]
        b, l = _with(boxes, labels, stages.default_boxes.xyxy[a] * 256, CAT)
        g, stg = 2, run_stages(model, img, score_thresh=0.3, topk_candidates=1)
    elif case == "no_default_box":  # a 6 px bird in the corner: no default box that small
        b, l, g = *_with(boxes, labels, [240, 5, 246, 11], CLASSES.index("bird")), 2
    else:  # a second cat, 6 px off the first: the one cat detection goes to the closer GT
        b, l = _with(boxes, labels, boxes[0] + 6, CAT)
        g = 2
    ref = _reference_causes(model, stg, b, l)
    v = tv.trace_gt(stg, b, l, g)["verdict"]
    assert v["verdict"] == ref[g] == case.replace("_after_nms", "").replace("_before_nms", "")
    assert v["text"].startswith("Missed")
    if case == "low_score":
        assert v["fate"]["fate"] == "below_score_threshold"
        assert ref.keys() == {0, 1}  # the dog is missed too
    if case == "count_limit_after_nms":
        assert v["fate"]["fate"] == "cut_by_top_k"
    if case == "count_limit_before_nms":
        assert v["fate"]["fate"] == "cut_before_nms"
    if case == "mislocalized":
        assert v["fate"]["fate"] == "final"


def test_trace_detection_of_each_final_detection(scene, stages):
    _, _, boxes, labels = scene
    det = stages.detections
    assert len(det) == 2
    for d in range(len(det)):
        a, c = int(det.default_index[d]), int(det.labels[d])
        tr = tv.trace_detection(stages, a, c, boxes, labels)
        assert tr["fate"] == {"fate": "final", "score": pytest.approx(float(det.scores[d]), abs=1e-4),
                              "candidate": int(stages.nms.keep[d]), "detection": d, "detection_number": d + 1}
        assert tr["verdict"]["verdict"] == "TP" and int(labels[tr["verdict"]["gt"]]) == c
        assert tr["box_xyxy_px"] == pytest.approx(det.boxes_xyxy_px[d].tolist(), abs=0.06)
        assert tr["regression"] == pytest.approx(stages.bbox_regression_flat()[a].tolist(), abs=1e-4)
        p = tr["fate"]["candidate"]
        victims = set((stages.nms.suppressed_by == p).nonzero().flatten().tolist())
        assert {r["candidate"] for r in tr["suppressed"]} == victims and victims
        assert tr["encodings"] and tr["encodings"][0]["default_index"] == a
        json.dumps(tr)
        fig = trace_figure(tr, None, (256, 256))
        go.Figure(fig.to_dict())  # valid under plotly's full validation
        assert "boxes it suppressed" in {t.name for t in fig.data}
        assert legend_clear_of_modebar(fig.layout), fig.layout.legend  # below the plot (issue 19 item 11)


def test_trace_detection_of_predictions_that_are_not_detections(scene, stages):
    _, _, boxes, labels = scene
    page = nv.candidate_records(stages, list(stages.class_names))
    sup = next(r for r in page if not r["kept"])
    tr = tv.trace_detection(stages, sup["default_index"], sup["label"], boxes, labels)
    assert tr["fate"]["fate"] == "suppressed" and tr["fate"]["suppressed_by"] == sup["suppressed_by"]
    assert tr["verdict"]["verdict"] == "not_a_detection" and not tr["suppressed"]
    assert tr["fate"]["suppress_iou"] == pytest.approx(sup["iou_with_suppressor"], abs=1e-4)
    # a background box: far below the threshold, and TIDE is not asked
    low = tv.trace_detection(stages, 0, CAT, boxes, labels)
    assert low["fate"]["fate"] == "below_score_threshold" and low["verdict"]["verdict"] == "not_a_detection"
    # with no GT at all, a final detection fired on background
    a, c = int(stages.detections.default_index[0]), int(stages.detections.labels[0])
    assert tv.trace_detection(stages, a, c, torch.zeros(0, 4), torch.zeros(0))["verdict"]["verdict"] == "Bkg"
    assert prediction_fate(stages, a, c)["fate"] == "final"


def test_targets_and_dispatch(scene, stages):
    _, _, boxes, labels = scene
    targets = tv.trace_targets(stages, labels)
    assert [t["kind"] for t in targets] == ["gt", "gt", "detection", "detection"]
    assert targets[0]["text"] == "GT 0: cat" and "dog" in targets[2]["text"]
    for t in targets:
        tr = tv.trace_target(stages, t, boxes, labels)
        assert tr["kind"] == t["kind"] and tr["label"] == t["label"]
        fig = trace_figure(tr, None, (256, 256))
        go.Figure(fig.to_dict())


def test_bad_input_is_named(scene, stages):
    _, _, boxes, labels = scene
    with pytest.raises(ValueError, match="gt_index 5 is not a ground truth of this image .it has 2."):
        tv.trace_gt(stages, boxes, labels, 5)
    with pytest.raises(ValueError, match=r"gt_boxes_xyxy_px must be \(G, 4\)"):
        tv.trace_gt(stages, boxes[:, :3], labels, 0)
    with pytest.raises(ValueError, match="gt_labels has 1 entries for 2 GT boxes"):
        tv.trace_gt(stages, boxes, labels[:1], 0)
    with pytest.raises(ValueError, match=r"gt_labels\[1\] = 0 is not a class 1..6"):
        tv.trace_gt(stages, boxes, torch.tensor([1, 0]), 0)
    with pytest.raises(ValueError, match="default_index 99999 is not a default box of this model"):
        tv.trace_detection(stages, 99999, CAT, boxes, labels)
    with pytest.raises(ValueError, match="label 0 is not a class of this model"):
        tv.trace_detection(stages, 0, 0, boxes, labels)
    with pytest.raises(ValueError, match="kind 'gt' or 'detection'"):
        tv.trace_target(stages, {"kind": "cat"}, boxes, labels)
    with pytest.raises(ValueError, match="lacks an integer 'label'"):
        tv.trace_target(stages, {"kind": "detection", "default_index": 3}, boxes, labels)


def test_a_wide_image_keeps_its_frames(scene):
    """The scene stretched to 512x256 (W x H): GT pixels and default boxes meet in the right
    frame (the network input is the image stretched to a square)."""
    model, img, boxes, labels = scene
    wide = img.resize((512, 256))
    b = boxes * torch.tensor([2.0, 1.0, 2.0, 1.0])
    stg = run_stages(model, wide, score_thresh=0.3)
    assert _reference_causes(model, stg, b, labels) == {}
    db = stg.default_boxes
    iou_px = box_iou(b, db.xyxy * torch.tensor([512.0, 256.0, 512.0, 256.0]))  # (G, A)
    for g, level in ((0, 2), (1, 3)):
        tr = tv.trace_gt(stg, b, labels, g)
        assert tr["verdict"]["verdict"] == "detected" and tr["verdict"]["level"] == level
        for r in tr["candidates"]:
            assert r["iou"] == pytest.approx(float(iou_px[g, r["default_index"]]), abs=1e-4)
        square = tv.trace_gt(run_stages(model, img, score_thresh=0.3), boxes, labels, g)
        assert tr["matching"]["best_default"] == square["matching"]["best_default"]  # same cell, stretched


# ---------------------------------------------------------------- a figure click -> a trace target
def test_target_keys_round_trip(stages):
    from explorer.views import trace_links as tl

    a, c = len(stages.default_boxes), len(CLASSES)
    for t in tv.trace_targets(stages, torch.tensor([CAT, DOG])):
        key = tl.target_key(t)
        back = tl.target_from_key(key, 2, a, c)
        assert tl.is_pick_key(key) and {k: t[k] for k in back} == back
    assert tl.target_from_key(f"det:{a - 1}:{c - 1}", 0, a, c) == {"kind": "detection", "default_index": a - 1,
                                                                     "label": c - 1}


@pytest.mark.parametrize("key, match", [
    ("gt:x", "expected 'gt:G' or 'det:A:C'"), ("det:5", "expected"), ("box:1", "expected"), ("gt:-1", "expected"),
    ("gt:²", "expected"), ("gt:2", "GT box 2 is not in 0..1"), ("det:999999:1", "default box 999999"),
    ("det:3:0", "class 0 is not in 1.."), ("det:3:99", "class 99"),
])
def test_bad_click_keys_are_named(stages, key, match):
    from explorer.views import trace_links as tl

    with pytest.raises(ValueError, match=match):
        tl.target_from_key(key, 2, len(stages.default_boxes), len(CLASSES))


def test_a_click_on_each_nms_marker_picks_that_candidate(scene, stages):
    """Every marker of the NMS figure, clicked, traces the candidate it is drawn for: the
    fate of the picked prediction is the record's kept / final / suppressed state."""
    from explorer.views import trace_links as tl

    _, _, boxes, labels = scene
    recs = nv.candidate_records(stages, list(CLASSES))
    fig = nv.nms_figure(recs, None, stages.image_hw, gt_xyxy_px=boxes.numpy(), gt_names=["cat", "dog"])
    targets = tv.trace_targets(stages, labels)
    by_key = {f"det:{r['default_index']}:{r['label']}": r for r in recs}
    clicked = 0
    for t in fig.data:
        for cd in (t.customdata if t.mode == "markers" and t.customdata is not None else []):
            target = tl.clicked_target(cd, targets, stages, len(labels))
            clicked += 1
            if target["kind"] == "gt":
                assert target == targets[target["index"]]
                continue
            r = by_key[cd]
            fate = prediction_fate(stages, target["default_index"], target["label"])["fate"]
            assert fate == ("final" if r["final"] else "cut_by_top_k" if r["kept"] else "suppressed"), r
            assert (target in targets) == r["final"]  # a final detection is the selector's own entry
            if not r["final"]:
                assert "not a final detection" in target["text"]
                tv.trace_target(stages, target, boxes, labels)  # the Trace page can follow it
    assert clicked == len(recs) + len(labels)


def test_clicks_that_name_no_object_pick_nothing(stages):
    from explorer.views import trace_links as tl

    targets = tv.trace_targets(stages, torch.tensor([CAT, DOG]))
    for cd in (None, "cell (0, 0): cat", 17, ["gt", 0], {"0": 5, "1": 3}):  # heatmap cell, frame, other charts
        assert tl.clicked_target(cd, targets, stages, 2) is None
    with pytest.raises(ValueError, match="not among this image's targets"):
        tl.clicked_target("gt:1", targets[:1], stages, 2)  # targets built for other ground truth


def test_one_numbering_for_detections_everywhere(stages):
    """Issue 19 item 8: NMS hover "#6", the picker "detection 0", Trace "final detection #1"
    next to "suppressed_by 0" named one detection three ways. Now: the final list's order, from 1."""
    names = list(stages.class_names)
    records = nv.candidate_records(stages, names)
    rows = nv.detection_rows(stages.detections.to_records(names))
    targets = [t for t in tv.trace_targets(stages, []) if t["kind"] == "detection"]
    assert [r["detection"] for r in rows] == list(range(1, len(rows) + 1))
    assert [t["text"].split(":")[0] for t in targets] == [f"detection {n}" for n in range(1, len(rows) + 1)]
    finals = sorted((r for r in records if r["final"]), key=lambda r: r["detection"])
    assert [(r["default_index"], r["label"]) for r in finals] == \
        [(t["default_index"], t["label"]) for t in targets]
    for n, t in enumerate(targets, start=1):
        fate = tl.prediction_fate(stages, t["default_index"], t["label"])
        assert fate["detection_number"] == n and tl.fate_text(fate) == f"kept: final detection {n}"
    assert all(r["detection"] is None for r in records if not r["final"])


@pytest.mark.parametrize("value, threshold, expected", [
    (0.8968, 0.9, "0.897"),  # "0.90" would read as reaching the threshold
    (0.4996, 0.5, "0.4996"),  # "none reaches IoU 0.5 (best 0.50)" contradicted itself
    (0.4504, 0.45, "0.4504"),  # "at IoU 0.45 > 0.45"
    (0.62, 0.5, "0.62"), (0.5, 0.5, "0.50"),  # no extra digits where none are needed
])
def test_a_value_is_never_rounded_across_its_threshold(value, threshold, expected):
    """Issue 19 item 11: the number beside a verdict says what the verdict says."""
    from explorer.views.numbers import against

    assert against(value, threshold) == expected
    assert (float(expected) > threshold) == (value > threshold) and (float(expected) < threshold) == (value < threshold)
    assert "{best_default_iou_shown}" in tv.VERDICT_TEXT["no_default_box"]  # the Trace verdicts use it
    assert "{suppress_iou_shown} > {nms_thresh:g}" in tv.VERDICT_TEXT["suppressed_by_nms"]
    assert "IoU {iou_shown} with GT" in tv.DETECTION_VERDICT_TEXT["Loc"]
