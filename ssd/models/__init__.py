"""SSD models: `build(name, num_classes, weights)` -> `SSDNet` returning per-level `HeadOutputs`.

Names:
    "ssd300_vgg16"                   the paper's SSD300 (torchvision's layers and anchors)
    "ssdlite320_mobilenet_v3_large"  torchvision's SSDlite320
    "compact256"                     a small CNN for CPU training at 256 px (ssd.models.compact)
"""
from __future__ import annotations

import os
import warnings
from typing import Callable

from ssd.config import SSDConfig, check_levels, compact256, expand_levels, select_levels, ssd300_coco
from ssd.models.common import HeadOutputs, SSDNet
from ssd.models.compact import build_compact256
from ssd.models.mobilenet import build_ssdlite320_mobilenet_v3_large, ssdlite320_config
from ssd.models.vgg import build_ssd300_vgg16
from ssd.models.weights import (
    WeightsError,
    backbone_state_dict,
    coco_class_names,
    download_coco_state_dict,
    load_for_fine_tuning,
    load_state_dict_checked,
    read_class_names,
    read_state_dict,
)

__all__ = [
    "HeadOutputs",
    "SSDNet",
    "WeightsError",
    "MODEL_NAMES",
    "build",
    "default_config",
    "coco_class_names",
]

_BUILDERS: dict[str, tuple[Callable[..., SSDNet], Callable[[int], SSDConfig], int]] = {
    # name: (builder, default config for a class count, default class count)
    "ssd300_vgg16": (build_ssd300_vgg16, ssd300_coco, 91),
    "ssdlite320_mobilenet_v3_large": (build_ssdlite320_mobilenet_v3_large, ssdlite320_config, 91),
    "compact256": (build_compact256, compact256, 7),
}
MODEL_NAMES = tuple(_BUILDERS)
BACKBONE_WEIGHTS_MODELS = ("ssd300_vgg16",)  # models whose ImageNet backbone `backbone_weights` loads


def default_config(name: str, num_classes: int | None = None) -> SSDConfig:
    """The `SSDConfig` (default boxes) model `name` is built with."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
    _, make_cfg, n_default = _BUILDERS[name]
    return make_cfg(n_default if num_classes is None else num_classes)


def _check_cfg(name: str, cfg: SSDConfig, reference: SSDConfig) -> None:
    """A custom cfg may change the default boxes (scales, ratios, the extra box, hence the
    boxes per cell: the heads are sized from `cfg.boxes_per_location()`), not the input
    size or the feature maps, which the layers fix."""
    for what, a, b in (
        ("image_size", cfg.image_size, reference.image_size),
        ("feature_maps", cfg.feature_maps, reference.feature_maps),
    ):
        if a != b:
            raise ValueError(f"{name}: cfg {what} {a} does not fit the architecture, which needs {b}")


def _backbone_options(name: str, weights, backbone_weights, trainable_backbone_layers) -> dict:
    """Builder options for ImageNet backbone weights (read here, so a bad file fails before
    the model is built) and the trainable backbone stages."""
    if name not in BACKBONE_WEIGHTS_MODELS:
        what = "backbone_weights" if backbone_weights is not None else "trainable_backbone_layers"
        raise WeightsError(f"{what} is wired for {list(BACKBONE_WEIGHTS_MODELS)} only, not {name!r}")
    if backbone_weights is not None and weights is not None:
        raise ValueError("give weights (the whole model) or backbone_weights (ImageNet backbone), not both")
    options = {"trainable_backbone_layers": trainable_backbone_layers}
    if backbone_weights is not None:
        options["backbone_state"] = backbone_state_dict(name, backbone_weights)
    return options


def build(
    name: str,
    num_classes: int | None = None,
    weights: str | os.PathLike | None = None,
    cfg: SSDConfig | None = None,
    backbone_weights: str | os.PathLike | None = None,
    trainable_backbone_layers: int | None = None,
    class_names: list[str] | None = None,
    keep_class_rows: bool = False,
    levels: tuple[int, ...] | list[int] | None = None,
    **arch,
) -> SSDNet:
    """Build an SSD.

    Args:
        name: one of `MODEL_NAMES`.
        num_classes: classes including background (default: 91 for the torchvision
            models, 7 for compact256; "coco" weights need 91).
        weights: None (random init), "coco" (torchvision's COCO weights, downloaded
            through torchvision's weights API; a clear WeightsError offline), or a path
            to a torchvision-format state dict `.pth` or an ssd-explorer checkpoint.
            With another `num_classes` than the weights have (fine-tuning), everything
            but the class predictors loads; they stay freshly initialised, and
            `model.init_note` says so.
        cfg: optional `SSDConfig` with other default boxes (scales, ratios, extra box;
            e.g. `ssd.tune_boxes` output); its image size and feature maps must equal the
            architecture's. The predictors get K_l = `cfg.boxes_per_location()[l]` boxes
            per cell, so weights saved with other K_l do not load (WeightsError).
        backbone_weights: None, "imagenet" (ImageNet weights through torchvision's
            weights API, as torchvision's own builder loads them: VGG-16's
            IMAGENET1K_FEATURES for ssd300_vgg16) or a path to a local file in
            torchvision's format (a `torchvision.models.vgg16()` state dict). Not with `weights`.
        trainable_backbone_layers: ssd300_vgg16's trainable VGG stages (0..5); default
            as torchvision: 4 (first stage frozen) with backbone weights, else 5.
        class_names: the new model's class names (background first), for fine-tuning.
        keep_class_rows: fine-tuning with `class_names` a subset of the weights' classes
            (COCO's, or those a checkpoint records): keep those rows of the class predictors.
        levels: predict from these consecutive source levels only (0 = the finest; the
            paper's Table 3), None = all. `cfg` may then be the full config (cut down here
            with `ssd.config.select_levels`) or already the kept levels' (a checkpoint's).
        **arch: architecture options (compact256: stem_channels, stage_channels,
            blocks_per_stage, extra_channels).
    Returns:
        `SSDNet` in train mode (call `.eval()` for inference).
    Raises:
        ValueError for an unknown name or a cfg that does not fit; WeightsError for weights.
    """
    if name not in _BUILDERS:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}")
    builder, make_cfg, n_default = _BUILDERS[name]
    coco_names = coco_class_names(name) if weights == "coco" else None
    if weights == "coco" and num_classes is None and cfg is None:
        num_classes = 91
    if cfg is not None:
        if num_classes is not None and num_classes != cfg.num_classes:
            raise ValueError(f"num_classes={num_classes} but cfg.num_classes={cfg.num_classes}")
        num_classes = cfg.num_classes
    num_classes = n_default if num_classes is None else num_classes
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background + 1), got {num_classes!r}")
    reference = make_cfg(num_classes)
    subset = None
    if levels is not None:
        levels = check_levels(levels, reference.num_levels, f"{name}: levels")
        if cfg is not None and cfg.num_levels == len(levels) < reference.num_levels:  # a checkpoint's subset
            subset, cfg = cfg, expand_levels(cfg, reference, levels)
    if cfg is not None:
        _check_cfg(name, cfg, reference)
    if arch and name != "compact256":
        raise ValueError(f"{name} takes no architecture options, got {sorted(arch)}")
    if backbone_weights is not None or trainable_backbone_layers is not None:
        arch = {**arch, **_backbone_options(name, weights, backbone_weights, trainable_backbone_layers)}
    model = builder(num_classes=num_classes, cfg=cfg if cfg is not None else reference, **arch)
    if levels is not None:
        model.keep_levels(levels, subset if subset is not None else select_levels(model.cfg, levels))
    if weights is not None:
        _load_weights(model, name, weights, coco_names, class_names, keep_class_rows)
    return model


def _load_weights(model: SSDNet, name: str, weights, coco_names, class_names, keep_class_rows: bool) -> None:
    """Load `weights` ("coco" or PATH) into `model`, fine-tuning style when the class count differs."""
    if weights == "coco":
        state, source = download_coco_state_dict(name), f"torchvision's COCO weights for {name}"
        source_names = coco_names
    else:
        state, source, source_names = read_state_dict(weights), f"weights file {weights}", read_class_names(weights)
    model.init_note = load_for_fine_tuning(model, state, source, source_names, class_names, keep_class_rows)
    if model.num_classes == len(source_names or ()) and not keep_class_rows:
        model.class_names = list(source_names)
    if model.init_note.startswith("backbone"):
        warnings.warn(model.init_note, stacklevel=3)
