"""Tests for ssd/evaluation/metrics.py and ssd/evaluation/evaluate.py."""
import json
import types

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder
from torchvision.models.detection.ssd import SSD

from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.evaluation.evaluate import detect_batch, evaluate_model, main
from ssd.evaluation.metrics import coco_eval, pr_curves, voc07_ap, voc07_map
from ssd.models import build
from ssd.priors import default_boxes
from ssd.training import checkpoint


def gt(boxes, labels):
    return {"boxes_xyxy_px_in": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), "labels": torch.tensor(labels)}


def det(boxes, scores, labels):
    return {"boxes_xyxy_px_in": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "scores": torch.tensor(scores, dtype=torch.float32), "labels": torch.tensor(labels, dtype=torch.int64)}


def test_voc07_ap_hand_checked():
    # 2 GTs; ranked detections TP, FP, TP -> recall .5 .5 1, precision 1 .5 2/3.
    # 11-point: t = 0..0.5 (6 points) -> 1.0; t = 0.6..1.0 (5 points) -> 2/3.
    assert voc07_ap([0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]) == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert voc07_ap([], []) == 0.0
    with pytest.raises(ValueError, match="shape"):
        voc07_ap([0.1, 0.2], [1.0])


def test_pr_curves_hand_checked():
    gts = [gt([[0, 0, 10, 10], [20, 20, 30, 30]], [1, 1])]
    dets = [det([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 31], [0, 0, 10, 10]],
                [0.9, 0.8, 0.7, 0.6], [1, 1, 1, 1])]
    c = pr_curves(gts, dets, num_classes=3)[1]
    assert c["num_gt"] == 2
    # TP, FP, TP (IoU 0.91), FP (duplicate of a taken GT)
    assert c["recall"] == pytest.approx([0.5, 0.5, 1.0, 1.0])
    assert c["precision"] == pytest.approx([1.0, 0.5, 2 / 3, 0.5])
    assert c["ap_voc07"] == pytest.approx((6 + 5 * 2 / 3) / 11)
    curves = pr_curves(gts, dets, num_classes=3)
    assert curves[2]["num_gt"] == 0 and curves[2]["recall"] == []
    assert voc07_map(curves) == pytest.approx(c["ap_voc07"])  # class 2 has no GT: not averaged
    with pytest.raises(ValueError, match="detection lists"):
        pr_curves(gts, [], 3)


def test_coco_eval_perfect_and_shifted():
    gts = [gt([[0, 0, 100, 100]], [1]), gt([[10, 10, 60, 60]], [2])]
    perfect = coco_eval(gts, [det([[0, 0, 100, 100]], [0.9], [1]), det([[10, 10, 60, 60]], [0.8], [2])], CLASSES)
    assert perfect["AP"] == pytest.approx(1.0) and perfect["AP50"] == pytest.approx(1.0)
    assert perfect["per_class"]["cat"] == pytest.approx(1.0) and perfect["per_class"]["bird"] is None
    # IoU 0.68: a hit at thresholds .50 .55 .60 .65 -> AP = 4/10, AP50 = 1, AP75 = 0.
    one = [gt([[0, 0, 100, 100]], [1])]
    shifted = coco_eval(one, [det([[0, 0, 100, 68]], [0.9], [1])], CLASSES)
    assert shifted["AP"] == pytest.approx(0.4) and shifted["AP50"] == pytest.approx(1.0)
    assert shifted["AP75"] == pytest.approx(0.0)
    wrong_class = coco_eval(one, [det([[0, 0, 100, 100]], [0.9], [2])], CLASSES)
    assert wrong_class["AP"] == 0.0
    assert coco_eval(one, [det([], [], [])], CLASSES)["AP50"] == 0.0
    with pytest.raises(ValueError, match="at least one ground-truth"):
        coco_eval([gt(torch.zeros(0, 4).tolist(), [])], [det([], [], [])], CLASSES)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build("compact256", num_classes=len(CLASSES))
    # Give the random head a few confident boxes so NMS has work.
    with torch.no_grad():
        m.head.classification_head.module_list[2].bias[1::7] += 6.0
    return m.eval()


def test_detect_batch_equals_torchvision_postprocess(model):
    """Same final detections as torchvision's SSD.postprocess_detections on the same head outputs."""
    images = ProceduralDataset(2, seed=5, size=256)
    x = torch.stack([images[0][0], images[1][0]])
    ours = detect_batch(model, x)
    with torch.no_grad():
        out = model(x)
    anchors_px = default_boxes(model.cfg).xyxy * 256
    fake_self = types.SimpleNamespace(box_coder=BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)), score_thresh=0.01,
                                      topk_candidates=400, nms_thresh=0.45, detections_per_img=200)
    theirs = SSD.postprocess_detections(
        fake_self, {"bbox_regression": out.bbox_regression_flat(), "cls_logits": out.cls_logits_flat()},
        [anchors_px, anchors_px], [(256, 256), (256, 256)])
    for o, t in zip(ours, theirs):
        assert len(o["scores"]) > 0
        assert torch.equal(o["labels"], t["labels"])
        assert torch.allclose(o["scores"], t["scores"])
        assert torch.equal(o["boxes_xyxy_px_in"], t["boxes"])  # one decode: bit-identical


def test_evaluate_model_keys(model):
    ds = ProceduralDataset(3, seed=7, size=256)
    res = evaluate_model(model, ds, CLASSES, curves=True)
    for k in ("AP", "AP50", "AP75", "per_class", "voc07_map", "num_images", "curves"):
        assert k in res
    assert res["num_images"] == 3 and 0.0 <= res["AP"] <= 1.0
    assert set(res["curves"]) == set(CLASSES[1:])
    assert not model.training


def test_cli_json_and_curves(tmp_path, model, capsys):
    ckpt = checkpoint.save(tmp_path / "m.pt", model, CLASSES)
    curves = tmp_path / "curves.json"
    rc = main(["--checkpoint", str(ckpt), "--num-images", "3", "--seed", "11", "--json",
               "--curves-out", str(curves)])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["num_images"] == 3 and res["seed"] == 11 and "AP50" in res and "per_class" in res
    c = json.loads(curves.read_text())
    assert c["iou_threshold"] == 0.5 and set(c["classes"]) == set(CLASSES[1:])
    cat = c["classes"]["cat"]
    assert len(cat["recall"]) == len(cat["precision"])


def test_cli_bad_checkpoint(tmp_path, capsys):
    assert main(["--checkpoint", str(tmp_path / "none.pt"), "--num-images", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_detect_batch_equals_run_stages_final_detections(model):
    """The batched evaluation path gives ssd.inference's final detections."""
    from ssd.inference import run_stages

    x = ProceduralDataset(1, seed=6, size=256)[0][0]
    ours = detect_batch(model, x[None])[0]
    st = run_stages(model, x, score_thresh=0.01, nms_thresh=0.45, detections_per_img=200)
    assert len(ours["scores"]) == len(st.detections.scores) > 0
    assert torch.equal(ours["labels"], st.detections.labels)
    assert torch.allclose(ours["scores"], st.detections.scores)
    assert torch.equal(ours["boxes_xyxy_px_in"], st.detections.boxes_xyxy_px)


def test_cli_on_voc_and_coco_exports(tmp_path, model, capsys):
    from ssd.data.procedural import write_coco, write_voc

    ckpt = checkpoint.save(tmp_path / "m.pt", model, CLASSES)
    write_voc(tmp_path / "voc", 5, seed=2, size=128, val_fraction=0.4)
    assert main(["--checkpoint", str(ckpt), "--dataset", "voc", "--data-root", str(tmp_path / "voc"),
                 "--split", "val", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 2
    write_coco(tmp_path / "c.json", tmp_path / "img", 3, seed=2, size=128)
    assert main(["--checkpoint", str(ckpt), "--dataset", "coco", "--coco-json", str(tmp_path / "c.json"),
                 "--coco-images", str(tmp_path / "img"), "--num-images", "2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["num_images"] == 2
    assert main(["--checkpoint", str(ckpt), "--dataset", "voc", "--data-root", str(tmp_path / "none")]) == 2
    assert "VOC root folder not found" in capsys.readouterr().err


def test_collect_on_batch_sees_every_image_and_can_stop(model):
    """`collect(on_batch=...)`: called per batch with the images done, the total and the
    batch's raw outputs (those `forward_batch` returns); raising in it stops the evaluation."""
    from ssd.evaluation.evaluate import collect, forward_batch

    ds = ProceduralDataset(5, seed=7, size=256)
    seen = []
    collect(model, ds, CLASSES, batch_size=2,
            on_batch=lambda done, total, scores, boxes, gts: seen.append((done, total, scores, boxes, len(gts))))
    assert [(d, t, n) for d, t, _, _, n in seen] == [(2, 5, 2), (4, 5, 2), (5, 5, 1)]
    x = torch.stack([ds[4][0]])
    scores, boxes = forward_batch(model, x)
    assert torch.equal(seen[-1][2], scores) and torch.equal(seen[-1][3], boxes)

    class Stop(Exception):
        pass

    def stop(done, *_):
        if done >= 2:
            raise Stop

    with pytest.raises(Stop):
        collect(model, ds, CLASSES, batch_size=2, on_batch=stop)
