"""ssd/evaluation/metrics.py: the vectorised VOC07 curves equal a plain loop (brute force) over every
detection, on the shipped model's detections and on random ones with ties in score.
(COCO AP against pycocotools: tests/test_coco_ap.py; hand-checked cases: tests/test_evaluate.py.)"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.evaluate import collect
from ssd.evaluation.metrics import pr_curves
from ssd.training import checkpoint
from tests.test_coco_ap import _random_case


def _brute_force(gts, dets, c, thr=0.5):
    """VOC matching one detection at a time, images in order, each by score (stable)."""
    records, num_gt = [], 0
    for g, d in zip(gts, dets):
        gb = g["boxes_xyxy_px_in"][g["labels"] == c]
        num_gt += len(gb)
        keep = d["labels"] == c
        db, ds = d["boxes_xyxy_px_in"][keep], d["scores"][keep]
        order = torch.sort(ds, descending=True, stable=True).indices
        taken = [False] * len(gb)
        for n in order.tolist():
            tp = False
            if len(gb):
                iou = box_iou(db[n:n + 1], gb)[0]
                j = int(iou.argmax())
                if float(iou[j]) >= thr and not taken[j]:
                    taken[j] = tp = True
            records.append((float(ds[n]), tp))
    records.sort(key=lambda r: -r[0])
    tp = np.cumsum([r[1] for r in records]).astype(float)
    fp = np.cumsum([not r[1] for r in records]).astype(float)
    return tp / max(num_gt, 1), tp / np.maximum(tp + fp, 1e-12), [r[0] for r in records], num_gt


def _check(gts, dets, names):
    curves = pr_curves(gts, dets, len(names))
    for c in range(1, len(names)):
        recall, precision, scores, num_gt = _brute_force(gts, dets, c)
        assert curves[c]["num_gt"] == num_gt
        assert curves[c]["scores"] == scores
        assert curves[c]["recall"] == recall.tolist() and curves[c]["precision"] == precision.tolist()
    return curves


def test_pr_curves_equal_brute_force_on_shipped_model():
    model, _ = checkpoint.load("checkpoints/compact256_shapes.pt")
    gts, dets, _ = collect(model, ProceduralDataset(30, 1000, 256, eval_transform(256)), CLASSES)
    curves = _check(gts, dets, CLASSES)
    assert any(0 < v["ap_voc07"] < 1 for v in curves.values())


@pytest.mark.parametrize("ties", [True, False])
def test_pr_curves_equal_brute_force_on_random_detections(ties):
    names = ["background", "a", "b", "c", "never"]
    gts, dets = _random_case(np.random.default_rng(11 + ties), 20, len(names), ties)
    curves = _check(gts, dets, names)
    assert curves[4]["num_gt"] == 0 and curves[4]["ap_voc07"] == 0.0
