"""Tests for ssd/data/transforms.py: SSD augmentation keeps boxes valid, is repeatable."""
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors
from torchvision.transforms import v2

from ssd.data.procedural import make_scene
from ssd.data.transforms import IMAGE_MEAN, DetectionTransform, eval_transform, train_transform


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
