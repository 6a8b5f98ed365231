"""SSD300 with a VGG-16 base network, exactly torchvision's `ssd300_vgg16` (Sec. 2.1, Fig. 2).

Source layers of the six levels for a 300 x 300 input:
    conv4_3  38x38x512  (L2-normalised, learned scale initialised to 20; Sec. 3.1 "L2 normalization")
    fc7      19x19x1024 (fc6/fc7 as convs, fc6 dilated 6 with pool5 3x3 stride 1; Sec. 3 "atrous")
    conv8_2  10x10x512,  conv9_2 5x5x256,  conv10_2 3x3x256,  conv11_2 1x1x256
Predictors: one 3x3 conv per level with K*(C+4) outputs in total, K = 4, 6, 6, 6, 4, 4.

The modules are torchvision's (`SSDFeatureExtractorVGG`, `SSDHead`), so the state dict
has torchvision's keys and its COCO weights load unchanged.
"""
from __future__ import annotations

from types import SimpleNamespace

from torch import Tensor, nn
from torchvision.models.detection.ssd import SSDHead, _vgg_extractor
from torchvision.models.vgg import cfgs, make_layers

from ssd.config import SSDConfig, ssd300_coco
from ssd.models.common import SSDNet
from ssd.models.weights import load_vgg16_features

# torchvision's ssd300_vgg16 normalisation: the Caffe VGG mean in [0, 1] units and
# std 1/255, i.e. the backbone sees 0..255 pixel values minus the mean.
IMAGE_MEAN = (0.48235, 0.45882, 0.40784)
IMAGE_STD = (1.0 / 255.0, 1.0 / 255.0, 1.0 / 255.0)
LEVEL_NAMES = ("conv4_3", "fc7", "conv8_2", "conv9_2", "conv10_2", "conv11_2")


def _vgg16_features() -> nn.Sequential:
    """VGG-16's conv layers ("D" config), initialised as torchvision's VGG.

    Built without VGG's 120M-parameter classifier, which SSD drops anyway (it keeps only
    `features`): that makes building the model several times faster.
    """
    features = make_layers(cfgs["D"], batch_norm=False)
    for m in features.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(m.bias, 0)
    return features


def build_ssd300_vgg16(num_classes: int = 91, cfg: SSDConfig | None = None,
                       backbone_state: tuple[dict[str, Tensor], str] | None = None,
                       trainable_backbone_layers: int | None = None) -> SSDNet:
    """An SSD300-VGG16 with torchvision's layer names, randomly initialised.

    backbone_state: (torchvision VGG-16 state dict, its name for messages) loaded into
        the VGG conv layers, e.g. ImageNet's `VGG16_Weights.IMAGENET1K_FEATURES`.
    trainable_backbone_layers: VGG stages left trainable, 0..5; default as torchvision's
        `ssd300_vgg16`: 4 with pretrained backbone weights (the first stage frozen), else 5.
    """
    cfg = cfg if cfg is not None else ssd300_coco(num_classes)
    features = _vgg16_features()
    if backbone_state is not None:
        load_vgg16_features(features, *backbone_state)
    if trainable_backbone_layers is None:
        trainable_backbone_layers = 4 if backbone_state is not None else 5
    if not 0 <= trainable_backbone_layers <= 5:
        raise ValueError(f"trainable_backbone_layers must be in 0..5, got {trainable_backbone_layers}")
    # torchvision's own extractor: the same freezing and the SSD300 extras (highres=False;
    # SSD512 adds conv12_2). It only reads `.features` of the VGG it is given.
    backbone = _vgg_extractor(SimpleNamespace(features=features), False, trainable_backbone_layers)
    in_channels = [512, 1024, 512, 256, 256, 256]
    head = SSDHead(in_channels, list(cfg.boxes_per_location()), cfg.num_classes)
    return SSDNet(backbone, head, cfg, "ssd300_vgg16", IMAGE_MEAN, IMAGE_STD, LEVEL_NAMES)
