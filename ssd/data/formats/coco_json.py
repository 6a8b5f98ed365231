"""COCO instances JSON: the one reader (images, annotations, categories) and writer.

`read_coco_json` checks the file's structure once: size limit first, then UTF-8 JSON,
then the types the format promises (a list of objects for each of "images",
"annotations", "categories"; integer ids; a name per category; a file_name per image).
A file that breaks them is refused whole, naming the file, the entry and the field.
What can be wrong with one image's annotations (a bbox that is not 4 numbers, an
unknown category, more than `MAX_BOXES_PER_IMAGE` objects) is raised by
`COCOAnnotations.objects(image_id)`, so a dataset reader can skip just that image.

Rules: bbox [x, y, w, h] in pixels -> box_xyxy (x, y, x + w, y + h); `iscrowd=1` marks a
crowd region (kept, flagged `crowd`: never ground truth, pycocotools ignores it too);
an unknown `category_id` is an error naming the id. Images are reached by id: several
images may share one `file_name` (`images_named` lists them all).

Writing (`coco_json_bytes`, `write_coco_json`) is the inverse: box_xyxy -> bbox
[x1, y1, x2 - x1, y2 - y1] in 0-based pixels, categories numbered 1..K in the order
given (label k <-> category id k, as the reader's `class_names`). COCO has no
"difficult": a difficult object is written `iscrowd: 1`, as mmdetection's VOC-to-COCO
converter does, so pycocotools neither counts nor penalises it, as the VOC devkit does
with difficult objects (it reads back flagged `crowd`).
"""
from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ssd.data.formats.base import (MAX_BOXES_PER_IMAGE, MAX_COCO_JSON_BYTES, AnnotatedBox, AnnotationError,
                                   check_box_count, plain, read_bytes_limited)
from ssd.io import write_bytes_atomic


@dataclass(frozen=True)
class COCOImage:
    id: int  # the image id annotations refer to
    file_name: str  # as written (may hold a sub-folder)
    image_hw: tuple[int, int] | None  # (H, W) from "height"/"width", None when absent


@dataclass(frozen=True)
class COCOAnnotations:
    """A COCO instances file, structure checked; annotations converted per image."""

    source: str  # the file it came from (for messages)
    images: tuple[COCOImage, ...]  # in file order
    category_ids: tuple[int, ...]  # sorted; label k (1..K) is category_ids[k - 1]
    category_names: tuple[str, ...]  # names in the order of category_ids
    annotations_by_image: dict = field(repr=False)  # image id -> [raw annotation dict]

    @property
    def class_names(self) -> tuple[str, ...]:
        """("background", *category names by increasing id): label k <-> category_ids[k - 1]."""
        return ("background", *self.category_names)

    def images_named(self, name: str) -> list[COCOImage]:
        """Images whose file_name has the base name of `name` (folders ignored), in file order."""
        base = _base(name)
        return [im for im in self.images if _base(im.file_name) == base]

    def objects(self, image_id: int, max_boxes: int = MAX_BOXES_PER_IMAGE) -> tuple[AnnotatedBox, ...]:
        """The annotations of one image as AnnotatedBox records (crowd regions flagged).

        Raises AnnotationError naming the file, the annotation and the image for: more than
        `max_boxes` annotations, a category_id that is not an integer or not a category, a
        bbox that is not 4 finite numbers, iscrowd not 0/1.
        """
        raw = self.annotations_by_image.get(image_id, [])
        check_box_count(len(raw), f"{self.source} image {image_id}", max_boxes)
        name_of = dict(zip(self.category_ids, self.category_names))
        return tuple(_object(a, k, image_id, self.source, name_of) for k, a in enumerate(raw))


def _base(name: str) -> str:
    return str(name).replace("\\", "/").rsplit("/", 1)[-1]


def _is_int(v) -> bool:
    return type(v) is int  # bool is an int subclass: true/false are not ids


def _is_number(v) -> bool:
    return type(v) in (int, float) and math.isfinite(v)


def _object(a: dict, k: int, image_id: int, source: str, name_of: dict) -> AnnotatedBox:
    aid = a.get("id")
    where = f"{source} annotation {aid if _is_int(aid) else plain(aid if aid is not None else k)} (image {image_id})"
    cid = a.get("category_id")
    if not _is_int(cid):
        raise AnnotationError(f"{where}: category_id must be an integer, got {plain(cid)}")
    if cid not in name_of:
        raise AnnotationError(f"{where}: unknown category_id {cid}; known: {sorted(name_of)}")
    bbox = a.get("bbox")
    if not isinstance(bbox, list) or len(bbox) != 4 or not all(_is_number(v) for v in bbox):
        raise AnnotationError(f"{where}: bbox must be [x, y, w, h] of 4 finite numbers, got {plain(bbox)}")
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1) or type(crowd) not in (int, bool):
        raise AnnotationError(f"{where}: iscrowd must be 0 or 1, got {plain(crowd)}")
    x, y, w, h = (float(v) for v in bbox)
    return AnnotatedBox(name=name_of[cid], box_xyxy=(x, y, x + w, y + h), crowd=bool(crowd), category_id=cid)


def _decode(data: bytes, source: str):
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise AnnotationError(f"{source}: not UTF-8 text (byte {e.start}); a COCO JSON file is UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise AnnotationError(f"{source}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno}; "
                              f"truncated?)") from None
    except RecursionError:
        raise AnnotationError(f"{source}: not a COCO file, JSON nested too deeply") from None
    except (ValueError, MemoryError) as e:  # e.g. a 5000-digit integer
        raise AnnotationError(f"{source}: JSON value refused ({str(e)[:120]})") from None


def _entries(doc: dict, key: str, source: str, required: tuple[str, ...]) -> list[dict]:
    entries = doc.get(key)
    if not isinstance(entries, list):
        raise AnnotationError(f"{source}: missing list {key!r} (is it a COCO instances file?)")
    for n, e in enumerate(entries):
        if not isinstance(e, dict):
            raise AnnotationError(f"{source}: {key}[{n}] must be an object, got {type(e).__name__}")
        for f in required:
            if f == "id" or f == "image_id":
                if not _is_int(e.get(f)):
                    raise AnnotationError(f"{source}: {key}[{n}] needs an integer {f!r}, got {plain(e.get(f))}")
            elif not isinstance(e.get(f), str):
                raise AnnotationError(f"{source}: {key}[{n}] needs a text {f!r}, got {plain(e.get(f))}")
    return entries


def _image(e: dict, n: int, source: str) -> COCOImage:
    w, h = e.get("width"), e.get("height")
    if w is None and h is None:
        return COCOImage(e["id"], e["file_name"], None)
    if not (_is_number(w) and _is_number(h)) or w <= 0 or h <= 0 or w != int(w) or h != int(h):
        raise AnnotationError(f"{source}: images[{n}] width/height must be positive whole pixels, "
                              f"got {plain(w)} x {plain(h)}")
    return COCOImage(e["id"], e["file_name"], (int(h), int(w)))


def read_coco_json(src: bytes | str | os.PathLike, source: str | None = None,
                   max_bytes: int = MAX_COCO_JSON_BYTES) -> COCOAnnotations:
    """Read a COCO instances JSON and check its structure.

    Args:
        src: the file's bytes, or its path.
        source: the name to give in messages (default: the path, or "annotations.json").
        max_bytes: refuse larger files before parsing.
    Returns:
        COCOAnnotations; per-image objects via `.objects(image_id)`.
    Raises:
        AnnotationError naming the file for: too large, empty, not UTF-8, not JSON (or
        truncated, nested too deeply, a number too long), no "images"/"annotations"/
        "categories" list, an entry that is not an object, a non-integer id, duplicate
        image or category ids, a category without a text name, an image without a text
        file_name or with a bad width/height.
    """
    if source is None:
        source = "annotations.json" if isinstance(src, (bytes, bytearray)) else str(src)
    doc = _decode(read_bytes_limited(src, source, max_bytes), source)
    if not isinstance(doc, dict):
        raise AnnotationError(f"{source}: a COCO file is a JSON object, got a {type(doc).__name__}")
    images = [_image(e, n, source) for n, e in enumerate(_entries(doc, "images", source, ("id", "file_name")))]
    cats = sorted(_entries(doc, "categories", source, ("id", "name")), key=lambda c: c["id"])
    anns = _entries(doc, "annotations", source, ("image_id",))
    for key, ids in (("image", [im.id for im in images]), ("category", [c["id"] for c in cats])):
        if len(set(ids)) != len(ids):
            dup = sorted(i for i, n in Counter(ids).items() if n > 1)[:5]
            raise AnnotationError(f"{source}: duplicate {key} id(s) {dup}")
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    return COCOAnnotations(source=source, images=tuple(images), category_ids=tuple(c["id"] for c in cats),
                           category_names=tuple(c["name"] for c in cats), annotations_by_image=by_image)


def _annotation_entry(obj: AnnotatedBox, ann_id: int, image: COCOImage, category_of: dict) -> dict:
    """One AnnotatedBox -> a COCO annotation dict (bbox [x, y, w, h], 0-based pixels)."""
    where = f"image {image.id} ({plain(image.file_name)}) object {plain(obj.name)}"
    if obj.name not in category_of:
        raise AnnotationError(f"{where}: not one of the categories {sorted(category_of)}")
    x1, y1, x2, y2 = (float(v) for v in obj.box_xyxy)
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 < x1 or y2 < y1:
        raise AnnotationError(f"{where}: box_xyxy must be finite with x2 >= x1 and y2 >= y1, "
                              f"got {obj.box_xyxy}")
    w, h = x2 - x1, y2 - y1
    return {"id": ann_id, "image_id": image.id, "category_id": category_of[obj.name], "bbox": [x1, y1, w, h],
            "area": w * h, "iscrowd": int(obj.crowd or obj.difficult), "segmentation": []}


def coco_json_document(images: Sequence[tuple[COCOImage, Sequence[AnnotatedBox]]],
                       category_names: Sequence[str]) -> dict:
    """A COCO instances document for `images` (see `coco_json_bytes`)."""
    names = list(category_names)
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise AnnotationError(f"category names must be distinct, non-empty text, got {plain(names, 120)}")
    ids = [im.id for im, _ in images]
    if len(set(ids)) != len(ids) or not all(_is_int(i) for i in ids):
        raise AnnotationError(f"image ids must be distinct integers, got {plain(ids, 120)}")
    category_of = {n: k for k, n in enumerate(names, start=1)}
    doc_images, annotations = [], []
    for image, objects in images:
        entry = {"id": image.id, "file_name": image.file_name}
        if image.image_hw is not None:
            entry["height"], entry["width"] = int(image.image_hw[0]), int(image.image_hw[1])
        doc_images.append(entry)
        for obj in objects:
            annotations.append(_annotation_entry(obj, len(annotations) + 1, image, category_of))
    return {"images": doc_images, "annotations": annotations,
            "categories": [{"id": k, "name": n, "supercategory": "none"} for n, k in category_of.items()]}


def coco_json_bytes(images: Sequence[tuple[COCOImage, Sequence[AnnotatedBox]]],
                    category_names: Sequence[str]) -> bytes:
    """A COCO instances JSON file as bytes (the app's download; `write_coco_json` writes it).

    Args:
        images: (COCOImage, its objects) pairs; image ids distinct integers, image_hw
            (H, W) in pixels or None (then no width/height is written); objects are
            AnnotatedBox records, box_xyxy in 0-based pixels, name one of `category_names`.
        category_names: the categories, numbered 1..K in this order (no background).
    Returns:
        UTF-8 JSON: bbox [x1, y1, x2 - x1, y2 - y1], area w * h, iscrowd 1 for crowd and
        for difficult objects, annotation ids 1..N.
    Raises:
        AnnotationError for duplicate or empty category names, duplicate or non-integer
        image ids, an object whose name is not a category, a box that is not finite or
        has x2 < x1 or y2 < y1 (naming the image and the object).
    """
    return json.dumps(coco_json_document(images, category_names), ensure_ascii=False).encode("utf-8")


def write_coco_json(path: str | os.PathLike, images: Sequence[tuple[COCOImage, Sequence[AnnotatedBox]]],
                    category_names: Sequence[str]) -> Path:
    """Write a COCO instances JSON atomically (temp file + os.replace); see `coco_json_bytes`.
    Returns the path written."""
    return write_bytes_atomic(path, coco_json_bytes(images, category_names))
