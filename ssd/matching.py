"""Matching default boxes to ground truth (Sec. 2.2, "Matching strategy").

The paper's rule, in two steps:
  1. each ground-truth box (GT) is matched to the default box with the best
     jaccard overlap (IoU) -- so every GT gets at least one default box;
  2. every default box is matched to its best GT if that IoU reaches the threshold
     (0.5). Everything left is background.

Thresholding uses `iou >= iou_threshold`, as torchvision's `SSDMatcher` does (the
paper writes "higher than"; the two differ only on exact ties at 0.5).

The classic implementations (Caffe, ssd.pytorch, torchvision's `SSDMatcher`) apply
step 1 with one scatter, so when two GTs share the same best default box the later
GT silently overwrites the earlier and one GT ends up with no forced box. Here:

  Tie rule: GTs are resolved in order of their best IoU (highest first, ties by GT
  index); each takes its best default box that no earlier GT has taken in step 1.
  So a GT whose best box was claimed by a better-overlapping GT takes its next best
  box. Without shared best boxes this is exactly torchvision's result.

A GT that overlaps no default box at all (best IoU 0) gets no forced box (torchvision
would pair it with default box 0, which means nothing).

Letters: B = images, A = default boxes, G = ground-truth boxes (padded to the most
in the batch for the batched functions).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou


@dataclass(frozen=True)
class Match:
    """The matching of one image.

    Attributes:
        gt_index: (A,) long, index of the GT each default box is matched to; -1 = background.
        iou: (A,) float, best IoU of each default box over all GTs (0 when there is no GT).
        forced: (A,) bool, True where a default box got its GT only through step 1
            ("best default box for each GT"): its IoU is below the threshold, or its
            best-IoU GT is a different one.
    """

    gt_index: Tensor
    iou: Tensor
    forced: Tensor

    @property
    def positive(self) -> Tensor:
        """(A,) bool, default boxes matched to some GT."""
        return self.gt_index >= 0

    @property
    def num_pos(self) -> int:
        return int((self.gt_index >= 0).sum())


@dataclass(frozen=True)
class BatchMatch:
    """`Match` for a batch, as (B, A) tensors (same meaning per row)."""

    gt_index: Tensor
    iou: Tensor
    forced: Tensor

    def __len__(self) -> int:
        return self.gt_index.shape[0]

    def per_image(self, b: int) -> Match:
        return Match(gt_index=self.gt_index[b], iou=self.iou[b], forced=self.forced[b])

    def to_list(self) -> list[Match]:
        return [self.per_image(b) for b in range(len(self))]


def check_threshold(iou_threshold: float) -> float:
    t = float(iou_threshold)
    if not (math.isfinite(t) and 0.0 < t <= 1.0):
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold!r}")
    return t


def check_boxes_xyxy(boxes: Tensor, what: str) -> None:
    """Raise ValueError unless `boxes` is a finite (N, 4) float xyxy tensor with x2 > x1, y2 > y1."""
    if not isinstance(boxes, Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(boxes).__name__}")
    if boxes.dim() != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{what} must have shape (N, 4), got {tuple(boxes.shape)}")
    if not boxes.is_floating_point():
        raise ValueError(f"{what} must be a float tensor, got {boxes.dtype}")
    if boxes.numel() == 0:
        return
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{what} has non-finite coordinates (nan/inf)")
    bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(f"{what}[{i}] = {boxes[i].tolist()} is empty: need x2 > x1 and y2 > y1")


def _force_best(iou_per_image: Tensor, order: list[int]) -> list[tuple[int, int]]:
    """Tie rule for one image: (gt, default) pairs of step 1, each default used once.

    iou_per_image: (G, A) with padded GTs already left out of `order`.
    """
    taken = torch.zeros(iou_per_image.shape[1], dtype=torch.bool, device=iou_per_image.device)
    pairs = []
    for g in order:
        row = iou_per_image[g].masked_fill(taken, -1.0)
        best_iou, a = row.max(0)
        if float(best_iou) <= 0.0:  # no free default box overlaps this GT
            continue
        taken[a] = True
        pairs.append((g, int(a)))
    return pairs


def assign(iou: Tensor, gt_valid: Tensor, iou_threshold: float = 0.5) -> BatchMatch:
    """The matching rule on precomputed IoUs, for a whole batch at once.

    Args:
        iou: (B, G, A) IoU of each (padded) GT with each default box.
        gt_valid: (B, G) bool, False for padding rows.
        iou_threshold: step-2 threshold (Sec. 2.2: 0.5).
    Returns:
        BatchMatch with (B, A) tensors.
    """
    # Padding rows can never win: IoU -1 is below any real IoU.
    return _assign(iou.masked_fill(~gt_valid[:, :, None], -1.0), gt_valid, iou_threshold)


def _assign(iou: Tensor, gt_valid: Tensor, iou_threshold: float, force_best: bool = True) -> BatchMatch:
    """`assign` for an IoU whose padding rows are already -1; `force_best` False skips
    step 1 (the ablation "no forced best match": a GT below the threshold everywhere
    gets no default box)."""
    iou_threshold = check_threshold(iou_threshold)
    B, G, A = iou.shape
    device = iou.device
    if G == 0:
        return BatchMatch(
            gt_index=torch.full((B, A), -1, dtype=torch.long, device=device),
            iou=torch.zeros((B, A), dtype=iou.dtype, device=device),
            forced=torch.zeros((B, A), dtype=torch.bool, device=device),
        )
    # Step 2: each default box -> its best GT, kept if IoU >= threshold.
    best_iou, best_gt = iou.max(dim=1)  # (B, A) each
    thr_index = best_gt.masked_fill_(best_iou < iou_threshold, -1)
    if not force_best:
        return BatchMatch(gt_index=thr_index, iou=best_iou.clamp(min=0),
                          forced=torch.zeros((B, A), dtype=torch.bool, device=device))

    # Step 1: each GT -> its best default box (overrides step 2, as in the paper/torchvision).
    best_default_iou, best_default = iou.max(dim=2)  # (B, G) each
    use = gt_valid & (best_default_iou > 0)
    # Shared best boxes: sort each image's best-box indices and look at neighbours.
    gt_ids = torch.arange(G, device=device).expand(B, G)
    key = torch.where(use, best_default, -1 - gt_ids)  # unused GTs get unique negative keys
    key_sorted = key.sort(dim=1).values
    shared = ((key_sorted[:, 1:] == key_sorted[:, :-1]) & (key_sorted[:, 1:] >= 0)).any(dim=1)  # (B,)

    b_idx = torch.arange(B, device=device)[:, None].expand(B, G)[use]
    a_idx = best_default[use]
    g_idx = gt_ids[use]
    if bool(shared.any()):
        # Rare: resolve only the images with a shared best box, with the tie rule.
        keep = ~shared[b_idx]
        b_list, a_list, g_list = [b_idx[keep]], [a_idx[keep]], [g_idx[keep]]
        for b in shared.nonzero().flatten().tolist():
            cand = use[b].nonzero().flatten()
            # highest best-IoU first; stable sort keeps GT index order on equal IoUs
            order = cand[best_default_iou[b, cand].argsort(descending=True, stable=True)].tolist()
            pairs = _force_best(iou[b], order)
            if pairs:
                gs, as_ = zip(*pairs)
                b_list.append(torch.full((len(pairs),), b, dtype=torch.long, device=device))
                a_list.append(torch.tensor(as_, dtype=torch.long, device=device))
                g_list.append(torch.tensor(gs, dtype=torch.long, device=device))
        b_idx, a_idx, g_idx = torch.cat(b_list), torch.cat(a_list), torch.cat(g_list)

    gt_index = thr_index.clone()
    gt_index[b_idx, a_idx] = g_idx
    forced = torch.zeros((B, A), dtype=torch.bool, device=device)
    forced[b_idx, a_idx] = True
    forced &= thr_index != gt_index  # only those that step 2 alone would not give this GT
    return BatchMatch(gt_index=gt_index, iou=best_iou.clamp(min=0), forced=forced)


def match(default_xyxy: Tensor, gt_xyxy: Tensor, iou_threshold: float = 0.5) -> Match:
    """Match the default boxes of one image to its ground truth (Sec. 2.2).

    Args:
        default_xyxy: (A, 4) default boxes, xyxy, same frame as `gt_xyxy` (normalised or pixels).
        gt_xyxy: (G, 4) ground-truth boxes, xyxy; G may be 0 (all background).
        iou_threshold: in (0, 1]; default boxes with IoU >= it match their best GT.
    Returns:
        Match with (A,) `gt_index` (-1 background), `iou`, `forced`.
    Raises:
        ValueError: wrong shapes or dtypes, empty/non-finite GT boxes, threshold outside (0, 1].
    """
    iou_threshold = check_threshold(iou_threshold)
    if not isinstance(default_xyxy, Tensor) or default_xyxy.dim() != 2 or default_xyxy.shape[1] != 4:
        shape = tuple(default_xyxy.shape) if isinstance(default_xyxy, Tensor) else type(default_xyxy).__name__
        raise ValueError(f"default_xyxy must have shape (A, 4), got {shape}")
    if default_xyxy.shape[0] == 0:
        raise ValueError("default_xyxy is empty: need at least one default box")
    check_boxes_xyxy(gt_xyxy, "gt_xyxy")
    gt_xyxy = gt_xyxy.to(device=default_xyxy.device, dtype=default_xyxy.dtype)
    G = gt_xyxy.shape[0]
    iou = box_iou(gt_xyxy, default_xyxy)[None]  # (G, A) -> (1, G, A)
    valid = torch.ones((1, G), dtype=torch.bool, device=default_xyxy.device)
    return assign(iou, valid, iou_threshold).per_image(0)


def pad_boxes(boxes_per_image: list[Tensor]) -> tuple[Tensor, Tensor]:
    """List of B (G_b, 4) -> zero-padded (B, G_max, 4) and the (B, G_max) bool valid mask."""
    if len(boxes_per_image) == 0:
        raise ValueError("pad_boxes needs at least one image")
    ref = boxes_per_image[0]
    sizes = [b.shape[0] for b in boxes_per_image]
    G = max(sizes)
    lengths = torch.tensor(sizes, device=ref.device)
    if G == 0:
        return ref.new_zeros((len(boxes_per_image), 0, 4)), torch.zeros(
            (len(boxes_per_image), 0), dtype=torch.bool, device=ref.device
        )
    padded = torch.nn.utils.rnn.pad_sequence(list(boxes_per_image), batch_first=True)  # (B, G, 4)
    valid = torch.arange(G, device=ref.device) < lengths[:, None]  # (B, G)
    return padded, valid


def match_batch(
    default_xyxy: Tensor, gt_xyxy_padded: Tensor, gt_valid: Tensor, iou_threshold: float = 0.5,
    force_best: bool = True,
) -> BatchMatch:
    """`match` for a batch in one go (boxes already checked by the caller).

    Args:
        default_xyxy: (A, 4); gt_xyxy_padded: (B, G, 4) same frame; gt_valid: (B, G) bool.
        force_best: False skips step 1 (each GT's best default box): threshold only.
    Returns:
        BatchMatch, (B, A) tensors; row b equals `match(default_xyxy, gt_b)`.
    """
    B, G = gt_valid.shape
    # torchvision's box_iou of all images' GTs at once: (B*G, 4) x (A, 4) -> (B*G, A) -> (B, G, A)
    iou = box_iou(gt_xyxy_padded.reshape(B * G, 4), default_xyxy).reshape(B, G, default_xyxy.shape[0])
    return _assign(iou.masked_fill_(~gt_valid[:, :, None], -1.0), gt_valid, iou_threshold, force_best)  # pad: -1
