"""Built-in sample scenes and image loading for the explorer.

Samples are `samples/*.png` with their boxes in `samples/annotations.json`
({file: {"boxes_xyxy": [[x1, y1, x2, y2], ...], "labels": [int or name, ...],
"label_names": [name, ...] (optional)}}, pixels). When that folder is missing, the
scenes are generated on the fly by `ssd.data.procedural`.
Every sample has a stable id: its file name, or "procedural:<name>".
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from explorer.paths import SAMPLES_DIR
from ssd.data.procedural import CLASSES, cat_and_dog_scene, make_scene
from ssd.images import load_image

CAT_AND_DOG = "cat_and_dog.png"
# Largest image the app accepts, in pixels (w * h); larger uploads are refused.
MAX_PIXELS = 40_000_000
UPLOAD_TYPES = ["jpg", "jpeg", "png", "webp", "bmp", "gif"]
# Longest side of the copy the network and figures work from. The model sees 300 or 512
# px and a figure background 768, so a 40 MP photo is shrunk once, before any float copy
# of it exists: its full-size float tensors were the +1.8 GB peak of a first NMS view.
WORK_MAX_SIDE = 2048
_PROCEDURAL = {"procedural:cat_and_dog": "cat and dog (generated)"} | {
    f"procedural:scene_{s}": f"shapes scene {s} (generated)" for s in (1, 2, 3)
}


@dataclass(frozen=True)
class Sample:
    sample_id: str  # file name in samples/ or "procedural:<name>"
    label: str  # what the picker shows


@dataclass
class LoadedImage:
    image: Image.Image  # RGB
    data: bytes  # the encoded file (what the per-image caches hash)
    name: str
    gt_rows: list[dict]  # GT rows from the sample's annotation ([] for uploads)
    digest: str  # sha1 of `data`, a short stable key
    source: str = "sample"  # "sample" (built-in scene) or "upload" (the user's own file)

    @property
    def image_hw(self) -> tuple[int, int]:
        """(H, W) of the image in pixels (PIL's `size` is (W, H))."""
        return self.image.height, self.image.width


def _annotations(samples_dir: Path) -> dict:
    p = samples_dir / "annotations.json"
    if not p.is_file():
        return {}
    try:
        doc = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return doc if isinstance(doc, dict) else {}


def list_samples(samples_dir: Path | None = None) -> list[Sample]:
    """The sample scenes, the cat-and-dog scene first."""
    samples_dir = SAMPLES_DIR if samples_dir is None else Path(samples_dir)
    files = []
    if samples_dir.is_dir():
        files = sorted(
            p.name for p in samples_dir.iterdir()
            if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
        )
    if files:
        files.sort(key=lambda n: (n != CAT_AND_DOG, n))
        return [Sample(n, Path(n).stem.replace("_", " ")) for n in files]
    return [Sample(k, v) for k, v in _PROCEDURAL.items()]


def default_sample_id(samples: list[Sample]) -> str:
    for s in samples:
        if s.sample_id in (CAT_AND_DOG, "procedural:cat_and_dog"):
            return s.sample_id
    return samples[0].sample_id


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _label_name(label, class_names: tuple[str, ...]) -> str:
    if isinstance(label, int) and 0 <= label < len(class_names):
        return class_names[label]
    return str(label)


def load_sample(sample_id: str, samples_dir: Path | None = None) -> LoadedImage:
    """The sample's image, encoded bytes and GT rows (labels as class names)."""

    samples_dir = SAMPLES_DIR if samples_dir is None else Path(samples_dir)
    if sample_id.startswith("procedural:"):
        key = sample_id.split(":", 1)[1]
        if key == "cat_and_dog":
            img, boxes, labels = cat_and_dog_scene()
        elif key.startswith("scene_"):
            img, boxes, labels = make_scene(int(key.split("_", 1)[1]))
        else:
            raise ValueError(f"unknown generated sample {sample_id!r}")
        rows = [
            {"label": CLASSES[int(c)], "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
            for b, c in zip(boxes.tolist(), labels.tolist())
        ]
        data = _png_bytes(img)
        return LoadedImage(img.convert("RGB"), data, key, rows, hashlib.sha1(data).hexdigest())
    path = samples_dir / sample_id
    data = path.read_bytes()
    img = decode_image(data)
    ann = _annotations(samples_dir).get(sample_id, {})
    names = tuple(ann.get("class_names") or _annotations(samples_dir).get("class_names") or CLASSES) \
        if isinstance(ann, dict) else CLASSES
    rows = []
    if isinstance(ann, dict):
        labels = ann.get("labels") or []
        label_names = ann.get("label_names")  # names written next to the indices, when present
        if isinstance(label_names, list) and len(label_names) == len(labels):
            labels = label_names
        for b, c in zip(ann.get("boxes_xyxy") or [], labels):
            rows.append({"label": _label_name(c, names), "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]})
    return LoadedImage(img, data, sample_id, rows, hashlib.sha1(data).hexdigest())


def decode_image(data: bytes, max_pixels: int = MAX_PIXELS, name: str | None = None) -> Image.Image:
    """Encoded bytes -> RGB PIL image via `ssd.images.load_image` (any Pillow mode, EXIF
    rotation applied), at its own size: never upscaled, so ground-truth pixels keep the
    file's frame (the model resizes to its input anyway). Raises `ssd.images.ImageError`
    naming the problem and the file."""

    return load_image(data, max_pixels=max_pixels, min_side=1, name=name)


def load_upload(name: str, data: bytes, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """An uploaded file -> LoadedImage; `ssd.images.ImageError` for a bad file."""
    img = decode_image(data, max_pixels=max_pixels, name=name)
    return LoadedImage(img, data, name, [], hashlib.sha1(data).hexdigest(), source="upload")


def work_size(image_hw: tuple[int, int], max_side: int = WORK_MAX_SIDE) -> tuple[int, int]:
    """(H, W) of the working copy of an image of `image_hw` (H, W): the same when its
    longer side is <= `max_side`, else shrunk to `max_side` keeping the aspect ratio
    (each side >= 1). Boxes found on the copy map back by `image_hw / work_size`."""
    h, w = int(image_hw[0]), int(image_hw[1])
    if max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def work_image(image: Image.Image, max_side: int = WORK_MAX_SIDE) -> Image.Image:
    """`image` itself when small enough, else a copy shrunk to `work_size` (bilinear,
    Pillow's reducing gap: reads the big image once, allocates only the small one)."""
    h, w = work_size((image.height, image.width), max_side)
    if (w, h) == image.size:
        return image
    return image.resize((w, h), Image.Resampling.BILINEAR, reducing_gap=3.0)
