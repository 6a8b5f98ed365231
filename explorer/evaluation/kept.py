"""The network outputs of one evaluation, kept so thresholds can change without the network.

Per image the evaluation keeps the decoded boxes and class scores of every default box
with some class scoring above `floor` (the lowest score threshold the tuner offers), and
the ground truth. `dense_image` puts them back into (A, C) / (A, 4) tensors with zeros
elsewhere: for any score threshold >= floor, `ssd.postprocess.postprocess` on those gives
the same detections as on the full outputs, since a default box left out has no class
scoring above the threshold and so never becomes a candidate (tests/test_evaluation_kept.py).

Letters: N = images, A = default boxes, C = classes incl. background, R = rows kept over
all images, G = GT boxes over all images.
Frames: `_px_in` = network-input pixels (S x S), the evaluation's frame.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from torch import Tensor

from ssd.postprocess import DEFAULTS

KEPT_FLOOR = DEFAULTS.score_thresh  # rows kept: some class scores > this (the library's score_thresh)


@dataclass
class KeptOutputs:
    """Threshold-free outputs of N images, sparse (see module docstring)."""

    floor: float  # rows kept have a class score > floor
    num_defaults: int  # A, default boxes per image
    row_offsets: Tensor  # (N + 1,) long: image i's rows are row_offsets[i]:row_offsets[i+1]
    default_index: Tensor  # (R,) long, each row's default box
    scores: Tensor  # (R, C) softmax scores
    boxes_px_in: Tensor  # (R, 4) decoded, clipped xyxy
    gt_offsets: Tensor  # (N + 1,) long: image i's GTs are gt_offsets[i]:gt_offsets[i+1]
    gt_boxes_px_in: Tensor  # (G, 4) xyxy
    gt_labels: Tensor  # (G,) long, 1..C-1

    @property
    def num_images(self) -> int:
        return len(self.row_offsets) - 1

    def gt(self, i: int) -> dict:
        """Image i's ground truth as `ssd.evaluation.evaluate.collect` gives it."""
        a, b = int(self.gt_offsets[i]), int(self.gt_offsets[i + 1])
        return {"boxes_xyxy_px_in": self.gt_boxes_px_in[a:b], "labels": self.gt_labels[a:b]}

    def dense_image(self, i: int) -> tuple[Tensor, Tensor]:
        """Image i as (scores (A, C), boxes_px_in (A, 4)), zeros where no row was kept."""
        a, b = int(self.row_offsets[i]), int(self.row_offsets[i + 1])
        c = self.scores.shape[1]
        scores = torch.zeros(self.num_defaults, c, dtype=self.scores.dtype)
        boxes = torch.zeros(self.num_defaults, 4, dtype=self.boxes_px_in.dtype)
        idx = self.default_index[a:b]
        scores[idx] = self.scores[a:b]
        boxes[idx] = self.boxes_px_in[a:b]
        return scores, boxes


class KeptCollector:
    """Collects `KeptOutputs` batch by batch (`ssd.evaluation.evaluate.collect`'s `on_batch` data)."""

    def __init__(self, floor: float = KEPT_FLOOR):
        self.floor = float(floor)
        self.num_defaults = 0
        self._rows: list[tuple[Tensor, Tensor, Tensor]] = []  # per image (idx, scores, boxes)
        self._gts: list[dict] = []

    def add_batch(self, scores: Tensor, boxes_px_in: Tensor, gts: list[dict]) -> None:
        """scores (B, A, C), boxes_px_in (B, A, 4), gts: B dicts {"boxes_xyxy_px_in", "labels"}."""
        self.num_defaults = int(scores.shape[1])
        keep = (scores[..., 1:] > self.floor).any(-1)  # (B, A): some class above the floor
        for b in range(scores.shape[0]):
            idx = torch.where(keep[b])[0]
            self._rows.append((idx.cpu(), scores[b, idx].cpu(), boxes_px_in[b, idx].cpu()))
        self._gts += [{k: v.cpu() for k, v in g.items()} for g in gts]

    def result(self) -> KeptOutputs:
        counts = torch.tensor([0] + [len(r[0]) for r in self._rows])
        gt_counts = torch.tensor([0] + [len(g["labels"]) for g in self._gts])
        c = self._rows[0][1].shape[1] if self._rows else 2
        cat = (lambda xs, shape: torch.cat(xs) if xs else torch.zeros(shape))  # noqa: E731
        return KeptOutputs(
            self.floor, self.num_defaults, counts.cumsum(0), cat([r[0] for r in self._rows], (0,)).long(),
            cat([r[1] for r in self._rows], (0, c)), cat([r[2] for r in self._rows], (0, 4)),
            gt_counts.cumsum(0), cat([g["boxes_xyxy_px_in"].float().reshape(-1, 4) for g in self._gts], (0, 4)),
            cat([g["labels"].long() for g in self._gts], (0,)).long())


def kept_to_bytes(kept: KeptOutputs) -> bytes:
    """`torch.save` of the fields (tensors and numbers only: loads with weights_only=True)."""
    buf = io.BytesIO()
    torch.save({k: getattr(kept, k) for k in KeptOutputs.__dataclass_fields__}, buf)
    return buf.getvalue()


def kept_from_file(path) -> KeptOutputs:
    """Read a raw-outputs file written by `kept_to_bytes` (weights_only=True). ValueError
    naming the file when it is truncated or not one."""
    try:
        d = torch.load(path, map_location="cpu", weights_only=True)
        return KeptOutputs(**{k: d[k] for k in KeptOutputs.__dataclass_fields__})
    except Exception as e:  # unpickler errors on junk are of many types
        raise ValueError(f"raw outputs {path}: not readable ({e}); delete the evaluation and run it again") from e
