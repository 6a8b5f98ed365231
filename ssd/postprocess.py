"""Post-processing: the one owner of decode -> score threshold -> top-k -> NMS -> max detections.

Every path that turns network outputs into detections calls this module: the explorer's
`ssd.inference.stages_from_raw`, the batched evaluation `ssd.evaluation.evaluate.detect_batch`, and
the `ssd.detect` command line. The thresholds are declared once, in `PostprocessConfig`,
with torchvision's names (`SSD.score_thresh`, `nms_thresh`, `topk_candidates`,
`detections_per_img`), and the steps are torchvision's `SSD.postprocess_detections`
(Sec. 3 of the paper, "inference"): softmax, decode, clip, per class keep scores above
the threshold and the best `topk_candidates`, `batched_nms` per class, keep the best
`detections_per_img`. Unlike torchvision, every intermediate is kept (`Postprocessed`):
the candidates with their default-box index and the NMS trace (who removed whom).

Letters: B = images, A = default boxes (all levels), C = classes incl. background 0,
N = candidates of one image, D = final detections of one image.
Frames: `_px_in` = network-input pixels (S x S, the frame NMS runs in, as torchvision).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import torch
from torch import Tensor
from torchvision.ops import batched_nms

from ssd.boxes import box_coder_cxcywh, decode
from ssd.config import SSDConfig
from ssd.nms import NMSTrace, nms_trace
from ssd.priors import DefaultBoxes, default_boxes


@dataclass(frozen=True)
class PostprocessConfig:
    """The thresholds of post-processing, declared once (torchvision's SSD attribute names).

    The per-level thresholds only serve the explorer's per-level view (what each feature
    map detects on its own, Sec. 2.1, Fig. 1); they never change the final detections.
    """

    score_thresh: float = 0.01  # candidates need softmax score > this (torchvision score_thresh)
    nms_thresh: float = 0.45  # NMS removes boxes with IoU > this with a kept box (Sec. 3: 0.45)
    topk_candidates: int = 400  # best boxes per class kept before NMS (torchvision: 400)
    detections_per_img: int = 200  # final detections kept per image after NMS (Sec. 3: 200)
    level_score_thresh: float = 0.3  # per-level view: score >= this
    level_nms_thresh: float = 0.45  # per-level view: NMS IoU within a level and class

    def __post_init__(self) -> None:
        for name in ("score_thresh", "nms_thresh", "level_score_thresh", "level_nms_thresh"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"PostprocessConfig.{name} must be a number in [0, 1], got {v!r}")
        if int(self.detections_per_img) != self.detections_per_img or self.detections_per_img < 0:
            raise ValueError(f"PostprocessConfig.detections_per_img must be an integer >= 0, "
                             f"got {self.detections_per_img!r}")
        if int(self.topk_candidates) != self.topk_candidates or self.topk_candidates < 1:
            raise ValueError(f"PostprocessConfig.topk_candidates must be an integer >= 1, "
                             f"got {self.topk_candidates!r}")

    def with_overrides(self, **fields: float | int | None) -> "PostprocessConfig":
        """This config with the given fields (the names above) replaced; None keeps a field.
        An unknown name is a TypeError (`dataclasses.replace`)."""
        changes = {k: v for k, v in fields.items() if v is not None}
        return replace(self, **changes) if changes else self


DEFAULTS = PostprocessConfig()  # the library's thresholds: every default reads them from here
# The score a person is shown by default (`ssd.detect`, the explorer's sliders): the library's
# 0.01 keeps every candidate for mAP, which draws hundreds of boxes on one image.
DISPLAY_SCORE_THRESH = 0.3


@dataclass
class Postprocessed:
    """Post-processing of one image, every step kept.

    Attributes:
        candidate_index: (N,) long, the default box (flat index into A) of each candidate.
        candidate_scores: (N,) softmax score of the candidate's class.
        candidate_labels: (N,) long class 1..C-1; classes in order, each by descending score.
        candidate_boxes_px_in: (N, 4) xyxy, network-input pixels.
        nms: `NMSTrace` over the candidates (IoU in the network-input frame).
        final: (D,) long indices into the candidates: `nms.keep[:detections_per_img]`.
    """

    candidate_index: Tensor
    candidate_scores: Tensor
    candidate_labels: Tensor
    candidate_boxes_px_in: Tensor
    nms: NMSTrace
    final: Tensor

    def detections(self) -> dict[str, Tensor]:
        """The final detections: {"boxes_xyxy_px_in" (D, 4), "scores" (D,), "labels" (D,),
        "default_index" (D,)}."""
        f = self.final
        return {"boxes_xyxy_px_in": self.candidate_boxes_px_in[f], "scores": self.candidate_scores[f],
                "labels": self.candidate_labels[f], "default_index": self.candidate_index[f]}


@lru_cache(maxsize=8)
def default_boxes_px_in(cfg: SSDConfig) -> tuple[DefaultBoxes, Tensor]:
    """The default boxes of `cfg` and their (A, 4) xyxy in network-input pixels, computed
    with the same float operations as torchvision's `DefaultBoxGenerator.forward` (so
    decoded boxes are bit-identical to torchvision's SSD). Cached per config."""
    db = default_boxes(cfg)
    d = db.cxcywh  # (A, 4) cxcywh_norm
    xy = torch.tensor([cfg.image_size, cfg.image_size])
    default_xyxy_px_in = torch.cat([(d[:, :2] - 0.5 * d[:, 2:]) * xy, (d[:, :2] + 0.5 * d[:, 2:]) * xy], -1)
    return db, default_xyxy_px_in


def decode_boxes_px_in(bbox_regression: Tensor, default_xyxy_px_in: Tensor, image_side: int,
                       variances: tuple[float, float] = (0.1, 0.2)) -> Tensor:
    """Decode (`ssd.boxes.decode`) and clip to the S x S input (torchvision's clip_boxes_to_image).

    Args:
        bbox_regression: (..., A, 4) the model's box outputs (t_x, t_y, t_w, t_h).
        default_xyxy_px_in: (A, 4) default boxes in network-input pixels.
        image_side: S, the network-input side in pixels.
    Returns:
        (..., A, 4) xyxy boxes in network-input pixels, inside [0, S].
    """
    # torchvision's anchors are xyxy: read their centre and size as its BoxCoder does (bit-exact).
    default_cxcywh_px_in = box_coder_cxcywh(default_xyxy_px_in.to(bbox_regression.device))
    boxes_px_in = decode(bbox_regression, default_cxcywh_px_in, variances)
    return boxes_px_in.clamp(0, image_side)


def select_candidates(scores: Tensor, cfg: PostprocessConfig) -> tuple[Tensor, Tensor, Tensor]:
    """torchvision's per-class candidate selection (same ops, so the same ties): for each
    class 1..C-1, the default boxes with score > score_thresh, the best topk_candidates.

    Args:
        scores: (A, C) softmax scores of one image.
    Returns:
        (default_index (N,), scores (N,), labels (N,)), classes in order, each by score.
    """
    idx, sc, lab = [], [], []
    for label in range(1, scores.shape[1]):
        score = scores[:, label]
        keep_idxs = torch.where(score > cfg.score_thresh)[0]
        score, top = score[keep_idxs].topk(min(cfg.topk_candidates, int(keep_idxs.shape[0])))
        idx.append(keep_idxs[top])
        sc.append(score)
        lab.append(torch.full_like(top, label))
    return torch.cat(idx), torch.cat(sc), torch.cat(lab)


def postprocess(scores: Tensor, boxes_px_in: Tensor, cfg: PostprocessConfig) -> Postprocessed:
    """Candidates, NMS with its trace, and the final detections of one image.

    Args:
        scores: (A, C) softmax scores.
        boxes_px_in: (A, 4) decoded, clipped boxes in network-input pixels.
        cfg: the thresholds.
    Returns:
        `Postprocessed` (tensors on the inputs' device; the NMS trace is computed lazily).
    """
    cand_index, cand_scores, cand_labels = select_candidates(scores, cfg)
    cand_boxes_px_in = boxes_px_in[cand_index]
    # NMS in the network-input frame, as torchvision (IoU changes under a non-uniform
    # rescale, so the frame matters).
    trace = nms_trace(cand_boxes_px_in, cand_scores, cand_labels, cfg.nms_thresh)
    return Postprocessed(cand_index, cand_scores, cand_labels, cand_boxes_px_in, trace,
                         trace.keep[: cfg.detections_per_img])


def postprocess_batch(scores: Tensor, boxes_px_in: Tensor, cfg: PostprocessConfig) -> list[Postprocessed]:
    """`postprocess` for each image of a batch: scores (B, A, C), boxes_px_in (B, A, 4)."""
    return [postprocess(s, b, cfg) for s, b in zip(scores, boxes_px_in)]


def level_detections(scores: Tensor, boxes_px_in: Tensor, level: Tensor,
                     cfg: PostprocessConfig) -> tuple[Tensor, Tensor, Tensor]:
    """What each feature map detects on its own (Sec. 2.1, Fig. 1): per class score >=
    level_score_thresh, then NMS within each (level, class) at level_nms_thresh.

    Args:
        scores: (A, C) softmax scores; boxes_px_in: (A, 4); level: (A,) level of each default box.
    Returns:
        (default_index (M,), labels (M,), scores (M,)) by descending score.
    """
    a_idx, lab = torch.nonzero(scores[:, 1:] >= cfg.level_score_thresh, as_tuple=True)
    lab = lab + 1
    lvl = level.to(scores.device)[a_idx]
    sc = scores[a_idx, lab]
    num_classes = scores.shape[1]
    # One batched_nms with group = level * C + label keeps levels and classes apart.
    keep = batched_nms(boxes_px_in[a_idx], sc, lvl * num_classes + lab, cfg.level_nms_thresh)
    return a_idx[keep], lab[keep], sc[keep]


def add_threshold_flags(parser, score_thresh_default: float | None = None, topk_candidates: bool = True) -> None:
    """Add the thresholds' command-line flags to an `argparse` parser, with torchvision's
    names (`--score-thresh`, `--nms-thresh`, `--topk-candidates`, `--detections-per-img`;
    dests = the `PostprocessConfig` fields). The older spellings (`--score-threshold`,
    `--nms-threshold`, `--top-k`) stay as aliases, so no earlier command breaks. A flag
    left out is None (the library's default) unless `score_thresh_default` is given."""
    shown = DEFAULTS.score_thresh if score_thresh_default is None else score_thresh_default
    parser.add_argument("--score-thresh", "--score-threshold", dest="score_thresh", type=float,
                        default=score_thresh_default,
                        help=f"candidates need a class score > this (default {shown}; "
                             f"the library's is torchvision's {DEFAULTS.score_thresh})")
    parser.add_argument("--nms-thresh", "--nms-threshold", dest="nms_thresh", type=float, default=None,
                        help=f"NMS IoU threshold (default {DEFAULTS.nms_thresh})")
    if topk_candidates:
        parser.add_argument("--topk-candidates", dest="topk_candidates", type=int, default=None,
                            help=f"candidates per class before NMS (default {DEFAULTS.topk_candidates})")
    parser.add_argument("--detections-per-img", "--top-k", dest="detections_per_img", type=int, default=None,
                        help=f"detections kept per image (default {DEFAULTS.detections_per_img})")
