"""Ground-truth boxes for the image being explored: read from a VOC XML or COCO JSON
file, typed as a table, or drawn; checked row by row.

A GT row is a dict {"label": class name, "x1", "y1", "x2", "y2"} in pixels of the
original image (x right, y down). `validate_rows` turns rows into tensors and names
every row it skips, and why.
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import torch
from torch import Tensor

GT_COLUMNS = ("label", "x1", "y1", "x2", "y2")


class GTFileError(ValueError):
    """An annotation file could not be read; the message names the file and the problem."""


@dataclass
class GroundTruth:
    boxes_xyxy: Tensor  # (G, 4) float32, pixels of the original image
    labels: Tensor  # (G,) long, class indices 1..C-1 into `class_names`
    names: list[str]  # (G,) class names
    errors: list[str]  # one message per skipped row ("row 3: x2 <= x1")

    def __len__(self) -> int:
        return self.boxes_xyxy.shape[0]

    def rows(self) -> list[dict]:
        return [
            {"label": n, "x1": b[0], "y1": b[1], "x2": b[2], "y2": b[3]}
            for n, b in zip(self.names, self.boxes_xyxy.tolist())
        ]


def parse_voc_xml(data: bytes, source: str = "annotation.xml") -> list[dict]:
    """Pascal VOC XML -> GT rows (`<object><name>` and `<bndbox>` xmin..ymax)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise GTFileError(f"{source}: not valid XML ({e})") from None
    rows = []
    for n, obj in enumerate(root.iter("object")):
        name = (obj.findtext("name") or "").strip()
        bb = obj.find("bndbox")
        if bb is None:
            raise GTFileError(f"{source}: object {n} ({name or 'no name'}) has no <bndbox>")
        vals = {}
        for tag in ("xmin", "ymin", "xmax", "ymax"):
            text = bb.findtext(tag)
            try:
                vals[tag] = float(text)
            except (TypeError, ValueError):
                raise GTFileError(f"{source}: object {n} ({name}) has no number in <{tag}>") from None
        rows.append({"label": name, "x1": vals["xmin"], "y1": vals["ymin"], "x2": vals["xmax"], "y2": vals["ymax"]})
    if not rows:
        raise GTFileError(f"{source}: no <object> elements")
    return rows


def parse_coco_json(data: bytes, image_name: str | None = None, source: str = "annotations.json") -> list[dict]:
    """COCO detection JSON -> GT rows of one image (bbox [x, y, w, h] -> xyxy).

    The image is the one whose `file_name` ends with `image_name`; when the file holds
    a single image, that one.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GTFileError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(doc, dict) or "annotations" not in doc:
        raise GTFileError(f"{source}: no 'annotations' list (is it a COCO detection file?)")
    images = doc.get("images") or []
    cats = {c.get("id"): c.get("name", str(c.get("id"))) for c in doc.get("categories") or []}
    image_id = None
    if image_name:
        base = image_name.replace("\\", "/").rsplit("/", 1)[-1]
        for im in images:
            if str(im.get("file_name", "")).replace("\\", "/").rsplit("/", 1)[-1] == base:
                image_id = im.get("id")
                break
    if image_id is None:
        if len(images) == 1:
            image_id = images[0].get("id")
        else:
            raise GTFileError(
                f"{source}: holds {len(images)} images and none is named {image_name!r}"
            )
    rows = []
    for n, a in enumerate(doc["annotations"]):
        if a.get("image_id") != image_id:
            continue
        bbox = a.get("bbox")
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4:
            raise GTFileError(f"{source}: annotation {n} has no 4-number 'bbox'")
        x, y, w, h = (float(v) for v in bbox)
        rows.append({"label": cats.get(a.get("category_id"), str(a.get("category_id"))),
                     "x1": x, "y1": y, "x2": x + w, "y2": y + h})
    if not rows:
        raise GTFileError(f"{source}: no annotations for image {image_id}")
    return rows


def parse_annotation_file(name: str, data: bytes, image_name: str | None = None) -> list[dict]:
    """Dispatch on the file name: .xml -> VOC, .json -> COCO."""
    low = name.lower()
    if low.endswith(".xml"):
        return parse_voc_xml(data, source=name)
    if low.endswith(".json"):
        return parse_coco_json(data, image_name=image_name, source=name)
    raise GTFileError(f"{name}: unknown annotation format (use a VOC .xml or a COCO .json)")


def validate_rows(rows: list[dict], class_names: list[str], image_wh: tuple[int, int]) -> GroundTruth:
    """Check GT rows against the model's classes and the image; keep the good ones.

    A row is skipped (and named in `errors`, 1-based) when: its label is not one of the
    model's classes (background excluded); a coordinate is missing or not a finite
    number; x2 <= x1 or y2 <= y1; or the box lies outside the image. Boxes that stick
    out are clipped to the image.
    """
    w_img, h_img = image_wh
    lookup = {n.lower(): i for i, n in enumerate(class_names) if i > 0}
    boxes, labels, names, errors = [], [], [], []
    for n, row in enumerate(rows, start=1):
        label = row.get("label")
        label = "" if label is None or (isinstance(label, float) and math.isnan(label)) else str(label).strip()
        if label.lower() not in lookup:
            if label.isdigit() and 0 < int(label) < len(class_names):
                label = class_names[int(label)]
            else:
                errors.append(f"row {n}: label {label!r} is not a class of this model "
                              f"({', '.join(class_names[1:])})")
                continue
        try:
            x1, y1, x2, y2 = (float(row.get(k)) for k in ("x1", "y1", "x2", "y2"))
        except (TypeError, ValueError):
            errors.append(f"row {n} ({label}): x1, y1, x2, y2 must all be numbers")
            continue
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            errors.append(f"row {n} ({label}): coordinates must be finite numbers")
            continue
        if x2 <= x1 or y2 <= y1:
            errors.append(f"row {n} ({label}): needs x2 > x1 and y2 > y1, got ({x1:g}, {y1:g}, {x2:g}, {y2:g})")
            continue
        cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(w_img)), min(y2, float(h_img))
        if cx2 - cx1 < 1 or cy2 - cy1 < 1:
            errors.append(f"row {n} ({label}): box lies outside the {w_img}x{h_img} image")
            continue
        idx = lookup[label.lower()]
        boxes.append([cx1, cy1, cx2, cy2])
        labels.append(idx)
        names.append(class_names[idx])
    return GroundTruth(
        boxes_xyxy=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        labels=torch.tensor(labels, dtype=torch.long),
        names=names,
        errors=errors,
    )


def box_from_selection(selection_box: dict, image_wh: tuple[int, int]) -> dict | None:
    """A Plotly box selection {"x": [x0, x1], "y": [y0, y1]} in image pixels -> a GT row
    with an empty label (the user picks it), rounded to whole pixels; None if degenerate."""
    try:
        xs = [float(v) for v in selection_box["x"]]
        ys = [float(v) for v in selection_box["y"]]
    except (KeyError, TypeError, ValueError):
        return None
    w_img, h_img = image_wh
    x1, x2 = max(0.0, min(xs)), min(float(w_img), max(xs))
    y1, y2 = max(0.0, min(ys)), min(float(h_img), max(ys))
    if x2 - x1 < 1 or y2 - y1 < 1:
        return None
    return {"label": "", "x1": round(x1), "y1": round(y1), "x2": round(x2), "y2": round(y2)}
