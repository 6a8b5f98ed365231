"""Loading weights into an `SSDNet`: torchvision's COCO weights or a local state dict.

An `SSDNet` has torchvision's module names, so `torch.save(torchvision_model.state_dict())`
loads into it unchanged. No download happens in tests; offline, `weights="coco"` fails
with a message that says where to put the file.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn


class WeightsError(ValueError):
    """A weights file or download that cannot be used; the message says why."""


def coco_weights_enum(name: str):
    """torchvision's `WeightsEnum` member with COCO weights for model `name`."""
    from torchvision.models.detection import (
        SSD300_VGG16_Weights,
        SSDLite320_MobileNet_V3_Large_Weights,
    )

    table = {
        "ssd300_vgg16": SSD300_VGG16_Weights.COCO_V1,
        "ssdlite320_mobilenet_v3_large": SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
    }
    if name not in table:
        raise WeightsError(f"no COCO weights exist for {name!r}; torchvision has them for {sorted(table)}")
    return table[name]


def coco_class_names(name: str) -> list[str]:
    """The 91 COCO category names of torchvision's detection weights, "background" first."""
    cats = list(coco_weights_enum(name).meta["categories"])
    cats[0] = "background"  # torchvision calls it "__background__"
    return cats


def download_coco_state_dict(name: str) -> dict[str, Tensor]:
    """torchvision's COCO state dict for `name` (downloads with a progress bar, cached).

    Raises WeightsError offline, naming the URL, the cache file to place by hand, and
    the `weights=PATH` alternative.
    """
    w = coco_weights_enum(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    try:
        return w.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, socket errors, hash mismatch, ...
        raise WeightsError(
            f"could not download torchvision's COCO weights for {name} from {w.url} "
            f"({type(e).__name__}: {e}). Without internet, download that file elsewhere and "
            f"either put it at {cache} or pass weights=PATH (a torchvision state dict .pth)."
        ) from e


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a torchvision-format state dict (`torch.save(model.state_dict(), path)`).

    Also accepts an ssd-explorer checkpoint dict (takes its "state_dict"). Loaded with
    `weights_only=True`; raises WeightsError naming the file and the problem.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {p} does not exist")
    if p.stat().st_size == 0:
        raise WeightsError(f"weights file {p} is empty (0 bytes)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types on junk (KeyError, EOFError, ...)
        raise WeightsError(f"weights file {p} is not a readable PyTorch file (truncated or corrupt?): {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {p} does not hold a state dict (name -> tensor), got {type(obj).__name__}")
    return obj


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """`model.load_state_dict(state_dict)` with a message naming missing, unexpected and
    wrongly shaped keys (the usual cause: another architecture or class count)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es), e.g. {shape[:3]}")
        hint = ""
        if shape and all("head." in s for s in shape) and not missing and not unexpected:
            hint = " Only the head differs: the number of classes (or boxes per cell) is not the same."
        raise WeightsError(f"{source} does not fit {getattr(model, 'name', 'the model')}: " + "; ".join(parts) + "." + hint)
    model.load_state_dict(state_dict, strict=True)


# ------------------------------------------------------------------ ImageNet backbones --
def imagenet_backbone_enum(name: str):
    """torchvision's `WeightsEnum` member that its own SSD builder loads into model
    `name`'s backbone (`ssd300_vgg16(weights_backbone=VGG16_Weights.IMAGENET1K_FEATURES)`)."""
    from torchvision.models import VGG16_Weights

    # SSDlite's ImageNet MobileNetV3 comes with a full-size tail (torchvision builds the
    # reduced tail only without it), i.e. another architecture than "ssdlite320_mobilenet_v3_large"
    # here; compact256 has no ImageNet backbone.
    table = {"ssd300_vgg16": VGG16_Weights.IMAGENET1K_FEATURES}
    if name not in table:
        raise WeightsError(f"no ImageNet backbone weights are wired for {name!r}; they exist for {sorted(table)}")
    return table[name]


def backbone_state_dict(name: str, source: str | os.PathLike) -> tuple[dict[str, Tensor], str]:
    """(state dict in torchvision's backbone format, a name for messages) for
    `source` = "imagenet" (downloaded through torchvision's weights API, cached) or the
    path of a local file in that format (`torch.save(torchvision.models.vgg16().state_dict())`).

    Raises WeightsError offline (naming the URL, the cache file to place by hand and
    the PATH alternative) or for a missing / empty / truncated file."""
    if str(source) != "imagenet":
        return read_state_dict(source), f"backbone weights file {source}"
    w = imagenet_backbone_enum(name)
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    try:
        return w.get_state_dict(progress=True, check_hash=True), f"torchvision's ImageNet backbone for {name}"
    except Exception as e:  # URLError, socket errors, hash mismatch, ...
        raise WeightsError(
            f"could not download torchvision's ImageNet backbone weights for {name} from {w.url} "
            f"({type(e).__name__}: {e}). Without internet, download that file elsewhere and either put "
            f"it at {cache} or pass backbone_weights=PATH (--backbone-weights PATH)."
        ) from e


def load_vgg16_features(features: nn.Sequential, state_dict: dict[str, Tensor], source: str) -> None:
    """Load the "features.*" tensors of a torchvision VGG-16 state dict into VGG-16's
    conv layers `features` (the classifier, which SSD drops, is ignored, as torchvision does)."""
    sub = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
    if not sub:
        raise WeightsError(f"{source} is not a torchvision VGG-16 state dict: it has no 'features.*' keys "
                           f"(found e.g. {list(state_dict)[:3]})")
    load_state_dict_checked(features, sub, source)
