"""Tests for ssd/data/procedural.py: seeded scenes, their boxes, the cat-and-dog scene."""
import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from ssd.config import compact256
from ssd.data import procedural
from ssd.data.procedural import (
    CLASSES,
    ProceduralDataset,
    cat_and_dog_scene,
    make_scene,
    scene_seed,
)
from ssd.priors import default_boxes


def test_classes_match_compact256_default():
    assert CLASSES[:3] == ("background", "cat", "dog")
    assert len(CLASSES) == compact256().num_classes == procedural.NUM_CLASSES


def test_same_seed_same_bytes_other_seed_differs():
    a, ba, la = make_scene(123)
    b, bb, lb = make_scene(123)
    c, _, _ = make_scene(124)
    assert a.tobytes() == b.tobytes()
    assert torch.equal(ba, bb) and torch.equal(la, lb)
    assert a.tobytes() != c.tobytes()


@pytest.mark.parametrize("size", [64, 256, 300])
def test_scene_boxes_valid(size):
    for seed in range(20):
        img, boxes, labels = make_scene(seed, size=size)
        assert img.size == (size, size) and img.mode == "RGB"
        assert boxes.dtype == torch.float32 and boxes.shape == (labels.shape[0], 4)
        assert labels.dtype == torch.int64 and labels.numel() >= 1
        assert ((labels >= 1) & (labels < len(CLASSES))).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
        assert (boxes >= 0).all() and (boxes <= size).all()


def test_scenes_span_sizes_classes_and_borders():
    sides, classes, cut, per_image, overlaps = [], set(), 0, [], 0
    for seed in range(150):
        _, boxes, labels = make_scene(seed)
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sides += (torch.sqrt(w * h) / 256).tolist()
        classes |= set(labels.tolist())
        cut += int(((boxes[:, :2] <= 0) | (boxes[:, 2:] >= 256)).any(dim=1).sum())
        per_image.append(len(labels))
        iou = box_iou(boxes, boxes) - torch.eye(len(boxes))
        overlaps += int((iou > 0).sum()) // 2
    assert min(sides) < 0.08 and max(sides) > 0.7  # every pyramid level gets objects
    assert classes == set(range(1, len(CLASSES)))
    assert cut > 20  # objects cut by the image border
    assert max(per_image) >= 5 and np.mean(per_image) > 2  # several objects per image
    assert overlaps > 5  # partial overlaps happen


def test_colours_vary_within_a_class():
    """Colour must not tell the class: cats come in many colours."""
    means = []
    for seed in range(60):
        img, boxes, labels = make_scene(seed)
        arr = np.asarray(img, dtype=np.float32)
        for b, lab in zip(boxes.tolist(), labels.tolist()):
            if lab == CLASSES.index("cat") and (b[2] - b[0]) > 30:
                x1, y1, x2, y2 = (int(v) for v in b)
                means.append(arr[y1:y2, x1:x2].reshape(-1, 3).mean(0))
    assert len(means) >= 3
    assert np.std(np.stack(means), axis=0).max() > 25


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        make_scene(0, size=8)
    with pytest.raises(ValueError, match="max_objects"):
        make_scene(0, max_objects=0)
    with pytest.raises(ValueError, match="scene index"):
        scene_seed(0, -1)
    with pytest.raises(ValueError, match="num_images"):
        ProceduralDataset(0, seed=0)


def test_cat_and_dog_scene_matches_figure_1_levels():
    """Fig. 1: the cat's best default box is on the 8x8 map, the dog's on the 4x4 map."""
    img, boxes, labels = cat_and_dog_scene()
    assert img.size == (256, 256)
    assert labels.tolist() == [CLASSES.index("cat"), CLASSES.index("dog")]
    db = default_boxes(compact256())
    iou = box_iou(boxes / 256, db.xyxy)  # (2, A)
    best = iou.argmax(dim=1)
    assert db.level[best].tolist() == [2, 3]
    assert db.feature_maps[2] == 8 and db.feature_maps[3] == 4
    assert (iou.max(dim=1).values > 0.8).all()
    # and the scene is deterministic
    assert cat_and_dog_scene()[0].tobytes() == img.tobytes()


def test_dataset_items_and_disjoint_seeds():
    ds = ProceduralDataset(5, seed=3, size=128, cache=True)
    assert len(ds) == 5
    x, t = ds[2]
    assert x.shape == (3, 128, 128) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    img, boxes, labels = make_scene(scene_seed(3, 2), 128)
    assert torch.allclose(t["boxes"], boxes / 128) and torch.equal(t["labels"], labels)
    np.testing.assert_array_equal((x * 255).round().byte().permute(1, 2, 0).numpy(), np.asarray(img))
    assert ds.scene(2) is ds.scene(2)  # cached
    with pytest.raises(IndexError):
        ds.scene(5)
    other = ProceduralDataset(5, seed=4, size=128)
    assert not any(torch.equal(ds[i][0], other[j][0]) for i in range(5) for j in range(5))


# ---------------------------------------------------------------- object-size range, boxes only

# sha256 of (image bytes, boxes, labels) of seeds 0..39 at 256 and 300 px, taken from the
# generator before the object-size range existed: the default must stay byte-identical.
_SCENES_BEFORE_OBJECT_SIZE = "435db3f0ad5199c73479dcc29921403da4ac3c36903e54f5f404f9cd87241914"


def test_default_object_size_reproduces_todays_scenes_byte_identically():
    import hashlib

    h = hashlib.sha256()
    for size in (256, 300):
        for seed in range(40):
            img, b, lab = make_scene(seed, size)
            h.update(img.tobytes())
            h.update(b.numpy().tobytes())
            h.update(lab.numpy().tobytes())
    assert h.hexdigest() == _SCENES_BEFORE_OBJECT_SIZE


@pytest.mark.parametrize("object_size", [(0.05, 0.90), (0.03, 0.12), (0.4, 1.0)])
def test_scene_boxes_equal_make_scene(object_size):
    ds = ProceduralDataset(40, seed=3, size=300, object_size=object_size)
    for i in range(40):
        _, boxes, labels = ds.scene(i)
        fast_boxes, fast_labels = ds.boxes(i)
        assert torch.equal(boxes, fast_boxes) and torch.equal(labels, fast_labels)
        assert torch.equal(fast_boxes, procedural.scene_boxes(scene_seed(3, i), 300, object_size=object_size)[0])


def test_object_size_range_is_respected():
    sides = []
    for seed in range(150):
        boxes, _ = procedural.scene_boxes(seed, 256, object_size=(0.03, 0.12))
        w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        sides += (torch.sqrt(w * h) / 256).tolist()
    # Clipping at the border only shrinks boxes; the fallback object (0.4) is the one exception.
    small = [s for s in sides if s < 0.39]
    assert len(small) > 0.95 * len(sides)
    assert max(small) <= 0.12 + 1e-6 and min(small) < 0.04


def test_bad_object_size_names_the_problem():
    with pytest.raises(ValueError, match="0 < min <= max <= 1"):
        make_scene(0, object_size=(0.5, 0.1))
    with pytest.raises(ValueError, match="0 < min <= max <= 1"):
        ProceduralDataset(3, object_size=(0.0, 0.5))
    with pytest.raises(ValueError, match="two numbers"):
        procedural.scene_boxes(0, object_size=("a", 1))
    with pytest.raises(ValueError, match="--object-size wants MIN,MAX.*'x'"):
        procedural.parse_object_size("x")
    with pytest.raises(ValueError, match="--object-size '0.1,nan'"):
        procedural.parse_object_size("0.1,nan")
    assert procedural.parse_object_size(" 0.03, 0.12") == (0.03, 0.12)
