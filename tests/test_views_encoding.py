"""explorer/views/encoding.py: one pair's encoding, against torchvision's BoxCoder."""
import math

import numpy as np
import plotly.graph_objects as go
import torch
from torchvision.models.detection._utils import BoxCoder

from explorer.views import encoding as ev


def test_hand_checked_pair_and_round_trip():
    # default box centred at (0.5, 0.5), 0.2 x 0.4; GT centred at (0.52, 0.46), 0.4 x 0.2
    gt_xyxy = [0.32, 0.36, 0.72, 0.56]
    d_cxcywh = [0.5, 0.5, 0.2, 0.4]
    out = ev.encoding_rows(gt_xyxy, d_cxcywh, (0.1, 0.2), image_size=300)
    raw = [r["raw_offset"] for r in out["rows"]]
    enc = [r["encoded"] for r in out["rows"]]
    assert raw == [0.1, -0.1, round(math.log(2), 4), round(math.log(0.5), 4)]
    assert enc == [1.0, -1.0, round(math.log(2) / 0.2, 4), round(math.log(0.5) / 0.2, 4)]
    assert out["round_trip_error"] < 1e-9
    assert out["default_cxcywh_px_in"] == [150.0, 150.0, 60.0, 120.0]


def test_encoded_targets_equal_torchvision_boxcoder():
    g = torch.Generator().manual_seed(0)
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    for _ in range(20):
        c = torch.rand(2, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(2, 2, generator=g) * 0.3 + 0.05
        gt_xyxy = torch.cat([c[0] - wh[0] / 2, c[0] + wh[0] / 2])
        d_cxcywh = torch.cat([c[1], wh[1]])
        d_xyxy = torch.cat([c[1] - wh[1] / 2, c[1] + wh[1] / 2])
        theirs = coder.encode_single(gt_xyxy.reshape(1, 4).double(), d_xyxy.reshape(1, 4).double())[0]
        ours = [r["encoded"] for r in ev.encoding_rows(gt_xyxy, d_cxcywh, (0.1, 0.2))["rows"]]
        np.testing.assert_allclose(ours, theirs.numpy(), atol=1e-4)


def test_smooth_l1_and_its_figure():
    assert ev.smooth_l1(0.5) == 0.125 and ev.smooth_l1(-2.0) == 1.5
    rows = ev.encoding_rows([0.1, 0.1, 0.3, 0.5], [0.25, 0.25, 0.2, 0.2])["rows"]
    fig = ev.smooth_l1_figure(rows)
    go.Figure(fig)  # validates
    pts = [t for t in fig.data if t.name == "encoded targets"][0]
    np.testing.assert_allclose(pts.y, ev.smooth_l1(np.array(pts.x)))
