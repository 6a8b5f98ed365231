"""SSD data augmentation (Sec. 2.2 "Data augmentation", Sec. 3.6) with torchvision v2.

The paper trains on randomly sampled patches (RandomIoUCrop: min IoU with the objects
in {0.1, 0.3, 0.5, 0.7, 0.9} or the whole image), a "zoom out" expansion up to 16x
area onto a mean-coloured canvas (Sec. 3.6: +2-3% mAP on small objects), horizontal
flips and photometric distortions. torchvision's v2 transforms implement exactly
these on `tv_tensors.BoundingBoxes`; this module chains them as the torchvision
detection reference does and converts to this library's item format.

A transform is called as `t(image_pil, boxes_xyxy_px (G, 4), labels (G,))` and returns
(image (3, S, S) float32 in [0, 1], {"boxes": (G', 4) xyxy normalised, "labels": (G',)}),
G' <= G after boxes cropped away or left degenerate are dropped.
Randomness comes from torch's global generator: `torch.manual_seed` makes it repeatable.
"""
from __future__ import annotations

import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2

IMAGE_MEAN = (0.485, 0.456, 0.406)  # zoom-out canvas colour (the paper fills with the mean)

AUGMENTATIONS = ("ssd", "light", "none")


class DetectionTransform:
    """Wraps a v2 pipeline so it takes (PIL, boxes px, labels) and returns normalised targets."""

    def __init__(self, pipeline: v2.Transform, size: int):
        self.pipeline = pipeline
        self.size = int(size)

    def __call__(self, image: Image.Image, boxes_xyxy_px: Tensor, labels: Tensor):
        w, h = image.size
        img = tv_tensors.Image(v2.functional.pil_to_tensor(image.convert("RGB")))  # (3, H, W) uint8
        boxes = tv_tensors.BoundingBoxes(
            boxes_xyxy_px.reshape(-1, 4).float(), format="XYXY", canvas_size=(h, w)
        )
        img, target = self.pipeline(img, {"boxes": boxes, "labels": labels.reshape(-1).long()})
        out_h, out_w = img.shape[-2:]
        scale = torch.tensor([out_w, out_h, out_w, out_h], dtype=torch.float32)
        boxes_norm = (target["boxes"].as_subclass(Tensor).float() / scale).clamp(0.0, 1.0)
        return img.as_subclass(Tensor), {"boxes": boxes_norm.reshape(-1, 4), "labels": target["labels"]}

    def __repr__(self) -> str:
        return f"DetectionTransform(size={self.size}, pipeline={self.pipeline})"


def train_transform(size: int, augment: str = "ssd", zoom_out_max: float = 4.0) -> DetectionTransform:
    """Training transform.

    Args:
        size: output side S.
        augment: "ssd" = the paper's full recipe (photometric distort, zoom out with
            prob. 0.5 up to `zoom_out_max` x the side, IoU crop, flip); "light" = flip only
            (cheap; for data that already spans all object scales and colours, as the
            procedural scenes do); "none" = resize only.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if augment == "none":
        return eval_transform(size)
    fill = {tv_tensors.Image: [int(round(255 * m)) for m in IMAGE_MEAN], "others": 0}
    ops: list[v2.Transform] = []
    if augment == "ssd":
        ops += [
            v2.RandomPhotometricDistort(p=0.5),
            v2.RandomZoomOut(fill=fill, side_range=(1.0, zoom_out_max), p=0.5),
            v2.RandomIoUCrop(),
        ]
    ops += [
        v2.RandomHorizontalFlip(p=0.5),
        # Bilinear without antialiasing, as torchvision's SSD transform and ssd.inference resize.
        v2.Resize((size, size), antialias=False),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),  # drops boxes cropped to nothing (x2 <= x1)
        v2.ToDtype(torch.float32, scale=True),
    ]
    return DetectionTransform(v2.Compose(ops), size)


def eval_transform(size: int) -> DetectionTransform:
    """Evaluation transform: resize to S x S (SSD warps, no letterbox) and scale to [0, 1]."""
    pipeline = v2.Compose(
        [
            v2.Resize((size, size), antialias=False),
            v2.ClampBoundingBoxes(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    return DetectionTransform(pipeline, size)
