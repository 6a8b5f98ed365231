"""ssd/evaluation/coco_ap.py: the vectorised COCO evaluator gives pycocotools' numbers (precision and
recall arrays, and the AP dicts of `ssd.evaluation.metrics`) on the shipped model's detections, on
random detections with ties in score and over 100 per image and class, on empty images
and classes, and on crowd regions of mmdetection's COCO sample."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.coco_ap import box_iou_coco, flatten
from ssd.evaluation.evaluate import collect
from ssd.evaluation.metrics import coco_accumulate, coco_eval, coco_eval_by
from ssd.training import checkpoint

SHIPPED = "checkpoints/compact256_shapes.pt"


def _assert_same(gts, dets, names, **kw):
    ours = coco_accumulate(gts, dets, names, **kw)
    ref = coco_accumulate(gts, dets, names, reference=True, **kw)
    assert ours.precision.shape == ref.precision.shape
    np.testing.assert_allclose(ours.precision, ref.precision, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours.recall, ref.recall, rtol=0, atol=1e-9)
    return ours


@pytest.fixture(scope="module")
def shipped():
    """The shipped model on 40 held-out scenes (seed 1000)."""
    model, _ = checkpoint.load(SHIPPED)
    return collect(model, ProceduralDataset(40, 1000, 256, eval_transform(256)), CLASSES, errors=True)


def test_equal_to_pycocotools_on_shipped_model(shipped):
    gts, dets, analysis = shipped
    acc = _assert_same(gts, dets, CLASSES)
    assert (acc.precision > 0).any() and (acc.precision == 0).any()  # real curves, with misses
    assert coco_eval(gts, dets, CLASSES) == coco_eval(gts, dets, CLASSES, reference=True)
    ranges = {str(k): (float(k), float(k)) for k in range(6)}
    args = (gts, dets, CLASSES, analysis.gt_level, analysis.det_level, ranges)
    by_level = coco_eval_by(*args)
    assert by_level == coco_eval_by(*args, reference=True)
    assert sum(v["AP"] is not None for v in by_level.values()) >= 3


def _random_case(rng: np.random.Generator, num_images: int, num_classes: int, ties: bool):
    """GTs, and detections near them or anywhere, some images / classes left empty."""
    gts, dets = [], []
    for i in range(num_images):
        g = int(rng.integers(0, 6)) if i % 5 else 0  # every 5th image has no GT
        xy = rng.uniform(0, 200, (g, 2))
        gb = np.concatenate([xy, xy + rng.uniform(2, 120, (g, 2))], 1)
        gl = rng.integers(1, num_classes - 1, g)  # the last class never has GT
        n = int(rng.integers(0, 150)) if i % 7 else 0  # every 7th image has no detection
        src = gb[rng.integers(0, g, n)] if g else rng.uniform(0, 200, (n, 4))
        db = src + rng.normal(0, 8, (n, 4))
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 0.5)
        dl = np.where(rng.random(n) < 0.8, gl[rng.integers(0, g, n)] if g else 1, rng.integers(1, num_classes, n))
        ds = np.round(rng.random(n), 1) if ties else rng.random(n)
        gts.append({"boxes_xyxy_px_in": torch.tensor(gb, dtype=torch.float32).reshape(-1, 4),
                    "labels": torch.tensor(gl, dtype=torch.long)})
        dets.append({"boxes_xyxy_px_in": torch.tensor(db, dtype=torch.float32).reshape(-1, 4),
                     "scores": torch.tensor(ds, dtype=torch.float32), "labels": torch.tensor(dl, dtype=torch.long)})
    return gts, dets


@pytest.mark.parametrize("ties", [True, False])
def test_equal_to_pycocotools_on_random_detections(ties):
    names = ["background", "a", "b", "c", "never"]
    gts, dets = _random_case(np.random.default_rng(7 + ties), 30, len(names), ties)
    assert max(int((d["labels"] == 1).sum()) for d in dets) > 100  # the max_dets cut is exercised
    _assert_same(gts, dets, names)
    _assert_same(gts, dets, names, area_ranges={"all": (0, 1e10), "mid": (500.0, 3000.0)}, max_dets=(5, 100))
    res = coco_eval(gts, dets, names)
    assert res == coco_eval(gts, dets, names, reference=True) and res["per_class"]["never"] is None


def test_equal_iou_ties_take_the_last_gt():
    """A detection equally close to two GTs takes the later one (pycocotools' loop), which
    leaves the first for the next detection: 2 hits at IoU thresholds up to 0.80, not 1."""
    gts = [{"boxes_xyxy_px_in": torch.tensor([[0.0, 0, 10, 10], [2, 0, 12, 10]]), "labels": torch.tensor([1, 1])}]
    dets = [{"boxes_xyxy_px_in": torch.tensor([[1.0, 0, 11, 10], [-1, 0, 9, 10]]), "scores": torch.tensor([0.9, 0.8]),
             "labels": torch.tensor([1, 1])}]
    acc = _assert_same(gts, dets, ["background", "a"])
    assert acc.recall[:7, 0, 0, -1].tolist() == [1.0] * 7  # IoU 9/11 = 0.818 for both pairs


def test_empty_images_and_classes():
    names = ["background", "a", "b"]
    empty = {"boxes_xyxy_px_in": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    no_det = dict(empty, scores=torch.zeros(0))
    gts = [{"boxes_xyxy_px_in": torch.tensor([[0.0, 0, 50, 50]]), "labels": torch.tensor([1])}, empty]
    dets = [no_det, {"boxes_xyxy_px_in": torch.tensor([[0.0, 0, 50, 50]]), "scores": torch.tensor([0.5]),
                     "labels": torch.tensor([1])}]
    acc = _assert_same(gts, dets, names)  # one GT never found, one detection on an image without GT
    assert acc.precision[:, :, 0, 0, -1].max() == 0.0 and (acc.precision[:, :, 1] == -1).all()
    assert coco_eval(gts, [no_det, no_det], names)["AP"] == 0.0
    with pytest.raises(ValueError, match="at least one ground-truth box"):
        coco_eval([empty], [no_det], names)
    with pytest.raises(ValueError, match="2 ground-truth images but 1 detection lists"):
        coco_accumulate(gts, dets[:1], names)
    with pytest.raises(ValueError, match="1 area values for 2 boxes"):
        flatten([{"boxes_xyxy_px_in": torch.zeros(2, 4), "labels": torch.ones(2)}], values=[torch.ones(1)])


def test_crowd_regions_of_mmdetection_sample(peer_data):
    """mmdetection's coco_sample.json: a crowd GT, areas that are not w * h (0, 0.1), a
    zero-width box, an unknown category, an image without annotations."""
    data = json.loads((peer_data / "mmdet" / "coco_sample.json").read_text())
    names = ["background"] + [c["name"] for c in sorted(data["categories"], key=lambda c: c["id"])]
    gts, dets = [], []
    rng = np.random.default_rng(0)
    for im in data["images"]:
        anns = [a for a in data["annotations"] if a["image_id"] == im["id"]]
        xyxy = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                         for a in anns], dtype=np.float32).reshape(-1, 4)
        gts.append({"boxes_xyxy_px_in": torch.tensor(xyxy), "labels": torch.tensor([a["category_id"] for a in anns]),
                    "iscrowd": torch.tensor([a["iscrowd"] for a in anns]),
                    "area": torch.tensor([a["area"] for a in anns], dtype=torch.float64)})
        # copies of every GT (several on the crowd), shifted copies, and two anywhere
        base = np.concatenate([xyxy, xyxy, xyxy + 2.0, rng.uniform(0, 30, (2, 4))]) if len(xyxy) else \
            rng.uniform(0, 30, (2, 4))
        base[:, 2:] = np.maximum(base[:, 2:], base[:, :2] + 1)
        labels = np.concatenate([[a["category_id"] for a in anns] * 3, [1, 2]]).astype(np.int64)
        labels = np.where(labels > 2, 1, labels)
        dets.append({"boxes_xyxy_px_in": torch.tensor(base, dtype=torch.float32),
                     "scores": torch.tensor(rng.random(len(base)), dtype=torch.float32),
                     "labels": torch.tensor(labels)})
    # one more image with a plain car found, so that the car class has a GT that counts and
    # the detections on the crowd car (ignored, however many) change its precision if mishandled
    gts.append({"boxes_xyxy_px_in": torch.tensor([[50.0, 50, 90, 90]]), "labels": torch.tensor([2]),
                "iscrowd": torch.tensor([0]), "area": torch.tensor([1600.0], dtype=torch.float64)})
    dets.append({"boxes_xyxy_px_in": torch.tensor([[50.0, 50, 90, 91]]), "scores": torch.tensor([0.01]),
                 "labels": torch.tensor([2])})
    assert any(bool(g["iscrowd"].any()) for g in gts)
    acc = _assert_same(gts, dets, names)
    assert (acc.precision > -1).any()
    assert coco_eval(gts, dets, names) == coco_eval(gts, dets, names, reference=True)


def test_box_iou_equals_pycocotools_mask_iou():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(3)
    d = np.concatenate([rng.uniform(0, 50, (20, 2)), rng.uniform(0, 30, (20, 2))], 1)
    g = np.concatenate([rng.uniform(0, 50, (7, 2)), rng.uniform(0, 30, (7, 2))], 1)
    g[3] = d[4]  # one exact match
    crowd = np.array([0, 1, 0, 0, 1, 0, 0], dtype=bool)
    theirs = mask_utils.iou(d.tolist(), g.tolist(), crowd.astype(np.uint8).tolist())
    np.testing.assert_array_equal(box_iou_coco(d, g, crowd), theirs)
