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

from torch import nn
from torchvision.models.detection.ssd import SSDFeatureExtractorVGG, SSDHead
from torchvision.models.vgg import cfgs, make_layers

from ssd.config import SSDConfig, ssd300_coco
from ssd.models.common import SSDNet

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


def build_ssd300_vgg16(num_classes: int = 91, cfg: SSDConfig | None = None) -> SSDNet:
    """A randomly initialised SSD300-VGG16 with torchvision's layer names."""
    cfg = cfg if cfg is not None else ssd300_coco(num_classes)
    # highres=False: the SSD300 extras (SSD512 adds conv12_2).
    backbone = SSDFeatureExtractorVGG(_vgg16_features(), highres=False)
    in_channels = [512, 1024, 512, 256, 256, 256]
    head = SSDHead(in_channels, list(cfg.boxes_per_location()), cfg.num_classes)
    return SSDNet(backbone, head, cfg, "ssd300_vgg16", IMAGE_MEAN, IMAGE_STD, LEVEL_NAMES)
