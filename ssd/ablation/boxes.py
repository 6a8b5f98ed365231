"""The box configs the studies make: fewer aspect ratios (Table 2) and boxes tuned on the
training split (`ssd.tuning.tune_boxes`), each for compact256, the studies' model.
"""
from __future__ import annotations

import dataclasses

from ssd.ablation.studies import Scale
from ssd.config import SSDConfig
from ssd.data import procedural
from ssd.data.gt_boxes import procedural_boxes
from ssd.models import default_config
from ssd.tuning.tune_boxes import tune

MODEL = "compact256"
RATIO_SETS = {"ratios_1": (1.0,), "ratios_1_2": (1.0, 2.0, 0.5)}
MADE = (*RATIO_SETS, "tuned")


def make_box_config(name: str, scale: Scale, recipe: dict) -> SSDConfig:
    """The box config `name` (one of `MADE`) for compact256: the preset with one ratio set on
    every level (the extra box kept), or the preset tuned by `ssd.tuning.tune_boxes.tune`
    on the boxes of the study's first `scale.tune_images` training scenes (data seed 0,
    the study recipe's object sizes). ValueError for an unknown name."""
    base = default_config(MODEL)
    if name in RATIO_SETS:
        return dataclasses.replace(base, aspect_ratios=(RATIO_SETS[name],) * base.num_levels, name=name)
    if name == "tuned":
        size = recipe.get("object_size", "")
        object_size = procedural.parse_object_size(size) if size else procedural.DEFAULT_OBJECT_SIZE
        boxes = procedural_boxes(scale.tune_images, seed=0, size=base.image_size, object_size=object_size)
        return tune(boxes.boxes_xyxy_norm, base).cfg
    raise ValueError(f"unknown box config {name!r}; made ones: {list(MADE)}")
