"""The MultiBox loss with hard negative mining (Sec. 2.2 "Training objective", Eq. 1-3,
and Sec. 2.2 "Hard negative mining").

    L = (L_conf + alpha * L_loc) / N

N = number of matched (positive) default boxes over the whole batch (as torchvision;
the paper's per-image N summed). L_loc is Smooth L1 (beta = 1) between the predicted
offsets and the encoded matched GT (`ssd.boxes.encode`), over positives only.
L_conf is softmax cross-entropy over the positives and the hard negatives: per image,
the negatives with the highest confidence loss, at most `neg_pos_ratio` (3) per positive.

The whole batch is matched and mined at once (GTs padded to the most per image, one
batched IoU, one top-k), where torchvision loops over images; the result equals
torchvision's `SSD.compute_loss` on the same inputs (tests/test_loss.py).

N = 0 (no GT in the whole batch): no positives and hence no mined negatives, so
`total`, `conf` and `loc` are an exact 0 that is still attached to the graph
(sums over empty selections of `cls_logits` and `box_deltas`): `backward()` works and
gives zero gradients, never NaN. This is what torchvision computes too (N = max(1, N)).

Letters: B = images, A = default boxes, C = classes incl. background 0, G = GTs per
image (padded to the batch maximum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ssd.boxes import cxcywh_to_xyxy, encode
from ssd.matching import Match, check_threshold, match_batch, pad_boxes

# Boxes must be normalised; coordinates far outside [0, 1] almost surely mean pixels.
_NORM_LIMIT = (-1.0, 2.0)


@dataclass(frozen=True)
class MultiboxLoss:
    """Result of `multibox_loss`; every stage the explorer shows.

    Attributes:
        total: 0-d, (conf + alpha * loc), already divided by N. Call `.backward()` on it.
        conf: 0-d, L_conf / N (positives + hard negatives).
        loc: 0-d, L_loc / N (Smooth L1 over positives), before alpha.
        num_pos: int, N = positives over the whole batch (0 allowed).
        positive: (B, A) bool, default boxes matched to a GT.
        hard_negative: (B, A) bool, the mined negatives (disjoint from `positive`).
        conf_loss_per_box: (B, A) float, detached cross-entropy of every default box
            against its target class (background for negatives): the mining rank key.
        cls_targets: (B, A) long, target class per default box (0 = background).
        matches: per image, the `Match` (gt_index / iou / forced) of its default boxes.
    """

    total: Tensor
    conf: Tensor
    loc: Tensor
    num_pos: int
    positive: Tensor
    hard_negative: Tensor
    conf_loss_per_box: Tensor
    cls_targets: Tensor
    matches: list[Match]

    @property
    def matched_idxs(self) -> list[Match]:
        """Alias of `matches` (torchvision's stage name)."""
        return self.matches


def _check_inputs(cls_logits, box_deltas, default_cxcywh, targets) -> None:
    """Shapes and types only (no device sync); values are checked in `_check_values`."""
    if not isinstance(cls_logits, Tensor) or cls_logits.dim() != 3:
        shape = tuple(cls_logits.shape) if isinstance(cls_logits, Tensor) else type(cls_logits).__name__
        raise ValueError(f"cls_logits must have shape (B, A, C), got {shape}")
    B, A, C = cls_logits.shape
    if C < 2:
        raise ValueError(f"cls_logits needs C >= 2 classes (background + 1), got C={C}")
    if not isinstance(box_deltas, Tensor) or tuple(box_deltas.shape) != (B, A, 4):
        shape = tuple(box_deltas.shape) if isinstance(box_deltas, Tensor) else type(box_deltas).__name__
        raise ValueError(f"box_deltas must have shape (B, A, 4) = {(B, A, 4)}, got {shape}")
    if not isinstance(default_cxcywh, Tensor) or tuple(default_cxcywh.shape) != (A, 4):
        shape = tuple(default_cxcywh.shape) if isinstance(default_cxcywh, Tensor) else type(default_cxcywh).__name__
        raise ValueError(f"default_cxcywh must have shape (A, 4) = {(A, 4)}, got {shape}")
    if not isinstance(targets, (list, tuple)) or len(targets) != B:
        n = len(targets) if isinstance(targets, (list, tuple)) else type(targets).__name__
        raise ValueError(f"targets must be a list of B={B} dicts (one per image), got {n}")
    for b, t in enumerate(targets):
        if not isinstance(t, dict) or "boxes" not in t or "labels" not in t:
            raise ValueError(f"targets[{b}] must be a dict with 'boxes' and 'labels'")
        boxes, labels = t["boxes"], t["labels"]
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[1] != 4:
            shape = tuple(boxes.shape) if isinstance(boxes, Tensor) else type(boxes).__name__
            raise ValueError(f"targets[{b}]['boxes'] must have shape (G, 4), got {shape}")
        if not boxes.is_floating_point():
            raise ValueError(f"targets[{b}]['boxes'] must be float (normalised xyxy), got {boxes.dtype}")
        if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.shape[0] != boxes.shape[0]:
            shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
            raise ValueError(
                f"targets[{b}]['labels'] must have shape (G,) = ({boxes.shape[0]},) like its boxes, got {shape}"
            )
        if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
            raise ValueError(f"targets[{b}]['labels'] must be an integer tensor, got {labels.dtype}")


def _check_values(boxes_all: Tensor, labels_all: Tensor, sizes: list[int], num_classes: int) -> None:
    """One vectorised check of every GT of the batch; names the first bad image and box."""
    if boxes_all.numel() == 0:
        return
    nonfinite = ~torch.isfinite(boxes_all).all(dim=1)
    empty = (boxes_all[:, 2] <= boxes_all[:, 0]) | (boxes_all[:, 3] <= boxes_all[:, 1])
    pixels = (boxes_all < _NORM_LIMIT[0]).any(dim=1) | (boxes_all > _NORM_LIMIT[1]).any(dim=1)
    bad_label = (labels_all < 1) | (labels_all >= num_classes)
    bad = nonfinite | empty | pixels | bad_label
    if not bool(bad.any()):  # the only device sync of the checks
        return
    i = int(bad.nonzero()[0, 0])
    starts = torch.tensor([0] + sizes).cumsum(0)
    b = int((starts[1:] > i).nonzero()[0, 0])
    g = i - int(starts[b])
    where = f"targets[{b}] box {g}"
    if bool(nonfinite[i]):
        raise ValueError(f"{where}: non-finite coordinates {boxes_all[i].tolist()}")
    if bool(empty[i]):
        raise ValueError(f"{where}: empty box {boxes_all[i].tolist()} (need x2 > x1 and y2 > y1)")
    if bool(pixels[i]):
        raise ValueError(
            f"{where}: {boxes_all[i].tolist()} is far outside [0, 1]; boxes must be normalised xyxy, not pixels"
        )
    raise ValueError(
        f"{where}: label {int(labels_all[i])} out of range; labels must be in 1..{num_classes - 1} "
        f"(0 is background, C={num_classes})"
    )


def _check_weights(neg_pos_ratio: float, alpha: float, variances) -> None:
    """ValueError naming the bad hyper-parameter of `multibox_loss`."""
    if math.isnan(neg_pos_ratio) or neg_pos_ratio < 0:
        raise ValueError(f"neg_pos_ratio must be >= 0 (inf: every negative), got {neg_pos_ratio!r}")
    if not (math.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    if len(variances) != 2 or not all(v > 0 for v in variances):
        raise ValueError(f"variances must be two positive numbers, got {variances!r}")


def _confidence_loss(cls_logits: Tensor, cls_targets: Tensor, fast: bool) -> Tensor:
    """Softmax cross-entropy of every box (the terms of Eq. 3): (B, A, C), (B, A) -> (B, A)."""
    B, A, C = cls_logits.shape
    if fast:
        # (B, A, C) -> (B, C, A): classes on dim 1, a strided view (no copy); out (B, A)
        return F.cross_entropy(cls_logits.transpose(1, 2), cls_targets, reduction="none")
    # (B, A, C) -> (B*A, C) -> (B, A)
    return F.cross_entropy(cls_logits.reshape(B * A, C), cls_targets.reshape(B * A),
                           reduction="none").reshape(B, A)


def _hard_negatives(conf_loss_per_box: Tensor, positive: Tensor, neg_pos_ratio: float) -> Tensor:
    """Hard negative mining (Sec. 2.2): per image, the negatives with the highest confidence
    loss, at most `neg_pos_ratio` per positive; inf: every negative (no mining).
    (B, A) losses, (B, A) bool -> (B, A) bool."""
    if math.isinf(neg_pos_ratio):
        return ~positive
    B, A = positive.shape
    num_pos_per_image = positive.sum(dim=1)  # (B,)
    num_neg = torch.minimum((num_pos_per_image * neg_pos_ratio).long(), A - num_pos_per_image)  # (B,)
    k_max = int(num_neg.max())
    hard_negative = torch.zeros((B, A), dtype=torch.bool, device=positive.device)
    if k_max > 0:
        negative_loss = conf_loss_per_box.masked_fill(positive, -math.inf)
        top_idx = negative_loss.topk(k_max, dim=1).indices  # (B, k_max), one partial sort
        keep = torch.arange(k_max, device=positive.device) < num_neg[:, None]  # (B, k_max)
        hard_negative.scatter_(1, top_idx, keep)
    return hard_negative


def multibox_loss(
    cls_logits: Tensor,
    box_deltas: Tensor,
    default_cxcywh: Tensor,
    targets: list[dict[str, Tensor]],
    iou_threshold: float = 0.5,
    neg_pos_ratio: float = 3,
    alpha: float = 1.0,
    variances: tuple[float, float] = (0.1, 0.2),
    fast_cross_entropy: bool = False,
    force_best: bool = True,
) -> MultiboxLoss:
    """SSD's training loss for a batch (Sec. 2.2 Eq. 1; matching and mining also Sec. 2.2).

    Args:
        cls_logits: (B, A, C) class scores before softmax, class 0 = background.
        box_deltas: (B, A, 4) predicted offsets (t_x, t_y, t_w, t_h) w.r.t. the default boxes
            (the model's `bbox_regression`, `HeadOutputs.bbox_regression_flat()`).
        default_cxcywh: (A, 4) default boxes, cxcywh, normalised (`ssd.priors.default_boxes(cfg).cxcywh`).
        targets: B dicts: `boxes` (G, 4) float xyxy normalised to [0, 1], `labels` (G,) int in 1..C-1.
            G may be 0.
        iou_threshold: matching threshold (0.5).
        neg_pos_ratio: hard negatives per positive, per image (3); inf = every negative.
        alpha: weight of the localisation loss (1).
        variances: box-coding variances (0.1, 0.2) as in `ssd.boxes.encode`.
        force_best: True (the paper): each GT also takes its best default box (matching
            step 1); False: the IoU threshold alone (an ablation).
    Returns:
        MultiboxLoss (see its docstring); `.total` is the scalar to backpropagate.
    Raises:
        ValueError: shape mismatches, labels outside 1..C-1, empty / non-finite / pixel boxes
            (naming the image index), bad hyper-parameters.
    """
    _check_inputs(cls_logits, box_deltas, default_cxcywh, targets)
    iou_threshold = check_threshold(iou_threshold)
    _check_weights(neg_pos_ratio, alpha, variances)
    B, A, C = cls_logits.shape
    device = cls_logits.device
    default_cxcywh = default_cxcywh.to(device)
    if not default_cxcywh.is_floating_point():
        default_cxcywh = default_cxcywh.float()
    dtype = default_cxcywh.dtype

    boxes_per_image = [t["boxes"].to(device=device, dtype=dtype) for t in targets]
    labels_per_image = [t["labels"].to(device=device, dtype=torch.long) for t in targets]
    sizes = [b.shape[0] for b in boxes_per_image]
    _check_values(torch.cat(boxes_per_image), torch.cat(labels_per_image), sizes, C)

    # Matching, whole batch at once (Sec. 2.2).
    gt_xyxy, gt_valid = pad_boxes(boxes_per_image)  # (B, G, 4), (B, G)
    batch_match = match_batch(cxcywh_to_xyxy(default_cxcywh), gt_xyxy, gt_valid, iou_threshold, force_best)
    positive = batch_match.gt_index >= 0  # (B, A)
    gt_index = batch_match.gt_index.clamp(min=0)  # background rows point at GT 0, masked below

    if gt_xyxy.shape[1] > 0:
        labels_padded = torch.nn.utils.rnn.pad_sequence(labels_per_image, batch_first=True)  # (B, G)
        cls_targets = torch.where(positive, labels_padded.gather(1, gt_index), 0)  # (B, A)
    else:
        cls_targets = torch.zeros((B, A), dtype=torch.long, device=device)

    cls_loss = _confidence_loss(cls_logits, cls_targets, fast_cross_entropy)  # (B, A)
    conf_loss_per_box = cls_loss.detach()
    hard_negative = _hard_negatives(conf_loss_per_box, positive, neg_pos_ratio)  # (B, A)

    num_pos = int(positive.sum())
    n = max(1, num_pos)  # N = 0 gives an exact, attached zero (module docstring)
    conf = cls_loss[positive | hard_negative].sum() / n

    # Localisation loss (Eq. 2): Smooth L1 on encoded targets, positives only.
    b_idx, a_idx = positive.nonzero(as_tuple=True)  # (P,), (P,)
    matched_gt_xyxy = gt_xyxy[b_idx, gt_index[b_idx, a_idx]]  # (P, 4)
    target_deltas = encode(matched_gt_xyxy, default_cxcywh[a_idx], variances)  # (P, 4)
    loc = F.smooth_l1_loss(box_deltas[b_idx, a_idx], target_deltas.to(box_deltas.dtype), reduction="sum", beta=1.0) / n

    return MultiboxLoss(
        total=conf + alpha * loc,
        conf=conf,
        loc=loc,
        num_pos=num_pos,
        positive=positive,
        hard_negative=hard_negative,
        conf_loss_per_box=conf_loss_per_box,
        cls_targets=cls_targets,
        matches=batch_match.to_list(),
    )


def negative_rank(conf_loss_per_box: Tensor, positive: Tensor) -> Tensor:
    """Rank of each negative by confidence loss, per image (0 = hardest); -1 for positives.

    `hard_negative` of `multibox_loss` are exactly the negatives with rank < min(3 * positives,
    negatives) (up to ties in the loss). For display; not used by the loss itself.

    Args:
        conf_loss_per_box: (B, A) or (A,); positive: same shape, bool.
    Returns:
        Same shape, long.
    """
    negative_loss = conf_loss_per_box.masked_fill(positive, -math.inf)
    order = negative_loss.argsort(dim=-1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return rank.masked_fill(positive, -1)
