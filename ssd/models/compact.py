"""compact256: a small SSD that trains on a laptop CPU.

Same recipe as SSD300 (Sec. 2.1, Fig. 2): a truncated classification-style CNN gives
the first, fine feature maps; extra layers (1x1 bottleneck then 3x3 stride 2) halve
the map down to 1x1; each level gets its own 3x3 conv predictors. Only smaller:
256 px input and conv-BatchNorm-ReLU blocks of 16..128 channels, so a forward +
backward of a batch of 16 takes a fraction of a second on two CPU cores.

Feature maps for a 256 x 256 input (strides 8..256), matching `ssd.config.compact256()`:
    level 0  stage3  32x32      level 3  extra2  4x4
    level 1  stage4  16x16      level 4  extra3  2x2
    level 2  extra1   8x8       level 5  extra4  1x1

The widths are module constants (and `build` keyword arguments) so training can tune
them; checkpoints store the values used, so old checkpoints keep loading.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import Tensor, nn
from torchvision.models.detection.ssd import SSDHead

from ssd.config import SSDConfig, compact256
from ssd.models.common import SSDNet

STEM_CHANNELS = 16  # conv 3x3 stride 2 on the input: 256 -> 128
STAGE_CHANNELS = (32, 64, 128)  # stride-2 stages: 128 -> 64 -> 32 (level 0) -> 16 (level 1)
BLOCKS_PER_STAGE = 1  # extra stride-1 3x3 convs after each stage's stride-2 conv
EXTRA_CHANNELS = (128, 128, 128, 128)  # output channels of the extra layers, levels 2..5
IMAGE_MEAN = (0.485, 0.456, 0.406)  # ImageNet mean: images are normalised as torchvision's default
IMAGE_STD = (0.229, 0.224, 0.225)
LEVEL_NAMES = ("stage3", "stage4", "extra1", "extra2", "extra3", "extra4")


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int = 3, stride: int = 1) -> nn.Sequential:
    """Conv (no bias, BatchNorm follows) -> BatchNorm -> ReLU; 'same' padding."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def _stage(c_in: int, c_out: int, blocks: int) -> nn.Sequential:
    layers = [conv_bn_relu(c_in, c_out, 3, stride=2)]
    layers += [conv_bn_relu(c_out, c_out, 3) for _ in range(blocks)]
    return nn.Sequential(*layers)


class CompactBackbone(nn.Module):
    """(B, 3, 256, 256) normalised -> six feature maps 32, 16, 8, 4, 2, 1 (OrderedDict)."""

    def __init__(
        self,
        stem_channels: int = STEM_CHANNELS,
        stage_channels: tuple[int, int, int] = STAGE_CHANNELS,
        blocks_per_stage: int = BLOCKS_PER_STAGE,
        extra_channels: tuple[int, ...] = EXTRA_CHANNELS,
    ):
        super().__init__()
        if len(stage_channels) != 3:
            raise ValueError(f"stage_channels needs 3 widths (64, 32, 16 px maps), got {stage_channels}")
        if len(extra_channels) != 4:
            raise ValueError(f"extra_channels needs 4 widths (levels 8, 4, 2, 1), got {extra_channels}")
        c1, c2, c3 = stage_channels
        # Truncated base network: stem + three stages -> level 0 (stride 8).
        self.features = nn.Sequential(
            conv_bn_relu(3, stem_channels, 3, stride=2),  # 256 -> 128
            _stage(stem_channels, c1, blocks_per_stage),  # 128 -> 64
            _stage(c1, c2, blocks_per_stage),  # 64 -> 32: level 0
        )
        # The remaining levels: a fourth stage, then SSD's extra layers, each a 1x1
        # bottleneck then a 3x3 stride-2 conv (as conv8_2 .. conv11_2 in SSD300).
        blocks = [_stage(c2, c3, blocks_per_stage)]  # 32 -> 16: level 1
        c_prev = c3
        for c in extra_channels:
            blocks.append(nn.Sequential(conv_bn_relu(c_prev, c // 2, 1), conv_bn_relu(c // 2, c, 3, stride=2)))
            c_prev = c
        self.extra = nn.ModuleList(blocks)
        self.out_channels = [c2, c3, *extra_channels]
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> "OrderedDict[str, Tensor]":
        x = self.features(x)
        output = [x]
        for block in self.extra:
            x = block(x)
            output.append(x)
        return OrderedDict((str(i), v) for i, v in enumerate(output))


def build_compact256(
    num_classes: int = 7,
    cfg: SSDConfig | None = None,
    stem_channels: int = STEM_CHANNELS,
    stage_channels: tuple[int, int, int] = STAGE_CHANNELS,
    blocks_per_stage: int = BLOCKS_PER_STAGE,
    extra_channels: tuple[int, ...] = EXTRA_CHANNELS,
) -> SSDNet:
    """A randomly initialised compact256 SSD (see module docstring)."""
    cfg = cfg if cfg is not None else compact256(num_classes)
    arch = {
        "stem_channels": int(stem_channels),
        "stage_channels": [int(c) for c in stage_channels],
        "blocks_per_stage": int(blocks_per_stage),
        "extra_channels": [int(c) for c in extra_channels],
    }
    backbone = CompactBackbone(stem_channels, tuple(stage_channels), blocks_per_stage, tuple(extra_channels))
    # torchvision's SSD head: per level a 3x3 conv with K*C and one with K*4 channels (Sec. 2.1).
    head = SSDHead(backbone.out_channels, list(cfg.boxes_per_location()), cfg.num_classes)
    return SSDNet(backbone, head, cfg, "compact256", IMAGE_MEAN, IMAGE_STD, LEVEL_NAMES, arch=arch)
