"""Pascal VOC reader: `root/{JPEGImages, Annotations, ImageSets/Main/<split>.txt}`.

Annotations are parsed once with ElementTree when the dataset is built, so a bad file is
reported up front, naming the file and the problem; `skip_bad=True` leaves bad samples
out instead and lists them in `.skipped` (training logs the count). VOC pixel
coordinates are 1-based and inclusive, so x1 = xmin - 1 and x2 = xmax.

Items: (image (3, H, W) float32 in [0, 1], {"boxes": (G, 4) xyxy normalised,
"labels": (G,) int64 in 1..C-1}), or whatever `transform(image_pil, boxes_px, labels)` returns.
"""
from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import torch

from ssd.data.common import DatasetError, SampleListDataset, check_box, image_size_of, require_path

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)


def _text(node: ET.Element, tag: str, source: str) -> str:
    child = node.find(tag)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{source}: missing <{tag}>")
    return child.text.strip()


def _number(node: ET.Element, tag: str, source: str) -> float:
    text = _text(node, tag, source)
    try:
        return float(text)
    except ValueError:
        raise DatasetError(f"{source}: <{tag}> is not a number ({text!r})") from None


def parse_annotation(xml_path: Path, class_names: tuple[str, ...], keep_difficult: bool = False):
    """Parse one VOC XML file.

    Returns (filename, width, height, boxes_xyxy px (G, 4) float32, labels (G,) int64).
    Raises DatasetError naming the file for: unreadable XML, missing <size>/<bndbox>/
    coordinates, x2 <= x1, boxes outside the image, a class not in `class_names`.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise DatasetError(f"{xml_path}: not valid XML ({e})") from None
    except OSError as e:
        raise DatasetError(f"{xml_path}: cannot read annotation ({e})") from None
    src = str(xml_path)
    filename = _text(root, "filename", src)
    size = root.find("size")
    if size is None:
        raise DatasetError(f"{src}: missing <size>")
    width, height = int(_number(size, "width", src)), int(_number(size, "height", src))
    if width <= 0 or height <= 0:
        raise DatasetError(f"{src}: <size> must be positive, got {width}x{height}")
    boxes, labels = [], []
    for k, obj in enumerate(root.findall("object")):
        name = _text(obj, "name", f"{src} object {k}")
        where = f"{src} object {k} ({name!r})"
        if name not in class_names:
            raise DatasetError(f"{where}: unknown class {name!r}; known: {list(class_names[1:])}")
        difficult = obj.find("difficult")
        if difficult is not None and (difficult.text or "0").strip() == "1" and not keep_difficult:
            continue
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{where}: missing <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb, t, where) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append(check_box(where, (xmin - 1, ymin - 1, xmax, ymax), width, height))
        labels.append(class_names.index(name))
    return (
        filename,
        width,
        height,
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
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
            `.skipped` lists (file, reason).
        keep_difficult: keep objects marked <difficult>1</difficult>.
    """

    def __init__(self, root, split: str = "train", class_names=VOC_CLASSES, transform=None,
                 skip_bad: bool = False, keep_difficult: bool = False):
        self.root = require_path(Path(root), "VOC root", is_dir=True)
        require_path(self.root / "JPEGImages", "VOC JPEGImages", is_dir=True)
        require_path(self.root / "Annotations", "VOC Annotations", is_dir=True)
        split_file = require_path(self.root / "ImageSets" / "Main" / f"{split}.txt", f"VOC split {split!r}")
        self.class_names = tuple(class_names)
        if not self.class_names or self.class_names[0] != "background":
            raise ValueError(f"class_names must start with 'background', got {self.class_names[:3]}")
        self.transform = transform
        self.skipped: list[tuple[str, str]] = []
        self.samples: list[tuple[Path, torch.Tensor, torch.Tensor]] = []
        ids = [line.strip().split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        if not ids:
            raise DatasetError(f"{split_file}: split lists no images")
        for image_id in ids:
            xml_path = self.root / "Annotations" / f"{image_id}.xml"
            try:
                require_path(xml_path, "annotation")
                filename, w, h, boxes, labels = parse_annotation(xml_path, self.class_names, keep_difficult)
                img_path = self.root / "JPEGImages" / filename
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
