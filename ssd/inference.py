"""Inference with every stage kept: what the explorer shows, in one call.

`run_stages(model, image)` runs an `SSDNet` on one image and returns `Stages`: the
resized input, per-level raw outputs, per-level softmax scores and decoded boxes, per-level
detections, the candidates before NMS, the NMS trace, and the final detections. The final
detections equal torchvision's `SSD.eval()(images)` for the same weights: the same resize
(normalise, then bilinear, align_corners=False), softmax, then `ssd.postprocess` (decode,
per-class score threshold and top-k, `batched_nms` in the network-input frame, max
detections), and boxes rescaled to the original image.

Letters: A = default boxes (all levels), C = classes incl. background 0, S = input side.
Boxes: `_px_in` = network-input pixels (S x S); `_px` = original-image pixels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.transforms.functional import pil_to_tensor

from ssd.models.common import SSDNet
from ssd.nms import NMSTrace
from ssd.postprocess import (DEFAULTS, PostprocessConfig, decode_boxes_px_in, default_boxes_px_in,
                             level_detections, postprocess)
from ssd.priors import DefaultBoxes

@dataclass
class Detections:
    """N detections, each remembering the default box it came from.

    Attributes (N rows):
        boxes_xyxy_px: (N, 4) float xyxy, original-image pixels.
        scores: (N,) softmax probability of `labels`.
        labels: (N,) long class index (1..C-1).
        level: (N,) long level index; row, col: (N,) long cell (i, j) on that level.
        box_index: (N,) long index of the default box within its cell.
        default_index: (N,) long flat index into the A default boxes.
        feature_size: (N, 2) long (H, W) of the level's feature map.
    """

    boxes_xyxy_px: Tensor
    scores: Tensor
    labels: Tensor
    level: Tensor
    row: Tensor
    col: Tensor
    box_index: Tensor
    default_index: Tensor
    feature_size: Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, index: Tensor) -> "Detections":
        """Rows `index` (long indices or bool mask), same fields."""
        return Detections(**{k: getattr(self, k)[index] for k in _DET_FIELDS})

    def to_records(self, class_names: list[str] | tuple[str, ...] | None = None) -> list[dict]:
        """One plain dict per detection (JSON-ready): label, label_id, score, box_xyxy,
        level, feature_map [H, W], cell [i, j], box_index, default_index."""
        cols = {k: getattr(self, k).tolist() for k in _DET_FIELDS}
        out = []
        for n in range(len(self)):
            lab = int(cols["labels"][n])
            name = class_names[lab] if class_names is not None and lab < len(class_names) else str(lab)
            out.append(
                {
                    "label": name,
                    "label_id": lab,
                    "score": float(cols["scores"][n]),
                    "box_xyxy": [float(v) for v in cols["boxes_xyxy_px"][n]],
                    "level": int(cols["level"][n]),
                    "feature_map": [int(v) for v in cols["feature_size"][n]],
                    "cell": [int(cols["row"][n]), int(cols["col"][n])],
                    "box_index": int(cols["box_index"][n]),
                    "default_index": int(cols["default_index"][n]),
                }
            )
        return out


_DET_FIELDS = ("boxes_xyxy_px", "scores", "labels", "level", "row", "col", "box_index", "default_index",
               "feature_size")


def image_to_tensor(image: Image.Image | Tensor) -> tuple[Image.Image | None, Tensor]:
    """PIL image or (3, H, W) tensor -> (PIL RGB or None, (3, H, W) float32 in [0, 1])."""
    if isinstance(image, Image.Image):
        pil = image if image.mode == "RGB" else image.convert("RGB")
        return pil, pil_to_tensor(pil).float().div_(255.0)
    if not isinstance(image, Tensor):
        raise TypeError(f"image must be a PIL image or a (3, H, W) tensor, got {type(image).__name__}")
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image tensor must be (3, H, W), got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return None, image.float() / 255.0
    if not image.is_floating_point():
        raise ValueError(f"image tensor must be float in [0, 1] or uint8, got {image.dtype}")
    return None, image.float()



def _detections(idx: Tensor, labels: Tensor, scores: Tensor, boxes_xyxy_px: Tensor, db: DefaultBoxes,
                feature_size_per_box: Tensor) -> Detections:
    """Detections for default boxes `idx` (flat A indices) with their class/score/box."""
    return Detections(boxes_xyxy_px=boxes_xyxy_px, scores=scores, labels=labels, level=db.level[idx],
                      row=db.row[idx], col=db.col[idx], box_index=db.box_index[idx], default_index=idx,
                      feature_size=feature_size_per_box[idx])


@dataclass
class RawStages:
    """The threshold-free part of `run_stages`: the network's outputs on one image,
    softmaxed and decoded. `stages_from_raw` turns it into `Stages` for any thresholds,
    so a threshold slider never re-runs the network. Tensors stay on the model's device.
    """

    image: Image.Image | None  # the original RGB image (None if a tensor was given)
    input_tensor: Tensor  # (3, S, S) resized network input in [0, 1]
    image_hw: tuple[int, int]  # (H, W) of the original image, pixels
    class_names: list[str]  # C names, background first
    feature_sizes: list[tuple[int, int]]  # (H_l, W_l)
    default_boxes: DefaultBoxes  # the model's default boxes (normalised, with level/cell)
    feature_size_per_box: Tensor  # (A, 2) feature-map (H, W) of each default box
    variances: tuple[float, float]  # the model's box-coding variances (decode used them)
    cls_logits: Tensor  # (A, C) raw class logits (the model's `cls_logits`)
    bbox_regression: Tensor  # (A, 4) raw (t_x, t_y, t_w, t_h) (the model's `bbox_regression`)
    scores: Tensor  # (A, C) softmax
    boxes_px_in: Tensor  # (A, 4) xyxy decoded, clipped, network-input pixels (NMS frame)
    boxes_xyxy_px: Tensor  # (A, 4) the same boxes in original-image pixels
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage


@dataclass
class Stages:
    """Everything `run_stages` computed for one image (see module docstring).

    Keeps the network's outputs (`raw`) as they are; the per-level views below split them
    into L lists with H_l*W_l*K_l rows each in default-box order (row i, column j, box b),
    on the CPU.
    """

    raw: RawStages  # the threshold-free outputs (network, softmax, decoded boxes)
    config: PostprocessConfig  # the thresholds used
    level_detections: list[Detections]  # per level: score >= level threshold, NMS in the level
    candidates: Detections  # all levels, per class score > threshold, top-k per class
    nms: NMSTrace  # NMS over `candidates` (indices into candidates; IoU in the input frame)
    detections: Detections  # final: candidates[nms.keep[:detections_per_img]]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage

    image = property(lambda self: self.raw.image, doc="the original RGB image (None if a tensor was given)")
    image_hw = property(lambda self: self.raw.image_hw, doc="(H, W) of the original image, pixels")
    class_names = property(lambda self: self.raw.class_names, doc="C names, background first")
    feature_sizes = property(lambda self: self.raw.feature_sizes, doc="L pairs (H_l, W_l)")
    default_boxes = property(lambda self: self.raw.default_boxes, doc="the model's default boxes")
    input_tensor = property(lambda self: self.raw.input_tensor.cpu(), doc="(3, S, S) network input in [0, 1]")

    @property
    def scale_xy(self) -> tuple[float, float]:
        """(sx, sy): network-input pixels -> original pixels."""
        (h, w), s = self.raw.image_hw, self.raw.input_tensor.shape[-1]
        return (w / s, h / s)

    def _split(self, flat: Tensor) -> list[Tensor]:
        return list(flat.cpu().split(self.raw.default_boxes.per_level, dim=0))  # (A, ...) -> L x (H*W*K, ...)

    cls_logits = property(lambda self: self._split(self.raw.cls_logits), doc="L x (H*W*K, C) class logits")
    bbox_regression = property(lambda self: self._split(self.raw.bbox_regression),
                               doc="L x (H*W*K, 4) raw (t_x, t_y, t_w, t_h)")
    scores = property(lambda self: self._split(self.raw.scores), doc="L x (H*W*K, C) softmax")
    boxes_xyxy_px = property(lambda self: self._split(self.raw.boxes_xyxy_px),
                             doc="L x (H*W*K, 4) decoded, clipped, original-image pixels")

    def cls_logits_flat(self) -> Tensor:
        """All levels' class logits in default-box order: (A, C), on the CPU."""
        return self.raw.cls_logits.cpu()

    def bbox_regression_flat(self) -> Tensor:
        """All levels' box regression in default-box order: (A, 4), on the CPU."""
        return self.raw.bbox_regression.cpu()


def _lap(timings: dict[str, float], dev: torch.device, name: str, t0: float) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t1 = time.perf_counter()
    timings[name] = (t1 - t0) * 1000.0
    return t1


def _model_device(model: SSDNet, device: str | torch.device | None) -> torch.device:
    model_dev = next(model.parameters()).device
    dev = torch.device(device) if device is not None else model_dev
    if dev != model_dev and not (dev.type == model_dev.type and dev.index is None):
        raise ValueError(f"device {dev} differs from the model's device {model_dev}; move the model first")
    return model_dev


def _to_original_px(boxes_px_in: Tensor, image_hw: tuple[int, int], side: int) -> Tensor:
    """Network-input pixels -> original pixels, as torchvision's resize_boxes (float32 ratios)."""
    s = torch.tensor(side, dtype=torch.float32)
    ratio_w = torch.tensor(image_hw[1], dtype=torch.float32) / s
    ratio_h = torch.tensor(image_hw[0], dtype=torch.float32) / s
    return boxes_px_in * torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(boxes_px_in.device)


@torch.inference_mode()
def forward_raw(model: SSDNet, image: Image.Image | Tensor, device: str | torch.device | None = None) -> RawStages:
    """Run `model` on one image up to decoded boxes and scores (no thresholds).

    Args:
        model: an `SSDNet`; run in eval mode (its mode is restored afterwards).
        image: PIL image (any size) or (3, H, W) float tensor in [0, 1].
        device: where to compute (default: the model's device; the model is not moved).
    Returns:
        `RawStages`, tensors on the model's device.
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    dev = _model_device(model, device)
    cfg = model.cfg
    s = cfg.image_size
    pil, img = image_to_tensor(image)
    image_hw = (int(img.shape[-2]), int(img.shape[-1]))
    img = img.to(dev)
    # torchvision's transform: normalise at the original size, then resize bilinearly.
    x = F.interpolate(model.normalize(img[None]), size=[s, s], mode="bilinear", align_corners=False)
    input_tensor = F.interpolate(img[None], size=[s, s], mode="bilinear", align_corners=False)[0]
    t = _lap(timings, dev, "preprocess", t_start)

    was_training = model.training
    model.eval()
    try:
        features = model.extract_features(x)
        t = _lap(timings, dev, "backbone", t)
        head = model.predict(features)
        t = _lap(timings, dev, "head", t)
    finally:
        model.train(was_training)

    db, default_xyxy_px_in = default_boxes_px_in(cfg)
    cls_logits = head.cls_logits_flat()[0]  # (1, A, C) -> (A, C)
    bbox_regression = head.bbox_regression_flat()[0]  # (1, A, 4) -> (A, 4)
    scores = F.softmax(cls_logits, dim=-1)  # (A, C), as torchvision (one softmax over all)
    boxes_px_in = decode_boxes_px_in(bbox_regression, default_xyxy_px_in, s, cfg.variances)
    boxes_xyxy_px = _to_original_px(boxes_px_in, image_hw, s)
    _lap(timings, dev, "decode", t)

    names = list(model.class_names) if model.class_names else ["background"] + [
        str(c) for c in range(1, scores.shape[1])]
    fm = torch.tensor(cfg.feature_maps)[db.level]  # (A,) side of each box's (square) feature map
    return RawStages(
        image=pil, input_tensor=input_tensor, image_hw=image_hw, class_names=names,
        feature_sizes=list(head.feature_sizes), default_boxes=db, feature_size_per_box=torch.stack([fm, fm], 1),
        variances=tuple(cfg.variances), cls_logits=cls_logits, bbox_regression=bbox_regression, scores=scores,
        boxes_px_in=boxes_px_in, boxes_xyxy_px=boxes_xyxy_px, timings=timings,
    )


def run_stages(
    model: SSDNet,
    image: Image.Image | Tensor,
    config: PostprocessConfig | None = None,
    *,
    device: str | torch.device | None = None,
    **overrides,
) -> Stages:
    """Run `model` on one image and keep every stage: `stages_from_raw(forward_raw(...))`.

    Args:
        model: an `SSDNet`; run in eval mode (its mode is restored afterwards).
        image: PIL image (any size) or (3, H, W) float tensor in [0, 1].
        config: the thresholds (default `PostprocessConfig()`: torchvision's values).
        device: where to compute (default: the model's device; the model is not moved).
        overrides: `stages_from_raw`'s keyword overrides of one field of `config` each
            (score_thresh, nms_thresh, topk_candidates, detections_per_img, level_score_thresh,
            level_nms_thresh: `PostprocessConfig`'s field names); an unknown name is a TypeError.
    Returns:
        `Stages`, boxes in original-image pixels (`_px`) unless named `_px_in`.
    """
    return stages_from_raw(forward_raw(model, image, device=device), config, **overrides)


@torch.inference_mode()
def stages_from_raw(
    raw: RawStages,
    config: PostprocessConfig | None = None,
    *,
    score_thresh: float | None = None,
    nms_thresh: float | None = None,
    topk_candidates: int | None = None,
    detections_per_img: int | None = None,
    level_score_thresh: float | None = None,
    level_nms_thresh: float | None = None,
) -> Stages:
    """The thresholded stages (per-level detections, candidates, NMS trace, final
    detections) from `forward_raw`'s output, by `ssd.postprocess`.

    config: the thresholds (default `PostprocessConfig()`); score_thresh, nms_thresh,
    topk_candidates, detections_per_img, level_score_thresh, level_nms_thresh: override
    the `PostprocessConfig` field of that name; None keeps it."""
    cfg = (config if config is not None else DEFAULTS).with_overrides(
        score_thresh=score_thresh, nms_thresh=nms_thresh, topk_candidates=topk_candidates,
        detections_per_img=detections_per_img, level_score_thresh=level_score_thresh,
        level_nms_thresh=level_nms_thresh)
    t_start = time.perf_counter()
    timings = dict(raw.timings)
    db, fsize = raw.default_boxes, raw.feature_size_per_box
    dev = raw.scores.device

    # Per-level detections: what each feature map finds on its own (Sec. 2.1, Fig. 1).
    a_idx, lab, sc = (t.cpu() for t in level_detections(raw.scores, raw.boxes_px_in, db.level, cfg))
    all_level = _detections(a_idx, lab, sc, raw.boxes_xyxy_px[a_idx.to(dev)].cpu(), db, fsize)
    level_dets = [all_level.select(all_level.level == k) for k in range(len(db.per_level))]
    t = _lap(timings, dev, "level_detections", t_start)

    post = postprocess(raw.scores, raw.boxes_px_in, cfg)  # torchvision's postprocess_detections
    t = _lap(timings, dev, "nms", t)

    cand_idx = post.candidate_index
    candidates = _detections(cand_idx.cpu(), post.candidate_labels.cpu(), post.candidate_scores.cpu(),
                             raw.boxes_xyxy_px[cand_idx].cpu(), db, fsize)
    stages = Stages(raw=raw, config=cfg, level_detections=level_dets, candidates=candidates,
                    nms=post.nms.to("cpu"),  # who-removed-whom is computed when first read
                    detections=candidates.select(post.final.cpu()), timings=timings)
    _lap(timings, dev, "collect", t)
    timings["total"] = sum(raw.timings.values()) + (time.perf_counter() - t_start) * 1000.0
    return stages
