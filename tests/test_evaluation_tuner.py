"""explorer/evaluation/tuner.py (and detfile.py): the tuner reproduces the evaluation at
its own thresholds, its counts and recall agree with brute force, and the printed
`ssd.detect` flags parse to the same thresholds."""
import json

import pytest
import torch
from torchvision.ops import box_iou

from explorer.evaluation import detfile, jobs
from explorer.evaluation.spec import EvalInputError
from explorer.evaluation.tuner import detect_flags, tune
from ssd.data.procedural import ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.evaluate import evaluate_model
from ssd.evaluation.metrics import coco_results_json
from ssd.postprocess import PostprocessConfig, postprocess
from ssd.training import checkpoint
from tests.eval_helpers import SHIPPED, make_eval


@pytest.fixture(scope="module")
def ev(tmp_path_factory):
    d = make_eval(tmp_path_factory.mktemp("evals"), num_images=12)
    res = jobs.load_result(d)
    return res, jobs.load_kept(d), jobs.model_config(res)


def test_tuner_at_the_evaluation_thresholds_reproduces_the_library(ev):
    res, kept, cfg = ev
    t = tune(kept, res["class_names"], cfg, 0.01, 0.45, 200)
    model, meta = checkpoint.load(SHIPPED)
    lib = evaluate_model(model, ProceduralDataset(12, 1000, 256, eval_transform(256)), meta["class_names"])
    assert t["AP"] == pytest.approx(lib["AP"], abs=1e-12) == pytest.approx(res["AP"], abs=1e-12)
    assert t["AP50"] == pytest.approx(lib["AP50"], abs=1e-12)
    assert {r["class"]: r["AP"] for r in t["per_class"]} == {
        k: None if v is None else round(v, 4) for k, v in lib["per_class"].items()}


def _brute(kept, n, cfg, num_classes):
    """Candidates by plain loops, and recall / precision at IoU 0.5 by greedy matching."""
    cands = tp = n_gt = n_det = 0
    for i in range(n):
        s, b = kept.dense_image(i)
        for c in range(1, num_classes):
            cands += min(cfg.topk_candidates, int((s[:, c] > cfg.score_thresh).sum()))
        det = postprocess(s, b, cfg).detections()
        gt = kept.gt(i)
        n_gt += len(gt["labels"])
        n_det += len(det["labels"])
        for c in range(1, num_classes):
            g = gt["boxes_xyxy_px_in"][gt["labels"] == c]
            sel = det["labels"] == c
            d = det["boxes_xyxy_px_in"][sel][det["scores"][sel].argsort(descending=True)]
            taken = set()
            for row in (box_iou(d, g) if len(g) else torch.zeros(len(d), 0)):
                # VOC: the best-IoU GT; a TP only if it is not yet taken
                best = int(row.argmax()) if len(g) else None
                if best is not None and row[best] >= 0.5 and best not in taken:
                    taken.add(best)
                    tp += 1
    return cands, tp / n_gt, tp / n_det


@pytest.mark.parametrize("score,iou,detections_per_img", [(0.3, 0.45, 200), (0.6, 0.3, 5)])
def test_tuner_counts_and_recall_agree_with_brute_force(ev, score, iou, detections_per_img):
    res, kept, cfg = ev
    t = tune(kept, res["class_names"], cfg, score, iou, detections_per_img, num_images=8)
    cands, recall, precision = _brute(kept, 8, PostprocessConfig(score, iou, 400, detections_per_img), len(res["class_names"]))
    assert t["num_images"] == 8
    assert t["candidates"] == cands == sum(r["candidates (into NMS)"] for r in t["per_level"])
    assert t["recall"] == pytest.approx(recall) and t["precision"] == pytest.approx(precision)
    assert sum(r["detections"] for r in t["per_level"]) == t["detections"] == sum(r["detections"] for r in t["per_class"])
    assert t["postprocess_ms_per_image"] > 0


def test_tuner_errors_per_level(ev):
    res, kept, cfg = ev
    t = tune(kept, res["class_names"], cfg, 0.3, 0.45, 200, errors=True)
    assert sum(r["GTs it owns"] for r in t["per_level"]) == int(kept.gt_offsets[-1])
    assert set(t["errors"]["dAP"]) == {"Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"}


def test_tuner_bad_input(ev):
    res, kept, cfg = ev
    with pytest.raises(ValueError, match="below 0.01"):
        tune(kept, res["class_names"], cfg, 0.001, 0.45, 200)
    no_gt = type(kept)(**{**kept.__dict__, "gt_labels": kept.gt_labels[:0], "gt_boxes_px_in": kept.gt_boxes_px_in[:0],
                         "gt_offsets": torch.zeros_like(kept.gt_offsets)})
    with pytest.raises(ValueError, match="no ground-truth box"):
        tune(no_gt, res["class_names"], cfg, 0.3, 0.45, 200, num_images=3)


def test_detect_flags_parse_with_the_detect_parser():
    from ssd.detect import build_parser

    cmd = detect_flags("checkpoints/x.pt", 0.35, 0.5, 37).split()
    assert cmd[:3] == ["python", "-m", "ssd.detect"]
    args = build_parser().parse_args(["img.png"] + cmd[4:])
    assert (args.checkpoint, args.score_thresh, args.nms_thresh, args.detections_per_img) == ("checkpoints/x.pt", 0.35, 0.5, 37)


def test_detections_file_scores_like_the_evaluation_and_refuses_unknown_ids(ev):
    res, kept, cfg = ev
    cfg_eval = PostprocessConfig()
    dets = [postprocess(*kept.dense_image(i), cfg_eval).detections() for i in range(kept.num_images)]
    data = json.dumps(coco_results_json(dets)).encode()
    scored = detfile.score_detections_file("dets.json", data, kept, res["class_names"], 256)
    assert scored["AP"] == pytest.approx(res["AP"], abs=1e-6)
    bad = json.loads(data)
    bad[3]["image_id"] = 999
    with pytest.raises(EvalInputError, match="bad.json: entry 3 has image_id 999"):
        detfile.score_detections_file("bad.json", json.dumps(bad).encode(), kept, res["class_names"], 256)
    with pytest.raises(EvalInputError, match="junk.json: not a JSON file"):
        detfile.score_detections_file("junk.json", b"\xff{", kept, res["class_names"], 256)
    bad = json.loads(data)
    bad[0]["category_id"] = 77
    with pytest.raises(EvalInputError, match="category_id 77"):
        detfile.score_detections_file("cat.json", json.dumps(bad).encode(), kept, res["class_names"], 256)
