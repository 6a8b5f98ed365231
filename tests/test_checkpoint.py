"""ssd.training.checkpoint: save/load round trip and a clear CheckpointError for each bad file."""
from __future__ import annotations

import os

import pytest
import torch

from ssd.models import build
from ssd.training import checkpoint
from ssd.training.checkpoint import CheckpointError

NAMES = ["background", "cat", "dog", "bird", "car", "person", "tree"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build("compact256", num_classes=7).eval()


@pytest.fixture()
def saved(tmp_path, model):
    return checkpoint.save(tmp_path / "ok.pt", model, NAMES, recipe={"command": "test", "seed": 0},
                           extra={"epoch": 3, "step": 30, "best_map": 0.25,
                                  "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict()})


def test_round_trip_same_outputs(saved, model):
    loaded, meta = checkpoint.load(saved)
    assert meta["format"] == "ssd-explorer/1"
    assert meta["model_name"] == "compact256" and meta["num_classes"] == 7
    assert meta["class_names"] == NAMES and loaded.class_names == NAMES
    assert meta["recipe"] == {"command": "test", "seed": 0}
    assert meta["epoch"] == 3 and meta["best_map"] == 0.25 and "optimizer" in meta
    assert "state_dict" not in meta
    assert not loaded.training
    assert loaded.cfg == model.cfg
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    torch.testing.assert_close(a.cls_logits_flat(), b.cls_logits_flat())
    torch.testing.assert_close(a.bbox_regression_flat(), b.bbox_regression_flat())


def test_save_is_atomic_and_overwrites(tmp_path, model):
    p = tmp_path / "sub" / "c.pt"
    checkpoint.save(p, model, NAMES)
    checkpoint.save(p, model, NAMES, recipe={"seed": 1})
    assert os.listdir(p.parent) == ["c.pt"]  # no temporary file left behind
    assert checkpoint.read(p)["recipe"] == {"seed": 1}


def test_custom_arch_round_trips(tmp_path):
    m = build("compact256", num_classes=3, stage_channels=(8, 16, 32), extra_channels=(32, 32, 16, 16))
    p = checkpoint.save(tmp_path / "small.pt", m, ["background", "a", "b"])
    loaded, meta = checkpoint.load(p)
    assert meta["arch"]["stage_channels"] == [8, 16, 32]
    assert loaded.level_channels == (16, 32, 32, 32, 16, 16)


def test_save_rejects_bad_arguments(tmp_path, model):
    with pytest.raises(ValueError, match="3 class names"):
        checkpoint.save(tmp_path / "x.pt", model, NAMES[:3])
    with pytest.raises(ValueError, match="reserved"):
        checkpoint.save(tmp_path / "x.pt", model, NAMES, extra={"state_dict": {}})


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.pt"
    p.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        checkpoint.load(p)


def test_truncated_file(tmp_path, saved):
    data = saved.read_bytes()
    p = tmp_path / "trunc.pt"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(p)


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "text.pt"
    p.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(p)


def test_wrong_format(tmp_path):
    p = tmp_path / "other.pt"
    torch.save({"format": "something/2", "weights": 1}, p)
    with pytest.raises(CheckpointError, match="format"):
        checkpoint.load(p)
    torch.save([1, 2, 3], p)
    with pytest.raises(CheckpointError, match="list"):
        checkpoint.load(p)


def test_bare_state_dict_is_named(tmp_path, model):
    p = tmp_path / "bare.pth"
    torch.save(model.state_dict(), p)
    with pytest.raises(CheckpointError, match="bare state dict"):
        checkpoint.load(p)


def _rewrite(saved, tmp_path, **changes):
    ckpt = torch.load(saved, weights_only=True)
    for k, v in changes.items():
        if v is None:
            del ckpt[k]
        else:
            ckpt[k] = v
    p = tmp_path / "bad.pt"
    torch.save(ckpt, p)
    return p


def test_missing_keys(saved, tmp_path):
    with pytest.raises(CheckpointError, match="state_dict"):
        checkpoint.load(_rewrite(saved, tmp_path, state_dict=None))


def test_wrong_class_count_names(saved, tmp_path):
    with pytest.raises(CheckpointError, match="wrong class count"):
        checkpoint.load(_rewrite(saved, tmp_path, class_names=NAMES[:5]))


def test_wrong_class_count_head(saved, tmp_path):
    # Metadata says 5 classes consistently, but the weights are a 7-class head.
    ckpt = torch.load(saved, weights_only=True)
    cfg = dict(ckpt["config"], num_classes=5)
    p = _rewrite(saved, tmp_path, num_classes=5, class_names=NAMES[:5], config=cfg)
    with pytest.raises(CheckpointError, match="number of classes"):
        checkpoint.load(p)


def test_wrong_architecture(saved, tmp_path):
    # A compact256 state dict claimed to be an SSD300.
    ckpt = torch.load(saved, weights_only=True)
    from ssd.config import ssd300_coco

    p = _rewrite(saved, tmp_path, model_name="ssd300_vgg16", config=ssd300_coco(7).to_dict(), arch={})
    with pytest.raises(CheckpointError, match="wrong architecture"):
        checkpoint.load(p)
    p = _rewrite(saved, tmp_path, model_name="resnet9000")
    with pytest.raises(CheckpointError, match="unknown model"):
        checkpoint.load(p)
    del ckpt


def test_load_state_into(saved):
    torch.manual_seed(1)
    fresh = build("compact256", num_classes=7)
    ckpt = checkpoint.load_state_into(fresh, saved)
    assert ckpt["epoch"] == 3
    loaded, _ = checkpoint.load(saved)
    for (k, a), (_, b) in zip(fresh.state_dict().items(), loaded.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    other = build("compact256", num_classes=3)
    with pytest.raises(CheckpointError, match="number of classes"):
        checkpoint.load_state_into(other, saved)


def _tuned_cfg(num_classes: int):
    """compact256 with tuned default boxes whose boxes per cell differ (K = 2, 4, 6, 6, 4, 4)."""
    import dataclasses

    from ssd.config import compact256

    cfg = compact256(num_classes)
    return dataclasses.replace(cfg, aspect_ratios=((1.0,), (1.0, 2.0, 0.5)) + cfg.aspect_ratios[2:],
                               scales=(0.04, 0.09, 0.2, 0.4, 0.6, 0.8, 1.0), name="tuned_compact256")


def test_a_tuned_checkpoint_loads_with_its_own_default_boxes(tmp_path):
    from ssd.priors import default_boxes

    cfg = _tuned_cfg(7)
    torch.manual_seed(1)
    tuned = build("compact256", cfg=cfg).eval()
    p = checkpoint.save(tmp_path / "tuned.pt", tuned, NAMES)
    assert checkpoint.read(p)["config"] == cfg.to_dict()
    loaded, meta = checkpoint.load(p)
    assert loaded.cfg == cfg and loaded.cfg.boxes_per_location() == (2, 4, 6, 6, 4, 4)
    assert torch.equal(default_boxes(loaded.cfg).cxcywh, default_boxes(cfg).cxcywh)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        a, b = tuned(x), loaded(x)
    assert b.cls_logits_flat().shape[1] == default_boxes(cfg).cxcywh.shape[0] == 32 * 32 * 2 + 16 * 16 * 4 + 8 * 8 * 6 + 4 * 4 * 6 + 2 * 2 * 4 + 4
    torch.testing.assert_close(a.cls_logits_flat(), b.cls_logits_flat())
    torch.testing.assert_close(a.bbox_regression_flat(), b.bbox_regression_flat())


def test_a_tuned_config_that_disagrees_with_its_weights_is_named(tmp_path, model):
    """A checkpoint whose recorded config has other boxes per cell than its weights."""
    p = checkpoint.save(tmp_path / "odd.pt", model, NAMES)
    ckpt = torch.load(p, weights_only=True)
    ckpt["config"] = _tuned_cfg(7).to_dict()
    torch.save(ckpt, p)
    with pytest.raises(CheckpointError, match=r"wrong architecture or class count.*odd.pt.*boxes per cell"):
        checkpoint.load(p)
