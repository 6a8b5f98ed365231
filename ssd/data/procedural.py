"""Procedural "shapes" scenes: a seeded, offline stand-in for a detection dataset.

Each scene is a textured, noisy background with 1..6 drawn objects of six classes.
Class is carried by *shape* (cat: pointed ears + whiskers; dog: floppy ears + snout;
bird; fish; car; house), never by colour: every instance picks its own colours, so a
detector has to learn silhouettes. Object sizes run from ~5% to ~90% of the image side
(log-uniform) so every level of an SSD pyramid gets ground truth to match (Sec. 2.2);
objects may overlap a little and may be cut by the image border (boxes are clipped to
the visible part, and objects with too little visible are not drawn at all, so no
visible object is left without a box).

`make_scene(seed)` is a pure function of the seed: same seed -> identical image bytes.
Datasets number their scenes `scene_seed(seed, i) = seed * 1_000_000 + i`, so two
datasets with different `seed` never share a scene (for i < 1e6).

Letters: G = objects (ground-truth boxes) in a scene, S = image side in pixels.
"""
from __future__ import annotations

import colorsys
import json
import math
import random
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import Tensor
from torch.utils.data import Dataset

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

Colour = tuple[int, int, int]


def scene_seed(seed: int, index: int) -> int:
    """The make_scene seed of scene `index` of a dataset with base `seed`."""
    if not 0 <= index < MAX_SCENES_PER_SEED:
        raise ValueError(f"scene index must be in [0, {MAX_SCENES_PER_SEED}), got {index}")
    return int(seed) * MAX_SCENES_PER_SEED + int(index)


# ---------------------------------------------------------------- colours


def _hsv(h: float, s: float, v: float) -> Colour:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, min(max(s, 0.0), 1.0), min(max(v, 0.0), 1.0))
    return (int(r * 255), int(g * 255), int(b * 255))


def _luma(c: Colour) -> float:
    return (0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]) / 255.0


def _shade(c: Colour, f: float) -> Colour:
    """Darker (f < 1) or lighter (f > 1) version of a colour."""
    if f <= 1:
        return tuple(int(x * f) for x in c)  # type: ignore[return-value]
    return tuple(int(x + (255 - x) * (f - 1)) for x in c)  # type: ignore[return-value]


def _object_colour(rng: random.Random, bg_luma: float) -> Colour:
    """A random colour that stands out from the background by lightness (shape, not hue,
    tells the class; contrast only makes the shape visible)."""
    h, s = rng.random(), rng.uniform(0.25, 0.95)
    # Push the value away from the background's lightness.
    v = rng.uniform(0.65, 1.0) if bg_luma < 0.5 else rng.uniform(0.12, 0.45)
    return _hsv(h, s, v)


def _contrast(c: Colour) -> Colour:
    """Dark detail on light parts, light detail on dark parts."""
    return (20, 20, 20) if _luma(c) > 0.45 else (235, 235, 235)


# ---------------------------------------------------------------- backgrounds


def _background(rng: random.Random, np_rng: np.random.Generator, size: int, plain: bool = False):
    """Textured noisy background; returns (PIL image, mean lightness in [0, 1])."""
    dark = rng.random() < 0.5
    v0 = rng.uniform(0.1, 0.35) if dark else rng.uniform(0.6, 0.92)
    c1 = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.6), v0), dtype=np.float32)
    c2 = np.array(_hsv(rng.random(), rng.uniform(0.0, 0.6), v0 + rng.uniform(-0.08, 0.08)), dtype=np.float32)
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c1[None, None, :] * (1 - t[..., None]) + c2[None, None, :] * t[..., None]  # (S, S, 3)
    if not plain:
        # Low-frequency blotches: upsampled coarse noise.
        cells = rng.choice([4, 8, 16])
        coarse = np_rng.normal(0, rng.uniform(4, 18), size=(cells, cells, 3)).astype(np.float32)
        blot = np.asarray(
            Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8)).resize((size, size), Image.BILINEAR),
            dtype=np.float32,
        ) - 128
        img = img + blot
    img_pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")
    if not plain:
        _texture(img_pil, rng, size, dark)
    noise_sigma = rng.uniform(1, 5) if plain else rng.uniform(3, 22)
    arr = np.asarray(img_pil, dtype=np.float32) + np_rng.normal(0, noise_sigma, size=(size, size, 3))
    out = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")
    return out, float(_luma(tuple(int(x) for x in np.asarray(out).reshape(-1, 3).mean(0))))


def _texture(img: Image.Image, rng: random.Random, size: int, dark: bool) -> None:
    """Low-contrast clutter: stripes, checker, grass strokes or rings (no object shapes)."""
    d = ImageDraw.Draw(img)
    base = np.asarray(img).reshape(-1, 3).mean(0)
    delta = rng.uniform(10, 35) * (1 if dark else -1)
    tex = tuple(int(min(max(x + delta + rng.uniform(-15, 15), 0), 255)) for x in base)
    kind = rng.choice(["stripes", "checker", "grass", "rings", "none"])
    if kind == "stripes":
        period = rng.randint(8, 40)
        w = rng.randint(2, max(2, period // 2))
        if rng.random() < 0.5:
            for x in range(rng.randint(0, period), size, period):
                d.rectangle([x, 0, x + w, size], fill=tex)
        else:
            for y in range(rng.randint(0, period), size, period):
                d.rectangle([0, y, size, y + w], fill=tex)
    elif kind == "checker":
        cell = rng.randint(12, 48)
        for i in range(0, size, cell):
            for j in range(0, size, cell):
                if ((i // cell) + (j // cell)) % 2 == 0:
                    d.rectangle([j, i, j + cell - 1, i + cell - 1], fill=tex)
    elif kind == "grass":
        for _ in range(rng.randint(40, 160)):
            x, y = rng.uniform(0, size), rng.uniform(0, size)
            ln = rng.uniform(4, 18)
            a = rng.uniform(-0.5, 0.5) - math.pi / 2
            d.line([x, y, x + ln * math.cos(a), y + ln * math.sin(a)], fill=tex, width=1)
    elif kind == "rings":
        for _ in range(rng.randint(3, 10)):
            x, y, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(5, size / 3)
            d.ellipse([x - r, y - r, x + r, y + r], outline=tex, width=rng.randint(1, 3))


# ---------------------------------------------------------------- objects
# Each drawer fills the box (x1, y1, x2, y2) tightly; P(u, v) maps box-relative
# coordinates in [0, 1] to pixels.


def _mapper(box, mirror: bool = False) -> Callable[[float, float], tuple[float, float]]:
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1

    def p(u: float, v: float) -> tuple[float, float]:
        if mirror:
            u = 1.0 - u
        return (x1 + u * w, y1 + v * h)

    return p


def _ell(d: ImageDraw.ImageDraw, p, u1, v1, u2, v2, **kw) -> None:
    a, b = p(u1, v1), p(u2, v2)
    d.ellipse([min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])], **kw)


def _rect(d: ImageDraw.ImageDraw, p, u1, v1, u2, v2, **kw) -> None:
    a, b = p(u1, v1), p(u2, v2)
    d.rectangle([min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])], **kw)


def _lw(box, frac: float) -> int:
    """Line width proportional to the box size, at least 1 px."""
    return max(1, int(round(frac * min(box[2] - box[0], box[3] - box[1]))))


def _draw_cat(d, box, col: Colour, rng: random.Random) -> None:
    """Cat face: round head, two pointed ears, slit-pupil eyes, pink nose, whiskers."""
    p = _mapper(box)
    inner = _shade(col, 1.5) if _luma(col) < 0.5 else _shade(col, 0.7)
    d.polygon([p(0.12, 0.50), p(0.20, 0.0), p(0.48, 0.30)], fill=col)  # left ear (pointed)
    d.polygon([p(0.88, 0.50), p(0.80, 0.0), p(0.52, 0.30)], fill=col)  # right ear
    d.polygon([p(0.20, 0.40), p(0.23, 0.12), p(0.38, 0.30)], fill=inner)
    d.polygon([p(0.80, 0.40), p(0.77, 0.12), p(0.62, 0.30)], fill=inner)
    _ell(d, p, 0.12, 0.22, 0.88, 1.0, fill=col)  # head
    eye = _hsv(rng.choice([0.15, 0.3, 0.55]), 0.8, 0.9)
    for u in (0.30, 0.58):
        _ell(d, p, u, 0.46, u + 0.12, 0.60, fill=eye)
        _ell(d, p, u + 0.045, 0.46, u + 0.075, 0.60, fill=(10, 10, 10))  # slit pupil
    d.polygon([p(0.44, 0.68), p(0.56, 0.68), p(0.50, 0.76)], fill=(240, 120, 150))  # nose
    wc, lw = _contrast(col), _lw(box, 0.02)
    for v_end in (0.70, 0.80, 0.90):  # whiskers reach the box sides
        d.line([p(0.38, 0.78), p(0.0, v_end)], fill=wc, width=lw)
        d.line([p(0.62, 0.78), p(1.0, v_end)], fill=wc, width=lw)


def _draw_dog(d, box, col: Colour, rng: random.Random) -> None:
    """Dog face: long head, floppy ears hanging at the sides, pale snout, big nose, tongue."""
    p = _mapper(box)
    ear = _shade(col, 0.55) if rng.random() < 0.7 else _object_colour(rng, 1 - _luma(col))
    _ell(d, p, 0.16, 0.0, 0.84, 0.86, fill=col)  # head
    _ell(d, p, 0.0, 0.06, 0.32, 0.72, fill=ear)  # floppy ears
    _ell(d, p, 0.68, 0.06, 1.0, 0.72, fill=ear)
    snout = _shade(col, 1.6) if _luma(col) < 0.6 else _shade(col, 0.8)
    _ell(d, p, 0.28, 0.48, 0.72, 0.92, fill=snout)
    _ell(d, p, 0.40, 0.50, 0.60, 0.64, fill=(15, 15, 15))  # nose
    _ell(d, p, 0.43, 0.80, 0.57, 1.0, fill=(225, 80, 100))  # tongue
    d.line([p(0.50, 0.64), p(0.50, 0.80)], fill=(15, 15, 15), width=_lw(box, 0.025))
    for u in (0.32, 0.58):
        _ell(d, p, u, 0.28, u + 0.10, 0.40, fill=(245, 245, 245))
        _ell(d, p, u + 0.02, 0.30, u + 0.08, 0.38, fill=(10, 10, 10))


def _draw_bird(d, box, col: Colour, rng: random.Random) -> None:
    """Bird side view: oval body, round head, triangular beak, dark wing, tail, legs."""
    p = _mapper(box, mirror=rng.random() < 0.5)
    _ell(d, p, 0.12, 0.30, 0.78, 0.84, fill=col)  # body
    d.polygon([p(0.0, 0.35), p(0.20, 0.52), p(0.0, 0.66)], fill=col)  # tail
    _ell(d, p, 0.58, 0.04, 0.90, 0.46, fill=col)  # head
    d.polygon([p(0.88, 0.18), p(1.0, 0.27), p(0.88, 0.33)], fill=(240, 170, 30))  # beak
    wing = _shade(col, 0.55) if _luma(col) > 0.3 else _shade(col, 1.7)
    d.polygon([p(0.25, 0.45), p(0.62, 0.42), p(0.40, 0.74)], fill=wing)
    _ell(d, p, 0.72, 0.14, 0.80, 0.24, fill=(10, 10, 10))  # eye
    lw = _lw(box, 0.04)
    d.line([p(0.40, 0.82), p(0.38, 1.0)], fill=(200, 130, 30), width=lw)
    d.line([p(0.52, 0.82), p(0.54, 1.0)], fill=(200, 130, 30), width=lw)


def _draw_fish(d, box, col: Colour, rng: random.Random) -> None:
    """Fish side view: lens body, forked tail triangle, dorsal fin, stripes, eye."""
    p = _mapper(box, mirror=rng.random() < 0.5)
    fin = _shade(col, 0.6) if _luma(col) > 0.3 else _shade(col, 1.7)
    d.polygon([p(0.0, 0.05), p(0.30, 0.50), p(0.0, 0.95)], fill=fin)  # tail
    d.polygon([p(0.45, 0.22), p(0.55, 0.0), p(0.72, 0.22)], fill=fin)  # dorsal fin
    _ell(d, p, 0.20, 0.14, 1.0, 0.86, fill=col)  # body
    lw = _lw(box, 0.06)
    for u in (0.45, 0.60):
        d.line([p(u, 0.22), p(u, 0.78)], fill=fin, width=lw)
    _ell(d, p, 0.80, 0.32, 0.90, 0.48, fill=(245, 245, 245))
    _ell(d, p, 0.83, 0.36, 0.88, 0.44, fill=(10, 10, 10))


def _draw_car(d, box, col: Colour, rng: random.Random) -> None:
    """Car side view: body, cabin with windows, two black wheels with hubs."""
    p = _mapper(box, mirror=rng.random() < 0.5)
    d.polygon([p(0.18, 0.42), p(0.30, 0.02), p(0.70, 0.02), p(0.84, 0.42)], fill=col)  # cabin
    glass = (170, 210, 235) if _luma(col) < 0.7 else (60, 90, 120)
    d.polygon([p(0.26, 0.40), p(0.34, 0.10), p(0.48, 0.10), p(0.48, 0.40)], fill=glass)
    d.polygon([p(0.53, 0.40), p(0.53, 0.10), p(0.67, 0.10), p(0.77, 0.40)], fill=glass)
    _rect(d, p, 0.0, 0.38, 1.0, 0.80, fill=col)  # body
    _rect(d, p, 0.93, 0.46, 1.0, 0.56, fill=(250, 230, 120))  # headlight
    for u in (0.24, 0.76):
        _ell(d, p, u - 0.11, 0.60, u + 0.11, 1.0, fill=(20, 20, 20))  # wheel
        _ell(d, p, u - 0.05, 0.72, u + 0.05, 0.88, fill=(170, 170, 170))  # hub


def _draw_house(d, box, col: Colour, rng: random.Random) -> None:
    """House: square walls, triangular roof, door, window with a cross."""
    p = _mapper(box)
    roof = _object_colour(rng, 1 - _luma(col)) if rng.random() < 0.5 else _shade(col, 0.5)
    _rect(d, p, 0.68, 0.04, 0.80, 0.30, fill=_shade(roof, 0.8))  # chimney
    _rect(d, p, 0.10, 0.44, 0.90, 1.0, fill=col)  # walls
    d.polygon([p(0.0, 0.48), p(0.50, 0.0), p(1.0, 0.48)], fill=roof)  # roof
    _rect(d, p, 0.20, 0.66, 0.40, 1.0, fill=_shade(col, 0.45))  # door
    win = (250, 240, 170)
    _rect(d, p, 0.54, 0.58, 0.78, 0.80, fill=win)
    lw = _lw(box, 0.03)
    d.line([p(0.66, 0.58), p(0.66, 0.80)], fill=(40, 40, 40), width=lw)
    d.line([p(0.54, 0.69), p(0.78, 0.69)], fill=(40, 40, 40), width=lw)


_DRAWERS = {
    "cat": _draw_cat,
    "dog": _draw_dog,
    "bird": _draw_bird,
    "fish": _draw_fish,
    "car": _draw_car,
    "house": _draw_house,
}


def draw_object(img: Image.Image, name: str, box_xyxy, colour: Colour, rng: random.Random) -> None:
    """Draw one object of class `name` filling `box_xyxy` (pixels, may extend past the border)."""
    if name not in _DRAWERS:
        raise ValueError(f"unknown object class {name!r}; choose one of {sorted(_DRAWERS)}")
    _DRAWERS[name](ImageDraw.Draw(img), tuple(float(v) for v in box_xyxy), colour, rng)


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


def make_scene(seed: int, size: int = 256, max_objects: int = 6) -> tuple[Image.Image, Tensor, Tensor]:
    """One procedural scene.

    Args:
        seed: any int; the image is a pure function of (seed, size, max_objects).
        size: image side S in pixels.
        max_objects: at most this many objects (at least 1 is always drawn).
    Returns:
        (PIL RGB image S x S, boxes_xyxy (G, 4) float32 pixels clipped to the visible part,
        labels (G,) int64 in 1..len(CLASSES)-1).
    """
    if size < 32:
        raise ValueError(f"size must be >= 32 px, got {size}")
    if max_objects < 1:
        raise ValueError(f"max_objects must be >= 1, got {max_objects}")
    rng = random.Random(int(seed))
    np_rng = np.random.default_rng(int(seed) & 0xFFFFFFFFFFFFFFFF)
    img, bg_luma = _background(rng, np_rng, size)
    n_target = rng.randint(1, max_objects)
    boxes: list[tuple[float, ...]] = []
    labels: list[int] = []
    names = CLASSES[1:]
    for _ in range(n_target * 8):  # placement attempts
        if len(boxes) >= n_target:
            break
        name = rng.choice(names)
        s = math.exp(rng.uniform(math.log(MIN_SIZE_FRAC), math.log(MAX_SIZE_FRAC))) * size
        ar = rng.uniform(*_ASPECT[name])
        w, h = s * math.sqrt(ar), s / math.sqrt(ar)
        w, h = min(w, 0.98 * size), min(h, 0.98 * size)
        # Centres may sit outside the image by up to 30% of the box, so borders cut objects.
        cx = rng.uniform(-0.3 * w, size + 0.3 * w)
        cy = rng.uniform(-0.3 * h, size + 0.3 * h)
        full = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        vis, frac = clip_box(full, size)
        if frac < MIN_VISIBLE_FRAC or min(vis[2] - vis[0], vis[3] - vis[1]) < 0.03 * size:
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
    return (
        img,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(labels, dtype=torch.int64),
    )


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
    `cache=True` keeps generated scenes (uint8) in memory: the second epoch is free.
    """

    def __init__(self, num_images: int, seed: int = 0, size: int = 256, transform=None, cache: bool = False):
        if not 0 < num_images <= MAX_SCENES_PER_SEED:
            raise ValueError(f"num_images must be in 1..{MAX_SCENES_PER_SEED}, got {num_images}")
        self.num_images, self.seed, self.size = int(num_images), int(seed), int(size)
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
        out = make_scene(scene_seed(self.seed, i), self.size)
        if self._cache is not None:
            self._cache[i] = out
        return out

    def __getitem__(self, i: int):
        img, boxes, labels = self.scene(i)
        if self.transform is not None:
            return self.transform(img, boxes, labels)
        x = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)  # (S, S, 3) -> (3, S, S)
        return x.float() / 255.0, to_target(boxes, labels, self.size)


# ---------------------------------------------------------------- export to real formats


def write_voc(root, num_images: int, seed: int = 0, size: int = 256, val_fraction: float = 0.2) -> Path:
    """Write scenes as a Pascal VOC folder: JPEGImages/*.jpg, Annotations/*.xml,
    ImageSets/Main/{train,val,trainval}.txt. Returns the root path."""
    from xml.etree import ElementTree as ET

    root = Path(root)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ids = []
    for i in range(num_images):
        img, boxes, labels = make_scene(scene_seed(seed, i), size)
        stem = f"{seed:04d}_{i:06d}"
        ids.append(stem)
        img.save(root / "JPEGImages" / f"{stem}.jpg", quality=95)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = f"{stem}.jpg"
        sz = ET.SubElement(ann, "size")
        for tag, v in (("width", size), ("height", size), ("depth", 3)):
            ET.SubElement(sz, tag).text = str(v)
        for b, lab in zip(boxes.tolist(), labels.tolist()):
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = CLASSES[lab]
            ET.SubElement(obj, "difficult").text = "0"
            bb = ET.SubElement(obj, "bndbox")
            # VOC pixel coordinates are 1-based inclusive: xmin = x1 + 1, xmax = x2.
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (b[0] + 1, b[1] + 1, b[2], b[3])):
                ET.SubElement(bb, tag).text = f"{v:.1f}"
        ET.ElementTree(ann).write(root / "Annotations" / f"{stem}.xml")
    n_val = int(round(len(ids) * val_fraction))
    splits = {"train": ids[n_val:], "val": ids[:n_val], "trainval": ids}
    for name, lst in splits.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(s + "\n" for s in lst))
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
        img.save(image_dir / name)
        images.append({"id": i + 1, "file_name": name, "width": size, "height": size})
        for b, lab in zip(boxes.tolist(), labels.tolist()):
            w, h = b[2] - b[0], b[3] - b[1]
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": lab,
                 "bbox": [b[0], b[1], w, h], "area": w * h, "iscrowd": 0}
            )
    cats = [{"id": k, "name": n} for k, n in enumerate(CLASSES) if k > 0]
    json_path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": cats}))
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
        img.save(out_dir / name)
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
    (out_dir / "annotations.json").write_text(json.dumps(ann, indent=1))
    return ann

