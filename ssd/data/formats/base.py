"""What the annotation formats share: the error, the size and box limits, the object record.

Every annotation file is size-checked before it is parsed (`read_bytes_limited`), and a
file that describes more than `MAX_BOXES_PER_IMAGE` objects for one image is refused:
both stop a hostile or broken file (a 40 MB XML of 371,892 boxes) before it costs
memory and time. Boxes come out as `box_xyxy`: 0-based pixel corners of the annotated
image, x right, y down (a box covering pixel columns 0..9 has x1 = 0, x2 = 10).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ssd.data.common import DatasetError
from ssd.data.paths import PathRefused, read_regular

# Largest VOC XML read: one image's file (a real one is ~1-2 KB; 1000 boxes ~ 250 KB).
MAX_VOC_XML_BYTES = 1 << 20  # 1 MiB
# Largest COCO JSON the library reads (COCO 2017 train instances is 448 MB).
MAX_COCO_JSON_BYTES = 1 << 30  # 1 GiB
# Most objects one image may have (COCO's busiest image has a few hundred; VOC's 42).
MAX_BOXES_PER_IMAGE = 1000


class AnnotationError(DatasetError):
    """An annotation file is refused; the message names the file and the problem."""


@dataclass(frozen=True)
class AnnotatedBox:
    """One annotated object, as the file gives it (classes are checked by the caller)."""

    name: str  # class name as written (VOC <name>; COCO: the category's name)
    box_xyxy: tuple[float, float, float, float]  # 0-based pixel corners of the annotated image
    difficult: bool = False  # VOC <difficult>1: not ground truth to match unless keep_difficult
    crowd: bool = False  # COCO iscrowd=1: a crowd region, never ground truth
    category_id: int | None = None  # COCO category id (None for VOC)


def size_text(num_bytes: int) -> str:
    """Bytes as a short human string: 1048576 -> '1 MiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if num_bytes >= scale:
            return f"{num_bytes / scale:.3g} {unit}"
    return f"{num_bytes} bytes"


def read_bytes_limited(src: bytes | bytearray | str | os.PathLike, source: str, max_bytes: int) -> bytes:
    """The bytes of `src` (bytes, or a file path), refused before reading if over `max_bytes`.

    Raises AnnotationError naming `source` when the file is missing, unreadable, empty or
    larger than the limit.
    """
    if isinstance(src, (bytes, bytearray)):
        data = bytes(src)
        if len(data) > max_bytes:
            raise AnnotationError(f"{source}: file is {size_text(len(data))}, over the {size_text(max_bytes)} "
                                  "limit for one annotation file")
    else:  # confined to the data roots in force, opened without blocking (ssd.data.paths)
        try:
            data = read_regular(src, "annotation file", max_bytes, name=source)
        except PathRefused as e:
            raise AnnotationError(str(e)) from None
    if not data.strip():
        raise AnnotationError(f"{source}: empty file")
    return data


def check_box_count(count: int, source: str, max_boxes: int = MAX_BOXES_PER_IMAGE) -> None:
    """Raise AnnotationError when one image has more than `max_boxes` objects."""
    if count > max_boxes:
        raise AnnotationError(f"{source}: {count:,} objects for one image, over the limit of "
                              f"{max_boxes:,} boxes per image")


def plain(text: object, limit: int = 60) -> str:
    """User text for an error message: repr-quoted (newlines and controls escaped), cut
    to `limit` characters, so a message stays one readable line."""
    s = repr(str(text))
    return s if len(s) <= limit else s[: limit - 4] + "...'"


def is_ground_truth(obj: AnnotatedBox, keep_difficult: bool = False) -> bool:
    """The one rule for which annotated objects are ground truth to be matched: crowd
    regions never (COCO, as pycocotools), difficult objects only with keep_difficult (VOC,
    as the devkit's evaluation, which neither counts nor penalises them)."""
    return not obj.crowd and (keep_difficult or not obj.difficult)
