"""COCO reader: an instances JSON (images, annotations, categories) + an image folder.

Category ids map to contiguous labels 1..K in increasing id order (0 = background),
so class_names = ("background", *names by id). The JSON is checked once when the
dataset is built; a bad entry raises DatasetError naming the file and the problem, or
with `skip_bad=True` its image is left out and listed in `.skipped`. Crowd
annotations (iscrowd=1) are ignored, as the SSD paper's COCO training does.

Items: (image (3, H, W) float32 in [0, 1], {"boxes": (G, 4) xyxy normalised,
"labels": (G,) int64 in 1..K}), or whatever `transform(image_pil, boxes_px, labels)` returns.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from ssd.data.common import DatasetError, SampleListDataset, check_box, image_size_of, require_path


def _load_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise DatasetError(f"{path}: cannot read ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing list {key!r}")
    return data


class COCODataset(SampleListDataset):
    """COCO-format detection data.

    Args:
        json_path: instances JSON.
        image_dir: folder the JSON's `file_name`s are relative to.
        transform: `t(image_pil, boxes_xyxy_px, labels) -> (image, target)`.
        skip_bad: leave out images with a bad annotation or image file; `.skipped`
            lists (file, reason).
        keep_empty: keep images without (non-crowd) annotations.
    Attributes: `class_names`, `category_ids` (label k -> COCO category id
    `category_ids[k - 1]`), `image_ids` (per item).
    """

    def __init__(self, json_path, image_dir, transform=None, skip_bad: bool = False, keep_empty: bool = True):
        self.json_path = require_path(Path(json_path), "COCO annotation JSON")
        self.image_dir = require_path(Path(image_dir), "COCO image", is_dir=True)
        data = _load_json(self.json_path)
        src = str(self.json_path)
        cats = sorted(data["categories"], key=lambda c: c.get("id", 0))
        try:
            self.category_ids = [int(c["id"]) for c in cats]
            names = [str(c["name"]) for c in cats]
        except (KeyError, TypeError, ValueError):
            raise DatasetError(f"{src}: every category needs an integer 'id' and a 'name'") from None
        if not cats:
            raise DatasetError(f"{src}: no categories")
        self.class_names = ("background", *names)
        label_of = {cid: k + 1 for k, cid in enumerate(self.category_ids)}
        self.transform = transform
        self.skipped: list[tuple[str, str]] = []
        anns_by_image: dict[int, list[dict]] = {}
        for a in data["annotations"]:
            anns_by_image.setdefault(a.get("image_id"), []).append(a)
        self.samples: list[tuple[Path, torch.Tensor, torch.Tensor]] = []
        self.image_ids: list[int] = []
        for im in data["images"]:
            try:
                if "id" not in im or "file_name" not in im:
                    raise DatasetError(f"{src}: image entry {im!r} needs 'id' and 'file_name'")
                img_path = self.image_dir / str(im["file_name"])
                iw, ih = image_size_of(img_path)
                w, h = int(im.get("width", iw)), int(im.get("height", ih))
                if (iw, ih) != (w, h):
                    raise DatasetError(f"{src}: image {im['id']} says {w}x{h} but {img_path} is {iw}x{ih}")
                boxes, labels = [], []
                for a in anns_by_image.get(im["id"], []):
                    where = f"{src} annotation {a.get('id')} (image {im['id']})"
                    if a.get("iscrowd", 0):
                        continue
                    cid = a.get("category_id")
                    if cid not in label_of:
                        raise DatasetError(f"{where}: unknown category_id {cid!r}; known: {self.category_ids}")
                    bbox = a.get("bbox")
                    if not isinstance(bbox, list) or len(bbox) != 4:
                        raise DatasetError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
                    x, y, bw, bh = (float(v) for v in bbox)
                    boxes.append(check_box(where, (x, y, x + bw, y + bh), w, h))
                    labels.append(label_of[cid])
            except DatasetError as e:
                if not skip_bad:
                    raise
                self.skipped.append((str(im.get("file_name", im)), str(e)))
                continue
            if not boxes and not keep_empty:
                continue
            self.samples.append(
                (img_path, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                 torch.tensor(labels, dtype=torch.int64))
            )
            self.image_ids.append(int(im["id"]))
        known_images = {im.get("id") for im in data["images"]}
        for image_id in anns_by_image:
            if image_id not in known_images:
                msg = f"{src}: annotations refer to image_id {image_id!r}, which is not in 'images'"
                if not skip_bad:
                    raise DatasetError(msg)
                self.skipped.append((src, msg))
        if not self.samples:
            raise DatasetError(f"{src}: no usable images ({len(self.skipped)} skipped)")


def read_boxes(json_path, skip_bad: bool = False):
    """The ground truth of an instances JSON alone, without reading any image file.

    Returns (class_names with "background" first, [(file_name, width, height,
    boxes_xyxy px (G, 4) float32, labels (G,) int64 in 1..K)] per image, in the JSON's
    order, skipped [(image, reason)]: with `skip_bad`, images with a bad entry are left
    out and listed instead of raising). Crowd annotations are ignored, as in
    `COCODataset`. Image sizes come from the JSON's `width`/`height`, which this needs.
    Raises DatasetError naming the file and the problem: not JSON, missing lists, an
    image without `width`/`height`, an unknown category, a bad or zero-size bbox.
    """
    path = require_path(Path(json_path), "COCO annotation JSON")
    data = _load_json(path)
    src = str(path)
    cats = sorted(data["categories"], key=lambda c: c.get("id", 0) if isinstance(c, dict) else 0)
    try:
        label_of = {int(c["id"]): k + 1 for k, c in enumerate(cats)}
        names = ("background", *(str(c["name"]) for c in cats))
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{src}: every category needs an integer 'id' and a 'name'") from None
    if not cats:
        raise DatasetError(f"{src}: no categories")
    anns_by_image: dict = {}
    for a in data["annotations"]:
        anns_by_image.setdefault(a.get("image_id"), []).append(a)
    out, skipped = [], []
    for im in data["images"]:
        try:
            out.append(_image_boxes(src, im, anns_by_image, label_of))
        except DatasetError as e:
            if not skip_bad:
                raise
            skipped.append((str(im.get("file_name", im.get("id")) if isinstance(im, dict) else im), str(e)))
    return names, out, skipped


def _image_boxes(src: str, im, anns_by_image: dict, label_of: dict):
    """(file_name, width, height, boxes_xyxy px, labels) of one image entry of `read_boxes`."""
    if not isinstance(im, dict) or "id" not in im:
        raise DatasetError(f"{src}: image entry {im!r} needs an 'id'")
    try:
        w, h = int(im["width"]), int(im["height"])
    except (KeyError, TypeError, ValueError):
        raise DatasetError(f"{src}: image {im['id']} has no integer 'width' and 'height' (the image "
                           "sizes are needed to normalise its boxes; no image file is read)") from None
    if w <= 0 or h <= 0:
        raise DatasetError(f"{src}: image {im['id']} has size {w}x{h}; both must be positive")
    boxes, labels = [], []
    for a in anns_by_image.get(im["id"], []):
        where = f"{src} annotation {a.get('id')} (image {im['id']})"
        if a.get("iscrowd", 0):
            continue
        if a.get("category_id") not in label_of:
            raise DatasetError(f"{where}: unknown category_id {a.get('category_id')!r}; known: {sorted(label_of)}")
        bbox = a.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise DatasetError(f"{where}: bbox must be [x, y, w, h], got {bbox!r}")
        try:
            x, y, bw, bh = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: bbox must hold four numbers, got {bbox!r}") from None
        boxes.append(check_box(where, (x, y, x + bw, y + bh), w, h))
        labels.append(label_of[a["category_id"]])
    return (str(im.get("file_name", im["id"])), w, h, torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            torch.tensor(labels, dtype=torch.int64))
