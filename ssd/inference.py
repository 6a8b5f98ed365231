"""Inference with every stage kept: what the explorer shows, in one call.

`run_stages(model, image)` runs an `SSDNet` on one image and returns `Stages`: the
resized input, per-level raw outputs, per-level softmax scores and decoded boxes, per-level
detections, the candidates before NMS, the NMS trace, and the final detections. The final
detections equal torchvision's `SSD.eval()(images)` for the same weights: the same resize
(normalise, then bilinear, align_corners=False), softmax, per-class score threshold and
top-k, `batched_nms` in the network-input frame, and boxes rescaled to the original image.

Letters: A = default boxes (all levels), C = classes incl. background 0, S = input side.
Boxes: `_px_in` = network-input pixels (S x S); plain `boxes_xyxy` = original-image pixels.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor
from torchvision.models.detection._utils import BoxCoder
from torchvision.ops import batched_nms
from torchvision.transforms.functional import pil_to_tensor

from ssd.config import SSDConfig
from ssd.models.common import SSDNet
from ssd.nms import NMSTrace, nms_trace
from ssd.priors import DefaultBoxes, default_boxes

# Same coding as ssd.boxes.decode with variances (0.1, 0.2); torchvision's own
# implementation is used so the boxes are bit-identical to its model's.
_BOX_CODER = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))


@dataclass
class Detections:
    """N detections, each remembering the default box it came from.

    Attributes (N rows):
        boxes_xyxy: (N, 4) float, original-image pixels.
        scores: (N,) softmax probability of `labels`.
        labels: (N,) long class index (1..C-1).
        level: (N,) long level index; row, col: (N,) long cell (i, j) on that level.
        box_index: (N,) long index of the default box within its cell.
        default_index: (N,) long flat index into the A default boxes.
        feature_size: (N, 2) long (H, W) of the level's feature map.
    """

    boxes_xyxy: Tensor
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
                    "box_xyxy": [float(v) for v in cols["boxes_xyxy"][n]],
                    "level": int(cols["level"][n]),
                    "feature_map": [int(v) for v in cols["feature_size"][n]],
                    "cell": [int(cols["row"][n]), int(cols["col"][n])],
                    "box_index": int(cols["box_index"][n]),
                    "default_index": int(cols["default_index"][n]),
                }
            )
        return out


_DET_FIELDS = ("boxes_xyxy", "scores", "labels", "level", "row", "col", "box_index", "default_index",
               "feature_size")


@dataclass
class Stages:
    """Everything `run_stages` computed for one image (see module docstring).

    Per-level lists have one entry per level l with H_l*W_l*K_l rows in default-box order
    (row i, column j, box b). All tensors are on the CPU.
    """

    image: Image.Image | None  # the original RGB image (None if a tensor was given)
    input_tensor: Tensor  # (3, S, S) resized network input in [0, 1]
    orig_size: tuple[int, int]  # (H, W) of the original image, pixels
    scale_xy: tuple[float, float]  # (sx, sy): input pixels -> original pixels
    class_names: list[str]  # C names, background first
    feature_sizes: list[tuple[int, int]]  # (H_l, W_l)
    default_boxes: DefaultBoxes  # the model's default boxes (normalised, with level/cell)
    cls_logits: list[Tensor]  # (H*W*K, C) raw class logits per level
    box_deltas: list[Tensor]  # (H*W*K, 4) raw (t_x, t_y, t_w, t_h) per level
    scores: list[Tensor]  # (H*W*K, C) softmax per level
    boxes_xyxy: list[Tensor]  # (H*W*K, 4) decoded, clipped, original pixels
    level_detections: list[Detections]  # per level: score >= level threshold, NMS in the level
    candidates: Detections  # all levels, per class score > threshold, top-k per class
    nms: NMSTrace  # NMS over `candidates` (indices into candidates; IoU in the input frame)
    detections: Detections  # final: candidates[nms.keep[:top_k]]
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage
    thresholds: dict[str, float] = field(default_factory=dict)  # the arguments used

    def cls_logits_flat(self) -> Tensor:
        """All levels' class logits in default-box order: L x (H*W*K, C) -> (A, C)."""
        return torch.cat(self.cls_logits)

    def box_deltas_flat(self) -> Tensor:
        """All levels' box deltas in default-box order: L x (H*W*K, 4) -> (A, 4)."""
        return torch.cat(self.box_deltas)


@lru_cache(maxsize=8)
def _default_boxes_cached(cfg: SSDConfig) -> tuple[DefaultBoxes, Tensor, Tensor]:
    """Default boxes of cfg, their xyxy in input pixels (as torchvision's anchors), and
    the (A, 2) feature size of each box's level."""
    db = default_boxes(cfg)
    d = db.cxcywh
    xy = torch.tensor([cfg.image_size, cfg.image_size])
    # Same float operations as torchvision's DefaultBoxGenerator.forward.
    anchors_px_in = torch.cat([(d[:, :2] - 0.5 * d[:, 2:]) * xy, (d[:, :2] + 0.5 * d[:, 2:]) * xy], -1)
    fm = torch.tensor(cfg.feature_maps)[db.level]
    return db, anchors_px_in, torch.stack([fm, fm], dim=1)


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


def _detections(
    idx: Tensor, labels: Tensor, scores: Tensor, boxes_xyxy: Tensor, db: DefaultBoxes, fsize: Tensor
) -> Detections:
    """Detections for default boxes `idx` (flat A indices) with their class/score/box."""
    return Detections(
        boxes_xyxy=boxes_xyxy,
        scores=scores,
        labels=labels,
        level=db.level[idx],
        row=db.row[idx],
        col=db.col[idx],
        box_index=db.box_index[idx],
        default_index=idx,
        feature_size=fsize[idx],
    )


@dataclass
class RawStages:
    """The threshold-free part of `run_stages`: the network's outputs on one image,
    softmaxed and decoded. `stages_from_raw` turns it into `Stages` for any thresholds,
    so a threshold slider never re-runs the network. Tensors stay on the model's device.
    """

    image: Image.Image | None  # the original RGB image (None if a tensor was given)
    input_tensor: Tensor  # (3, S, S) resized network input in [0, 1]
    orig_size: tuple[int, int]  # (H, W) of the original image, pixels
    class_names: list[str]  # C names, background first
    feature_sizes: list[tuple[int, int]]  # (H_l, W_l)
    default_boxes: DefaultBoxes  # the model's default boxes (normalised, with level/cell)
    feature_size_per_box: Tensor  # (A, 2) feature-map (H, W) of each default box
    cls_logits: Tensor  # (A, C) raw class logits
    box_deltas: Tensor  # (A, 4) raw (t_x, t_y, t_w, t_h)
    scores: Tensor  # (A, C) softmax
    boxes_px_in: Tensor  # (A, 4) decoded, clipped, network-input pixels (NMS frame)
    boxes_xyxy: Tensor  # (A, 4) the same boxes in original-image pixels
    timings: dict[str, float] = field(default_factory=dict)  # ms per stage


def _lap(timings: dict[str, float], dev: torch.device, name: str, t0: float) -> float:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    t1 = time.perf_counter()
    timings[name] = (t1 - t0) * 1000.0
    return t1


@torch.inference_mode()
def forward_raw(model: SSDNet, image: Image.Image | Tensor, device: str | torch.device | None = None) -> RawStages:
    """Run `model` on one image up to decoded boxes and scores (no thresholds).

    Args:
        model: an `SSDNet`; run in eval mode (its mode is restored afterwards).
        image: PIL image (any size) or (3, H, W) float tensor in [0, 1].
        device: where to compute (default: the model's device; the model is not moved).
    """
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    model_dev = next(model.parameters()).device
    dev = torch.device(device) if device is not None else model_dev
    if dev != model_dev and not (dev.type == model_dev.type and dev.index is None):
        raise ValueError(f"device {dev} differs from the model's device {model_dev}; move the model first")
    dev = model_dev
    cfg = model.cfg
    s = cfg.image_size
    pil, img = image_to_tensor(image)
    orig_h, orig_w = int(img.shape[-2]), int(img.shape[-1])
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

    db, anchors_px_in, fsize = _default_boxes_cached(cfg)
    anchors_px_in = anchors_px_in.to(dev)
    cls_flat = head.cls_logits_flat()[0]  # (A, C)
    deltas_flat = head.bbox_regression_flat()[0]  # (A, 4)
    scores_flat = F.softmax(cls_flat, dim=-1)  # (A, C), as torchvision (one softmax over all)
    boxes_px_in = _BOX_CODER.decode_single(deltas_flat, anchors_px_in)  # (A, 4) input pixels
    boxes_px_in = torch.stack(  # clip to the input image (torchvision's clip_boxes_to_image)
        [boxes_px_in[:, 0].clamp(0, s), boxes_px_in[:, 1].clamp(0, s),
         boxes_px_in[:, 2].clamp(0, s), boxes_px_in[:, 3].clamp(0, s)], dim=1
    )
    # Input pixels -> original pixels, as torchvision's resize_boxes (float32 ratios).
    ratio_w = torch.tensor(orig_w, dtype=torch.float32) / torch.tensor(s, dtype=torch.float32)
    ratio_h = torch.tensor(orig_h, dtype=torch.float32) / torch.tensor(s, dtype=torch.float32)
    ratios = torch.stack([ratio_w, ratio_h, ratio_w, ratio_h]).to(dev)
    boxes_flat = boxes_px_in * ratios  # (A, 4) original pixels
    _lap(timings, dev, "decode", t)

    num_classes = scores_flat.shape[1]
    names = list(model.class_names) if model.class_names else ["background"] + [
        str(c) for c in range(1, num_classes)
    ]
    return RawStages(
        image=pil,
        input_tensor=input_tensor,
        orig_size=(orig_h, orig_w),
        class_names=names,
        feature_sizes=list(head.feature_sizes),
        default_boxes=db,
        feature_size_per_box=fsize,
        cls_logits=cls_flat,
        box_deltas=deltas_flat,
        scores=scores_flat,
        boxes_px_in=boxes_px_in,
        boxes_xyxy=boxes_flat,
        timings=timings,
    )


def run_stages(
    model: SSDNet,
    image: Image.Image | Tensor,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    top_k: int = 200,
    topk_candidates: int = 400,
    level_score_threshold: float = 0.3,
    level_nms_threshold: float = 0.45,
    device: str | torch.device | None = None,
) -> Stages:
    """Run `model` on one image and keep every stage: `stages_from_raw(forward_raw(...))`.

    Args:
        model: an `SSDNet`; run in eval mode (its mode is restored afterwards).
        image: PIL image (any size) or (3, H, W) float tensor in [0, 1].
        score_threshold: candidates need softmax score > this (torchvision: score_thresh).
        nms_threshold: final NMS IoU threshold (Sec. 3: 0.45).
        top_k: detections kept after NMS (torchvision: detections_per_img; Sec. 3: 200).
        topk_candidates: best boxes per class kept before NMS (torchvision: 400).
        level_score_threshold, level_nms_threshold: for the per-level detections
            (what each feature map finds on its own; not used for the final result).
        device: where to compute (default: the model's device; the model is not moved).
    Returns:
        `Stages`, all tensors on the CPU, boxes in original-image pixels.
    """
    _check_thresholds(top_k, topk_candidates)
    return stages_from_raw(
        forward_raw(model, image, device=device),
        score_threshold=score_threshold,
        nms_threshold=nms_threshold,
        top_k=top_k,
        topk_candidates=topk_candidates,
        level_score_threshold=level_score_threshold,
        level_nms_threshold=level_nms_threshold,
    )


def _check_thresholds(top_k: int, topk_candidates: int) -> None:
    if top_k < 0 or topk_candidates < 1:
        raise ValueError(f"top_k must be >= 0 and topk_candidates >= 1, got {top_k}, {topk_candidates}")


@torch.inference_mode()
def stages_from_raw(
    raw: RawStages,
    score_threshold: float = 0.01,
    nms_threshold: float = 0.45,
    top_k: int = 200,
    topk_candidates: int = 400,
    level_score_threshold: float = 0.3,
    level_nms_threshold: float = 0.45,
) -> Stages:
    """The thresholded stages (per-level detections, candidates, NMS trace, final
    detections) from `forward_raw`'s output; arguments as `run_stages`."""
    _check_thresholds(top_k, topk_candidates)
    t_start = time.perf_counter()
    timings = dict(raw.timings)
    t = t_start
    db, fsize = raw.default_boxes, raw.feature_size_per_box
    per_level = db.per_level
    scores_flat, boxes_px_in, boxes_flat = raw.scores, raw.boxes_px_in, raw.boxes_xyxy
    dev = scores_flat.device
    num_levels = len(per_level)

    def lap(name: str, t0: float) -> float:
        return _lap(timings, dev, name, t0)


    num_classes = scores_flat.shape[1]
    # Per-level detections: what each feature map finds on its own (Sec. 2.1, Fig. 1).
    # One batched_nms with group = level * C + label keeps levels and classes apart.
    a_idx, lab = torch.nonzero(scores_flat[:, 1:] >= level_score_threshold, as_tuple=True)
    lab = lab + 1
    lvl = db.level.to(dev)[a_idx]
    sc = scores_flat[a_idx, lab]
    keep = batched_nms(boxes_px_in[a_idx], sc, lvl * num_classes + lab, level_nms_threshold)
    a_idx, lab, sc, lvl = a_idx[keep].cpu(), lab[keep].cpu(), sc[keep].cpu(), lvl[keep].cpu()
    all_level = _detections(a_idx, lab, sc, boxes_flat[a_idx.to(dev)].cpu(), db, fsize)
    level_detections = [all_level.select(lvl == k) for k in range(num_levels)]
    t = lap("level_detections", t)

    # Candidates: torchvision's postprocess_detections, class by class (same ops, so the
    # same ties): score > threshold, then the best `topk_candidates` of that class.
    cand_idx, cand_scores, cand_labels = [], [], []
    for label in range(1, num_classes):
        score = scores_flat[:, label]
        keep_idxs = torch.where(score > score_threshold)[0]
        score = score[keep_idxs]
        score, top = score.topk(min(topk_candidates, score.shape[0]))
        cand_idx.append(keep_idxs[top])
        cand_scores.append(score)
        cand_labels.append(torch.full_like(top, label))
    cand_idx_t = torch.cat(cand_idx)
    cand_scores_t = torch.cat(cand_scores)
    cand_labels_t = torch.cat(cand_labels)
    cand_boxes_px_in = boxes_px_in[cand_idx_t]
    t = lap("candidates", t)

    # Final NMS in the network-input frame, as torchvision (IoU changes under a
    # non-uniform rescale, so the frame matters).
    trace = nms_trace(cand_boxes_px_in, cand_scores_t, cand_labels_t, nms_threshold)
    final = trace.keep[:top_k]
    t = lap("nms", t)

    cand_idx_cpu = cand_idx_t.cpu()
    candidates = _detections(
        cand_idx_cpu, cand_labels_t.cpu(), cand_scores_t.cpu(), boxes_flat[cand_idx_t].cpu(), db, fsize
    )
    trace = trace.to("cpu")  # who-removed-whom is computed when first read
    detections = candidates.select(final.cpu())

    def split(t_flat: Tensor) -> list[Tensor]:
        return list(t_flat.cpu().split(per_level, dim=0))  # (A, ...) -> L x (H*W*K, ...)

    orig_h, orig_w = raw.orig_size
    s = raw.input_tensor.shape[-1]
    stages = Stages(
        image=raw.image,
        input_tensor=raw.input_tensor.cpu(),
        orig_size=raw.orig_size,
        scale_xy=(orig_w / s, orig_h / s),
        class_names=list(raw.class_names),
        feature_sizes=list(raw.feature_sizes),
        default_boxes=db,
        cls_logits=split(raw.cls_logits),
        box_deltas=split(raw.box_deltas),
        scores=split(scores_flat),
        boxes_xyxy=split(boxes_flat),
        level_detections=level_detections,
        candidates=candidates,
        nms=trace,
        detections=detections,
        timings=timings,
        thresholds={
            "score_threshold": score_threshold,
            "nms_threshold": nms_threshold,
            "top_k": top_k,
            "topk_candidates": topk_candidates,
            "level_score_threshold": level_score_threshold,
            "level_nms_threshold": level_nms_threshold,
        },
    )
    lap("collect", t)
    timings["total"] = sum(raw.timings.values()) + (time.perf_counter() - t_start) * 1000.0
    return stages
