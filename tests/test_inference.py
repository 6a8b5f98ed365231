"""ssd.inference.run_stages: final detections equal torchvision's SSD on the same weights;
every per-level stage keeps level / cell / default-box index consistent with
`ssd.priors.default_boxes`."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models.detection import ssd300_vgg16

from ssd.boxes import decode
from ssd.inference import Detections, Stages, image_to_tensor, run_stages
from ssd.models import build
from ssd.priors import default_boxes


def _scene(w=320, h=240, seed=0) -> Image.Image:
    """A non-square image with some structure (rectangles on a gradient)."""
    rng = np.random.default_rng(seed)
    arr = np.zeros((h, w, 3), dtype=np.uint8)
    arr[..., 0] = np.linspace(0, 255, w, dtype=np.uint8)[None, :]
    arr[..., 1] = np.linspace(255, 0, h, dtype=np.uint8)[:, None]
    for _ in range(5):
        x0, y0 = rng.integers(0, w - 40), rng.integers(0, h - 40)
        arr[y0:y0 + rng.integers(20, 120), x0:x0 + rng.integers(20, 120)] = rng.integers(0, 255, 3)
    return Image.fromarray(arr)


@pytest.fixture(scope="module")
def ssd300(tmp_path_factory):
    """torchvision's ssd300_vgg16 (seeded random init), and our model loaded from its
    state dict saved to disk, plus both outputs on one image."""
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21).eval()
    path = tmp_path_factory.mktemp("w") / "tv_ssd300.pth"
    torch.save(tv.state_dict(), path)
    ours = build("ssd300_vgg16", num_classes=21, weights=path).eval()
    image = _scene()
    _, x = image_to_tensor(image)
    with torch.inference_mode():
        tv_out = tv([x])[0]
    # Random weights: all scores are near 1/21, so use a low per-level threshold.
    stages = run_stages(ours, image, level_score_thresh=0.06)
    return ours, tv_out, stages, tv


def test_raw_outputs_and_default_boxes_equal_torchvision(ssd300):
    """Our SSDNet loaded from torchvision's state dict file gives torchvision's head
    outputs, and our default boxes are torchvision's anchors."""
    ours, _, _, tv = ssd300
    x = torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = ours(x)
        tv_images, _ = tv.transform([x[0]])
        tv_features = list(tv.backbone(tv_images.tensors).values())
        tv_head = tv.head(tv_features)
    torch.testing.assert_close(out.cls_logits_flat(), tv_head["cls_logits"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(out.bbox_regression_flat(), tv_head["bbox_regression"], atol=1e-4, rtol=1e-4)
    for a, b in zip(out.features, tv_features):
        torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-4)
    tv_anchors = tv.anchor_generator._grid_default_boxes([list(s) for s in out.feature_sizes], [300, 300])
    torch.testing.assert_close(default_boxes(ours.cfg).cxcywh, tv_anchors, atol=0, rtol=0)


def test_final_detections_equal_torchvision(ssd300):
    _, tv_out, st, _ = ssd300
    assert isinstance(st, Stages) and isinstance(st.detections, Detections)
    assert len(st.detections) == len(tv_out["boxes"]) > 0
    torch.testing.assert_close(st.detections.boxes_xyxy_px, tv_out["boxes"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(st.detections.scores, tv_out["scores"], atol=1e-5, rtol=1e-5)
    assert torch.equal(st.detections.labels, tv_out["labels"])


def test_stage_shapes_and_frames(ssd300):
    model, _, st, _ = ssd300
    assert st.image_hw == (240, 320)
    assert st.scale_xy == pytest.approx((320 / 300, 240 / 300))
    assert st.input_tensor.shape == (3, 300, 300)
    assert 0.0 <= float(st.input_tensor.min()) and float(st.input_tensor.max()) <= 1.0
    assert st.feature_sizes == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert len(st.class_names) == 21 and st.class_names[0] == "background"
    k = model.cfg.boxes_per_location()
    for lvl, (h, w) in enumerate(st.feature_sizes):
        n = h * w * k[lvl]
        assert st.cls_logits[lvl].shape == (n, 21) and st.scores[lvl].shape == (n, 21)
        assert st.bbox_regression[lvl].shape == (n, 4) and st.boxes_xyxy_px[lvl].shape == (n, 4)
        torch.testing.assert_close(st.scores[lvl].sum(1), torch.ones(n))
        torch.testing.assert_close(st.scores[lvl], st.cls_logits[lvl].softmax(-1))
    boxes = torch.cat(st.boxes_xyxy_px)
    assert float(boxes[:, 0::2].min()) >= 0 and float(boxes[:, 0::2].max()) <= 320 + 1e-3
    assert float(boxes[:, 1::2].max()) <= 240 + 1e-3
    # Boxes are the deltas decoded with ssd.boxes.decode, clipped, scaled to the original.
    db = st.default_boxes
    dec = decode(torch.cat(st.bbox_regression), db.cxcywh).clamp(0, 1) * torch.tensor([320, 240, 320, 240])
    torch.testing.assert_close(boxes, dec, atol=2e-3, rtol=0)
    assert set(st.timings) >= {"preprocess", "backbone", "head", "decode", "nms", "total"}


def _check_consistent(det: Detections, st: Stages):
    db = st.default_boxes
    a = det.default_index
    assert torch.equal(det.level, db.level[a])
    assert torch.equal(det.row, db.row[a]) and torch.equal(det.col, db.col[a])
    assert torch.equal(det.box_index, db.box_index[a])
    fm = torch.tensor(st.feature_sizes)[det.level]
    assert torch.equal(det.feature_size, fm)
    flat_boxes = torch.cat(st.boxes_xyxy_px)
    flat_scores = torch.cat(st.scores)
    torch.testing.assert_close(det.boxes_xyxy_px, flat_boxes[a])
    torch.testing.assert_close(det.scores, flat_scores[a, det.labels])
    for n in range(min(len(det), 20)):  # flat_index(level, i, j, b) gives back the index
        lvl, i, j, b = (int(det.level[n]), int(det.row[n]), int(det.col[n]), int(det.box_index[n]))
        assert db.flat_index(lvl, i, j, b) == int(a[n])


def test_level_detections_consistent(ssd300):
    _, _, st, _ = ssd300
    assert len(st.level_detections) == 6
    assert sum(len(d) for d in st.level_detections) > 0
    for lvl, det in enumerate(st.level_detections):
        _check_consistent(det, st)
        assert (det.level == lvl).all()
        sl = st.default_boxes.level_slice(lvl)
        assert ((det.default_index >= sl.start) & (det.default_index < sl.stop)).all()
        assert (det.scores >= 0.06).all() and (det.labels >= 1).all()
        assert (det.scores[1:] <= det.scores[:-1]).all()  # sorted by score


def test_candidates_nms_final(ssd300):
    _, _, st, _ = ssd300
    _check_consistent(st.candidates, st)
    _check_consistent(st.detections, st)
    assert (st.candidates.scores > 0.01).all()
    assert torch.bincount(st.candidates.labels).max() <= 400
    assert len(st.nms) == len(st.candidates)
    keep = st.nms.keep[:200]
    assert torch.equal(st.detections.default_index, st.candidates.default_index[keep])
    removed = st.nms.suppressed_by >= 0
    assert torch.equal(st.candidates.labels[removed], st.candidates.labels[st.nms.suppressed_by[removed]])
    rec = st.detections.to_records(st.class_names)[0]
    assert set(rec) >= {"label", "score", "box_xyxy", "level", "feature_map", "cell", "default_index"}
    assert rec["feature_map"] == list(st.feature_sizes[rec["level"]])


def test_tensor_input_equals_pil():
    torch.manual_seed(0)
    model = build("compact256", num_classes=21).eval()
    st = run_stages(model, _scene(), level_score_thresh=0.06)
    _, x = image_to_tensor(_scene())
    st2 = run_stages(model, x, level_score_thresh=0.06)
    assert st2.image is None and st.image is not None
    assert torch.equal(st2.detections.default_index, st.detections.default_index)
    torch.testing.assert_close(st2.detections.boxes_xyxy_px, st.detections.boxes_xyxy_px)


def test_compact_thresholds_and_bad_input():
    torch.manual_seed(0)
    model = build("compact256", num_classes=4)
    model.train()
    img = Image.fromarray(np.full((50, 90, 3), 128, np.uint8)).convert("L")  # grey, non-RGB mode
    st = run_stages(model, img, detections_per_img=3, score_thresh=0.2, level_score_thresh=0.9)
    assert model.training  # mode restored
    assert len(st.detections) <= 3 and (st.candidates.scores > 0.2).all()
    assert st.image_hw == (50, 90) and st.image.mode == "RGB"
    assert st.class_names == ["background", "1", "2", "3"]
    model.class_names = ["background", "cat", "dog", "bird"]
    st = run_stages(model, torch.zeros(3, 64, 64, dtype=torch.uint8), score_thresh=0.0, detections_per_img=2)
    assert st.class_names[1] == "cat" and len(st.detections) == 2
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        run_stages(model, torch.zeros(1, 3, 64, 64))
    with pytest.raises(TypeError, match="PIL image"):
        run_stages(model, np.zeros((64, 64, 3)))
    with pytest.raises(ValueError, match="detections_per_img"):
        run_stages(model, torch.zeros(3, 64, 64), detections_per_img=-1)


def test_flat_outputs_follow_default_box_order():
    from ssd.models import build

    torch.manual_seed(0)
    model = build("compact256", num_classes=7).eval()
    stg = run_stages(model, torch.rand(3, 200, 240))
    a = len(stg.default_boxes)
    assert stg.cls_logits_flat().shape == (a, 7) and stg.bbox_regression_flat().shape == (a, 4)
    k = 2  # rows of level k sit at the level's slice of the flat order
    sl = stg.default_boxes.level_slice(k)
    assert torch.equal(stg.cls_logits_flat()[sl], stg.cls_logits[k])
    assert torch.equal(stg.bbox_regression_flat()[sl], stg.bbox_regression[k])


def test_stages_from_cached_raw_equal_run_stages():
    """A threshold change re-uses the network outputs: same result as a full run."""
    from ssd.inference import forward_raw, stages_from_raw
    from ssd.models import build

    torch.manual_seed(1)
    model = build("compact256", num_classes=7).eval()
    image = torch.rand(3, 180, 260)
    raw = forward_raw(model, image)
    for kw in ({}, {"score_thresh": 0.1, "nms_thresh": 0.3, "detections_per_img": 5}):
        a, b = run_stages(model, image, **kw), stages_from_raw(raw, **kw)
        assert torch.equal(a.detections.boxes_xyxy_px, b.detections.boxes_xyxy_px)
        assert torch.equal(a.detections.labels, b.detections.labels)
        assert torch.equal(a.nms.keep, b.nms.keep) and len(a.candidates) == len(b.candidates)
        assert [len(d) for d in a.level_detections] == [len(d) for d in b.level_detections]
    with pytest.raises(ValueError, match="detections_per_img"):
        stages_from_raw(raw, detections_per_img=-1)
