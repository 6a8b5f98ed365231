"""ssd/evaluation/error_types: TIDE error types and dAP cross-checked against the `tidecv` package on the
shipped checkpoint's held-out scenes; hand-checked error types; every miss has one cause;
per-level counts add up; bad input gives a clear message."""
from __future__ import annotations

import json

import pytest
import torch

from ssd.data.common import DatasetError
from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.error_types import ErrorAnalysis
from ssd.evaluation.error_types.causes import CAUSES, miss_cause
from ssd.evaluation.error_types.tide import TideAccumulator, classify_batch, classify_image, greedy_match, tide_ap
from ssd.evaluation.evaluate import collect, main, score
from ssd.evaluation.metrics import check_coco_results, coco_eval, coco_eval_by, coco_gt_json
from ssd.models import build
from ssd.postprocess import PostprocessConfig, default_boxes_px_in, postprocess
from ssd.training import checkpoint

SHIPPED = "checkpoints/compact256_shapes.pt"


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32).reshape(-1, 4)


def test_classify_image_hand_checked():
    """One detection of each kind on two GTs (cat at 0..100, dog at 200..300)."""
    gt_boxes, gt_labels = _t([[0, 0, 100, 100], [200, 200, 300, 300]]), torch.tensor([1, 2])
    dets = _t([[0, 0, 100, 100],  # TP on the cat
               [0, 0, 100, 95],  # Dupe: same class, IoU .95 with the taken cat
               [200, 200, 300, 300],  # Cls: a cat on the dog
               [0, 0, 100, 30],  # Loc: cat, IoU .3 with the cat
               [500, 500, 600, 600],  # Bkg
               [150, 150, 260, 250]])  # Both: a cat, IoU < .1 with the cat, .3 with the dog
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    labels = torch.tensor([1, 1, 1, 1, 1, 1])
    res = classify_image(dets, scores, labels, gt_boxes, gt_labels)
    assert res.kind == ["TP", "Dupe", "Cls", "Loc", "Bkg", "Both"]
    assert res.gt_index.tolist() == [0, 0, 1, 0, -1, -1]
    assert res.gt_matched.tolist() == [True, False]
    assert res.gt_missed.tolist() == [False, False]  # the dog has a Cls error pointing at it
    res = classify_image(dets[:1], scores[:1], labels[:1], gt_boxes, gt_labels)
    assert res.gt_missed.tolist() == [False, True]
    empty = classify_image(_t([]), torch.zeros(0), torch.zeros(0, dtype=torch.long), gt_boxes, gt_labels)
    assert empty.kind == [] and empty.gt_missed.all()


def test_tide_ap_and_oracle_by_hand():
    # TP .9, FP .8, TP .7 on 2 GTs: precision 1, .5, 2/3 -> monotone 1, 2/3, 2/3;
    # recall .5 then 1: 51 points at 1 and 50 at 2/3.
    import numpy as np

    ap = tide_ap(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 2)
    assert ap == pytest.approx((51 * 1 + 50 * 2 / 3) / 101 * 100)
    assert tide_ap(np.zeros(0), np.zeros(0, dtype=bool), 0) == 0.0
    # One image: a TP and a Bkg error scored above it; fixing Bkg gives AP 100.
    acc = TideAccumulator()
    gt_b, gt_l = _t([[0, 0, 10, 10]]), torch.tensor([1])
    det_b, det_s, det_l = _t([[50, 50, 60, 60], [0, 0, 10, 10]]), torch.tensor([0.9, 0.5]), torch.tensor([1, 1])
    acc.add(det_s, det_l, gt_l, classify_image(det_b, det_s, det_l, gt_b, gt_l))
    e = acc.errors()
    assert e["counts"]["Bkg"] == 1 and e["AP50"] == pytest.approx(50.0)
    assert e["dAP"]["Bkg"] == pytest.approx(50.0) and e["dAP"]["Cls"] == 0.0


def test_classify_batch_equals_one_image_at_a_time():
    """Batching pads images to the batch's most detections and GTs: the verdicts do not change."""
    model, _ = checkpoint.load(SHIPPED)
    gts, dets, _ = collect(model, ProceduralDataset(12, seed=1000, size=256, transform=eval_transform(256)), CLASSES)
    gts[3] = {"boxes_xyxy_px_in": _t([]), "labels": torch.zeros(0, dtype=torch.long)}  # an image without GT
    batched = classify_batch(dets, gts)
    for d, g, b in zip(dets, gts, batched):
        one = classify_image(d["boxes_xyxy_px_in"], d["scores"], d["labels"], g["boxes_xyxy_px_in"], g["labels"])
        assert b.kind == one.kind and torch.equal(b.order, one.order) and torch.equal(b.gt_index, one.gt_index)
        assert torch.equal(b.gt_matched, one.gt_matched) and torch.equal(b.gt_missed, one.gt_missed)
    assert set(batched[3].kind) == {"Bkg"} and len(set(k for b in batched for k in b.kind)) >= 4


def test_greedy_match_takes_the_first_best_untaken():
    # detection 0 ties between GTs 0 and 1 (takes 0, the first); detection 1 then takes 1;
    # detection 2 is below the threshold; image 2 has no valid detection
    aff = torch.tensor([[[0.7, 0.7], [0.9, 0.6], [0.3, 0.2]], [[0.8, -1], [0.8, -1], [0.1, 0.9]]], dtype=torch.float64)
    valid = torch.tensor([[True, True, True], [False, False, False]])
    j, taken = greedy_match(aff, valid, 0.5)
    assert j.tolist() == [[0, 1, -1], [-1, -1, -1]] and taken.tolist() == [[True, True], [False, False]]


@pytest.fixture(scope="module")
def shipped_eval(tmp_path_factory):
    """The shipped model on 60 held-out scenes (seed 1000), through the CLI, with both COCO files."""
    out = tmp_path_factory.mktemp("ev")
    args = ["--checkpoint", SHIPPED, "--num-images", "60", "--seed", "1000", "--errors", "--json",
            "--gt-out", str(out / "gt.json"), "--detections-out", str(out / "det.json")]
    return args, out


def test_errors_equal_tidecv_on_shipped_checkpoint(shipped_eval, capsys):
    tidecv = pytest.importorskip("tidecv", reason="tidecv (requirements.txt) is the reference for TIDE")
    args, out = shipped_eval
    assert main(args) == 0
    res = json.loads(capsys.readouterr().out)
    tide = tidecv.TIDE()
    tide.evaluate(tidecv.datasets.COCO(str(out / "gt.json")), tidecv.datasets.COCOResult(str(out / "det.json")),
                  mode=tidecv.TIDE.BOX)
    theirs = next(iter(tide.get_main_errors().values()))
    run = next(iter(tide.runs.values()))
    ours = res["errors"]
    assert ours["tide_AP50"] == pytest.approx(run.ap, abs=0.1)
    for t in ("Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"):
        assert ours["dAP"][t] == pytest.approx(theirs[t], abs=1.0), t
    assert ours["counts"] == {e.short_name: n for e, n in run.count_errors().items()}
    assert sum(ours["counts"].values()) > 0 and ours["dAP"]["Cls"] > 0
    # The written files are the evaluated ones: pycocotools on them gives the reported AP.
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = COCO(str(out / "gt.json"))
    ev = COCOeval(gt, gt.loadRes(str(out / "det.json")), iouType="bbox")
    ev.evaluate(), ev.accumulate(), ev.summarize()
    assert ev.stats[0] == pytest.approx(res["AP"], abs=1e-9) and ev.stats[1] == pytest.approx(res["AP50"], abs=1e-9)
    _check_report_adds_up(res)


def _check_report_adds_up(res: dict) -> None:
    levels = res["per_level"]
    assert [lv["level"] for lv in levels] == list(range(6)) and levels[0]["feature_map"] == [32, 32]
    num_gt = sum(lv["gt"] for lv in levels)
    fn = num_gt - sum(lv["gt_matched"] for lv in levels)
    assert sum(res["misses_by_cause"].values()) == fn == len(res["misses"])
    assert set(res["misses_by_cause"]) == set(CAUSES)
    counts = res["errors"]["counts"]
    assert sum(lv["fp"] for lv in levels) == sum(v for k, v in counts.items() if k != "Miss")
    for lv in levels:
        assert lv["fp"] == sum(lv["fp_by_type"].values())
    assert sum(v["num_gt"] for v in res["ap_by_size"].values()) == num_gt
    m = res["confusion"]["matrix"]
    assert len(m) == len(CLASSES) and sum(map(sum, m[1:])) == num_gt  # every GT once: found, confused or missed


def test_ap_by_size_equals_pycocotools_bins():
    """coco_eval_by with the box area as the value is pycocotools' own small/medium/large AP."""
    ds = ProceduralDataset(30, seed=1000, size=256, transform=eval_transform(256))
    model, _ = checkpoint.load(SHIPPED)
    gts, dets, analysis = collect(model, ds, CLASSES, errors=True)
    ref = coco_eval(gts, dets, CLASSES)
    areas = [(g["boxes_xyxy_px_in"][:, 2:] - g["boxes_xyxy_px_in"][:, :2]).prod(-1) for g in gts]
    det_areas = [(d["boxes_xyxy_px_in"][:, 2:] - d["boxes_xyxy_px_in"][:, :2]).prod(-1) for d in dets]
    bins = {"small": (0.0, 32.0 ** 2), "medium": (32.0 ** 2, 96.0 ** 2), "large": (96.0 ** 2, 1e10)}
    by_area = coco_eval_by(gts, dets, CLASSES, areas, det_areas, bins)
    for name, key in (("small", "AP_small"), ("medium", "AP_medium"), ("large", "AP_large")):
        assert (by_area[name]["AP"] or 0.0) == pytest.approx(ref[key], abs=1e-9), name
        assert ref["by_size"][name]["AP"] == by_area[name]["AP"] and ref["by_size"][name]["AP50"] == by_area[name]["AP50"]
        assert ref["by_size"][name]["num_gt"] == by_area[name]["num_gt"]
    rep = analysis.report()
    # per owning level, every GT is in exactly one level
    assert sum(lv["gt"] for lv in rep["per_level"]) == sum(len(g["labels"]) for g in gts)
    from ssd.evaluation.evaluate import _with_errors

    _check_report_adds_up(_with_errors(score(gts, dets, CLASSES), analysis))


@pytest.fixture(scope="module")
def layout():
    cfg = build("compact256", num_classes=3).cfg
    db, default_px_in = default_boxes_px_in(cfg)
    return cfg, db, default_px_in


def _cause(layout, gt_box, scores, boxes_px_in, post_cfg=PostprocessConfig()):
    from torchvision.ops import box_iou

    _, _, default_px_in = layout
    post = postprocess(scores, boxes_px_in, post_cfg)
    return miss_cause(1, box_iou(_t([gt_box]), default_px_in)[0], scores, post, post_cfg, 100)


def test_miss_causes_each_kind(layout):
    cfg, db, default_px_in = layout
    a = default_px_in.shape[0]
    m = int(db.level_slice(2).start) + 27  # one default box of the 8x8 map
    gt_box = default_px_in[m].tolist()
    boxes = default_px_in.clone()
    scores = torch.zeros(a, 3)
    scores[:, 0] = 1.0
    assert _cause(layout, [10, 10, 12, 12], scores, boxes)["cause"] == "no_default_box"
    assert _cause(layout, gt_box, scores, boxes)["cause"] == "low_score"
    # m scores 0.8 but its box went elsewhere, and it is kept: mislocalized
    s2 = scores.clone()
    s2[m] = torch.tensor([0.2, 0.8, 0.0])
    far = boxes.clone()
    far[m] = torch.tensor([200.0, 200.0, 250.0, 250.0])
    rec = _cause(layout, gt_box, s2, far)
    assert rec["cause"] == "mislocalized" and rec["default_index"] == m and rec["score"] == pytest.approx(0.8)
    # a higher-scoring box k overlapping m's box by > 0.45 takes it out in NMS
    k = (m + 1000) % a
    s3, b3 = s2.clone(), boxes.clone()
    s3[k] = torch.tensor([0.1, 0.9, 0.0])
    x1, y1, x2, y2 = gt_box
    # IoU 0.65 / 1.35 = 0.48 with m's box (= the GT): above NMS's 0.45, below a match's 0.5
    b3[k] = torch.tensor([x1 + 0.35 * (x2 - x1), y1, x2 + 0.35 * (x2 - x1), y2])
    rec = _cause(layout, gt_box, s3, b3)
    assert rec["cause"] == "suppressed_by_nms" and rec["suppressed_by_default_index"] == k
    assert rec["suppress_iou"] == pytest.approx(0.65 / 1.35, abs=1e-4)
    # only one candidate per class allowed, and k scores higher: m is cut before NMS
    b4 = boxes.clone()
    b4[k] = torch.tensor([0.0, 0.0, 5.0, 5.0])
    rec = _cause(layout, gt_box, s3, b4, PostprocessConfig(topk_candidates=1))
    assert rec["cause"] == "count_limit"
    # kept by NMS but beyond detections_per_img
    rec = _cause(layout, gt_box, s3, b4, PostprocessConfig(detections_per_img=1))
    assert rec["cause"] == "count_limit"


def test_bad_input_messages(tmp_path, capsys):
    model = build("compact256", num_classes=4).eval()
    ds = ProceduralDataset(2, seed=3, size=256)
    with pytest.raises(DatasetError, match="predicts 4 classes .* dataset has 7"):
        collect(model, ds, CLASSES)
    model7 = build("compact256", num_classes=len(CLASSES)).eval()
    with pytest.raises(DatasetError, match="empty"):
        collect(model7, torch.utils.data.Subset(ds, []), CLASSES)
    no_gt = [(ds[0][0], {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)})] * 2
    with pytest.raises(DatasetError, match="none of the 2 images has a ground-truth box"):
        collect(model7, no_gt, CLASSES)
    # CLI: a checkpoint whose classes are not the procedural dataset's
    ckpt = checkpoint.save(tmp_path / "m4.pt", model, ["background", "a", "b", "c"])
    assert main(["--checkpoint", str(ckpt), "--num-images", "2"]) == 2
    assert "procedural scenes have the classes" in capsys.readouterr().err
    # a detections file against ground truth it does not fit
    gt = coco_gt_json([{"boxes_xyxy_px_in": _t([[0, 0, 10, 10]]), "labels": torch.tensor([1])}], CLASSES)
    with pytest.raises(ValueError, match="det.json: entry 1 has image_id 7, which the ground truth does not have"):
        check_coco_results([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                            {"image_id": 7, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}], gt, "det.json")
    with pytest.raises(ValueError, match="category_id 99"):
        check_coco_results([{"image_id": 1, "category_id": 99, "bbox": [0, 0, 1, 1], "score": 0.5}], gt, "d")
    with pytest.raises(ValueError, match="needs image_id, category_id, bbox and score"):
        check_coco_results([{"image_id": 1}], gt, "d")
    with pytest.raises(ValueError, match="expected a COCO results list"):
        check_coco_results({"annotations": []}, gt, "d")


def test_error_analysis_on_image_without_gt_or_detections(layout):
    """Background-only images make every detection Bkg; images without detections miss every GT."""
    cfg = build("compact256", num_classes=3).cfg
    an = ErrorAnalysis(cfg, ["background", "a", "b"])
    a = default_boxes_px_in(cfg)[1].shape[0]
    scores = torch.zeros(1, a, 3)
    scores[..., 0] = 1.0
    scores[0, 5] = torch.tensor([0.1, 0.9, 0.0])
    boxes = default_boxes_px_in(cfg)[1][None].clone()
    post = postprocess(scores[0], boxes[0], PostprocessConfig())
    det = {k: v for k, v in post.detections().items()}
    an.add_batch([{"boxes_xyxy_px_in": _t([]), "labels": torch.zeros(0, dtype=torch.long)}], [det], scores, boxes,
                 [post])
    empty_post = postprocess(torch.zeros(a, 3), boxes[0], PostprocessConfig())
    an.add_batch([{"boxes_xyxy_px_in": _t([[100, 100, 180, 180]]), "labels": torch.tensor([2])}],
                 [empty_post.detections()], torch.zeros(1, a, 3), boxes, [empty_post])
    rep = an.report()
    assert rep["errors"]["counts"]["Bkg"] == 1 and rep["errors"]["counts"]["Miss"] == 1
    assert rep["misses_by_cause"]["low_score"] == 1
    assert rep["confusion"]["matrix"][0][1] == 1 and rep["confusion"]["matrix"][2][0] == 1
