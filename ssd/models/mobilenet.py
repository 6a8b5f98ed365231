"""SSDlite320 with a MobileNetV3-Large base, exactly torchvision's `ssdlite320_mobilenet_v3_large`.

SSDlite (MobileNetV2 paper, Sec. 6.2) is SSD with every 3x3 conv of the extras and the
predictors replaced by a depthwise 3x3 + pointwise 1x1 pair. Levels for 320 x 320:
    C4_expansion 20x20x672 (MobileNetV3 paper, Sec. 6.3: the expansion layer of C4)
    C5           10x10x480 (last conv; "reduced tail" when no pretrained backbone)
    extra1..4    5x5x512, 3x3x256, 2x2x256, 1x1x128
Default boxes: torchvision's `DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2,
max_ratio=0.95)` with no steps, i.e. centres at (j + 0.5) / f_k, 6 boxes per cell.
"""
from __future__ import annotations

from functools import partial

from torch import nn
from torchvision.models.detection import ssdlite320_mobilenet_v3_large
from torchvision.models.detection.ssdlite import SSDLiteHead

from ssd.config import SSDConfig, ratios_from_torchvision
from ssd.models.common import SSDNet

IMAGE_MEAN = (0.5, 0.5, 0.5)  # torchvision: rescale [0, 1] to [-1, 1]
IMAGE_STD = (0.5, 0.5, 0.5)
LEVEL_NAMES = ("C4_expansion", "C5", "extra1", "extra2", "extra3", "extra4")
FEATURE_MAPS = (20, 10, 5, 3, 2, 1)  # backbone output sides for a 320 x 320 input


def ssdlite320_config(num_classes: int = 91) -> SSDConfig:
    """The default boxes of torchvision's SSDlite320 as an `SSDConfig`.

    Scales: the paper's linear rule from 0.2 to 0.95 over 6 levels, then s_7 = 1.0
    (torchvision's choice for the last extra box). No steps in torchvision means the
    cell grid is the feature map itself: step = 320 / f.
    """
    m = len(FEATURE_MAPS)
    s_min, s_max = 0.2, 0.95
    # Same float arithmetic as DefaultBoxGenerator, so the boxes are bit-identical.
    scales = [s_min + (s_max - s_min) * k / (m - 1.0) for k in range(m)] + [1.0]
    return SSDConfig(
        image_size=320,
        feature_maps=FEATURE_MAPS,
        steps=tuple(320 / f for f in FEATURE_MAPS),
        scales=tuple(scales),
        aspect_ratios=tuple(ratios_from_torchvision([2, 3]) for _ in FEATURE_MAPS),
        num_classes=num_classes,
        name="ssdlite320",
    )


def build_ssdlite320_mobilenet_v3_large(num_classes: int = 91, cfg: SSDConfig | None = None) -> SSDNet:
    """A randomly initialised SSDlite320-MobileNetV3-Large (torchvision's modules and init)."""
    cfg = cfg if cfg is not None else ssdlite320_config(num_classes)
    tv = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=cfg.num_classes)
    head = tv.head
    if list(cfg.boxes_per_location()) != tv.anchor_generator.num_anchors_per_location():
        # Other default boxes per cell (a tuned config): torchvision's head, sized for them.
        in_channels = [m[0][0].in_channels for m in tv.head.classification_head.module_list]
        head = SSDLiteHead(in_channels, list(cfg.boxes_per_location()), cfg.num_classes,
                           partial(nn.BatchNorm2d, eps=0.001, momentum=0.03))  # torchvision's norm_layer
    return SSDNet(
        tv.backbone, head, cfg, "ssdlite320_mobilenet_v3_large", IMAGE_MEAN, IMAGE_STD, LEVEL_NAMES
    )
