"""What the dataset readers share: the error type, image loading, box checks, collate.

Every dataset here yields (image (3, H, W) float32 in [0, 1], target) with target
`{"boxes": (G, 4) float32 xyxy normalised to [0, 1], "labels": (G,) int64 in 1..C-1}`.
A transform `t(image_pil, boxes_xyxy_px, labels) -> (image, target)` may replace the
default conversion (see `ssd.data.transforms`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset, Subset

from ssd.boxes import px_to_norm
from ssd.data.paths import PathRefused, confine, open_regular, read_regular
from ssd.images import ImageError, load_image, stored_image_hw

MAX_LIST_BYTES = 64 << 20  # a VOC ImageSets/Main/<split>.txt


class DatasetError(ValueError):
    """A dataset file is missing or wrong; the message names the file and the problem."""


def require_path(path: Path, what: str, is_dir: bool = False) -> Path:
    """`path` if it is a folder (`is_dir`) or a regular file inside the data roots in
    force (`ssd.data.paths.confine`, every link followed); else DatasetError naming it."""
    try:
        confine(path, f"{what} folder" if is_dir else f"{what} file", kind="dir" if is_dir else "file")
    except PathRefused as e:
        raise DatasetError(str(e)) from None
    return Path(path)


def read_list_file(path: Path, what: str, max_bytes: int = MAX_LIST_BYTES) -> str:
    """The text of a list file (a VOC split), confined and size-limited like every
    dataset file; DatasetError naming it."""
    try:
        return read_regular(path, what, max_bytes).decode("utf-8", errors="replace")
    except PathRefused as e:
        raise DatasetError(str(e)) from None


def _open_image(path: Path):
    """The image file opened through `ssd.data.paths.open_regular` (confined, no FIFO)."""
    try:
        return open_regular(path, "image file")
    except PathRefused as e:
        raise DatasetError(str(e)) from None


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) of a dataset image as stored, from its header (`ssd.images`);
    DatasetError if missing or not an image."""
    path = require_path(path, "image")
    try:
        h, w = stored_image_hw(path)
    except ImageError as e:
        raise DatasetError(f"{path}: unreadable image ({str(e).removeprefix(f'{path}: ')})") from None
    return w, h


def load_dataset_image(path: Path) -> Image.Image:
    """A dataset image decoded as RGB as stored (`ssd.images.load_image`, no EXIF turn: the
    boxes are in the stored frame; no upscaling); DatasetError if it cannot be read."""
    f = _open_image(path)  # confined, regular file, opened without blocking
    try:
        with f:
            return load_image(f, min_side=1, apply_exif=False, name=str(path))
    except ImageError as e:
        raise DatasetError(f"{path}: unreadable image ({str(e).removeprefix(f'{path}: ')})") from None


def check_box(source: str, box_xyxy: tuple[float, float, float, float], width: int, height: int,
              tolerance: float = 1.0) -> tuple[float, float, float, float]:
    """Validate one pixel box against its image and clamp it into [0, W] x [0, H].

    Raises DatasetError (naming `source`) when x2 <= x1, y2 <= y1, a coordinate is not
    finite, or the box lies outside the image by more than `tolerance` pixels.
    """
    x1, y1, x2, y2 = (float(v) for v in box_xyxy)
    if not all(np.isfinite([x1, y1, x2, y2])):
        raise DatasetError(f"{source}: box {box_xyxy} has a non-finite coordinate")
    if x2 <= x1 or y2 <= y1:
        raise DatasetError(f"{source}: box has x2 <= x1 or y2 <= y1 (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g})")
    if x1 < -tolerance or y1 < -tolerance or x2 > width + tolerance or y2 > height + tolerance:
        raise DatasetError(
            f"{source}: box (x1={x1:g}, y1={y1:g}, x2={x2:g}, y2={y2:g}) lies outside the "
            f"{width}x{height} image"
        )
    return (max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height)))


def to_tensor_target(img: Image.Image, boxes_xyxy_px: Tensor, labels: Tensor):
    """Default conversion: (3, H, W) float in [0, 1] and boxes normalised by W, H."""
    w, h = img.size
    x = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy()).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    return x.float() / 255.0, {"boxes": px_to_norm(boxes_xyxy_px.reshape(-1, 4), (h, w)), "labels": labels.reshape(-1).long()}


def collate(batch):
    """List of (image, target) -> (images (B, 3, S, S), list of targets)."""
    images = torch.stack([b[0] for b in batch])
    return images, [b[1] for b in batch]


def skipped_on_load(dataset) -> int:
    """Images a dataset found bad only when decoding them (0 for datasets that never
    skip); looks through `torch.utils.data.Subset` wrappers."""
    while isinstance(dataset, Subset):
        dataset = dataset.dataset
    return int(getattr(dataset, "num_skipped_on_load", 0))


class SampleListDataset(Dataset):
    """A detection dataset read up front into `samples` = [(image path, boxes_xyxy px, labels)]
    (VOC and COCO readers).

    Bad samples are found in two places. At build time (annotation, image header) they
    are left out and listed in `skipped` = [(file, reason)]. An image whose data turns
    out bad only when decoded (truncated after its header) is found in `__getitem__`:
    with `skip_bad` the item falls back to the next good sample and the image is
    flagged in a shared-memory mask (so DataLoader workers count it too, once) and
    listed in `load_skipped` (this process); without it, DatasetError names the file.
    `num_skipped` counts both.
    """

    samples: list
    skipped: list
    transform = None
    skip_bad: bool = False

    def _init_skips(self, skip_bad: bool) -> None:
        """Call at the end of a subclass's __init__, once `samples` is final."""
        self.skip_bad = bool(skip_bad)
        self.load_skipped: list[tuple[str, str]] = []
        # (N,) bool in shared memory: survives the pickling into DataLoader workers.
        self._bad_on_load = torch.zeros(len(self.samples), dtype=torch.bool).share_memory_()

    @property
    def num_skipped_on_load(self) -> int:
        """Images found bad when decoded, over all DataLoader workers (each counted once)."""
        bad = getattr(self, "_bad_on_load", None)
        return int(bad.sum()) if bad is not None else 0

    @property
    def num_skipped(self) -> int:
        """Bad samples left out at build time plus those found when decoded."""
        return len(self.skipped) + self.num_skipped_on_load

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        n = len(self.samples)
        for k in range(n):
            j = (i + k) % n  # with skip_bad, a bad image is replaced by the next good one
            if self.skip_bad and bool(self._bad_on_load[j]):
                continue
            img_path, boxes, labels = self.samples[j]
            try:
                img = load_dataset_image(img_path)
            except DatasetError as e:
                if not self.skip_bad:
                    raise
                self._bad_on_load[j] = True
                self.load_skipped.append((str(img_path), str(e)))
                continue
            if self.transform is not None:
                return self.transform(img, boxes, labels)
            return to_tensor_target(img, boxes, labels)
        raise DatasetError(f"{self.samples[0][0] if n else 'dataset'}: no image of the {n} sample(s) can be "
                           f"decoded ({self.num_skipped} skipped as bad)")
