"""Non-maximum suppression that records who suppressed whom (Sec. 2.2 / 3 "inference").

Greedy per-class NMS: within one class, take the highest-scoring box still undecided,
keep it, and remove every undecided box of that class whose IoU with it is above the
threshold; repeat. Besides the kept boxes, the trace says for each removed box which
kept box removed it and their IoU, so the explorer can draw the suppression.

Two implementations, tested against each other and against `torchvision.ops.batched_nms`:
- `greedy_nms_trace`: the algorithm itself, written out (vectorised over classes: each
  round keeps one box in every class at once). Readable; slow when a class keeps
  hundreds of boxes.
- `nms_trace`: takes the kept set from torchvision's C++ `batched_nms` and recovers who
  removed whom in one vectorised step: in greedy NMS a removed box was removed by the
  FIRST kept box of its class, in score order, that overlaps it above the threshold.
  This is the one inference uses: the kept set costs what `batched_nms` costs, and the
  trace is computed only when first read (the explorer's NMS view), not on every run.

Letters: N = boxes, G = classes present, M = most boxes in one class.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import batched_nms


class NMSTrace:
    """The result of NMS over N boxes, with who removed whom.

    Attributes:
        keep: (K,) long, indices of the kept boxes, by descending score (as batched_nms).
        kept: (N,) bool mask of `keep`.
        suppressed_by: (N,) long, index of the kept box that removed box n; -1 if kept.
        suppress_iou: (N,) float, IoU of box n with the box that removed it; 0 if kept.
        iou_threshold: a box is removed when its IoU with a kept box is > this.
    `suppressed_by` / `suppress_iou` may be computed on first access (`nms_trace` does
    so), so that inference pays for the trace only when someone looks at it.
    """

    def __init__(
        self,
        keep: Tensor,
        kept: Tensor,
        iou_threshold: float,
        suppressed_by: Tensor | None = None,
        suppress_iou: Tensor | None = None,
        inputs: tuple[Tensor, Tensor, Tensor] | None = None,
    ):
        if (suppressed_by is None) != (suppress_iou is None) or (suppressed_by is None and inputs is None):
            raise ValueError("give both suppressed_by and suppress_iou, or the inputs to compute them")
        self.keep = keep
        self.kept = kept
        self.iou_threshold = float(iou_threshold)
        self._suppressed_by = suppressed_by
        self._suppress_iou = suppress_iou
        self._inputs = inputs  # (boxes_xyxy, scores, labels) for the lazy trace

    def _compute(self) -> None:
        if self._suppressed_by is None:
            boxes, scores, labels = self._inputs
            self._suppressed_by, self._suppress_iou = _suppressors(boxes, scores, labels, self.kept,
                                                                   self.iou_threshold)
            self._inputs = None

    @property
    def suppressed_by(self) -> Tensor:
        self._compute()
        return self._suppressed_by

    @property
    def suppress_iou(self) -> Tensor:
        self._compute()
        return self._suppress_iou

    def to(self, device: str | torch.device) -> "NMSTrace":
        """The same trace on `device` (still lazy if not computed yet)."""
        if self._suppressed_by is not None:
            return NMSTrace(self.keep.to(device), self.kept.to(device), self.iou_threshold,
                            self._suppressed_by.to(device), self._suppress_iou.to(device))
        inputs = tuple(t.to(device) for t in self._inputs)
        return NMSTrace(self.keep.to(device), self.kept.to(device), self.iou_threshold, inputs=inputs)

    def __len__(self) -> int:
        return int(self.kept.shape[0])


def _check_inputs(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor) -> int:
    if boxes_xyxy.dim() != 2 or boxes_xyxy.shape[-1] != 4:
        raise ValueError(f"boxes_xyxy must be (N, 4), got {tuple(boxes_xyxy.shape)}")
    n = boxes_xyxy.shape[0]
    if scores.shape != (n,) or labels.shape != (n,):
        raise ValueError(
            f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} must both be ({n},)"
        )
    return n


def _empty_trace(n: int, boxes_xyxy: Tensor, iou_threshold: float) -> NMSTrace:
    device = boxes_xyxy.device
    return NMSTrace(
        keep=torch.empty(0, dtype=torch.long, device=device),
        kept=torch.zeros(n, dtype=torch.bool, device=device),
        iou_threshold=iou_threshold,
        suppressed_by=torch.full((n,), -1, dtype=torch.long, device=device),
        suppress_iou=torch.zeros(n, dtype=boxes_xyxy.dtype, device=device),
    )


def _torchvision_coordinates(boxes_xyxy: Tensor, labels: Tensor) -> tuple[Tensor, bool]:
    """The coordinates batched_nms compares, and whether it takes its per-class path.

    batched_nms either runs NMS per class ("vanilla", many boxes) or once after
    shifting each class far apart (the "coordinate trick"); the shift changes float
    rounding, so we use the same coordinates and borderline IoUs agree bit for bit.
    """
    vanilla = boxes_xyxy.numel() > (4000 if boxes_xyxy.device.type == "cpu" else 100_000)
    if vanilla:
        return boxes_xyxy, True
    offsets = labels.to(boxes_xyxy) * (boxes_xyxy.max() + torch.tensor(1).to(boxes_xyxy))
    return boxes_xyxy + offsets[:, None], False


def _class_layout(scores: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Boxes grouped by class, each class by descending score (ties: lower index first).

    Returns:
        by_score: (N,) indices by descending score, stable.
        idx: (G, M) padded layout, idx[g, r] = index of the r-th best box of class g, -1 = pad.
        valid: (G, M) bool, idx >= 0.
    """
    n, device = scores.shape[0], scores.device
    by_score = torch.sort(scores, descending=True, stable=True).indices
    order = by_score[torch.sort(labels[by_score], stable=True).indices]  # (N,) grouped by label
    _, counts = torch.unique_consecutive(labels[order], return_counts=True)
    g, m = counts.shape[0], int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    group = torch.repeat_interleave(torch.arange(g, device=device), counts)  # (N,) class slot
    rank = torch.arange(n, device=device) - starts[group]  # (N,) position within its class
    idx = torch.full((g, m), -1, dtype=torch.long, device=device)
    idx[group, rank] = order
    return by_score, idx, idx >= 0


def _planes(boxes: Tensor, idx: Tensor) -> Tensor:
    """(G, M, 5) x1, y1, x2, y2, area of the boxes in layout `idx` (pads: box 0)."""
    bx = boxes[idx.clamp(min=0)]  # (G, M, 4)
    x1, y1, x2, y2 = bx.unbind(-1)
    area = (x2 - x1) * (y2 - y1)  # same float ops as torchvision's NMS kernel
    return torch.stack([x1, y1, x2, y2, area], dim=-1)


def _pairwise_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of planes a (G, P, 5) with b (G, Q, 5) -> (G, P, Q), in the same float
    operations and order as torchvision's CPU NMS kernel (borderline cases agree)."""
    ax1, ay1, ax2, ay2, a_area = (t.contiguous()[:, :, None] for t in a.unbind(-1))  # (G, P, 1)
    bx1, by1, bx2, by2, b_area = (t.contiguous()[:, None, :] for t in b.unbind(-1))  # (G, 1, Q)
    w = (torch.minimum(ax2, bx2) - torch.maximum(ax1, bx1)).clamp_(min=0)
    h = (torch.minimum(ay2, by2) - torch.maximum(ay1, by1)).clamp_(min=0)
    inter = w * h
    return inter / (a_area + b_area - inter)


def _keep_order(kept: Tensor, scores: Tensor, by_score: Tensor, vanilla: bool) -> Tensor:
    """Kept indices in batched_nms's output order."""
    if vanilla:
        # torchvision: keep_indices[scores[keep_indices].sort(descending=True)[1]]
        keep_idx = torch.where(kept)[0]
        return keep_idx[scores[keep_idx].sort(descending=True)[1]]
    return by_score[kept[by_score]]  # one NMS over all boxes: stable descending score


def greedy_nms_trace(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> NMSTrace:
    """Per-class greedy NMS, written out; same arguments and result as `nms_trace`."""
    n = _check_inputs(boxes_xyxy, scores, labels)
    if n == 0:
        return _empty_trace(0, boxes_xyxy, iou_threshold)
    labels = labels.long()
    device = boxes_xyxy.device
    boxes, vanilla = _torchvision_coordinates(boxes_xyxy, labels)
    by_score, idx, valid = _class_layout(scores, labels)
    g, m = idx.shape
    planes = _planes(boxes, idx)
    x1, y1, x2, y2, area = planes.unbind(-1)  # (G, M) each
    undecided = valid.clone()
    kept_pad = torch.zeros_like(valid)
    by_pad = torch.full((g, m), -1, dtype=torch.long, device=device)
    iou_pad = torch.zeros((g, m), dtype=boxes.dtype, device=device)
    # One round keeps the best undecided box of every class at once, then removes the
    # boxes of its class that overlap it (Sec. 2.2 "non-maximum suppression").
    while True:
        first = undecided.to(torch.uint8).argmax(dim=1, keepdim=True)  # (G, 1) best undecided
        active = undecided.gather(1, first)  # (G, 1) False where a class is finished
        if not bool(active.any()):
            break
        kept_pad.scatter_(1, first, active | kept_pad.gather(1, first))
        undecided.scatter_(1, first, False)
        f = planes.gather(1, first[..., None].expand(g, 1, 5))  # (G, 1, 5) the kept box
        # IoU, written as torchvision's CPU kernel so borderline cases agree bit for bit.
        w = (torch.minimum(f[..., 2], x2) - torch.maximum(f[..., 0], x1)).clamp_(min=0)
        h = (torch.minimum(f[..., 3], y2) - torch.maximum(f[..., 1], y1)).clamp_(min=0)
        inter = w * h
        iou = inter / (f[..., 4] + area - inter)  # (G, M)
        hit = (iou > iou_threshold) & undecided & active  # removed by this round's kept box
        by_pad = torch.where(hit, idx.gather(1, first), by_pad)
        iou_pad = torch.where(hit, iou, iou_pad)
        undecided &= ~hit

    kept = torch.zeros(n, dtype=torch.bool, device=device)
    suppressed_by = torch.full((n,), -1, dtype=torch.long, device=device)
    suppress_iou = torch.zeros(n, dtype=boxes_xyxy.dtype, device=device)
    flat = idx[valid]
    kept[flat] = kept_pad[valid]
    suppressed_by[flat] = by_pad[valid]
    suppress_iou[flat] = iou_pad[valid]
    keep = _keep_order(kept, scores, by_score, vanilla)
    return NMSTrace(keep, kept, iou_threshold, suppressed_by, suppress_iou)


# Largest (classes x kept x removed) IoU block computed at once, elements.
_MAX_BLOCK = 4_000_000


def nms_trace(boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> NMSTrace:
    """Per-class greedy NMS with the suppression trace.

    Args:
        boxes_xyxy: (N, 4) boxes, any frame (pixels or normalised).
        scores: (N,) scores; higher is kept first (ties: lower index first, as torchvision).
        labels: (N,) int class per box; boxes of different classes never suppress each other.
        iou_threshold: remove boxes whose IoU with a kept box is > iou_threshold.
    Returns:
        `NMSTrace`; `keep` is `torchvision.ops.batched_nms(boxes, scores, labels, thr)`;
        who removed whom is computed on first access of `suppressed_by`/`suppress_iou`.
    """
    n = _check_inputs(boxes_xyxy, scores, labels)
    if n == 0:
        return _empty_trace(0, boxes_xyxy, iou_threshold)
    labels = labels.long()
    device = boxes_xyxy.device
    keep = batched_nms(boxes_xyxy, scores, labels, iou_threshold)
    kept = torch.zeros(n, dtype=torch.bool, device=device)
    kept[keep] = True
    return NMSTrace(keep, kept, iou_threshold, inputs=(boxes_xyxy, scores, labels))


def _suppressors(
    boxes_xyxy: Tensor, scores: Tensor, labels: Tensor, kept: Tensor, iou_threshold: float
) -> tuple[Tensor, Tensor]:
    """(suppressed_by (N,), suppress_iou (N,)) given the kept mask of greedy NMS.

    In greedy NMS a removed box was removed by the first kept box of its class, in
    score order, whose IoU with it is above the threshold: one masked argmax over an
    IoU block (classes x removed x kept), no loop over boxes.
    """
    n, device = kept.shape[0], kept.device
    labels = labels.long()
    suppressed_by = torch.full((n,), -1, dtype=torch.long, device=device)
    suppress_iou = torch.zeros(n, dtype=boxes_xyxy.dtype, device=device)
    if bool(kept.all()):
        return suppressed_by, suppress_iou
    boxes, _ = _torchvision_coordinates(boxes_xyxy, labels)
    _, idx, valid = _class_layout(scores, labels)
    kept_pad = kept[idx.clamp(min=0)] & valid  # (G, M)
    removed_pad = ~kept[idx.clamp(min=0)] & valid
    # Per class, kept boxes first (then removed), each in rank order: stable sorts.
    k_pos = torch.sort((~kept_pad).to(torch.uint8), dim=1, stable=True).indices  # (G, M)
    r_pos = torch.sort((~removed_pad).to(torch.uint8), dim=1, stable=True).indices
    n_k, n_r = kept_pad.sum(1), removed_pad.sum(1)  # (G,)
    k_max, r_max = int(n_k.max()), int(n_r.max())
    k_pos, r_pos = k_pos[:, :k_max], r_pos[:, :r_max]  # (G, Kmax) / (G, Rmax) ranks in class
    k_valid = torch.arange(k_max, device=device) < n_k[:, None]
    r_valid = torch.arange(r_max, device=device) < n_r[:, None]
    planes = _planes(boxes, idx)
    g = idx.shape[0]
    chunk = max(1, _MAX_BLOCK // max(1, k_max * r_max))
    for c0 in range(0, g, chunk):
        sl = slice(c0, c0 + chunk)
        kp, rp = k_pos[sl], r_pos[sl]
        iou = _pairwise_iou(
            planes[sl].gather(1, rp[..., None].expand(-1, -1, 5)),
            planes[sl].gather(1, kp[..., None].expand(-1, -1, 5)),
        )  # (g, Rmax, Kmax): removed x kept, so the reductions run along the last dim
        earlier = (kp[:, None, :] < rp[:, :, None]) & k_valid[sl][:, None, :]  # kept before removed
        hit = (iou > iou_threshold) & earlier
        # Greedy: the first kept box (in score order) that overlaps the removed box.
        first = hit.to(torch.uint8).argmax(dim=2)  # (g, Rmax)
        missed = ~hit.any(dim=2) & r_valid[sl]
        if bool(missed.any()):
            # Only if float rounding disagreed with the kernel: the most-overlapping earlier one.
            best = torch.where(earlier, iou, torch.full_like(iou, -1.0)).argmax(dim=2)
            first = torch.where(missed, best, first)
        k_idx = idx[sl].gather(1, kp).gather(1, first)  # (g, Rmax) original index of remover
        r_idx = idx[sl].gather(1, rp)
        m_ok = r_valid[sl]
        suppressed_by[r_idx[m_ok]] = k_idx[m_ok]
        suppress_iou[r_idx[m_ok]] = iou.gather(2, first[..., None])[..., 0][m_ok].to(suppress_iou.dtype)
    return suppressed_by, suppress_iou
