"""Ground-truth boxes for the image being explored: read from a VOC XML or COCO JSON
file, typed as a table, or drawn; checked row by row.

Files are read by the library's one reader per format (`ssd.data.formats`), so the app
and the dataset readers agree on every file: VOC's 1-based pixels converted once,
`<difficult>` objects and COCO crowd regions kept as rows but flagged, and not ground
truth to be matched (difficult ones only with `keep_difficult`, as `VOCDataset`), an
unknown COCO category refused naming its id, DTDs/entities refused, size and box-count
limits checked before use.

A GT row is a dict {"label": class name, "x1", "y1", "x2", "y2", "difficult", "crowd"}
in 0-based pixels of the original image (x right, y down). `validate_rows` turns rows
into tensors and names every row it skips, and why. `voc_xml_download` and
`coco_json_download` write the valid rows back out through the same library formats. Messages hold user text (labels,
file names): show them as plain text (`st.text`/`st.code`), never as markdown.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ssd.data.formats import (MAX_BOXES_PER_IMAGE, MAX_VOC_XML_BYTES, AnnotatedBox, AnnotationError, COCOAnnotations, COCOImage,
                              coco_json_bytes, is_ground_truth, read_coco_json, read_voc_xml, voc_xml_bytes)

GT_COLUMNS = ("label", "x1", "y1", "x2", "y2", "difficult", "crowd")
# Largest COCO JSON the app accepts as an upload (COCO val2017 instances is 25 MB).
MAX_COCO_UPLOAD_BYTES = 64 << 20  # 64 MiB
# Largest VOC XML upload: the library's per-file limit.
MAX_VOC_UPLOAD_BYTES = MAX_VOC_XML_BYTES


class GTFileError(ValueError):
    """An annotation file could not be read; the message names the file and the problem."""


@dataclass
class GroundTruth:
    boxes_xyxy: Tensor  # (G, 4) float32, pixels of the original image: the boxes to match
    labels: Tensor  # (G,) long, class indices 1..C-1 into `class_names`
    names: list[str]  # (G,) class names
    errors: list[str]  # one message per skipped row ("row 3: x2 <= x1")
    # Rows that are valid but not ground truth to match (difficult, crowd), for display.
    ignored: list[dict] = field(default_factory=list)  # GT rows with "difficult"/"crowd" set

    def __len__(self) -> int:
        return self.boxes_xyxy.shape[0]

    def rows(self) -> list[dict]:
        """Every valid row: the boxes to match, then the ignored ones (flagged)."""
        return [
            {"label": n, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3], "difficult": False, "crowd": False}
            for n, b in zip(self.names, self.boxes_xyxy.tolist())
        ] + [dict(r) for r in self.ignored]


@dataclass
class AnnotationUpload:
    """An annotation file read for one image."""

    rows: list[dict]  # GT rows, difficult/crowd ones flagged
    notes: list[str]  # what the user should know (size differs, ignored rows, several images)
    coco_image_ids: list[int] = field(default_factory=list)  # COCO: ids of the images it could be
    coco_image_id: int | None = None  # COCO: the image id used


def _row(obj: AnnotatedBox) -> dict:
    x1, y1, x2, y2 = obj.box_xyxy
    return {"label": obj.name, "x1": x1, "y1": y1, "x2": x2, "y2": y2,
            "difficult": obj.difficult, "crowd": obj.crowd}


def _size_note(source: str, what: str, file_hw, image_hw, rows: list[dict]) -> list[str]:
    """A note when the annotation was written for another image size, saying what the app did."""
    if file_hw is None or image_hw is None or tuple(file_hw) == tuple(image_hw):
        return []
    h_img, w_img = image_hw
    outside = sum(1 for r in rows if r["x1"] >= w_img or r["y1"] >= h_img or r["x2"] <= 0 or r["y2"] <= 0)
    clipped = sum(1 for r in rows if min(r["x1"], r["y1"]) < 0 or r["x2"] > w_img or r["y2"] > h_img) - outside
    return [f"{source}: {what} says {file_hw[1]}x{file_hw[0]} but the image is {w_img}x{h_img}: the boxes are "
            f"used as written, in pixels of a {file_hw[1]}x{file_hw[0]} image, not rescaled; {clipped} box(es) "
            f"sticking out are clipped to the image and {outside} outside it are skipped. Is it this image's "
            f"annotation?"]


def _ignored_notes(source: str, rows: list[dict]) -> list[str]:
    notes = []
    n_diff = sum(1 for r in rows if r["difficult"] and not r["crowd"])
    n_crowd = sum(1 for r in rows if r["crowd"])
    if n_diff:
        notes.append(f"{source}: {n_diff} object(s) marked difficult are listed (difficult column) but are not "
                     f"ground truth to match, as in the VOC devkit and the library's VOC reader.")
    if n_crowd:
        notes.append(f"{source}: {n_crowd} crowd region(s) (iscrowd=1) are listed (crowd column) but are not "
                     f"ground truth, as in pycocotools and the library's COCO reader.")
    return notes


def parse_voc_xml(data: bytes, source: str = "annotation.xml", image_hw: tuple[int, int] | None = None
                  ) -> AnnotationUpload:
    """Pascal VOC XML -> AnnotationUpload (rows in 0-based pixels, difficult flagged).

    `image_hw` (H, W) of the image shown: when the file's <size> differs, a note says so
    and what is done. Raises GTFileError naming the file (see `ssd.data.formats.read_voc_xml`).
    """
    try:
        ann = read_voc_xml(data, source, max_bytes=MAX_VOC_UPLOAD_BYTES)
    except AnnotationError as e:
        raise GTFileError(str(e)) from None
    rows = [_row(o) for o in ann.objects]
    notes = _size_note(source, "<size>", ann.image_hw, image_hw, rows) + _ignored_notes(source, rows)
    if not rows:
        notes.append(f"{source}: no <object> elements: the image has no ground-truth boxes")
    return AnnotationUpload(rows=rows, notes=notes)


def _coco_image(doc: COCOAnnotations, image_name: str | None, image_id: int | None, source: str):
    """(the image entry to use, the ids of every image it could be)."""
    candidates = doc.images_named(image_name) if image_name else []
    if not candidates:
        if len(doc.images) != 1:
            raise GTFileError(f"{source}: holds {len(doc.images)} images and none is named {image_name!r}")
        candidates = list(doc.images)
    ids = [im.id for im in candidates]
    chosen = candidates[ids.index(image_id)] if image_id in ids else candidates[0]
    return chosen, ids


def parse_coco_json(data: bytes, image_name: str | None = None, source: str = "annotations.json",
                    image_hw: tuple[int, int] | None = None, image_id: int | None = None) -> AnnotationUpload:
    """COCO detection JSON -> AnnotationUpload of one image (bbox [x, y, w, h] -> xyxy).

    The image is the one whose `file_name` has the base name of `image_name`; when the
    file holds a single image, that one. When several images share that name, `image_id`
    picks one (default: the first) and `coco_image_ids` lists them all. Crowd regions are
    flagged. Raises GTFileError naming the file (structure, an unknown category id, a bad
    bbox, too many boxes: see `ssd.data.formats.read_coco_json`).
    """
    try:
        doc = read_coco_json(data, source, max_bytes=MAX_COCO_UPLOAD_BYTES)
        im, ids = _coco_image(doc, image_name, image_id, source)
        rows = [_row(o) for o in doc.objects(im.id)]
    except AnnotationError as e:
        raise GTFileError(str(e)) from None
    notes = []
    if len(ids) > 1:
        notes.append(f"{source}: {len(ids)} images are named {im.file_name!r} (ids {ids}); showing image {im.id}, "
                     f"pick another with 'COCO image id'")
    notes += _size_note(source, f"image {im.id}", im.image_hw, image_hw, rows) + _ignored_notes(source, rows)
    if not rows:
        notes.append(f"{source}: no annotations for image {im.id}: the image has no ground-truth boxes")
    return AnnotationUpload(rows=rows, notes=notes, coco_image_ids=ids, coco_image_id=im.id)


def parse_annotation_file(name: str, data: bytes, image_name: str | None = None,
                          image_hw: tuple[int, int] | None = None, coco_image_id: int | None = None
                          ) -> AnnotationUpload:
    """Dispatch on the file name: .xml -> VOC, .json -> COCO (see those functions)."""
    low = name.lower()
    if low.endswith(".xml"):
        return parse_voc_xml(data, source=name, image_hw=image_hw)
    if low.endswith(".json"):
        return parse_coco_json(data, image_name=image_name, source=name, image_hw=image_hw, image_id=coco_image_id)
    raise GTFileError(f"{name}: unknown annotation format (use a VOC .xml or a COCO .json)")


def flag(value) -> bool:
    """A table cell as a bool: True/1/"true"/"1" -> True; empty, NaN, False, 0 -> False."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes")
    try:
        return bool(value) and not (isinstance(value, float) and math.isnan(value))
    except (TypeError, ValueError):
        return False


def _is_blank(row: dict) -> bool:
    """True when a row has no label and no coordinate (missing, None, NaN or empty text)."""
    def empty(v) -> bool:
        return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())

    return all(empty(row.get(k)) for k in ("label", "x1", "y1", "x2", "y2"))


def validate_rows(rows: list[dict], class_names: list[str], image_hw: tuple[int, int],
                  keep_difficult: bool = False) -> GroundTruth:
    """Check GT rows against the model's classes and the image; keep the good ones.

    Args:
        rows: GT rows (label, x1, y1, x2, y2 in pixels; optional difficult, crowd flags).
        class_names: the model's classes, background first.
        image_hw: (H, W) of the image in pixels (PIL's `size` reversed).
        keep_difficult: difficult rows are ground truth too (crowd rows never are).
    Returns:
        GroundTruth: boxes to match, and the valid difficult/crowd rows in `ignored`.
    An empty row (no label, no coordinate: one just added in the table) is left out
    silently. A row is skipped (and named in `errors`, 1-based) when: its label is not one of the
    model's classes (background excluded); a coordinate is missing or not a finite
    number; x2 <= x1 or y2 <= y1; or no part of the box lies inside the image. Boxes that
    stick out are clipped to the image; a box thinner than a pixel inside it is kept
    (as the library's readers keep it).
    """
    h_img, w_img = image_hw
    lookup = {n.lower(): i for i, n in enumerate(class_names) if i > 0}
    boxes, labels, names, errors, ignored = [], [], [], [], []
    if len(rows) > MAX_BOXES_PER_IMAGE:  # the limit of annotation files, for pasted tables too
        errors.append(f"rows {MAX_BOXES_PER_IMAGE + 1}-{len(rows)}: over the limit of {MAX_BOXES_PER_IMAGE:,} "
                      "boxes per image; only the first ones are used")
        rows = rows[:MAX_BOXES_PER_IMAGE]
    for n, row in enumerate(rows, start=1):
        if _is_blank(row):  # a row just added in the table, not filled in yet: not an error
            continue
        label = row.get("label")
        label = "" if label is None or (isinstance(label, float) and math.isnan(label)) else str(label).strip()
        if label.lower() not in lookup:
            if label.isdigit() and 0 < int(label) < len(class_names):
                label = class_names[int(label)]
            else:
                errors.append(f"row {n}: label {label[:60]!r} is not a class of this model "
                              f"({', '.join(class_names[1:])})")
                continue
        try:
            x1, y1, x2, y2 = (float(row.get(k)) for k in ("x1", "y1", "x2", "y2"))
        except (TypeError, ValueError, OverflowError):
            errors.append(f"row {n} ({label}): x1, y1, x2, y2 must all be numbers")
            continue
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            errors.append(f"row {n} ({label}): coordinates must be finite numbers")
            continue
        if x2 <= x1 or y2 <= y1:
            errors.append(f"row {n} ({label}): needs x2 > x1 and y2 > y1, got ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w_img)), min(y2, float(h_img))
        if cx2 <= cx1 or cy2 <= cy1:  # nothing of the box is inside the image
            errors.append(f"row {n} ({label}): box ({x1:g}, {y1:g}, {x2:g}, {y2:g}) lies outside the "
                          f"{w_img}x{h_img} image")
            continue
        idx = lookup[label.lower()]
        obj = AnnotatedBox(class_names[idx], (cx1, cy1, cx2, cy2), flag(row.get("difficult")),
                           flag(row.get("crowd")))
        if not is_ground_truth(obj, keep_difficult):
            ignored.append(_row(obj))
            continue
        boxes.append([cx1, cy1, cx2, cy2])
        labels.append(idx)
        names.append(class_names[idx])
    return GroundTruth(
        boxes_xyxy=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),  # (G, 4), also when G = 0
        labels=torch.tensor(labels, dtype=torch.long),
        names=names,
        errors=errors,
        ignored=ignored,
    )


def box_from_selection(selection_box: dict, image_hw: tuple[int, int]) -> dict | None:
    """A Plotly box selection {"x": [x0, x1], "y": [y0, y1]} in image pixels -> a GT row
    with an empty label (the user picks it), rounded to whole pixels; None if degenerate."""
    try:
        xs = [float(v) for v in selection_box["x"]]
        ys = [float(v) for v in selection_box["y"]]
    except (KeyError, TypeError, ValueError):
        return None
    h_img, w_img = image_hw
    x1, x2 = max(0.0, min(xs)), min(float(w_img), max(xs))
    y1, y2 = max(0.0, min(ys)), min(float(h_img), max(ys))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return {"label": "", "x1": round(x1), "y1": round(y1), "x2": round(x2), "y2": round(y2)}


def annotated_boxes(rows: list[dict], class_names: list[str], image_hw: tuple[int, int]) -> list[AnnotatedBox]:
    """The valid GT rows (`validate_rows`: clipped to the image, bad rows left out) as
    AnnotatedBox records with their difficult/crowd flags: the boxes to match first, then
    the flagged ones. `image_hw` is (H, W) in pixels."""
    gt = validate_rows(rows, class_names, image_hw, keep_difficult=False)
    return [AnnotatedBox(r["label"], (float(r["x1"]), float(r["y1"]), float(r["x2"]), float(r["y2"])),
                         difficult=flag(r.get("difficult")), crowd=flag(r.get("crowd"))) for r in gt.rows()]


def download_file_name(image_name: str) -> str:
    """The image's file name for an annotation file (a generated sample has no suffix: .png)."""
    name = image_name.replace("\\", "/").rsplit("/", 1)[-1] or "image"
    return name if "." in name.strip(".") else name + ".png"


def voc_xml_download(rows: list[dict], class_names: list[str], image_name: str, image_hw: tuple[int, int]) -> bytes:
    """The valid GT rows as one VOC XML file (1-based pixels, <difficult> kept), through
    `ssd.data.formats.voc_xml_bytes`. `image_hw` (H, W) of the image for <size>.
    VOC has no crowd: crowd rows are written difficult (neither counted nor penalised)."""
    return voc_xml_bytes(download_file_name(image_name), image_hw, annotated_boxes(rows, class_names, image_hw))


def coco_json_download(rows: list[dict], class_names: list[str], image_name: str, image_hw: tuple[int, int]) -> bytes:
    """The valid GT rows as a COCO instances JSON of one image (id 1; bbox [x, y, w, h]
    0-based pixels; categories 1..K = class_names[1:]; crowd and difficult rows iscrowd=1),
    through `ssd.data.formats.coco_json_bytes`. `image_hw` (H, W) of the image.

    torchvision's COCO label list has "N/A" at the ids COCO skips (12, 26, ...): a repeated
    name gets its id appended ("N/A (12)") so category ids stay the model's label indices."""
    image = COCOImage(1, download_file_name(image_name), tuple(image_hw))
    names = list(class_names[1:])
    seen = {n for i, n in enumerate(names) if n in names[:i]}
    categories = [f"{n} ({i})" if n in seen else n for i, n in enumerate(names, start=1)]
    return coco_json_bytes([(image, annotated_boxes(rows, class_names, image_hw))], categories)
