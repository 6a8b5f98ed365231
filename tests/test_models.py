"""ssd.models: per-level shapes, predictor channels, default boxes equal to torchvision's
anchors, and torchvision state dicts loading into SSDNet with identical outputs."""
from __future__ import annotations

import pytest
import torch
from torchvision.models.detection import ssdlite320_mobilenet_v3_large

from ssd.config import compact256, ssd300_coco
from ssd.models import HeadOutputs, SSDNet, WeightsError, build
from ssd.priors import default_boxes


def _tv_raw(tv, images01: torch.Tensor):
    """torchvision's own transform + backbone + head on (B,3,S,S) inputs already at size S."""
    tv_images, _ = tv.transform(list(images01))
    features = list(tv.backbone(tv_images.tensors).values())
    out = tv.head(features)
    return out["cls_logits"], out["bbox_regression"], features


def _tv_anchors(tv, size: int, feature_sizes) -> torch.Tensor:
    """torchvision's default boxes (cx, cy, w, h) normalised, before scaling to pixels."""
    return tv.anchor_generator._grid_default_boxes([list(s) for s in feature_sizes], [size, size])


# ---------------------------------------------------------------- compact256


@pytest.fixture(scope="module")
def compact():
    torch.manual_seed(0)
    return build("compact256", num_classes=7)


def test_compact256_shapes(compact):
    assert isinstance(compact, SSDNet)
    assert compact.cfg == compact256(7)
    compact.eval()
    with torch.no_grad():
        out = compact(torch.rand(2, 3, 256, 256))
    assert isinstance(out, HeadOutputs)
    assert out.feature_sizes == [(32, 32), (16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
    k = compact.cfg.boxes_per_location()
    for level, (f, c, r) in enumerate(zip(out.features, out.cls_logits, out.bbox_regression)):
        h, w = out.feature_sizes[level]
        assert f.shape == (2, compact.level_channels[level], h, w)
        assert c.shape == (2, h * w * k[level], 7)
        assert r.shape == (2, h * w * k[level], 4)
    a = len(default_boxes(compact.cfg))
    assert out.cls_logits_flat().shape == (2, a, 7)
    assert out.bbox_regression_flat().shape == (2, a, 4)
    assert len(compact.level_names) == 6


def test_compact256_trains(compact):
    compact.train()
    x = torch.rand(2, 3, 256, 256)
    out = compact(x)
    loss = out.cls_logits_flat().logsumexp(-1).mean() + out.bbox_regression_flat().square().mean()
    loss.backward()
    assert all(p.grad is not None for p in compact.parameters())


def test_per_level_order_matches_predictor_layout(compact):
    """Row (i, j, b) of level l is channel block b of the conv output at (i, j)."""
    compact.eval()
    with torch.no_grad():
        out = compact(torch.rand(1, 3, 256, 256))
        level, i, j, b = 1, 3, 5, 2
        raw = compact.head.classification_head.module_list[level](out.features[level])  # (1, K*C, H, W)
    c, (h, w), k = 7, out.feature_sizes[level], compact.cfg.boxes_per_location()[level]
    row = (i * w + j) * k + b
    torch.testing.assert_close(out.cls_logits[level][0, row], raw[0, b * c:(b + 1) * c, i, j])
    # and the flat index agrees with the default boxes' flat_index
    db = default_boxes(compact.cfg)
    flat = db.flat_index(level, i, j, b)
    torch.testing.assert_close(out.cls_logits_flat()[0, flat], out.cls_logits[level][0, row])
    assert (db.level[flat], db.row[flat], db.col[flat], db.box_index[flat]) == (level, i, j, b)


def test_wrong_input_size_is_named(compact):
    compact.eval()
    with torch.no_grad(), pytest.raises(ValueError, match="feature maps"):
        compact(torch.rand(1, 3, 320, 320))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        compact(torch.rand(3, 256, 256))


def test_build_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown model"):
        build("resnet9000")
    with pytest.raises(ValueError, match="num_classes"):
        build("compact256", num_classes=1)
    with pytest.raises(ValueError, match="image_size 300"):
        build("compact256", cfg=ssd300_coco(7))
    import dataclasses

    with pytest.raises(ValueError, match="feature_maps"):
        build("compact256", cfg=dataclasses.replace(compact256(7), feature_maps=(32, 16, 8, 4, 2, 2)))
    with pytest.raises(ValueError, match="architecture options"):
        build("ssdlite320_mobilenet_v3_large", stage_channels=(1, 2, 3))
    with pytest.raises(WeightsError, match="no COCO weights"):
        build("compact256", weights="coco")


def test_custom_cfg_scales_accepted():
    import dataclasses

    cfg = dataclasses.replace(compact256(4), scales=(0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0))
    net = build("compact256", cfg=cfg)
    assert net.cfg.scales[0] == 0.1 and net.num_classes == 4


def test_weights_path_errors(tmp_path, compact):
    with pytest.raises(WeightsError, match="does not exist"):
        build("compact256", weights=tmp_path / "none.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(WeightsError, match="empty"):
        build("compact256", weights=empty)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00not a zip" * 10)
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        build("compact256", weights=junk)
    good = tmp_path / "c7.pth"
    torch.save(compact.state_dict(), good)
    with pytest.raises(WeightsError, match="missing key"):
        build("ssdlite320_mobilenet_v3_large", weights=good)
    net = build("compact256", num_classes=7, weights=good)  # and the right one loads
    torch.testing.assert_close(net.state_dict()["head.classification_head.module_list.0.weight"],
                               compact.state_dict()["head.classification_head.module_list.0.weight"])


def test_coco_offline_error_is_clear(monkeypatch, tmp_path):
    # Point the hub cache at an empty folder so no cached file can be found, and send
    # HTTPS through a closed local port, so that even with internet nothing downloads:
    # torchvision's real download code fails, and the message must say what to do.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsError) as e:
        build("ssdlite320_mobilenet_v3_large", weights="coco")
    msg = str(e.value)
    assert "could not download" in msg and "weights=PATH" in msg
    assert str(tmp_path) in msg and "ssdlite320_mobilenet_v3_large_coco" in msg
    assert "from download.pytorch.org (no network? " in msg  # what failed, in words
    assert "URLError" not in msg and "<urlopen" not in msg and ".." not in msg.replace("...", "")


def test_an_unreachable_download_says_the_host_and_what_to_do(monkeypatch, tmp_path):
    """torchvision's real download code against a closed local port (fails at once, no
    network needed): one sentence with the host, "no network?", the file's place."""
    from torchvision.models._api import Weights, WeightsEnum

    from ssd.models.weights import DownloadError, _download

    class Unreachable(WeightsEnum):
        COCO_V1 = Weights(url="http://127.0.0.1:9/models/some_coco-0123abcd.pth", transforms=None, meta={})

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    for var in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DownloadError) as e:
        _download(Unreachable.COCO_V1, "COCO weights for x", "weights=PATH")
    msg = str(e.value)
    assert msg.startswith("could not download torchvision's COCO weights for x from 127.0.0.1 (no network? "
                          "connection refused): download http://127.0.0.1:9/models/some_coco-0123abcd.pth ")
    assert f"put it at {tmp_path / 'checkpoints' / 'some_coco-0123abcd.pth'}, or pass weights=PATH" in msg
    assert e.value.offline and e.value.host == "127.0.0.1" and e.value.file_name == "some_coco-0123abcd.pth"
    assert "Error" not in msg and "<" not in msg and ".." not in msg and "[Errno" not in msg


# ---------------------------------------------------------------- SSD300 (VGG16)


def test_ssd300_shapes_and_channels():
    """Paper's SSD300 layout. (Equality with torchvision's outputs on the same weights is
    tested in test_inference.py, which shares one torchvision model for it.)"""
    torch.manual_seed(0)
    ours = build("ssd300_vgg16", num_classes=21).eval()
    assert ours.cfg == ssd300_coco(21)
    assert ours.image_mean == (0.48235, 0.45882, 0.40784)
    assert ours.level_names == ("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")
    assert ours.level_channels == (512, 1024, 512, 256, 256, 256)
    assert ours.cfg.boxes_per_location() == (4, 6, 6, 6, 4, 4)
    for level, k in enumerate((4, 6, 6, 6, 4, 4)):
        assert ours.head.classification_head.module_list[level].out_channels == k * 21
        assert ours.head.regression_head.module_list[level].out_channels == k * 4
        assert ours.head.classification_head.module_list[level].kernel_size == (3, 3)
    x = torch.rand(1, 3, 300, 300, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        out = ours(x)
    assert out.feature_sizes == [(38, 38), (19, 19), (10, 10), (5, 5), (3, 3), (1, 1)]
    assert [tuple(f.shape[1:]) for f in out.features] == [
        (512, 38, 38), (1024, 19, 19), (512, 10, 10), (256, 5, 5), (256, 3, 3), (256, 1, 1)
    ]
    assert [c.shape[1] for c in out.cls_logits] == [38 * 38 * 4, 19 * 19 * 6, 600, 150, 36, 4]
    assert out.cls_logits_flat().shape == (1, 8732, 21)
    assert out.bbox_regression_flat().shape == (1, 8732, 4)
    # conv4_3 is L2-normalised then scaled by a learned weight initialised to 20 (Sec. 3.1).
    norms = out.features[0].norm(dim=1)
    torch.testing.assert_close(norms[norms > 0], torch.full_like(norms[norms > 0], 20.0), rtol=1e-4, atol=1e-3)


# ---------------------------------------------------------------- SSDlite320


def test_ssdlite_matches_torchvision(tmp_path):
    torch.manual_seed(0)
    tv = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=5).eval()
    path = tmp_path / "tv_lite.pth"
    torch.save(tv.state_dict(), path)
    ours = build("ssdlite320_mobilenet_v3_large", num_classes=5, weights=path).eval()
    assert ours.image_mean == (0.5, 0.5, 0.5) and ours.image_std == (0.5, 0.5, 0.5)
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        out = ours(x)
        tv_cls, tv_reg, _ = _tv_raw(tv, x)
    assert out.feature_sizes == [(20, 20), (10, 10), (5, 5), (3, 3), (2, 2), (1, 1)]
    assert ours.level_channels == (672, 480, 512, 256, 256, 128)
    torch.testing.assert_close(out.cls_logits_flat(), tv_cls, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.bbox_regression_flat(), tv_reg, atol=1e-5, rtol=1e-4)
    # Our SSDConfig for SSDlite gives exactly torchvision's anchors (no steps, min 0.2, max 0.95).
    assert ours.cfg.boxes_per_location() == tuple(tv.anchor_generator.num_anchors_per_location())
    torch.testing.assert_close(
        default_boxes(ours.cfg).cxcywh, _tv_anchors(tv, 320, out.feature_sizes), atol=0, rtol=0
    )


# ---------------------------------------------------------------- ImageNet backbone (issue 12)


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """A local file in torchvision's VGG-16 format (`vgg16().state_dict()` keys), written
    here: its "features.*" part (seeded random weights); SSD drops the classifier anyway."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(7)
    features = make_layers(cfgs["D"], batch_norm=False)
    for p in features.parameters():
        torch.nn.init.normal_(p, std=0.01)
    path = tmp_path_factory.mktemp("vgg") / "vgg16_features.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return path


def test_backbone_weights_from_a_local_file(vgg16_file):
    from torchvision.models import vgg16
    from torchvision.models.detection.ssd import _vgg_extractor

    state = torch.load(vgg16_file, weights_only=True)
    model = build("ssd300_vgg16", num_classes=3, backbone_weights=vgg16_file)
    own = model.state_dict()
    for key, value in state.items():  # features.<j>.<param>: conv1_1 .. conv4_3 then conv5 in extra[0]
        j, param = int(key.split(".")[1]), key.split(".")[2]
        ours = f"backbone.features.{j}.{param}" if j < 23 else f"backbone.extra.0.{j - 23}.{param}"
        assert torch.equal(own[ours], value), key
    # Frozen exactly as torchvision's ssd300_vgg16 freezes a pretrained backbone: its call
    # `_vgg_extractor(vgg16(weights=...), False, 4)` on a real torchvision VGG-16.
    tv = _vgg_extractor(vgg16(), False, 4)
    tv_frozen = {f"backbone.{n}" for n, p in tv.named_parameters() if not p.requires_grad}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == tv_frozen
    assert tv_frozen == {"backbone.features.0.weight", "backbone.features.0.bias",
                         "backbone.features.2.weight", "backbone.features.2.bias"}
    assert all(p.requires_grad for p in build("ssd300_vgg16", num_classes=3).parameters())


@pytest.mark.parametrize("make, words", [
    (lambda tmp: torch.save(build("compact256").state_dict(), tmp / "compact.pth"), "no 'features.*' keys"),
    (lambda tmp: torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, tmp / "part.pth"), "missing key"),
    (lambda tmp: torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, tmp / "shape.pth"), "shape mismatch"),
])
def test_backbone_weights_of_another_architecture_are_refused(tmp_path, make, words):
    make(tmp_path)
    path = next(tmp_path.glob("*.pth"))
    with pytest.raises(WeightsError, match=words) as e:
        build("ssd300_vgg16", num_classes=3, backbone_weights=path)
    assert path.name in str(e.value)


def test_truncated_backbone_file_is_refused(tmp_path, vgg16_file):
    cut = tmp_path / "cut.pth"
    cut.write_bytes(vgg16_file.read_bytes()[:4096])
    with pytest.raises(WeightsError, match="cut.pth is not a readable PyTorch file"):
        build("ssd300_vgg16", num_classes=3, backbone_weights=cut)


def test_backbone_weights_bad_arguments(vgg16_file):
    with pytest.raises(WeightsError, match=r"\['ssd300_vgg16'\] only"):
        build("compact256", backbone_weights=vgg16_file)
    with pytest.raises(ValueError, match="not both"):
        build("ssd300_vgg16", weights=vgg16_file, backbone_weights=vgg16_file)
    with pytest.raises(ValueError, match="0..5"):
        build("ssd300_vgg16", num_classes=3, trainable_backbone_layers=6)


def test_imagenet_offline_error_is_clear(monkeypatch, tmp_path):
    # As for COCO: an empty hub cache and HTTPS through a closed local port, so nothing downloads.
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(WeightsError) as e:
        build("ssd300_vgg16", num_classes=3, backbone_weights="imagenet")
    msg = str(e.value)
    assert "ImageNet backbone" in msg and "--backbone-weights PATH" in msg
    assert str(tmp_path) in msg and "vgg16_features" in msg


# ---------------------------------------------------------------- fine-tuning (issue 12)


def _class_rows(model, level=0):
    """Level `level`'s class predictor as (K, C, ...) weights and (K, C) bias."""
    m = model.head.classification_head.module_list[level]
    m = m if isinstance(m, torch.nn.Conv2d) else m[-1]  # SSDlite: the conv after the depthwise block
    k = model.cfg.boxes_per_location()[level]
    return m.weight.detach().view(k, model.num_classes, *m.weight.shape[1:]), m.bias.detach().view(k, -1)


def test_fine_tuning_keeps_backbone_and_box_head_and_reinitialises_classes(tmp_path, compact):
    path = tmp_path / "c7.pth"
    torch.save(compact.state_dict(), path)
    torch.manual_seed(1)
    with pytest.warns(UserWarning, match="class predictors re-initialised"):
        model = build("compact256", num_classes=3, weights=path)
    assert "7 classes -> 3" in model.init_note
    src, own = compact.state_dict(), model.state_dict()
    for key, value in own.items():
        if key.startswith("head.classification_head."):
            assert value.shape != src[key].shape  # K*3 rows, not K*7
        else:
            assert torch.equal(value, src[key]), key  # backbone and box predictors loaded
    torch.manual_seed(1)
    fresh = build("compact256", num_classes=3)  # the same seed: the class head is this fresh init
    assert torch.equal(own["head.classification_head.module_list.0.weight"],
                       fresh.state_dict()["head.classification_head.module_list.0.weight"])
    # ... and it trains.
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    from ssd.loss import multibox_loss

    priors = default_boxes(model.cfg).cxcywh
    targets = [{"boxes": torch.tensor([[0.1, 0.1, 0.5, 0.6]]), "labels": torch.tensor([2])}] * 2
    losses = []
    for _ in range(3):
        out = model(torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(0)))
        loss = multibox_loss(out.cls_logits_flat(), out.bbox_regression_flat(), priors, targets).total
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_fine_tuning_keeps_the_rows_of_shared_classes(tmp_path, compact):
    from ssd.training import checkpoint
    from ssd.data.procedural import CLASSES

    path = checkpoint.save(tmp_path / "c7.pt", compact, CLASSES)  # records its class names
    names = ["background", "fish", "cat"]  # a subset, in another order
    model = build("compact256", num_classes=3, weights=path, class_names=names, keep_class_rows=True)
    assert "rows kept for ['fish', 'cat']" in model.init_note
    for level in range(6):
        (w_new, b_new), (w_src, b_src) = _class_rows(model, level), _class_rows(compact, level)
        rows = [CLASSES.index(n) for n in names]
        assert torch.equal(w_new, w_src[:, rows]) and torch.equal(b_new, b_src[:, rows])
    other = build("compact256", num_classes=2, weights=path, class_names=["background", "zebra"],
                  keep_class_rows=True)
    assert "not kept: ['zebra']" in other.init_note


def test_head_mismatch_that_is_not_a_class_count_is_refused(tmp_path, compact):
    state = dict(compact.state_dict())
    key = "head.classification_head.module_list.0.weight"
    state[key] = state[key][:-1]  # K*C - 1 outputs: no class count fits
    state[key.replace("weight", "bias")] = state[key.replace("weight", "bias")][:-1]
    path = tmp_path / "odd.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="differs by more than its number of classes"):
        build("compact256", num_classes=3, weights=path)
    reg = dict(compact.state_dict())
    rkey = "head.regression_head.module_list.0.weight"
    reg[rkey] = torch.zeros(8, *reg[rkey].shape[1:])  # other boxes per cell in the box head
    torch.save(reg, path)
    with pytest.raises(WeightsError, match="shape mismatch"):
        build("compact256", num_classes=3, weights=path)


def test_ssdlite_fine_tuning_from_a_torchvision_state_dict(tmp_path):
    """SSDlite's class predictors sit after a depthwise block: rows kept there too."""
    torch.manual_seed(0)
    src = build("ssdlite320_mobilenet_v3_large", num_classes=5)
    path = tmp_path / "lite5.pth"
    torch.save(src.state_dict(), path)
    names = ["background", "c3", "c1"]
    model = build("ssdlite320_mobilenet_v3_large", num_classes=3, weights=path)
    assert "class predictors re-initialised" in model.init_note
    torch.save({"state_dict": src.state_dict(), "class_names": ["background", "c1", "c2", "c3", "c4"]},
               tmp_path / "named.pt")
    kept = build("ssdlite320_mobilenet_v3_large", num_classes=3, weights=tmp_path / "named.pt",
                 class_names=names, keep_class_rows=True)
    (w_new, b_new), (w_src, b_src) = _class_rows(kept, 2), _class_rows(src, 2)
    assert torch.equal(w_new, w_src[:, [0, 3, 1]]) and torch.equal(b_new, b_src[:, [0, 3, 1]])


# ------------------------------------------------- tuned default boxes (`--box-config`)


def _other_boxes_per_cell(cfg):
    """`cfg` with another ratio set on the first two levels: K_0 = 2, K_1 = 4 (presets: 4, 6)."""
    import dataclasses

    ratios = ((1.0,), (1.0, 2.0, 0.5)) + cfg.aspect_ratios[2:]
    return dataclasses.replace(cfg, aspect_ratios=ratios, scales=tuple(s * 0.8 for s in cfg.scales), name="tuned")


@pytest.mark.parametrize("name", ["compact256", "ssd300_vgg16", "ssdlite320_mobilenet_v3_large"])
def test_a_config_with_other_boxes_per_cell_sizes_the_heads(name):
    from ssd.models import default_config

    cfg = _other_boxes_per_cell(default_config(name, 5))
    assert cfg.boxes_per_location()[:2] != default_config(name, 5).boxes_per_location()[:2]
    torch.manual_seed(0)
    net = build(name, cfg=cfg).eval()
    assert net.cfg == cfg
    with torch.no_grad():
        out = net(torch.rand(1, 3, cfg.image_size, cfg.image_size))
    for level, (f, k) in enumerate(zip(cfg.feature_maps, cfg.boxes_per_location())):
        assert out.cls_logits[level].shape == (1, f * f * k, 5)
        assert out.bbox_regression[level].shape == (1, f * f * k, 4)
    # One output row per default box of the tuned config, in the same order.
    assert out.cls_logits_flat().shape[1] == default_boxes(cfg).cxcywh.shape[0]


def test_weights_for_other_boxes_per_cell_are_refused_and_same_boxes_per_cell_load(tmp_path, compact):
    import dataclasses

    path = tmp_path / "preset.pth"
    torch.save(compact.state_dict(), path)
    with pytest.raises(WeightsError, match=r"preset.pth does not fit compact256.*shape mismatch.*boxes per cell"):
        build("compact256", cfg=_other_boxes_per_cell(compact256(7)), weights=path)
    # Only the scales moved (the tuner's usual result): every weight loads, as fine-tuning.
    same_k = dataclasses.replace(compact256(7), scales=(0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0))
    net = build("compact256", cfg=same_k, weights=path)
    assert net.init_note.startswith("all weights") and net.cfg == same_k
    for k, v in compact.state_dict().items():
        assert torch.equal(net.state_dict()[k], v)


def test_build_with_levels_predicts_from_those_levels_and_round_trips(tmp_path):
    from ssd.config import select_levels
    from ssd.training import checkpoint

    torch.manual_seed(0)
    full = build("compact256", num_classes=3)
    torch.manual_seed(0)
    cut = build("compact256", num_classes=3, levels=(0, 1))
    assert cut.cfg == select_levels(full.cfg, (0, 1)) and cut.level_names == ("stage3", "stage4")
    # The kept predictors are the full model's (same init draws), the others are gone.
    assert torch.equal(cut.head.classification_head.module_list[1].weight,
                       full.head.classification_head.module_list[1].weight)
    assert len(cut.head.regression_head.module_list) == 2
    out = cut.eval()(torch.rand(1, 3, 256, 256))
    assert out.feature_sizes == [(32, 32), (16, 16)]
    assert out.cls_logits_flat().shape[1] == len(default_boxes(cut.cfg).cxcywh)
    checkpoint.save(tmp_path / "cut.pt", cut, ["background", "a", "b"])
    again, _ = checkpoint.load(tmp_path / "cut.pt")
    assert again.cfg == cut.cfg and again.levels == (0, 1)
    ones = torch.ones(1, 3, 256, 256)
    assert torch.equal(again(ones).cls_logits_flat(), cut(ones).cls_logits_flat())
    with pytest.raises(ValueError, match="levels"):
        build("compact256", levels=(0, 2))
