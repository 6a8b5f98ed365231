"""Tests for ssd/boxes.py: format conversions, encode/decode round trip, and equality with
torchvision's BoxCoder(weights=(10, 10, 5, 5)) (the coding of its SSD)."""
import math

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from ssd.boxes import box_coder_cxcywh, cxcywh_to_xyxy, decode, encode, norm_to_px, px_to_norm, xyxy_to_cxcywh
from ssd.config import ssd300_voc
from ssd.priors import default_boxes




def random_xyxy(n, seed):
    gen = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=gen)
    wh = torch.rand(n, 2, generator=gen) * 0.5 + 0.01
    return torch.cat([c - wh / 2, c + wh / 2], dim=1)


def test_format_conversions_by_hand():
    xyxy = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    cxcywh = torch.tensor([[20.0, 40.0, 20.0, 40.0]])
    assert torch.equal(xyxy_to_cxcywh(xyxy), cxcywh)
    assert torch.equal(cxcywh_to_xyxy(cxcywh), xyxy)
    # leading batch dims are kept
    batched = random_xyxy(6, seed=0).reshape(2, 3, 4)
    assert torch.allclose(cxcywh_to_xyxy(xyxy_to_cxcywh(batched)), batched, atol=1e-6)


def test_encode_by_hand():
    # default centred at (0.5, 0.5), 0.2 x 0.4; GT shifted by (0.02, -0.04), twice as wide.
    d = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    g = cxcywh_to_xyxy(torch.tensor([[0.52, 0.46, 0.4, 0.4]]))
    t = encode(g, d, (0.1, 0.2))
    expected = [0.02 / (0.1 * 0.2), -0.04 / (0.1 * 0.4), math.log(2.0) / 0.2, 0.0]
    assert t[0].tolist() == pytest.approx(expected, abs=1e-5)
    assert decode(t, d)[0].tolist() == pytest.approx(g[0].tolist(), abs=1e-6)


def test_round_trip_on_ssd300_defaults():
    d = default_boxes(ssd300_voc()).cxcywh
    idx = torch.randint(0, d.shape[0], (500,), generator=torch.Generator().manual_seed(1))
    g = random_xyxy(500, seed=2)
    for variances in ((0.1, 0.2), (1.0, 1.0)):
        t = encode(g, d[idx], variances)
        assert torch.allclose(decode(t, d[idx], variances), g, atol=1e-5)  # same default form both ways


def test_zero_deltas_decode_to_the_defaults():
    d = default_boxes(ssd300_voc()).cxcywh
    assert torch.allclose(decode(torch.zeros_like(d), d), cxcywh_to_xyxy(d), atol=1e-7)


def test_equals_torchvision_box_coder():
    coder = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))
    d_cxcywh = default_boxes(ssd300_voc()).cxcywh[::7]  # (1248, 4)
    d_px = cxcywh_to_xyxy(d_cxcywh) * 300
    g_px = random_xyxy(d_px.shape[0], seed=3) * 300
    ours = encode(g_px, xyxy_to_cxcywh(d_px))
    assert torch.allclose(ours, coder.encode_single(g_px, d_px), atol=1e-4)
    # the coding is scale-free: normalised boxes give the same deltas
    assert torch.allclose(encode(g_px / 300, d_cxcywh), ours, atol=1e-4)
    deltas = torch.randn(d_px.shape[0], 4, generator=torch.Generator().manual_seed(4))
    # decode on the anchors read as BoxCoder reads them is decode_single op for op:
    # bit-identical, in any frame
    assert torch.equal(decode(deltas, box_coder_cxcywh(d_px)), coder.decode_single(deltas, d_px))
    assert torch.equal(decode(deltas, box_coder_cxcywh(d_px / 300)), coder.decode_single(deltas, d_px / 300))
    assert torch.allclose(decode(deltas, d_cxcywh) * 300, coder.decode_single(deltas, d_px), atol=1e-3)
    # other variances are other weights: (0.2, 0.5) -> BoxCoder(5, 5, 2, 2)
    coder2 = BoxCoder(weights=(5.0, 5.0, 2.0, 2.0))
    assert torch.equal(decode(deltas, box_coder_cxcywh(d_px), (0.2, 0.5)), coder2.decode_single(deltas, d_px))
    # encode and decode take the same form: decode(encode(g, d), d) is g, torchvision's too
    assert torch.allclose(decode(encode(g_px, xyxy_to_cxcywh(d_px)), xyxy_to_cxcywh(d_px)), g_px, atol=1e-3)


def test_decode_batched_and_clamped():
    d = default_boxes(ssd300_voc()).cxcywh[:10]
    deltas = torch.randn(3, 10, 4)
    out = decode(deltas, d)
    assert out.shape == (3, 10, 4)
    assert torch.allclose(out[1], decode(deltas[1], d))
    # huge size deltas are clamped as in torchvision (log(1000/16)), never inf
    big = torch.zeros(1, 4)
    big[0, 2:] = 1e4
    box = decode(big, d[:1])
    assert torch.isfinite(box).all()
    assert (box[0, 2] - box[0, 0]).item() == pytest.approx(d[0, 2].item() * 1000 / 16, rel=1e-4)


def test_px_to_norm_by_hand_is_h_w_and_norm_to_px_inverts_it():
    image_hw = (100, 200)  # H = 100, W = 200: x is divided by 200, y by 100
    px = torch.tensor([[20.0, 10.0, 200.0, 50.0]])
    norm = px_to_norm(px, image_hw)
    assert torch.equal(norm, torch.tensor([[0.1, 0.1, 1.0, 0.5]]))
    assert torch.equal(norm_to_px(norm, image_hw), px)
    # leading dims kept, empty sets pass, integer pixels come back float32
    batched = random_xyxy(6, seed=3).reshape(2, 3, 4) * 100
    assert torch.allclose(norm_to_px(px_to_norm(batched, (37, 91)), (37, 91)), batched, atol=1e-4)
    assert px_to_norm(torch.zeros((0, 4)), image_hw).shape == (0, 4)
    assert px_to_norm(torch.tensor([[0, 0, 200, 100]]), image_hw).dtype == torch.float32
    assert px_to_norm(px.double(), image_hw).dtype == torch.float64
