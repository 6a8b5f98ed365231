"""Drawing for the procedural scenes: colours, textured backgrounds, and one drawing per
class (cat: pointed ears + whiskers; dog: floppy ears + snout; bird; fish; car; house).

Class is carried by shape, never by colour: `_object_colour` picks each instance's
colour at random against the background. Every function takes its random generator
explicitly, so a scene stays a pure function of its seed.
"""
from __future__ import annotations

import colorsys
import math
import random
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

Colour = tuple[int, int, int]

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
