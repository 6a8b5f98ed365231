"""What every SSD model here shares: the per-level head outputs and the `SSDNet` wrapper.

An `SSDNet` is torchvision's SSD split open (Sec. 2.1 of the paper, Fig. 2): a
`backbone` that returns one feature map per level, and a `head` with one 3x3 conv
predictor per level for class scores and one for box offsets. The attribute names
(`backbone`, `head.classification_head.module_list`, `head.regression_head.module_list`)
are torchvision's, so a torchvision SSD state dict loads into an `SSDNet` unchanged.

Unlike torchvision's `SSD.forward`, `SSDNet.forward` stops before post-processing and
keeps every level apart, so the explorer can show what each feature map predicts.

Letters: B = batch, C = classes incl. background, L = levels, K_l = default boxes per
cell on level l, H_l x W_l = feature-map size, A = sum_l H_l * W_l * K_l.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ssd.config import SSDConfig


@dataclass
class HeadOutputs:
    """Raw per-level outputs of an SSD (before softmax, decoding or NMS).

    Attributes:
        features: L tensors (B, C_l, H_l, W_l), the source feature maps.
        cls_logits: L tensors (B, H_l*W_l*K_l, C), class logits per default box.
        bbox_regression: L tensors (B, H_l*W_l*K_l, 4), box deltas (t_x, t_y, t_w, t_h)
            in the `ssd.boxes.encode` convention (torchvision BoxCoder(10, 10, 5, 5)).
        feature_sizes: L pairs (H_l, W_l).
    Rows within a level run over (row i, column j, box b), as `ssd.priors.default_boxes`.
    """

    features: list[Tensor]
    cls_logits: list[Tensor]
    bbox_regression: list[Tensor]
    feature_sizes: list[tuple[int, int]]

    def cls_logits_flat(self) -> Tensor:
        """(B, A, C): all levels concatenated in the default-box order."""
        return torch.cat(self.cls_logits, dim=1)

    def bbox_regression_flat(self) -> Tensor:
        """(B, A, 4): all levels concatenated in the default-box order."""
        return torch.cat(self.bbox_regression, dim=1)

    @property
    def num_levels(self) -> int:
        return len(self.features)


def _per_level(module: nn.Module, features: Tensor, num_columns: int) -> Tensor:
    """Run one level's predictor and lay its output out one row per default box."""
    out = module(features)
    b, _, h, w = out.shape
    # (B, K*N, H, W) -> (B, K, N, H, W) -> (B, H, W, K, N) -> (B, H*W*K, N), N = C or 4
    out = out.view(b, -1, num_columns, h, w).permute(0, 3, 4, 1, 2)
    return out.reshape(b, -1, num_columns)


def _first_conv(module: nn.Module) -> nn.Conv2d:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            return m
    raise TypeError(f"no Conv2d inside {type(module).__name__}")


class SSDNet(nn.Module):
    """An SSD detector that returns raw per-level `HeadOutputs`.

    Args:
        backbone: module mapping normalised images (B, 3, S, S) to L feature maps
            (a list, or an OrderedDict as torchvision's SSD feature extractors return).
        head: module with `classification_head.module_list` and
            `regression_head.module_list`, one predictor per level (torchvision's
            `SSDHead` / `SSDLiteHead`).
        cfg: the `SSDConfig` whose default boxes the head was built for.
        name: model name for `ssd.models.build` (stored in checkpoints).
        image_mean, image_std: per-channel normalisation applied inside `forward`
            to inputs in [0, 1] (torchvision's values for that model).
        level_names: source layer of each level ("conv4_3", "fc7", ...).
        arch: keyword arguments that rebuild this architecture (stored in checkpoints).
        class_names: C names with "background" first, if known.
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: nn.Module,
        cfg: SSDConfig,
        name: str,
        image_mean: tuple[float, float, float],
        image_std: tuple[float, float, float],
        level_names: tuple[str, ...],
        arch: dict | None = None,
        class_names: list[str] | None = None,
    ):
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.cfg = cfg
        self.name = name
        self.level_names = tuple(level_names)
        self.arch = dict(arch or {})
        self.class_names = list(class_names) if class_names is not None else None
        self.image_mean = tuple(float(v) for v in image_mean)
        self.image_std = tuple(float(v) for v in image_std)
        # Non-persistent buffers: they follow .to(device) but stay out of the state
        # dict, so its keys are exactly torchvision's.
        self.register_buffer("_mean", torch.tensor(self.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.image_std).view(1, 3, 1, 1), persistent=False)
        cls_list = head.classification_head.module_list
        reg_list = head.regression_head.module_list
        n = cfg.num_levels
        if not (len(cls_list) == len(reg_list) == len(self.level_names) == n):
            raise ValueError(
                f"{name}: config has {n} levels but the head has {len(cls_list)} class and "
                f"{len(reg_list)} box predictors and {len(self.level_names)} level names"
            )
        self.level_channels = tuple(_first_conv(m).in_channels for m in cls_list)
        self.levels: tuple[int, ...] | None = None  # backbone levels the heads predict from (None: all)
        self._check_heads()

    def _check_heads(self) -> None:
        """ValueError unless each level's predictors fit `cfg`'s boxes per cell and classes."""
        cfg, name = self.cfg, self.name
        cls_list = self.head.classification_head.module_list
        reg_list = self.head.regression_head.module_list
        k_per_level = cfg.boxes_per_location()
        for level, (c_mod, r_mod, k) in enumerate(zip(cls_list, reg_list, k_per_level)):
            c_out = _last_conv_out(c_mod)
            r_out = _last_conv_out(r_mod)
            if c_out != k * cfg.num_classes or r_out != k * 4:
                raise ValueError(
                    f"{name}: level {level} predictors give {c_out} class and {r_out} box channels, "
                    f"but the config needs K={k} boxes x C={cfg.num_classes} classes = "
                    f"{k * cfg.num_classes} and K x 4 = {k * 4}"
                )

    def keep_levels(self, levels: tuple[int, ...], cfg: SSDConfig) -> "SSDNet":
        """Predict from the backbone levels `levels` only (Table 3 of the paper): drop the
        other levels' predictors, keep the chosen ones (their weights untouched), and
        take `cfg` (`ssd.config.select_levels` of the full config) as the default boxes.
        The backbone still computes every map; `extract_features` keeps the chosen ones.
        `arch["levels"]` records the choice, so a checkpoint rebuilds it. Returns self."""
        levels = tuple(int(i) for i in levels)
        heads = (self.head.classification_head, self.head.regression_head)
        for h in heads:
            h.module_list = nn.ModuleList([h.module_list[i] for i in levels])
        self.cfg = cfg
        self.level_names = tuple(self.level_names[i] for i in levels)
        self.level_channels = tuple(self.level_channels[i] for i in levels)
        self.levels = levels
        self.arch["levels"] = list(levels)
        self._check_heads()
        return self

    @property
    def num_classes(self) -> int:
        return self.cfg.num_classes

    def normalize(self, images: Tensor) -> Tensor:
        """(B, 3, S, S) in [0, 1] -> backbone input, as torchvision's transform."""
        return (images - self._mean) / self._std

    def forward(self, images: Tensor) -> HeadOutputs:
        """Args: images (B, 3, S, S) float in [0, 1], S = cfg.image_size.
        Returns: `HeadOutputs` (per level, before softmax/decoding)."""
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"{self.name}: expected images (B, 3, H, W), got {tuple(images.shape)}")
        return self.predict(self.extract_features(self.normalize(images)))

    def extract_features(self, images_normalized: Tensor) -> list[Tensor]:
        """Backbone + extra layers: (B, 3, S, S) normalised -> L maps (B, C_l, H_l, W_l)."""
        features = self.backbone(images_normalized)
        if isinstance(features, (dict, OrderedDict)):
            features = list(features.values())
        features = list(features)
        if self.levels is not None:  # a model cut down to some levels (`keep_levels`)
            features = [features[i] for i in self.levels]
        sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        if [h for h, _ in sizes] != list(self.cfg.feature_maps) or any(h != w for h, w in sizes):
            raise ValueError(
                f"{self.name}: input {tuple(images_normalized.shape[-2:])} gave feature maps {sizes}, "
                f"but the default boxes are for {list(self.cfg.feature_maps)} (input side {self.cfg.image_size})"
            )
        return features

    def predict(self, features: list[Tensor]) -> HeadOutputs:
        """The per-level 3x3 predictors (Sec. 2.1 "Convolutional predictors for detection")."""
        cls_list = self.head.classification_head.module_list
        reg_list = self.head.regression_head.module_list
        c = self.cfg.num_classes
        cls_logits = [_per_level(m, f, c) for m, f in zip(cls_list, features)]
        bbox_regression = [_per_level(m, f, 4) for m, f in zip(reg_list, features)]
        sizes = [(int(f.shape[-2]), int(f.shape[-1])) for f in features]
        return HeadOutputs(features, cls_logits, bbox_regression, sizes)


def _last_conv_out(module: nn.Module) -> int:
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels
