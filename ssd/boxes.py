"""Box formats and SSD box coding.

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


def decode(deltas: Tensor, default_cxcywh: Tensor, variances=(0.1, 0.2)) -> Tensor:
    """Inverse of `encode`.

    Args:
        deltas: (..., N, 4) predicted (t_x, t_y, t_w, t_h); leading batch dims allowed.
        default_cxcywh: (N, 4) default boxes.
    Returns:
        (..., N, 4) boxes in xyxy, in the defaults' frame.
    """
    d = default_cxcywh
    cxcy = d[..., :2] + deltas[..., :2] * variances[0] * d[..., 2:]
    t_wh = (deltas[..., 2:] * variances[1]).clamp(max=_BBOX_XFORM_CLIP)
    wh = d[..., 2:] * torch.exp(t_wh)
    return torch.cat([cxcy - 0.5 * wh, cxcy + 0.5 * wh], dim=-1)
