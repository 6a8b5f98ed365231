"""The exported graphs: an `SSDNet` with its post-processing as one traceable module.

`DetectionGraph` is the network + softmax + box decoding + per-class top-k + NMS +
max detections, i.e. `ssd.postprocess` written with static shapes so that ONNX can hold
it; `RawGraph` is the network alone (the per-level head outputs). Both take the
network-input image in [0, 1] and normalise inside the graph.

How the NMS is built (the part that must equal `ssd.postprocess` exactly):
- Candidates: per class the `topk_candidates` best default boxes with score > threshold
  (a top-k over all A boxes, then the threshold: the same set as torchvision's
  threshold-then-top-k, with static shapes).
- NMS: ONNX `NonMaxSuppression` with a batch and a class axis, over the decoded boxes
  themselves (IoU on the same coordinates as the library, no coordinate offset per
  class). Its scores are the candidates' *ranks* within their class (k, k-1, ..., 1) / k,
  other boxes -1: the greedy order is then exactly the top-k order, ties included
  (torchvision's NMS is stable; ORT's is not guaranteed to be).
- Final order: by score, ties in (class, rank) order, then the first
  `detections_per_img` of each image, as `batched_nms` + `keep[:detections_per_img]`.

Letters: B = images, A = default boxes (all levels), C = classes incl. background,
k = candidates per class, K = boxes kept by NMS (all images), S = input side.
Frames: `_px_in` = network-input pixels (S x S).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import batched_nms

from ssd.models.common import SSDNet
from ssd.postprocess import PostprocessConfig, decode_boxes_px_in, default_boxes_px_in

DETECTION_OUTPUTS = ("batch_index", "boxes_xyxy_px_in", "scores", "labels", "default_index")


class _MultiClassNMS(torch.autograd.Function):
    """ONNX `NonMaxSuppression` (batch and class axes) for the TorchScript exporter.

    forward: boxes (B, A, 4) xyxy, scores (B, C', A) -> selected (K, 3) long rows
    (batch, class, box), batch-major, then class, then greedy order; the eager forward
    only serves tracing (the exported graph runs ONNX's operator).
    """

    @staticmethod
    def forward(ctx, boxes: Tensor, scores: Tensor, max_per_class: int, iou_thresh: float,
                score_thresh: float) -> Tensor:
        b, c, a = torch.nonzero(scores > score_thresh, as_tuple=True)
        group = b * scores.shape[1] + c  # one NMS per (image, class)
        keep = batched_nms(boxes[b, a], scores[b, c, a], group, iou_thresh)  # by descending score
        keep = keep[torch.sort(group[keep], stable=True).indices]  # image-major, then class
        return torch.stack([b[keep], c[keep], a[keep]], 1)  # (K, 3); <= max_per_class per class here

    @staticmethod
    def symbolic(g, boxes, scores, max_per_class: int, iou_thresh: float, score_thresh: float):
        max_out = g.op("Constant", value_t=torch.tensor([max_per_class], dtype=torch.long))
        iou = g.op("Constant", value_t=torch.tensor([iou_thresh], dtype=torch.float32))
        thr = g.op("Constant", value_t=torch.tensor([score_thresh], dtype=torch.float32))
        # center_point_box=0: boxes are [y1, x1, y2, x2] or [x1, y1, x2, y2] (IoU is symmetric).
        return g.op("NonMaxSuppression", boxes, scores, max_out, iou, thr, center_point_box_i=0)


class RawGraph(nn.Module):
    """images (B, 3, S, S) in [0, 1] -> per level (cls_logits_l (B, H_l*W_l*K_l, C),
    bbox_regression_l (B, H_l*W_l*K_l, 4)), levels in order: the model's `HeadOutputs`."""

    def __init__(self, model: SSDNet):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        head = self.model.predict(self.model.extract_features(self.model.normalize(images)))
        return (*head.cls_logits, *head.bbox_regression)


class DetectionGraph(nn.Module):
    """images (B, 3, S, S) in [0, 1] -> the final detections of every image, flat:
    batch_index (K,), boxes_xyxy_px_in (K, 4), scores (K,), labels (K,) in 1..C-1,
    default_index (K,) (the default box each detection came from), each image's rows
    together, by descending score (see module docstring)."""

    def __init__(self, model: SSDNet, config: PostprocessConfig):
        super().__init__()
        self.model = model
        self.config = config
        cfg = model.cfg
        _, default_xyxy_px_in = default_boxes_px_in(cfg)
        self.register_buffer("default_xyxy_px_in", default_xyxy_px_in.clone(), persistent=False)  # (A, 4)
        self.num_candidates = min(int(config.topk_candidates), int(default_xyxy_px_in.shape[0]))  # k

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        m, post, k = self.model, self.config, self.num_candidates
        head = m.predict(m.extract_features(m.normalize(images)))
        scores = torch.softmax(head.cls_logits_flat(), dim=-1)  # (B, A, C)
        boxes_px_in = decode_boxes_px_in(head.bbox_regression_flat(), self.default_xyxy_px_in,
                                         m.cfg.image_size, m.cfg.variances)  # (B, A, 4)
        fg = scores[:, :, 1:].transpose(1, 2)  # (B, A, C) -> (B, C-1, A)
        top_scores, top_idx = fg.topk(k, dim=2)  # (B, C-1, k), each class by descending score
        rank_score = torch.arange(k, 0, -1, dtype=torch.float32) / k  # (k,): 1, (k-1)/k, ..., 1/k
        rank_score = torch.where(top_scores > post.score_thresh, rank_score, torch.full_like(top_scores, -1.0))
        nms_scores = torch.full_like(fg, -1.0).scatter(2, top_idx, rank_score)  # (B, C-1, A)
        selected = _MultiClassNMS.apply(boxes_px_in, nms_scores, k, float(post.nms_thresh), 0.5 / k)  # (K, 3)
        b, c, a = selected[:, 0], selected[:, 1], selected[:, 2]
        det_scores = scores[b, a, c + 1]  # (K,)
        # By score, ties in NMS output order (class, rank): ONNX TopK puts equal values
        # in index order. Then each image's rows together, stably (unique integer keys).
        order = torch.sort(det_scores, descending=True).indices  # (K,)
        key = b[order] * order.shape[0] + torch.arange(order.shape[0])  # (K,) unique, image-major
        order = order[torch.sort(key.double()).indices]
        b, c, a = b[order], c[order], a[order]
        # Position of each row within its image: keep the first detections_per_img.
        onehot = (b[:, None] == torch.arange(images.shape[0])[None, :]).long()  # (K, B)
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1  # (K,)
        keep = rank < post.detections_per_img
        b, c, a = b[keep], c[keep], a[keep]
        return b, boxes_px_in[b, a], scores[b, a, c + 1], c + 1, a
