"""Tests for ssd/data/transforms.py: SSD augmentation keeps boxes valid, is repeatable;
its crop sampler draws what torchvision's RandomIoUCrop draws, keeps the paper's rules,
and its step-by-step trace gives training's output bit for bit."""
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from ssd.data.procedural import make_scene
from ssd.data.transforms import (CROP_OUTCOMES, IMAGE_MEAN, AugmentSteps, CropAttempt,
                                 DetectionTransform, IoUCropSampler, eval_transform, judge_crop, ssd_transform,
                                 trace_augmentation, train_transform)


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(s, size=128) for s in range(6)]


@pytest.mark.parametrize("augment", ["ssd", "light", "none"])
def test_boxes_stay_valid_and_inside(scenes, augment):
    t = train_transform(96, augment)
    torch.manual_seed(0)
    for _ in range(4):
        for img, boxes, labels in scenes:
            x, tgt = t(img, boxes, labels)
            assert x.shape == (3, 96, 96) and x.dtype == torch.float32
            assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
            b = tgt["boxes"]
            assert b.shape == (tgt["labels"].shape[0], 4)
            assert ((b >= 0) & (b <= 1)).all()
            assert (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()  # SanitizeBoundingBoxes
            assert set(tgt["labels"].tolist()) <= set(labels.tolist())


def test_deterministic_under_seed(scenes):
    t = train_transform(96, "ssd")
    img, boxes, labels = scenes[1]
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        outs.append([t(img, boxes, labels) for _ in range(3)])
    for (xa, ta), (xb, tb) in zip(*outs):
        assert torch.equal(xa, xb) and torch.equal(ta["boxes"], tb["boxes"])
    torch.manual_seed(124)
    other = [t(img, boxes, labels) for _ in range(3)]
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(outs[0], other))


def test_ssd_augmentation_changes_scale(scenes):
    """Zoom out and IoU crop change object sizes (Sec. 2.2 / 3.6)."""
    t = train_transform(128, "ssd")
    img, boxes, labels = scenes[0]
    torch.manual_seed(0)
    ratios = set()
    for _ in range(30):
        _, tgt = t(img, boxes, labels)
        if len(tgt["boxes"]):
            w = (tgt["boxes"][:, 2] - tgt["boxes"][:, 0]).max().item()
            ratios.add(round(w / ((boxes[:, 2] - boxes[:, 0]).max().item() / 128), 1))
    assert min(ratios) < 0.8 and max(ratios) > 1.2


def test_flip_hand_checked():
    img = Image.new("RGB", (100, 50), (0, 0, 0))
    img.putpixel((10, 20), (255, 255, 255))
    t = DetectionTransform(v2.Compose([v2.RandomHorizontalFlip(p=1.0), v2.ToDtype(torch.float32, scale=True)]), 100)
    x, tgt = t(img, torch.tensor([[10.0, 20.0, 30.0, 40.0]]), torch.tensor([2]))
    assert torch.allclose(tgt["boxes"], torch.tensor([[0.70, 0.40, 0.90, 0.80]]))
    assert x[0, 20, 89] == 1.0 and x[0, 20, 10] == 0.0
    assert tgt["labels"].tolist() == [2]


def test_zoom_out_fills_with_mean():
    """The training pipeline's zoom out pastes the image on a mean-coloured canvas."""
    ops = train_transform(64, "ssd").pipeline.transforms
    zoom = next(o for o in ops if isinstance(o, v2.RandomZoomOut))
    fill = [int(round(255 * m)) for m in IMAGE_MEAN]
    assert zoom.fill[tv_tensors.Image] == fill and zoom.side_range == (1.0, 4.0)
    img = Image.new("RGB", (40, 40), (255, 255, 255))
    t = DetectionTransform(v2.Compose([v2.RandomZoomOut(fill=zoom.fill, side_range=(3.0, 3.0), p=1.0)]), 120)
    torch.manual_seed(0)
    x, tgt = t(img, torch.tensor([[0.0, 0.0, 40.0, 40.0]]), torch.tensor([1]))
    assert x.shape == (3, 120, 120)
    corners = {tuple(x[:, y, xx].tolist()) for y in (0, 119) for xx in (0, 119)}
    assert corners == {tuple(fill)}
    area = ((tgt["boxes"][0, 2] - tgt["boxes"][0, 0]) * (tgt["boxes"][0, 3] - tgt["boxes"][0, 1])).item()
    assert area == pytest.approx(1 / 9, rel=1e-3)


def test_eval_transform_resizes_only(scenes):
    img, boxes, labels = scenes[2]
    x, tgt = eval_transform(64)(img, boxes, labels)
    assert x.shape == (3, 64, 64)
    assert torch.allclose(tgt["boxes"], boxes / 128, atol=1e-5)
    assert torch.equal(tgt["labels"], labels)


def test_bad_augment_name():
    with pytest.raises(ValueError, match="augment must be one of"):
        train_transform(64, "heavy")


# ---------------------------------------------------------------- the traced crop sampler
def _voc_items(peer_data):
    """The mmdetection VOC2007 test photos with their boxes (difficult ones included)."""
    from ssd.data.formats.voc_xml import read_voc_xml

    root = peer_data / "mmdet" / "VOC2007"
    items = []
    for xml in sorted((root / "Annotations").glob("*.xml")):
        ann = read_voc_xml(xml)
        boxes = torch.tensor([o.box_xyxy for o in ann.objects], dtype=torch.float32).reshape(-1, 4)
        img = Image.open(root / "JPEGImages" / f"{xml.stem}.jpg").convert("RGB")
        items.append((img, boxes, torch.arange(1, boxes.shape[0] + 1)))
    return items


def _torchvision_ssd_pipeline(size: int) -> v2.Compose:
    """The SSD pipeline as this module built it before its steps could report (plain torchvision)."""
    fill = {tv_tensors.Image: [int(round(255 * m)) for m in IMAGE_MEAN], "others": 0}
    return v2.Compose([
        v2.RandomPhotometricDistort(p=0.5),
        v2.RandomZoomOut(fill=fill, side_range=(1.0, 4.0), p=0.5),
        v2.RandomIoUCrop(),
        v2.RandomHorizontalFlip(p=0.5),
        v2.Resize((size, size), antialias=False),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),
        v2.ToDtype(torch.float32, scale=True),
    ])


def _flat(img, boxes) -> list:
    """(image, boxes) as the flat input list a v2 transform's make_params receives."""
    return [tv_tensors.Image(v2.functional.pil_to_tensor(img)),
            tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(img.height, img.width))]


def _crop_params(crop, flat, seed):
    """`crop.make_params(flat)` after `torch.manual_seed(seed)`, and the RNG state after."""
    torch.manual_seed(seed)
    params = crop.make_params(flat)
    return params, torch.get_rng_state()


def _same_params(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(torch.equal(a[k], b[k]) if isinstance(a[k], torch.Tensor) else a[k] == b[k] for k in a)


def test_crop_sampler_draws_what_torchvision_draws(scenes, peer_data):
    """Same torch RNG state -> the same crop as torchvision's RandomIoUCrop, and the same RNG
    state afterwards (the same number of draws), on real photos and procedural scenes."""
    items = _voc_items(peer_data) + list(scenes)
    ours, theirs = IoUCropSampler(), v2.RandomIoUCrop()
    outcomes = set()
    for n, (img, boxes, _) in enumerate(items):
        flat = _flat(img, boxes)
        for seed in range(12):
            record = []
            ours.record = record
            p_ours, rng_ours = _crop_params(ours, flat, 1000 * n + seed)
            p_theirs, rng_theirs = _crop_params(theirs, flat, 1000 * n + seed)
            assert _same_params(p_ours, p_theirs), (n, seed, p_ours, p_theirs)
            assert torch.equal(rng_ours, rng_theirs), (n, seed)
            assert record[-1].accepted and not any(a.accepted for a in record[:-1])
            outcomes |= {a.outcome for a in record}
    assert outcomes == set(CROP_OUTCOMES) - {"empty"}  # every kind of attempt was seen and replayed


def test_crop_sampler_without_boxes_keeps_the_whole_image():
    """No box: no crop can be accepted, so both samplers draw options until 1.0 comes."""
    img = Image.new("RGB", (60, 40))
    boxes = torch.zeros((0, 4))
    ours = IoUCropSampler()
    ours.record = []
    p_ours, rng_ours = _crop_params(ours, _flat(img, boxes), 5)
    p_theirs, rng_theirs = _crop_params(v2.RandomIoUCrop(), _flat(img, boxes), 5)
    assert p_ours == p_theirs == {} and torch.equal(rng_ours, rng_theirs)
    assert ours.record[-1].outcome == "whole image"
    assert {a.outcome for a in ours.record[:-1]} <= {"aspect ratio", "no centre inside"}


@pytest.mark.parametrize("augment", ["ssd", "light"])
def test_train_transform_unchanged_against_plain_torchvision(scenes, augment):
    """The reporting subclasses change no draw: training's outputs equal the plain
    torchvision pipeline's for the same seeds, and the RNG ends in the same state."""
    ours = train_transform(96, augment)
    ops = _torchvision_ssd_pipeline(96).transforms
    if augment == "light":
        ops = ops[3:]
    plain = DetectionTransform(v2.Compose(ops), 96)
    for seed in range(8):
        for img, boxes, labels in scenes:
            outs = []
            for t in (ours, plain):
                torch.manual_seed(seed)
                x, tgt = t(img, boxes, labels)
                outs.append((x, tgt, torch.get_rng_state()))
            (xa, ta, ra), (xb, tb, rb) = outs
            assert torch.equal(xa, xb) and torch.equal(ta["boxes"], tb["boxes"])
            assert torch.equal(ta["labels"], tb["labels"]) and torch.equal(ra, rb)


@pytest.mark.parametrize("steps", [AugmentSteps(), AugmentSteps(photometric=False, flip=False),
                                   AugmentSteps(zoom_out=False), AugmentSteps(iou_crop=False, zoom_out_max=2.0)])
def test_trace_gives_the_transform_output(scenes, steps):
    """trace_augmentation = the transform, bit for bit, with the same RNG use."""
    t = ssd_transform(80, steps)
    for seed in range(6):
        img, boxes, labels = scenes[seed % len(scenes)]
        torch.manual_seed(seed)
        x, tgt = t(img, boxes, labels)
        rng = torch.get_rng_state()
        torch.manual_seed(seed)
        tr = trace_augmentation(t, img, boxes, labels)
        assert torch.equal(tr.image, x) and torch.equal(tr.target["boxes"], tgt["boxes"])
        assert torch.equal(tr.target["labels"], tgt["labels"]) and torch.equal(torch.get_rng_state(), rng)
        assert torch.equal(labels[tr.gt_index], tgt["labels"])
        names = [s.name for s in tr.stages]
        assert names[0] == "input" and names[-1] == "resize"
        assert ("IoU crop" in names) == steps.iou_crop and bool(tr.crop_attempts) == steps.iou_crop
        assert ("photometric distort" in names) == steps.photometric
    assert all(op.record is None for op in t.pipeline.transforms if hasattr(op, "record"))  # t untouched


def test_trace_stages_follow_the_boxes(scenes):
    """Each stage's boxes are the previous ones moved as the image was: zoom out shifts them
    by the pad, the crop by its corner, the flip mirrors them."""
    t = ssd_transform(96)
    img, boxes, labels = scenes[0]
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        tr = trace_augmentation(t, img, boxes, labels)
        assert torch.equal(tr.stage("input").boxes_xyxy_px, boxes)
        zoom, crop, flip = tr.stage("zoom out"), tr.stage("IoU crop"), tr.stage("flip")
        if zoom.fired:
            left, top, right, bottom = zoom.params["padding"]
            assert zoom.image.shape[-2:] == (img.height + top + bottom, img.width + left + right)
            assert torch.allclose(zoom.boxes_xyxy_px, boxes + torch.tensor([left, top, left, top]))
            seen.add("zoom")
        accepted = tr.crop_attempts[-1]
        assert accepted.accepted and crop.fired == (accepted.outcome != "whole image")
        if crop.fired:
            l, tp, r, b = accepted.crop_xyxy
            assert crop.image.shape[-2:] == (b - tp, r - l)
            inside = torch.tensor(accepted.centre_inside)
            shifted = (zoom.boxes_xyxy_px - torch.tensor([l, tp, l, tp])).clamp(min=0)
            shifted = torch.minimum(shifted, torch.tensor([r - l, b - tp, r - l, b - tp], dtype=torch.float32))
            assert torch.allclose(crop.boxes_xyxy_px[inside], shifted[inside])
            assert (crop.boxes_xyxy_px[~inside] == 0).all()  # zeroed, then dropped by Sanitize
            assert set(tr.gt_index.tolist()) <= set(torch.nonzero(inside).flatten().tolist())
            seen.add("crop")
        if flip.fired:
            w = crop.image.shape[-1]
            mirrored = crop.boxes_xyxy_px[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + torch.tensor([w, 0, w, 0])
            assert torch.allclose(flip.boxes_xyxy_px, mirrored)
            seen.add("flip")
    assert seen == {"zoom", "crop", "flip"}


def _iou_by_hand(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_crop_attempts_keep_the_paper_rules(scenes, peer_data):
    """Brute force over every recorded attempt: an accepted crop has a box centred inside
    with IoU >= the sampled minimum; a rejected one gives the true reason; the kept boxes
    are exactly those centred inside (less any the resize leaves under 1 px)."""
    items = _voc_items(peer_data) + list(scenes)
    t = ssd_transform(128, AugmentSteps(photometric=False, zoom_out=False, flip=False))
    checked = 0
    for n, (img, boxes, labels) in enumerate(items):
        for seed in range(6):
            torch.manual_seed(seed)
            tr = trace_augmentation(t, img, boxes, labels)
            b = boxes.tolist()
            for a in tr.crop_attempts:
                if a.crop_xyxy is None or a.outcome in ("whole image", "empty"):
                    continue
                l, tp, r, bt = a.crop_xyxy
                inside = [l < (x1 + x2) / 2 < r and tp < (y1 + y2) / 2 < bt for x1, y1, x2, y2 in b]
                assert list(a.centre_inside) == inside
                ious = [_iou_by_hand(bx, a.crop_xyxy) for bx, i in zip(b, inside) if i]
                if a.outcome == "no centre inside":
                    assert not ious
                elif a.outcome == "IoU below minimum":
                    assert max(ious) < a.min_iou + 1e-6
                else:
                    assert a.outcome == "accepted" and max(ious) >= a.min_iou - 1e-6
                    assert a.best_iou == pytest.approx(max(ious), abs=1e-5)
                    kept = set(tr.gt_index.tolist())
                    assert kept <= {g for g, i in enumerate(inside) if i}
                    checked += 1
            if tr.crop_attempts[-1].outcome == "whole image":
                assert tr.gt_index.tolist() == list(range(len(b)))
    assert checked > 20


def test_judge_crop_hand_checked():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [30.0, 0.0, 50.0, 10.0]])
    # Box 0: centre (5, 5) inside; IoU with (0, 0, 20, 10) = 100 / 200. Box 1: centre x 40 outside.
    outcome, inside, best = judge_crop(boxes, (0, 0, 20, 10), 0.5)
    assert outcome == "accepted" and inside.tolist() == [True, False] and best == pytest.approx(0.5)
    assert judge_crop(boxes, (0, 0, 20, 10), 0.6)[0] == "IoU below minimum"
    # A centre on the crop's edge is not inside (strict inequalities, as torchvision).
    assert judge_crop(boxes, (5, 0, 20, 10), 0.0)[:2][0] == "no centre inside"
    assert judge_crop(torch.zeros((0, 4)), (0, 0, 5, 5), 0.0)[0] == "no centre inside"


def test_crop_attempt_reasons():
    a = CropAttempt(0, 3, 0.5, None, "aspect ratio", size_wh=(90, 30))
    assert not a.accepted and "[0.5, 2]" in a.reason
    assert CropAttempt(1, -1, 1.0, (0, 0, 9, 9), "whole image").accepted


@pytest.mark.parametrize("bad", [0.5, 40.0, "4", None])
def test_augment_steps_bad_zoom(bad):
    with pytest.raises(ValueError, match="AugmentSteps.zoom_out_max"):
        AugmentSteps(zoom_out_max=bad)


def test_trace_without_boxes():
    img = Image.new("RGB", (50, 40), (10, 200, 30))
    torch.manual_seed(0)
    tr = trace_augmentation(ssd_transform(32), img, torch.zeros((0, 4)), torch.zeros((0,), dtype=torch.long))
    assert tr.image.shape == (3, 32, 32) and tr.target["boxes"].shape == (0, 4)
    assert tr.crop_attempts[-1].outcome == "whole image" and tr.gt_index.numel() == 0


def test_parse_augment_steps_switches_each_step():
    from ssd.data.transforms import parse_augment_steps, train_transform

    steps = parse_augment_steps("photometric, iou_crop,flip")
    assert steps == AugmentSteps(zoom_out=False)
    assert parse_augment_steps("none") == AugmentSteps(False, False, False, False)
    names = [type(op).__name__ for op in train_transform(64, "light", steps=steps).pipeline.transforms]
    assert names[:3] == ["PhotometricDistort", "IoUCropSampler", "HorizontalFlip"]
    for bad in ("zoom", "", "flip,blur"):
        with pytest.raises(ValueError, match="--augment-steps"):
            parse_augment_steps(bad)
