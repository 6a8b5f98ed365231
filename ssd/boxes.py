"""Box formats and SSD box coding (the library's one `encode` and one `decode`).

Formats: `xyxy` = (x1, y1, x2, y2); `cxcywh` = (centre x, centre y, width, height).
Frames: `_norm` = fractions of the image side in [0, 1]; otherwise pixels.

Box coding (Sec. 2.2, Eq. 2 of the paper, with the "variance" scaling of the released
Caffe code and torchvision's BoxCoder weights (10, 10, 5, 5) = 1 / variances):

    t_x = (g_cx - d_cx) / (v0 * d_w)      t_w = log(g_w / d_w) / v1
    t_y = (g_cy - d_cy) / (v0 * d_h)      t_h = log(g_h / d_h) / v1
"""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.ops import box_convert

# Same clamp as torchvision's BoxCoder: exp() of a large predicted t_w must not overflow.
_BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def cxcywh_to_xyxy(boxes_cxcywh: Tensor) -> Tensor:
    """(..., 4) cxcywh -> (..., 4) xyxy, same frame."""
    return box_convert(boxes_cxcywh, in_fmt="cxcywh", out_fmt="xyxy")


def xyxy_to_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """(..., 4) xyxy -> (..., 4) cxcywh, same frame."""
    return box_convert(boxes_xyxy, in_fmt="xyxy", out_fmt="cxcywh")


def _xyxy_scale(image_hw: tuple[int, int], boxes: Tensor) -> Tensor:
    """(4,) (W, H, W, H) of an image (H, W), in `boxes`' float dtype and device."""
    h, w = image_hw
    dtype = boxes.dtype if boxes.is_floating_point() else torch.float32
    return torch.tensor([w, h, w, h], dtype=dtype, device=boxes.device)


def px_to_norm(boxes_xyxy_px: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """(..., 4) xyxy in pixels of an image of size `image_hw` (H, W) -> (..., 4) xyxy as
    fractions of its width and height (`_norm`; integer boxes come back float32)."""
    scale = _xyxy_scale(image_hw, boxes_xyxy_px)
    return boxes_xyxy_px.to(scale.dtype) / scale


def norm_to_px(boxes_xyxy_norm: Tensor, image_hw: tuple[int, int]) -> Tensor:
    """Inverse of `px_to_norm`: (..., 4) xyxy fractions -> (..., 4) xyxy pixels of an image (H, W)."""
    scale = _xyxy_scale(image_hw, boxes_xyxy_norm)
    return boxes_xyxy_norm.to(scale.dtype) * scale


def encode(gt_xyxy: Tensor, default_cxcywh: Tensor, variances=(0.1, 0.2)) -> Tensor:
    """Regression targets for matched pairs.

    Args:
        gt_xyxy: (N, 4) ground-truth boxes, same frame as the defaults.
        default_cxcywh: (N, 4) default boxes paired row by row with `gt_xyxy`.
        variances: (v0, v1) for centre and size.
    Returns:
        (N, 4) deltas (t_x, t_y, t_w, t_h).
    """
    g = xyxy_to_cxcywh(gt_xyxy)
    d = default_cxcywh
    t_xy = (g[..., :2] - d[..., :2]) / (variances[0] * d[..., 2:])
    t_wh = torch.log(g[..., 2:] / d[..., 2:]) / variances[1]
    return torch.cat([t_xy, t_wh], dim=-1)


def box_coder_weights(variances: tuple[float, float] = (0.1, 0.2)) -> tuple[float, float, float, float]:
    """The SSD "variances" (v0, v1) as torchvision's BoxCoder weights (1/v0, 1/v0, 1/v1, 1/v1):
    (0.1, 0.2) -> (10, 10, 5, 5)."""
    return (1.0 / variances[0], 1.0 / variances[0], 1.0 / variances[1], 1.0 / variances[1])


def box_coder_cxcywh(boxes_xyxy: Tensor) -> Tensor:
    """(..., 4) xyxy -> (..., 4) cxcywh with the float operations of torchvision's BoxCoder
    (w = x2 - x1, cx = x1 + 0.5 * w; `xyxy_to_cxcywh` computes cx = (x1 + x2) / 2, which can
    differ in the last bit). `decode(t, box_coder_cxcywh(anchors_xyxy))` is bit-identical to
    `BoxCoder.decode_single(t, anchors_xyxy)`: the post-processing decodes torchvision's anchors so."""
    widths = boxes_xyxy[..., 2] - boxes_xyxy[..., 0]
    heights = boxes_xyxy[..., 3] - boxes_xyxy[..., 1]
    ctr_x = boxes_xyxy[..., 0] + 0.5 * widths
    ctr_y = boxes_xyxy[..., 1] + 0.5 * heights
    return torch.stack([ctr_x, ctr_y, widths, heights], dim=-1)


def decode(bbox_regression: Tensor, default_cxcywh: Tensor, variances=(0.1, 0.2)) -> Tensor:
    """Inverse of `encode`, with the default boxes in the same form (cxcywh, Eq. 2): the one
    box decoder of the library (Sec. 2.2, Eq. 2).

    After reading the defaults' centre and size, the float operations are torchvision's
    `BoxCoder(weights=(10, 10, 5, 5)).decode_single` in the same order: with defaults from
    `box_coder_cxcywh(anchors_xyxy)` the boxes are bit-identical to its SSD's (NMS ties included).

    Args:
        bbox_regression: (..., A, 4) predicted (t_x, t_y, t_w, t_h); leading batch dims allowed.
        default_cxcywh: (A, 4) default boxes in cxcywh, in any frame (`_norm` or `_px_in`).
        variances: (v0, v1) for centre and size (`SSDConfig.variances`).
    Returns:
        (..., A, 4) boxes in xyxy, in the default boxes' frame (not clipped).
    """
    wx, wy, ww, wh = box_coder_weights(variances)
    d = default_cxcywh.to(bbox_regression.dtype)
    ctr_x, ctr_y, widths, heights = d[..., 0], d[..., 1], d[..., 2], d[..., 3]  # (A,) each
    dx = bbox_regression[..., 0] / wx  # (..., A)
    dy = bbox_regression[..., 1] / wy
    # Same clamp as torchvision: exp() of a large predicted t_w must not overflow.
    dw = torch.clamp(bbox_regression[..., 2] / ww, max=_BBOX_XFORM_CLIP)
    dh = torch.clamp(bbox_regression[..., 3] / wh, max=_BBOX_XFORM_CLIP)
    pred_ctr_x = dx * widths + ctr_x
    pred_ctr_y = dy * heights + ctr_y
    half_w = 0.5 * (torch.exp(dw) * widths)
    half_h = 0.5 * (torch.exp(dh) * heights)
    return torch.stack([pred_ctr_x - half_w, pred_ctr_y - half_h, pred_ctr_x + half_w, pred_ctr_y + half_h], dim=-1)
