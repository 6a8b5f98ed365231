"""COCO reader: an instances JSON (images, annotations, categories) + an image folder.

Category ids map to contiguous labels 1..K in increasing id order (0 = background),
so class_names = ("background", *names by id). The JSON is read and checked once
(`ssd.data.formats.read_coco_json`) when the dataset is built: a file with a broken
structure raises DatasetError naming the file and the entry; a bad entry of one image
raises too, or with `skip_bad=True` that image is left out and listed in `.skipped`.
Crowd annotations (iscrowd=1) are not ground truth (`formats.is_ground_truth`), as in
the SSD paper's COCO training and pycocotools. Every image entry is a sample, also when
several share one `file_name`.

Items: (image (3, H, W) float32 in [0, 1], {"boxes": (G, 4) xyxy normalised,
"labels": (G,) int64 in 1..K}), or whatever `transform(image_pil, boxes_px, labels)` returns.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ssd.data.common import DatasetError, SampleListDataset, check_box, image_size_of, require_path
from ssd.data.formats import COCOAnnotations, COCOImage, is_ground_truth, read_coco_json


def _sample(doc: COCOAnnotations, im: COCOImage, image_dir: Path, label_of: dict):
    """(image path, boxes_xyxy px (G, 4), labels (G,)) of one image; DatasetError if bad."""
    img_path = image_dir / im.file_name
    iw, ih = image_size_of(img_path)
    h, w = im.image_hw if im.image_hw is not None else (ih, iw)
    if (iw, ih) != (w, h):
        raise DatasetError(f"{doc.source}: image {im.id} says {w}x{h} but {img_path} is {iw}x{ih}")
    return (img_path, *_ground_truth(doc, im, w, h, label_of))


def _label_of(doc: COCOAnnotations) -> dict[int, int]:
    """COCO category id -> contiguous label 1..K (increasing id order); DatasetError when none."""
    if not doc.category_ids:
        raise DatasetError(f"{doc.source}: no categories")
    return {cid: k + 1 for k, cid in enumerate(doc.category_ids)}


def _ground_truth(doc: COCOAnnotations, im: COCOImage, w: int, h: int, label_of: dict):
    """(boxes_xyxy px (G, 4) float32, labels (G,) int64) of image `im` (w x h px): its
    non-crowd objects, each box checked against the image; DatasetError names the entry."""
    boxes, labels = [], []
    for obj in doc.objects(im.id):
        if not is_ground_truth(obj):
            continue
        boxes.append(check_box(f"{doc.source} image {im.id} ({obj.name!r})", obj.box_xyxy, w, h))
        labels.append(label_of[obj.category_id])
    return (torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),  # (G, 4), also when G = 0
            torch.tensor(labels, dtype=torch.int64))


class COCODataset(SampleListDataset):
    """COCO-format detection data.

    Args:
        json_path: instances JSON.
        image_dir: folder the JSON's `file_name`s are relative to.
        transform: `t(image_pil, boxes_xyxy_px, labels) -> (image, target)`.
        skip_bad: leave out images with a bad annotation or image file; `.skipped`
            lists (file, reason); an image that fails to decode when loaded is
            replaced by the next good sample and counted in `.num_skipped`.
        keep_empty: keep images without (non-crowd) annotations.
    Attributes: `class_names`, `category_ids` (label k -> COCO category id
    `category_ids[k - 1]`), `image_ids` (per item).
    """

    def __init__(self, json_path, image_dir, transform=None, skip_bad: bool = False, keep_empty: bool = True):
        self.json_path = require_path(Path(json_path), "COCO annotation JSON")
        self.image_dir = require_path(Path(image_dir), "COCO image", is_dir=True)
        doc = read_coco_json(self.json_path)
        src = doc.source
        label_of = _label_of(doc)
        self.category_ids = list(doc.category_ids)
        self.class_names = doc.class_names
        self.transform = transform
        self.skipped: list[tuple[str, str]] = []
        self.samples: list[tuple[Path, torch.Tensor, torch.Tensor]] = []
        self.image_ids: list[int] = []
        for im in doc.images:
            try:
                sample = _sample(doc, im, self.image_dir, label_of)
            except DatasetError as e:
                if not skip_bad:
                    raise
                self.skipped.append((im.file_name, str(e)))
                continue
            if len(sample[2]) == 0 and not keep_empty:
                continue
            self.samples.append(sample)
            self.image_ids.append(im.id)
        known_images = {im.id for im in doc.images}
        for image_id in doc.annotations_by_image:
            if image_id not in known_images:
                msg = f"{src}: annotations refer to image_id {image_id!r}, which is not in 'images'"
                if not skip_bad:
                    raise DatasetError(msg)
                self.skipped.append((src, msg))
        if not self.samples:
            raise DatasetError(f"{src}: no usable images ({len(self.skipped)} skipped)")
        self._init_skips(skip_bad)


def read_boxes(json_path, skip_bad: bool = False):
    """The ground truth of an instances JSON alone, without reading any image file.

    Returns (class_names with "background" first, [(file_name, width, height,
    boxes_xyxy px (G, 4) float32, labels (G,) int64 in 1..K)] per image, in the JSON's
    order, skipped [(image, reason)]: with `skip_bad`, images with a bad entry are left
    out and listed instead of raising). Read through the one COCO reader
    (`ssd.data.formats.read_coco_json`); crowd regions are not ground truth. Image sizes
    come from the JSON's `width`/`height`, which this needs.
    Raises DatasetError naming the file and the problem.
    """
    doc = read_coco_json(require_path(Path(json_path), "COCO annotation JSON"))
    label_of = _label_of(doc)
    out, skipped = [], []
    for im in doc.images:
        try:
            out.append(_image_boxes(doc, im, label_of))
        except DatasetError as e:  # AnnotationError is a DatasetError
            if not skip_bad:
                raise
            skipped.append((im.file_name, str(e)))
    return doc.class_names, out, skipped


def _image_boxes(doc: COCOAnnotations, im: COCOImage, label_of: dict):
    """(file_name, width, height, boxes_xyxy px, labels) of one image entry of `read_boxes`."""
    if im.image_hw is None:
        raise DatasetError(f"{doc.source}: image {im.id} has no integer 'width' and 'height' (the image "
                           "sizes are needed to normalise its boxes; no image file is read)")
    h, w = im.image_hw
    if w <= 0 or h <= 0:
        raise DatasetError(f"{doc.source}: image {im.id} has size {w}x{h}; both must be positive")
    return (im.file_name, w, h, *_ground_truth(doc, im, w, h, label_of))
