"""Ground-truth boxes of a whole dataset without its images: what coverage statistics need.

Three sources, each read by its format's own reader:
  * procedural scenes: `ssd.data.procedural.scene_boxes` (no rendering);
  * a Pascal VOC folder: its annotation XMLs alone (`ssd.data.voc.parse_annotation`;
    the image sizes are in the XML);
  * a COCO instances JSON: annotations and image sizes (`ssd.data.coco.read_boxes`).
Boxes come out normalised to their image, which is also the network-input frame (SSD
stretches every image to the S x S input).

Letters: G = boxes over the dataset, N = images.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from ssd.boxes import px_to_norm
from ssd.data import procedural
from ssd.data.coco import read_boxes
from ssd.data.common import DatasetError, require_path
from ssd.data.voc import VOC_CLASSES, parse_annotation

Progress = Callable[[int, int], None]  # (done, total) images


@dataclass(frozen=True)
class DatasetBoxes:
    """Every ground-truth box of a dataset.

    boxes_xyxy_norm: (G, 4) float32, xyxy normalised to the box's image.
    labels: (G,) int64, index into class_names (0 = background, never used by a box).
    image_index: (G,) int64, index into image_names.
    image_names: (N,) file names or scene ids.
    class_names: names with "background" first.
    source: one line saying where the boxes come from (file path or procedural recipe).
    skipped: (image, reason) of images left out as bad (only with skip_bad).
    """

    boxes_xyxy_norm: Tensor
    labels: Tensor
    image_index: Tensor
    image_names: tuple[str, ...]
    class_names: tuple[str, ...]
    source: str
    skipped: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return self.boxes_xyxy_norm.shape[0]


def _collect(per_image, class_names, source: str, skipped=()) -> DatasetBoxes:
    """[(name, width, height, boxes px (g, 4), labels (g,))] -> DatasetBoxes."""
    boxes, labels, index, names = [], [], [], []
    for n, (name, w, h, b, lab) in enumerate(per_image):
        boxes.append(px_to_norm(b, (h, w)))
        labels.append(lab)
        index.append(torch.full((len(lab),), n, dtype=torch.int64))
        names.append(str(name))
    if not boxes or sum(len(lab) for lab in labels) == 0:
        why = f" ({len(skipped)} image(s) skipped as bad; first: {skipped[0][1]})" if skipped else ""
        raise DatasetError(f"{source}: no ground-truth boxes found{why}")
    return DatasetBoxes(torch.cat(boxes), torch.cat(labels), torch.cat(index), tuple(names), tuple(class_names),
                        source, tuple(skipped))


def procedural_boxes(num_images: int, seed: int = 0, size: int = 256,
                     object_size=procedural.DEFAULT_OBJECT_SIZE, progress: Progress | None = None) -> DatasetBoxes:
    """Boxes of `ProceduralDataset(num_images, seed, size, object_size=...)`, ~0.6 ms a scene."""
    ds = procedural.ProceduralDataset(num_images, seed, size, object_size=object_size)
    per_image = []
    for i in range(num_images):
        b, lab = ds.boxes(i)
        per_image.append((f"scene {procedural.scene_seed(seed, i)}", size, size, b, lab))
        if progress is not None and (i % 500 == 0 or i == num_images - 1):
            progress(i + 1, num_images)
    lo, hi = ds.object_size
    return _collect(per_image, procedural.CLASSES,
                    f"procedural: {num_images} scenes of seed {seed}, {size} px, objects {lo:g}-{hi:g} of the side")


def _voc_xmls(root: Path) -> list[Path]:
    require_path(root, "VOC", is_dir=True)  # confined to the data roots in force
    folder = root / "Annotations" if (root / "Annotations").is_dir() else root
    xmls = sorted(folder.glob("*.xml"))
    if not xmls:
        raise DatasetError(f"{root}: no VOC annotation XML files (looked in {folder})")
    return xmls


def voc_boxes(root, num_images: int = 0, skip_bad: bool = False, progress: Progress | None = None) -> DatasetBoxes:
    """Boxes of every `*.xml` in `root/Annotations` (or `root` itself), sorted by name;
    `num_images` > 0 keeps the first ones. Difficult objects are left out, as in training.
    Class list: VOC's 20 classes, or the procedural classes if VOC's do not name them all."""
    root = Path(root)
    xmls = _voc_xmls(root)
    if num_images > 0:
        xmls = xmls[:num_images]
    try:
        return _voc_parse(root, xmls, VOC_CLASSES, skip_bad, progress)
    except DatasetError as first:
        if "unknown class" not in str(first):
            raise
        try:
            return _voc_parse(root, xmls, procedural.CLASSES, skip_bad, progress)
        except DatasetError:
            raise first from None


def _voc_parse(root: Path, xmls: list[Path], class_names, skip_bad: bool, progress) -> DatasetBoxes:
    per_image, skipped = [], []
    for n, xml in enumerate(xmls):
        try:
            filename, w, h, boxes, labels = parse_annotation(xml, class_names)
            per_image.append((filename, w, h, boxes, labels))
        except DatasetError as e:
            if not skip_bad or "unknown class" in str(e):
                raise
            skipped.append((str(xml), str(e)))
        if progress is not None and (n % 200 == 0 or n == len(xmls) - 1):
            progress(n + 1, len(xmls))
    return _collect(per_image, class_names, f"VOC folder {root}", skipped)


def coco_boxes(json_path, num_images: int = 0, skip_bad: bool = False) -> DatasetBoxes:
    """Boxes of a COCO instances JSON (no image files read; the JSON's sizes are used)."""
    names, per_image, skipped = read_boxes(json_path, skip_bad=skip_bad)
    if num_images > 0:
        per_image = per_image[:num_images]
    return _collect(per_image, names, f"COCO JSON {json_path}", skipped)


def add_dataset_args(p: argparse.ArgumentParser) -> None:
    """The dataset flags of `ssd.coverage` and `ssd.tune_boxes` (as `ssd.evaluate`'s, plus --object-size)."""
    d = p.add_argument_group("dataset")
    d.add_argument("--dataset", choices=("procedural", "voc", "coco"), default="procedural")
    d.add_argument("--seed", type=int, default=1000, help="procedural: scene seed")
    d.add_argument("--num-images", type=int, default=500, help="procedural: scenes; voc/coco: first N (0: all)")
    d.add_argument("--image-size", type=int, default=256, help="procedural: scene side in pixels")
    d.add_argument("--object-size", default="", help="procedural: MIN,MAX object side as fractions of the "
                   "image side (default 0.05,0.9)")
    d.add_argument("--data-root", default="", help="VOC folder (Annotations/*.xml, or the XMLs themselves)")
    d.add_argument("--coco-json", default="", help="COCO instances JSON (image sizes needed, images not)")
    d.add_argument("--skip-bad", action="store_true", help="leave out images with a bad annotation")


def from_args(args: argparse.Namespace, progress: Progress | None = None) -> DatasetBoxes:
    """The DatasetBoxes the `add_dataset_args` flags name; DatasetError/ValueError saying what is wrong."""
    if args.dataset == "procedural":
        size = procedural.parse_object_size(args.object_size) if args.object_size else procedural.DEFAULT_OBJECT_SIZE
        return procedural_boxes(args.num_images, args.seed, args.image_size, size, progress)
    if args.object_size:
        raise ValueError("--object-size only applies to --dataset procedural")
    if args.dataset == "voc":
        if not args.data_root:
            raise DatasetError("--dataset voc needs --data-root (the folder holding Annotations/)")
        return voc_boxes(args.data_root, args.num_images, args.skip_bad, progress)
    if not args.coco_json:
        raise DatasetError("--dataset coco needs --coco-json (an instances JSON)")
    return coco_boxes(args.coco_json, args.num_images, args.skip_bad)
