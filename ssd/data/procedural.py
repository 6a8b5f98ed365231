"""Procedural "shapes" scenes: a seeded, offline stand-in for a detection dataset.

Each scene is a textured, noisy background with 1..6 drawn objects of six classes.
Class is carried by *shape* (cat: pointed ears + whiskers; dog: floppy ears + snout;
bird; fish; car; house), never by colour: every instance picks its own colours, so a
detector has to learn silhouettes. Object sizes run from ~5% to ~90% of the image side
(log-uniform; `object_size=(min, max)` picks another range) so every level of an SSD pyramid gets ground truth to match (Sec. 2.2);
objects may overlap a little and may be cut by the image border (boxes are clipped to
the visible part, and objects with too little visible are not drawn at all, so no
visible object is left without a box).

`make_scene(seed)` is a pure function of the seed: same seed -> identical image bytes.
`scene_boxes(seed)` gives the same boxes and labels without rendering the image.
Datasets number their scenes `scene_seed(seed, i) = seed * 1_000_000 + i`, so two
datasets with different `seed` never share a scene (for i < 1e6).

Drawing lives in `ssd/data/drawing.py`.

Letters: G = objects (ground-truth boxes) in a scene, S = image side in pixels.
"""
from __future__ import annotations

import json
import math
import random
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset

from ssd.data.drawing import _background, _object_colour, draw_object
from ssd.data.formats import AnnotatedBox, write_voc_xml
from ssd.data.voc import split_path
from ssd.io import atomic_write, write_bytes_atomic, write_text_atomic

CLASSES = ("background", "cat", "dog", "bird", "fish", "car", "house")
NUM_CLASSES = len(CLASSES)  # 7 = compact256's default num_classes (background + 6)

MAX_SCENES_PER_SEED = 1_000_000  # scene_seed() keeps datasets of different seeds disjoint
MIN_SIZE_FRAC = 0.05  # smallest object: sqrt(w*h) as a fraction of the image side
MAX_SIZE_FRAC = 0.90  # largest object
MIN_VISIBLE_FRAC = 0.45  # an object cut by the border keeps at least this share of its area
MAX_OVERLAP = 0.30  # intersection / smaller box area allowed between two objects

# Width/height ratio range per class: the drawings fill their box tightly.
_ASPECT = {
    "cat": (0.85, 1.15),
    "dog": (0.80, 1.10),
    "bird": (1.15, 1.60),
    "fish": (1.50, 2.20),
    "car": (1.70, 2.50),
    "house": (0.70, 1.00),
}

def scene_seed(seed: int, index: int) -> int:
    """The make_scene seed of scene `index` of a dataset with base `seed`."""
    if not 0 <= index < MAX_SCENES_PER_SEED:
        raise ValueError(f"scene index must be in [0, {MAX_SCENES_PER_SEED}), got {index}")
    return int(seed) * MAX_SCENES_PER_SEED + int(index)


# ---------------------------------------------------------------- scenes


def _area(b) -> float:
    return max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])


def _inter(a, b) -> float:
    return _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))


def clip_box(box_xyxy, size: int):
    """Clip a pixel box to the image [0, size]; returns (clipped box, visible area share)."""
    x1, y1, x2, y2 = box_xyxy
    c = (min(max(x1, 0.0), size), min(max(y1, 0.0), size), min(max(x2, 0.0), size), min(max(y2, 0.0), size))
    full = _area(box_xyxy)
    return c, (_area(c) / full if full > 0 else 0.0)


ObjectSize = tuple[float, float]  # (min, max) object side sqrt(w*h) as fractions of the image side
DEFAULT_OBJECT_SIZE: ObjectSize = (MIN_SIZE_FRAC, MAX_SIZE_FRAC)


def check_object_size(object_size) -> ObjectSize:
    """Validate an object-size range (min, max), fractions of the image side; ValueError naming it."""
    try:
        lo, hi = (float(v) for v in object_size)
    except (TypeError, ValueError):
        raise ValueError(f"object_size must be two numbers (min, max), got {object_size!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi <= 1):
        raise ValueError(f"object_size must satisfy 0 < min <= max <= 1 (fractions of the image side), "
                         f"got {lo:g}, {hi:g}")
    return lo, hi


def parse_object_size(text: str) -> ObjectSize:
    """"0.03,0.12" -> (0.03, 0.12) (the `--object-size MIN,MAX` flag); ValueError naming the problem."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 2:
        raise ValueError(f"--object-size wants MIN,MAX (fractions of the image side), got {text!r}")
    try:
        return check_object_size((float(parts[0]), float(parts[1])))
    except ValueError as e:
        raise ValueError(f"--object-size {text!r}: {e}") from None


def _place_objects(img, rng: random.Random, bg_luma: float, size: int, max_objects: int,
                   object_size: ObjectSize) -> tuple[list, list]:
    """Place (and draw on `img`) 1..max_objects objects; returns (boxes px, labels).

    The rng stream it consumes depends only on the seed and these arguments, never on
    `img`'s size or pixels, which is what lets `scene_boxes` skip the full-size image.
    """
    lo, hi = object_size
    # Border-cut objects need a visible side of 3% of the image (or 60% of the smallest
    # size, for ranges that start below 5%): min(0.03, 0.6 * 0.05) = 0.03 by default.
    min_side = min(0.03, 0.6 * lo) * size
    n_target = rng.randint(1, max_objects)
    boxes: list[tuple[float, ...]] = []
    labels: list[int] = []
    names = CLASSES[1:]
    for _ in range(n_target * 8):  # placement attempts
        if len(boxes) >= n_target:
            break
        name = rng.choice(names)
        s = math.exp(rng.uniform(math.log(lo), math.log(hi))) * size
        ar = rng.uniform(*_ASPECT[name])
        w, h = s * math.sqrt(ar), s / math.sqrt(ar)
        w, h = min(w, 0.98 * size), min(h, 0.98 * size)
        # Centres may sit outside the image by up to 30% of the box, so borders cut objects.
        cx = rng.uniform(-0.3 * w, size + 0.3 * w)
        cy = rng.uniform(-0.3 * h, size + 0.3 * h)
        full = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        vis, frac = clip_box(full, size)
        if frac < MIN_VISIBLE_FRAC or min(vis[2] - vis[0], vis[3] - vis[1]) < min_side:
            continue  # too little visible: never drawn, so never unlabelled
        if any(_inter(vis, b) > MAX_OVERLAP * min(_area(vis), _area(b)) for b in boxes):
            continue
        draw_object(img, name, full, _object_colour(rng, bg_luma), rng)
        boxes.append(vis)
        labels.append(CLASSES.index(name))
    if not boxes:  # guarantee one object: a centred medium one
        name = rng.choice(names)
        full = (size * 0.3, size * 0.3, size * 0.7, size * 0.7)
        draw_object(img, name, full, _object_colour(rng, bg_luma), rng)
        boxes.append(full)
        labels.append(CLASSES.index(name))
    return boxes, labels


def _check_scene_args(size: int, max_objects: int, object_size) -> ObjectSize:
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    return check_object_size(object_size)


def make_scene(seed: int, size: int = 256, max_objects: int = 6,
               object_size: ObjectSize = DEFAULT_OBJECT_SIZE) -> tuple[Image.Image, Tensor, Tensor]:
    """One procedural scene.

    Args:
        seed: any int; the image is a pure function of (seed, size, max_objects, object_size).
        size: image side S in pixels.
        max_objects: at most this many objects (at least 1 is always drawn).
        object_size: (min, max) object side sqrt(w*h), fractions of S, drawn log-uniformly;
            the default (0.05, 0.90) gives the scenes the shipped model was trained on.
    Returns:
        (PIL RGB image S x S, boxes_xyxy (G, 4) float32 pixels clipped to the visible part,
        labels (G,) int64 in 1..len(CLASSES)-1).
    """
    object_size = _check_scene_args(size, max_objects, object_size)
    rng = random.Random(int(seed))
    np_rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    img, bg_luma = _background(rng, np_rng, size)
    boxes, labels = _place_objects(img, rng, bg_luma, size, max_objects, object_size)
    return (
        img,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
    )


_SCRATCH_SIDE = 8  # side of the throw-away canvas `scene_boxes` draws on


def scene_boxes(seed: int, size: int = 256, max_objects: int = 6,
                object_size: ObjectSize = DEFAULT_OBJECT_SIZE) -> tuple[Tensor, Tensor]:
    """The (boxes_xyxy px (G, 4), labels (G,)) of `make_scene(seed, size, ...)`, ~20x faster.

    The scene's random stream does not depend on the canvas (drawing consumes it the same
    way at any image size and colour), so the same code runs on an 8 x 8 scratch canvas
    and skips the full-size background. Equal to `make_scene` (tests check many seeds).
    """
    object_size = _check_scene_args(size, max_objects, object_size)
    rng = random.Random(int(seed))
    scratch_np_rng = np.random.default_rng(0)  # pixels only; the boxes never read it
    img, bg_luma = _background(rng, scratch_np_rng, _SCRATCH_SIDE)
    boxes, labels = _place_objects(img, rng, bg_luma, size, max_objects, object_size)
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), torch.tensor(labels, dtype=torch.int64)


def cat_and_dog_scene(size: int = 256) -> tuple[Image.Image, Tensor, Tensor]:
    """The paper's Figure 1 lesson: a small cat and a large dog on a plain background.

    For compact256 (256 px; levels 32/16/8/4/2/1; scales .07 .15 .33 .51 .69 .87) the
    cat (~0.31 of the side, 80 px) best matches the 8x8 level (s=0.33, 84 px, level 2)
    and the dog (~0.53, 136 px) the 4x4 level (s=0.51, 131 px, level 3), each centred
    on a cell of its level, as in Fig. 1 (b) and (c).
    Returns the same (image, boxes_xyxy px, labels) triple as `make_scene`.
    """
    rng = random.Random(20161)
    np_rng = np.random.default_rng(20161)
    img, _ = _background(random.Random(7), np_rng, size, plain=True)
    f = size / 256.0
    cat = (8 * f, 40 * f, 88 * f, 120 * f)  # centre (48, 80): an 8x8 cell centre (step 32)
    dog = (92 * f, 92 * f, 228 * f, 228 * f)  # centre (160, 160): a 4x4 cell centre (step 64)
    draw_object(img, "cat", cat, (235, 150, 60), rng)  # ginger cat
    draw_object(img, "dog", dog, (150, 100, 60), rng)  # brown dog
    boxes = torch.tensor([cat, dog], dtype=torch.float32)
    labels = torch.tensor([CLASSES.index("cat"), CLASSES.index("dog")], dtype=torch.int64)
    return img, boxes, labels


def to_target(boxes_xyxy: Tensor, labels: Tensor, size: int) -> dict[str, Tensor]:
    """Pixel boxes -> the training target dict: `boxes` (G, 4) xyxy normalised, `labels` (G,)."""
    return {"boxes": boxes_xyxy / float(size), "labels": labels.clone()}


class ProceduralDataset(Dataset):
    """`num_images` scenes of `make_scene(scene_seed(seed, i), size)`.

    Items: (image (3, S, S) float32 in [0, 1], {"boxes": (G, 4) xyxy normalised,
    "labels": (G,) int64}). `transform(image_pil, boxes_xyxy_px, labels)` may replace the
    default conversion (see `ssd.data.transforms`); it returns the same item format.
    `object_size` = (min, max) object side as fractions of S (see `make_scene`).
    `cache=True` keeps generated scenes (uint8) in memory: the second epoch is free.
    """

    def __init__(self, num_images: int, seed: int = 0, size: int = 256, transform=None, cache: bool = False,
                 object_size: ObjectSize = DEFAULT_OBJECT_SIZE):
        if not 0 < num_images <= MAX_SCENES_PER_SEED:
            raise ValueError(f"num_images must be in 1..{MAX_SCENES_PER_SEED}, got {num_images}")
        self.num_images, self.seed, self.size = int(num_images), int(seed), int(size)
        self.object_size = check_object_size(object_size)
        self.transform = transform
        self.class_names = CLASSES
        self._cache: dict[int, tuple[Image.Image, Tensor, Tensor]] | None = {} if cache else None

    def __len__(self) -> int:
        return self.num_images

    def scene(self, i: int) -> tuple[Image.Image, Tensor, Tensor]:
        """(PIL image, boxes_xyxy px, labels) of scene i, before any transform."""
        if not 0 <= i < self.num_images:
            raise IndexError(f"scene {i} out of range 0..{self.num_images - 1}")
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        out = make_scene(scene_seed(self.seed, i), self.size, object_size=self.object_size)
        if self._cache is not None:
            self._cache[i] = out
        return out

    def boxes(self, i: int) -> tuple[Tensor, Tensor]:
        """(boxes_xyxy px (G, 4), labels (G,)) of scene i, without rendering it (`scene_boxes`)."""
        if not 0 <= i < self.num_images:
            raise IndexError(f"scene {i} out of range 0..{self.num_images - 1}")
        if self._cache is not None and i in self._cache:
            return self._cache[i][1], self._cache[i][2]
        return scene_boxes(scene_seed(self.seed, i), self.size, object_size=self.object_size)

    def __getitem__(self, i: int):
        img, boxes, labels = self.scene(i)
        if self.transform is not None:
            return self.transform(img, boxes, labels)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)  # (S, S, 3) -> (3, S, S)
        return x.float() / 255.0, to_target(boxes, labels, self.size)


# ---------------------------------------------------------------- export to real formats


def save_image(path: Path, img: Image.Image, **params) -> Path:
    """Save `img` to `path` atomically (`ssd.io.atomic_write`), in the format of its suffix
    (".jpg" JPEG, ".png" PNG); `params` go to `Image.save` (e.g. quality=95)."""
    fmt = Image.registered_extensions()[Path(path).suffix.lower()]
    return atomic_write(path, lambda f: img.save(f, format=fmt, **params))


def write_voc(root, num_images: int, seed: int = 0, size: int = 256, val_fraction: float = 0.2) -> Path:
    """Write scenes as a Pascal VOC folder: JPEGImages/*.jpg, Annotations/*.xml,
    ImageSets/Main/{train,val,trainval}.txt. Returns the root path."""
    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(num_images):
        img, boxes, labels = make_scene(scene_seed(seed, i), size)
        stem = f"{seed:04d}_{i:06d}"
        ids.append(stem)
        save_image(root / "JPEGImages" / f"{stem}.jpg", img, quality=95)
        objects = [AnnotatedBox(CLASSES[lab], tuple(b)) for b, lab in zip(boxes.tolist(), labels.tolist())]
        # The writer turns the 0-based corners into VOC's 1-based pixels (xmin = x1 + 1).
        write_voc_xml(root / "Annotations" / f"{stem}.xml", f"{stem}.jpg", (size, size), objects)
    n_val = int(round(len(ids) * val_fraction))
    splits = {"train": ids[n_val:], "val": ids[:n_val], "trainval": ids}
    for name, lst in splits.items():
        write_text_atomic(split_path(root, name), "".join(s + "\n" for s in lst))
    return root


def write_coco(json_path, image_dir, num_images: int, seed: int = 0, size: int = 256) -> Path:
    """Write scenes as COCO: PNG images in `image_dir` and one instances JSON (bbox = x, y, w, h px)."""
    json_path, image_dir = Path(json_path), Path(image_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(num_images):
        img, boxes, labels = make_scene(scene_seed(seed, i), size)
        name = f"{seed:04d}_{i:06d}.png"
        save_image(image_dir / name, img)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for b, lab in zip(boxes.tolist(), labels.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": lab,
                 "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0}
            )
    cats = [{"id": k, "name": n} for k, n in enumerate(CLASSES) if k > 0]
    doc = {"images": images, "annotations": annotations, "categories": cats}
    write_bytes_atomic(json_path, json.dumps(doc).encode())
    return json_path


# ---------------------------------------------------------------- sample scenes for the app

SAMPLE_SEED = 9000  # sample scenes come from this dataset seed (never a training seed)


def write_samples(out_dir, num_scenes: int = 4, size: int = 256) -> dict:
    """Write `cat_and_dog.png` and `num_scenes` busy scenes `scene_<k>.png` (3+ objects,
    at least one cat or dog) with `annotations.json` = {file: {"boxes_xyxy": [[x1, y1, x2,
    y2], ...] px, "labels": [int, ...], "label_names": [str, ...]}}. Returns the annotations."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ann = {}

    def add(name: str, img: Image.Image, boxes: Tensor, labels: Tensor) -> None:
        save_image(out_dir / name, img)
        ann[name] = {
            "boxes_xyxy": [[round(v, 2) for v in b] for b in boxes.tolist()],
            "labels": labels.tolist(),
            "label_names": [CLASSES[k] for k in labels.tolist()],
        }

    add("cat_and_dog.png", *cat_and_dog_scene(size))
    i, k = 0, 0
    while k < num_scenes:
        img, boxes, labels = make_scene(scene_seed(SAMPLE_SEED, i), size)
        i += 1
        if len(labels) >= 3 and bool(((labels == 1) | (labels == 2)).any()):
            k += 1
            add(f"scene_{k}.png", img, boxes, labels)
    write_text_atomic(out_dir / "annotations.json", json.dumps(ann, indent=1))
    return ann

