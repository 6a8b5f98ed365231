"""Datasets for the Dataset page: every ground-truth box of procedural scenes, a VOC folder,
a COCO JSON on disk or an uploaded COCO JSON, read by `ssd.data.gt_boxes` (which calls the
format readers of `ssd.data`). Errors are `DatasetError`/`ValueError` naming the file."""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from explorer.paths import MAX_TYPED_JSON_BYTES
from ssd.data import gt_boxes
from ssd.data.paths import PathRefused, confine, confined_to, open_regular
from ssd.data.common import DatasetError
from ssd.data.gt_boxes import DatasetBoxes, Progress
from ssd.data.procedural import check_object_size

KINDS = ("procedural", "voc", "coco", "coco upload")


@dataclass(frozen=True)
class DatasetChoice:
    """What the page asked for; hashable, so the app caches the loaded boxes by it."""

    kind: str  # one of KINDS
    num_images: int = 500  # procedural: scenes; voc/coco: first N (0: all)
    seed: int = 1000  # procedural scene seed
    object_size: tuple[float, float] = (0.05, 0.90)  # procedural: (min, max) side, fractions of the image
    path: str = ""  # voc: folder; coco: JSON path


def load(choice: DatasetChoice, progress: Progress | None = None, roots: tuple[Path, ...] | None = None
         ) -> DatasetBoxes:
    """The boxes of `choice` (not for uploads: see `load_upload`).

    roots: the data roots (`explorer.paths.data_roots`); the typed path and every file
    read for it (each annotation XML after following links) must lie inside them
    (`ssd.data.paths`); None: no confinement. A typed COCO JSON over
    `MAX_TYPED_JSON_BYTES`, a FIFO or a device is refused before a byte is read."""
    if choice.kind == "procedural":
        return gt_boxes.procedural_boxes(choice.num_images, choice.seed, 256, check_object_size(choice.object_size),
                                         progress)
    if not str(choice.path).strip():
        raise DatasetError(f"give the path of the {'VOC folder' if choice.kind == 'voc' else 'COCO JSON'}")
    typed = str(choice.path).strip()
    with confined_to(roots):
        try:
            if choice.kind == "voc":
                confine(typed, "VOC folder", kind="dir")
                return gt_boxes.voc_boxes(Path(typed).expanduser(), choice.num_images, skip_bad=True,
                                          progress=progress)
            if choice.kind == "coco":
                open_regular(typed, "COCO annotation JSON file", MAX_TYPED_JSON_BYTES).close()  # size and kind, unread
                return gt_boxes.coco_boxes(Path(typed).expanduser(), choice.num_images, skip_bad=True)
        except PathRefused as e:
            raise DatasetError(str(e)) from None
    raise ValueError(f"unknown dataset kind {choice.kind!r}; choose one of {KINDS}")


def load_upload(name: str, data: bytes) -> DatasetBoxes:
    """Boxes of an uploaded COCO JSON; errors name the upload, not a temporary file."""
    fd, tmp = tempfile.mkstemp(suffix=".json")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            boxes = gt_boxes.coco_boxes(tmp, skip_bad=True)
        except DatasetError as e:
            raise DatasetError(str(e).replace(tmp, name)) from None
    finally:
        os.unlink(tmp)
    return DatasetBoxes(boxes.boxes_xyxy_norm, boxes.labels, boxes.image_index, boxes.image_names,
                        boxes.class_names, f"uploaded COCO JSON {name}",
                        tuple((a, r.replace(tmp, name)) for a, r in boxes.skipped))
