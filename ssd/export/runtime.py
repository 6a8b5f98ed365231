"""Running an exported SSD with ONNX Runtime: `OnnxDetector(path).detect(image)`.

Gives the same `ssd.inference.Detections` as `ssd.inference.run_stages(...).detections`
(boxes in original-image pixels, each with its level, cell and default box, rebuilt
from the default-box configuration the file records), so `ssd.detect --onnx` prints the
same records as `ssd.detect --checkpoint`.

Thresholds: the file holds its own (`ExportInfo.postprocess`). A higher score threshold
or a smaller top-k can still be applied afterwards, exactly: greedy NMS only lets a box
suppress lower-scored ones, so dropping the low scores after NMS keeps the same boxes
as dropping them before. A lower score threshold, a larger top-k or another NMS IoU
needs a new export (ValueError says so).

Letters: B = images, S = input side, K = detections.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ssd.config import SSDConfig
from ssd.export.onnx_export import FORMAT, ExportError
from ssd.inference import Detections, _to_original_px, image_to_tensor
from ssd.postprocess import PostprocessConfig
from ssd.priors import DefaultBoxes, default_boxes


@dataclass(frozen=True)
class ExportInfo:
    """The metadata of an exported file (`ssd.export.onnx_export.METADATA_KEYS`), parsed."""

    model_name: str
    outputs: str  # "detections" or "raw"
    input_name: str
    input_hw: tuple[int, int]  # (H, W) the graph takes, pixels
    class_names: tuple[str, ...]  # C names, background first
    level_names: tuple[str, ...]
    config: SSDConfig  # the default boxes
    postprocess: PostprocessConfig | None  # the baked-in thresholds; None for raw outputs
    dynamic_batch: bool


def read_info(meta: dict[str, str], source: str) -> ExportInfo:
    """`ExportInfo` from an ONNX file's metadata_props; ExportError names what is missing."""
    if meta.get("format") != FORMAT:
        raise ExportError(f"{source} was not written by ssd.export (metadata format {meta.get('format')!r}, "
                          f"expected {FORMAT!r}); export it with python -m ssd.export")
    try:
        post = json.loads(meta["postprocess"])
        return ExportInfo(
            model_name=meta["model_name"], outputs=meta["outputs"], input_name=meta["input_name"],
            input_hw=tuple(json.loads(meta["input_hw"])), class_names=tuple(json.loads(meta["class_names"])),
            level_names=tuple(json.loads(meta["level_names"])),
            config=SSDConfig.from_dict(json.loads(meta["ssd_config"])),
            postprocess=PostprocessConfig(**post) if post else None,
            dynamic_batch=meta["dynamic_batch"] == "true")
    except (KeyError, ValueError, TypeError) as e:
        raise ExportError(f"{source}: unreadable ssd.export metadata ({type(e).__name__}: {e})") from e


class OnnxDetector:
    """An exported SSD in an ONNX Runtime session.

    Args:
        onnx_path: a file written by `ssd.export.export_onnx`.
        threads: ONNX Runtime intra-op threads (None: its default, one per core).
    Raises:
        ExportError for a missing file, one ONNX Runtime cannot read, or one without
        ssd.export's metadata.
    """

    def __init__(self, onnx_path: str | os.PathLike, threads: int | None = None):
        import onnxruntime as ort  # the export extra

        p = Path(onnx_path)
        if not p.is_file():
            raise ExportError(f"ONNX file {p} does not exist")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own Fail/InvalidProtobuf types
            raise ExportError(f"ONNX Runtime cannot load {p}: {str(e).splitlines()[0]}") from e
        self.path = p
        self.info = read_info(self.session.get_modelmeta().custom_metadata_map, str(p))
        self.output_names = [o.name for o in self.session.get_outputs()]
        db = default_boxes(self.info.config)
        self.default_boxes: DefaultBoxes = db
        fm = torch.tensor(self.info.config.feature_maps)[db.level]  # (A,) side of each box's map
        self.feature_size_per_box = torch.stack([fm, fm], 1)  # (A, 2) (H, W)

    def preprocess(self, image: Image.Image | Tensor) -> tuple[np.ndarray, tuple[int, int]]:
        """PIL image or (3, H, W) tensor in [0, 1] -> ((1, 3, S, S) float32 input, (H, W))."""
        _, img = image_to_tensor(image)
        x = F.interpolate(img[None], size=list(self.info.input_hw), mode="bilinear", align_corners=False)
        return x.numpy(), (int(img.shape[-2]), int(img.shape[-1]))

    def run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """The graph's outputs (by name) for `images` (B, 3, S, S) float32 in [0, 1].
        ValueError naming the expected and the given shape when they do not fit."""
        h, w = self.info.input_hw
        shape = tuple(getattr(images, "shape", ()))
        fixed = not self.info.dynamic_batch
        if len(shape) != 4 or shape[1:] != (3, h, w) or (fixed and shape[0] != 1):
            raise ValueError(
                f"{self.path.name} takes images of shape ({'1' if fixed else 'B'}, 3, {h}, {w}) "
                f"({'fixed-size export' if fixed else 'any batch B'}), got {shape}: resize each image to "
                f"{h}x{w} first (OnnxDetector.preprocess does){'; export with --dynamic-batch for B > 1' if fixed else ''}")
        if images.dtype != np.float32:
            raise ValueError(f"{self.path.name} takes float32 images in [0, 1], got {images.dtype}")
        return dict(zip(self.output_names, self.session.run(None, {self.info.input_name: images})))

    def _thresholds(self, score_thresh: float | None, detections_per_img: int | None) -> tuple[float, int]:
        post = self.info.postprocess
        if post is None:
            raise ExportError(f"{self.path} holds the raw head outputs (exported with --raw), not detections")
        score = post.score_thresh if score_thresh is None else float(score_thresh)
        k = post.detections_per_img if detections_per_img is None else int(detections_per_img)
        if score < post.score_thresh:
            raise ValueError(f"score threshold {score} is below the {post.score_thresh} baked into "
                             f"{self.path.name}; export again with --score-thresh {score}")
        if k > post.detections_per_img:
            raise ValueError(f"detections_per_img {k} is above the {post.detections_per_img} detections baked into "
                             f"{self.path.name}; export again with --detections-per-img {k}")
        return score, k

    def detect(self, image: Image.Image | Tensor, score_thresh: float | None = None,
               detections_per_img: int | None = None) -> tuple[Detections, tuple[int, int], float]:
        """Detections of one image: (Detections in original-image pixels, image (H, W), ms).

        score_thresh / detections_per_img: optional, stricter than the file's (see module docstring).
        """
        score_min, k = self._thresholds(score_thresh, detections_per_img)
        t0 = time.perf_counter()
        x, image_hw = self.preprocess(image)
        out = self.run(x)
        scores = torch.from_numpy(out["scores"])
        keep = torch.nonzero(scores > score_min)[:k, 0]  # (K,) rows already by descending score
        idx = torch.from_numpy(out["default_index"])[keep]
        boxes_px_in = torch.from_numpy(out["boxes_xyxy_px_in"])[keep]
        db = self.default_boxes
        det = Detections(boxes_xyxy_px=_to_original_px(boxes_px_in, image_hw, self.info.input_hw[0]),
                         scores=scores[keep], labels=torch.from_numpy(out["labels"])[keep], level=db.level[idx],
                         row=db.row[idx], col=db.col[idx], box_index=db.box_index[idx], default_index=idx,
                         feature_size=self.feature_size_per_box[idx])
        return det, image_hw, (time.perf_counter() - t0) * 1000.0
