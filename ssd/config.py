"""SSD configuration: the numbers that define an SSD's default boxes and heads.

The paper (Liu et al. 2016, arXiv 1512.02325) fixes, per feature map k, a scale
s_k, a set of aspect ratios a_r and a stride; Sec. 2.2 "Choosing scales and aspect
ratios for default boxes" gives the linear rule

    s_k = s_min + (s_max - s_min) / (m - 1) * (k - 1),   k in [1, m]

and the extra box of scale s'_k = sqrt(s_k * s_{k+1}) for aspect ratio 1.

`SSDConfig` is frozen; variants are `dataclasses.replace(cfg, ...)`. Presets are the
paper's and torchvision's constants.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SSDConfig:
    image_size: int  # side of the square network input, pixels (300 for SSD300)
    feature_maps: tuple[int, ...]  # side of each feature map, one per level (38, 19, ...)
    steps: tuple[float, ...]  # stride of each level in input pixels: cell centres at (j + 0.5) * step
    scales: tuple[float, ...]  # s_1..s_{m+1}, fraction of image_size; the last only feeds s'_m
    aspect_ratios: tuple[tuple[float, ...], ...]  # per level, every a_r used (1 first, then r, 1/r, ...)
    extra_box: bool = True  # add the ratio-1 box of scale s'_k = sqrt(s_k * s_{k+1}) (Sec. 2.2)
    clip: bool = True  # clip default box width/height to [0, 1] (as torchvision's DefaultBoxGenerator)
    variances: tuple[float, float] = (0.1, 0.2)  # box-coding variances for (centre, size)
    num_classes: int = 21  # classes including background at index 0 (VOC: 20 + 1)
    name: str = "custom"  # preset name, for tables and checkpoints

    def __post_init__(self) -> None:
        # Normalise lists to tuples so equal configs compare and hash equal.
        object.__setattr__(self, "feature_maps", tuple(int(f) for f in self.feature_maps))
        object.__setattr__(self, "steps", tuple(float(s) for s in self.steps))
        object.__setattr__(self, "scales", tuple(float(s) for s in self.scales))
        object.__setattr__(
            self, "aspect_ratios", tuple(tuple(float(r) for r in rs) for rs in self.aspect_ratios)
        )
        object.__setattr__(self, "variances", tuple(float(v) for v in self.variances))
        validate(self)

    @property
    def num_levels(self) -> int:
        return len(self.feature_maps)

    def boxes_per_location(self) -> tuple[int, ...]:
        """Default boxes per feature-map cell, per level: len(ratios) + extra box."""
        return tuple(
            len(rs) + (1 if self.extra_box and 1.0 in rs else 0) for rs in self.aspect_ratios
        )

    def min_sizes_px(self) -> tuple[float, ...]:
        """s_k * image_size for each level, pixels."""
        return tuple(s * self.image_size for s in self.scales[:-1])

    def to_dict(self) -> dict:
        """Plain JSON/`torch.save(weights_only=True)`-safe dict (lists, floats, str)."""
        d = dataclasses.asdict(self)
        d["aspect_ratios"] = [list(rs) for rs in self.aspect_ratios]
        for k in ("feature_maps", "steps", "scales", "variances"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SSDConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"SSDConfig: unknown field(s) {sorted(unknown)}")
        return cls(**d)


def validate(cfg: SSDConfig) -> None:
    """Raise ValueError naming the first invalid field of `cfg`."""
    m = len(cfg.feature_maps)
    if not isinstance(cfg.image_size, int) or cfg.image_size <= 0:
        raise ValueError(f"image_size must be a positive int, got {cfg.image_size!r}")
    if m == 0:
        raise ValueError("feature_maps must name at least one level")
    if any(f <= 0 for f in cfg.feature_maps):
        raise ValueError(f"feature_maps must be positive, got {cfg.feature_maps}")
    if len(cfg.steps) != m:
        raise ValueError(f"steps has {len(cfg.steps)} entries but feature_maps has {m}")
    if any(not math.isfinite(s) or s <= 0 for s in cfg.steps):
        raise ValueError(f"steps must be positive and finite, got {cfg.steps}")
    if len(cfg.scales) != m + 1:
        raise ValueError(
            f"scales must have len(feature_maps) + 1 = {m + 1} entries (s_1..s_m and s_(m+1) "
            f"for the extra box), got {len(cfg.scales)}"
        )
    if any(not math.isfinite(s) or s <= 0 for s in cfg.scales):
        raise ValueError(f"scales must be positive and finite, got {cfg.scales}")
    if len(cfg.aspect_ratios) != m:
        raise ValueError(f"aspect_ratios has {len(cfg.aspect_ratios)} levels but feature_maps has {m}")
    for k, rs in enumerate(cfg.aspect_ratios):
        if len(rs) == 0:
            raise ValueError(f"aspect_ratios[{k}] is empty: each level needs at least one ratio")
        if any(not math.isfinite(r) or r <= 0 for r in rs):
            raise ValueError(f"aspect_ratios[{k}] must be positive, got {rs}")
        if len(set(rs)) != len(rs):
            raise ValueError(f"aspect_ratios[{k}] repeats a ratio: {rs}")
    if len(cfg.variances) != 2 or any(not math.isfinite(v) or v <= 0 for v in cfg.variances):
        raise ValueError(f"variances must be two positive numbers, got {cfg.variances}")
    if not isinstance(cfg.num_classes, int) or cfg.num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2 (background + 1), got {cfg.num_classes!r}")


def ratios_from_torchvision(tv_ratios: list[int | float]) -> tuple[float, ...]:
    """torchvision's per-level list [2, 3] -> the explicit ratios (1, 2, 1/2, 3, 1/3).

    torchvision (and the paper's Caffe code) list only r >= 1 and add 1/r implicitly;
    this config lists every ratio so a user can pick 1/2 without 2.
    """
    out = [1.0]
    for r in tv_ratios:
        out += [float(r), 1.0 / float(r)]
    return tuple(out)


def linear_scales(s_min: float, s_max: float, m: int) -> tuple[float, ...]:
    """The paper's rule (Sec. 2.2) for s_1..s_m, plus s_{m+1} one step further.

    s_{m+1} only sets the extra box of the last level; continuing the line is what
    the paper's released models do (SSD300: 264 -> 315 px).
    """
    if m < 2:
        raise ValueError(f"linear_scales needs m >= 2 levels, got {m}")
    if not (0 < s_min < s_max):
        raise ValueError(f"need 0 < s_min < s_max, got s_min={s_min}, s_max={s_max}")
    step = (s_max - s_min) / (m - 1)
    return tuple(s_min + step * k for k in range(m + 1))


_PAIRS_SSD300 = ([2], [2, 3], [2, 3], [2, 3], [2], [2])


def ssd300_voc(num_classes: int = 21) -> SSDConfig:
    """SSD300 as trained on VOC: box sizes 30/60/111/162/213/264 px, max 315 (8732 boxes)."""
    sizes = (30, 60, 111, 162, 213, 264, 315)
    return SSDConfig(
        image_size=300,
        feature_maps=(38, 19, 10, 5, 3, 1),
        steps=(8, 16, 32, 64, 100, 300),
        scales=tuple(s / 300 for s in sizes),
        aspect_ratios=tuple(ratios_from_torchvision(r) for r in _PAIRS_SSD300),
        num_classes=num_classes,
        name="ssd300_voc",
    )


def ssd300_coco(num_classes: int = 91) -> SSDConfig:
    """SSD300 with torchvision's `ssd300_vgg16` scales (COCO)."""
    return SSDConfig(
        image_size=300,
        feature_maps=(38, 19, 10, 5, 3, 1),
        steps=(8, 16, 32, 64, 100, 300),
        scales=(0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05),
        aspect_ratios=tuple(ratios_from_torchvision(r) for r in _PAIRS_SSD300),
        num_classes=num_classes,
        name="ssd300_coco",
    )


def ssd512_voc(num_classes: int = 21) -> SSDConfig:
    """SSD512 on VOC: seven levels 64..1, sizes 35.84..460.8 px, max 537.6 (24564 boxes)."""
    sizes = (35.84, 76.8, 153.6, 230.4, 307.2, 384.0, 460.8, 537.6)
    return SSDConfig(
        image_size=512,
        feature_maps=(64, 32, 16, 8, 4, 2, 1),
        steps=(8, 16, 32, 64, 128, 256, 512),
        scales=tuple(s / 512 for s in sizes),
        aspect_ratios=tuple(
            ratios_from_torchvision(r) for r in ([2], [2, 3], [2, 3], [2, 3], [2, 3], [2], [2])
        ),
        num_classes=num_classes,
        name="ssd512_voc",
    )


def ssd_linear(
    s_min: float = 0.2,
    s_max: float = 0.9,
    image_size: int = 300,
    feature_maps: tuple[int, ...] = (38, 19, 10, 5, 3, 1),
    steps: tuple[float, ...] | None = None,
    aspect_ratios: tuple[float, ...] = (1.0, 2.0, 0.5, 3.0, 1 / 3),
    extra_box: bool = True,
    clip: bool = True,
    num_classes: int = 21,
) -> SSDConfig:
    """A config from the paper's linear rule: m = len(feature_maps) levels, the same
    ratios on every level, steps = image_size / feature_map unless given."""
    m = len(feature_maps)
    if any(f <= 0 for f in feature_maps):
        raise ValueError(f"feature_maps must be positive, got {tuple(feature_maps)}")
    if steps is None:
        steps = tuple(image_size / f for f in feature_maps)
    return SSDConfig(
        image_size=image_size,
        feature_maps=tuple(feature_maps),
        steps=tuple(steps),
        scales=linear_scales(s_min, s_max, m),
        aspect_ratios=tuple(tuple(aspect_ratios) for _ in range(m)),
        extra_box=extra_box,
        clip=clip,
        num_classes=num_classes,
        name="linear",
    )


def compact256(num_classes: int = 7) -> SSDConfig:
    """The small offline model: 256 px input, maps 32/16/8/4/2/1 (so the paper's 8x8
    and 4x4 maps exist), torchvision-COCO-like scales and ratios (`ssd300_coco`'s).
    Classes: background + 6."""
    return dataclasses.replace(ssd300_coco(num_classes), image_size=256, feature_maps=(32, 16, 8, 4, 2, 1),
                               steps=(8, 16, 32, 64, 128, 256), name="compact256")


PRESETS = {
    "ssd300_voc": ssd300_voc,
    "ssd300_coco": ssd300_coco,
    "ssd512_voc": ssd512_voc,
    "compact256": compact256,
}


def preset(name: str, **overrides) -> SSDConfig:
    """A named preset, optionally with `dataclasses.replace` overrides."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]()
    return dataclasses.replace(cfg, **overrides) if overrides else cfg


# ---------------------------------------------------------------- a subset of the levels (Table 3)


def check_levels(levels, num_levels: int, source: str = "levels") -> tuple[int, ...]:
    """`levels` as a tuple of consecutive level indices inside 0..num_levels-1 (0 = the finest).

    Consecutive, so each kept level keeps its own default boxes: the extra box of level k
    uses s_{k+1}, the next level's scale (Sec. 2.2). Raises ValueError naming `source`."""
    try:
        out = tuple(int(i) for i in levels)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be level indices (integers), got {levels!r}") from None
    if not out:
        raise ValueError(f"{source} must name at least one level")
    if any(i < 0 or i >= num_levels for i in out):
        raise ValueError(f"{source} {list(out)}: the model has levels 0..{num_levels - 1}")
    if list(out) != list(range(out[0], out[0] + len(out))):
        raise ValueError(f"{source} {list(out)} must be consecutive and increasing (e.g. 0,1,2 or 1)")
    return out


def select_levels(cfg: SSDConfig, levels) -> SSDConfig:
    """The default boxes of the kept `levels` only (`check_levels`), each as in `cfg`:
    the paper's Table 3 ablation predicts from fewer source layers. The boxes of the kept
    levels are exactly `cfg`'s (same scales, ratios and extra box); the dropped levels'
    objects are left to the kept ones (the paper also re-spread the scales to keep about
    8732 boxes; this does not)."""
    levels = check_levels(levels, cfg.num_levels)
    return dataclasses.replace(
        cfg,
        feature_maps=tuple(cfg.feature_maps[i] for i in levels),
        steps=tuple(cfg.steps[i] for i in levels),
        scales=tuple(cfg.scales[i] for i in levels) + (cfg.scales[levels[-1] + 1],),
        aspect_ratios=tuple(cfg.aspect_ratios[i] for i in levels),
    )


def expand_levels(subset: SSDConfig, reference: SSDConfig, levels) -> SSDConfig:
    """Undo `select_levels` as far as the heads need: `reference` (the full model's
    config) with the kept levels' aspect ratios, extra box and class count of `subset`
    (what a checkpoint of a subset model records), so the full model can be built and
    then cut down to `levels`."""
    levels = check_levels(levels, reference.num_levels)
    if subset.num_levels != len(levels):
        raise ValueError(f"a config of {subset.num_levels} levels cannot describe levels {list(levels)}")
    ratios = list(reference.aspect_ratios)
    for j, i in enumerate(levels):
        ratios[i] = subset.aspect_ratios[j]
    return dataclasses.replace(reference, aspect_ratios=tuple(ratios), extra_box=subset.extra_box,
                               num_classes=subset.num_classes)


# ---------------------------------------------------------------- config files (`--box-config FILE`)


def check_fits(cfg: SSDConfig, reference: SSDConfig, source: str = "config") -> None:
    """Raise ValueError (naming `source`) unless `cfg` keeps `reference`'s network geometry:
    the input size, the feature maps and their steps, which the model's layers fix. Scales,
    aspect ratios and the extra box are free: they only change the default boxes."""
    for what, a, b in (
        ("image_size", cfg.image_size, reference.image_size),
        ("feature_maps", cfg.feature_maps, reference.feature_maps),
        ("steps", cfg.steps, reference.steps),
    ):
        if a != b:
            raise ValueError(f"{source}: {what} {list(a) if isinstance(a, tuple) else a} cannot be produced by "
                             f"{reference.name}, which has {what} {list(b) if isinstance(b, tuple) else b}")


def config_from_json_text(text: str, source: str = "config", reference: SSDConfig | None = None) -> SSDConfig:
    """An `SSDConfig` from `SSDConfig.to_dict()` JSON text.

    Raises ValueError naming `source` and the problem: not JSON, not an object, unknown or
    missing fields, an invalid value (see `validate`), or (with `reference`) a geometry
    the reference model cannot produce (see `check_fits`).
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{source}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object of SSDConfig fields, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(SSDConfig)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}; SSDConfig has {sorted(fields)}")
    missing = sorted(n for n, f in fields.items() if n not in data
                     and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING)
    if missing:
        raise ValueError(f"{source}: missing field(s) {missing}")
    try:
        cfg = SSDConfig(**data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{source}: {e}") from None
    if reference is not None:
        check_fits(cfg, reference, source)
    return cfg


def load_config_json(path, reference: SSDConfig | None = None) -> SSDConfig:
    """`config_from_json_text` of the file at `path` (what `--box-config FILE` reads);
    ValueError naming the file when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ValueError(f"{path}: cannot read the config file ({e.strerror or e})") from None
    return config_from_json_text(text, str(path), reference)
