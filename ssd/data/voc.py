"""Pascal VOC reader: `root/{JPEGImages, Annotations, ImageSets/Main/<split>.txt}`.

Annotations are read once (`ssd.data.formats.read_voc_xml`) when the dataset is built,
so a bad file is reported up front, naming the file and the problem; `skip_bad=True` leaves bad samples
out instead and lists them in `.skipped` (training logs the count); an image that fails
to decode only when loaded is skipped then (see `SampleListDataset`). VOC pixel
coordinates are 1-based and inclusive, so x1 = xmin - 1 and x2 = xmax (converted by the
reader). The image of `Annotations/<id>.xml` is `JPEGImages/<id>.jpg`, as in the devkit
and torchvision's `VOCDetection`; `<filename>` is not used to find it.

Items: (image (3, H, W) float32 in [0, 1], {"boxes": (G, 4) xyxy normalised,
"labels": (G,) int64 in 1..C-1}), or whatever `transform(image_pil, boxes_px, labels)` returns.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ssd.data.common import (DatasetError, SampleListDataset, check_box, image_size_of, read_list_file,
                             require_path)
from ssd.data.formats import is_ground_truth, read_voc_xml

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def split_path(root, split: str) -> Path:
    """The split list of a VOC folder: `root/ImageSets/Main/<split>.txt`."""
    return Path(root) / "ImageSets" / "Main" / f"{split}.txt"


def split_ids(text: str) -> list[str]:
    """The image ids of a split list's text: the first word of each non-blank line (the
    devkit's lines are "id" or, in the per-class lists, "id flag")."""
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def read_split(root, split: str) -> list[str]:
    """The image ids of `root/ImageSets/Main/<split>.txt` (`split_ids`); DatasetError naming
    the file when it is missing."""
    return split_ids(read_list_file(split_path(root, split), f"VOC split {split!r} file"))


def parse_annotation(xml_path: Path, class_names: tuple[str, ...], keep_difficult: bool = False):
    """Read one VOC XML file (`ssd.data.formats.read_voc_xml`) and check it for training.

    Returns (filename, width, height, boxes_xyxy px (G, 4) float32, labels (G,) int64):
    0-based pixel corners; difficult objects left out unless `keep_difficult`.
    Raises DatasetError naming the file for: anything `read_voc_xml` refuses, a missing
    <size>, x2 <= x1, boxes outside the image, a class not in `class_names`.
    """
    ann = read_voc_xml(xml_path, str(xml_path))
    src = str(xml_path)
    if ann.image_hw is None:
        raise DatasetError(f"{src}: missing <size>")
    height, width = ann.image_hw
    boxes, labels = [], []
    for k, obj in enumerate(ann.objects):
        where = f"{src} object {k} ({obj.name!r})"
        if obj.name not in class_names:
            raise DatasetError(f"{where}: unknown class {obj.name!r}; known: {list(class_names[1:])}")
        if not is_ground_truth(obj, keep_difficult):
            continue
        boxes.append(check_box(where, obj.box_xyxy, width, height))
        labels.append(class_names.index(obj.name))
    return (
        ann.filename,
        width,
        height,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),  # (G, 4), also when G = 0
        torch.tensor(labels, dtype=torch.int64),
    )


class VOCDataset(SampleListDataset):
    """A Pascal VOC split.

    Args:
        root: folder holding JPEGImages/, Annotations/, ImageSets/Main/.
        split: image-set name ("train", "val", "trainval", "test").
        class_names: names with "background" first (default: the 20 VOC classes).
        transform: `t(image_pil, boxes_xyxy_px, labels) -> (image, target)`; default:
            tensor in [0, 1] at the original size, boxes normalised.
        skip_bad: leave out samples with a bad annotation or image instead of raising;
            `.skipped` lists (file, reason); an image that fails to decode when loaded
            is replaced by the next good sample and counted in `.num_skipped`.
        keep_difficult: keep objects marked <difficult>1</difficult>.
    """

    def __init__(self, root, split: str = "train", class_names=VOC_CLASSES, transform=None,
                 skip_bad: bool = False, keep_difficult: bool = False):
        self.root = require_path(Path(root), "VOC root", is_dir=True)
        require_path(self.root / "JPEGImages", "VOC JPEGImages", is_dir=True)
        require_path(self.root / "Annotations", "VOC Annotations", is_dir=True)
        self.class_names = tuple(class_names)
        if not self.class_names or self.class_names[0] != "background":
            raise ValueError(f"class_names must start with 'background', got {self.class_names[:3]}")
        self.transform = transform
        self.skipped: list[tuple[str, str]] = []
        self.samples: list[tuple[Path, torch.Tensor, torch.Tensor]] = []
        ids = read_split(self.root, split)
        if not ids:
            raise DatasetError(f"{split_path(self.root, split)}: split lists no images")
        for image_id in ids:
            xml_path = self.root / "Annotations" / f"{image_id}.xml"
            try:
                require_path(xml_path, "annotation")
                _, w, h, boxes, labels = parse_annotation(xml_path, self.class_names, keep_difficult)
                # The devkit and torchvision open JPEGImages/<id>.jpg; <filename> may name another file.
                img_path = self.root / "JPEGImages" / f"{image_id}.jpg"
                iw, ih = image_size_of(img_path)
                if (iw, ih) != (w, h):
                    raise DatasetError(f"{xml_path}: <size> says {w}x{h} but {img_path} is {iw}x{ih}")
            except DatasetError as e:
                if not skip_bad:
                    raise
                self.skipped.append((str(xml_path), str(e)))
                continue
            self.samples.append((img_path, boxes, labels))
        if not self.samples:
            raise DatasetError(f"{self.root}: no usable samples in split {split!r} ({len(self.skipped)} skipped)")
        self._init_skips(skip_bad)
