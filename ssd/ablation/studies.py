"""The paper's ablations as data: studies, their variants, and the scales they run at.

A study is a list of variants; a variant is the full recipe's `TrainOptions` with named
changes (`Variant.changes`, field -> value), nothing else. A change of `box_config`
names a made box config ("@ratios_1", "@tuned"): `resolve_options` writes it to
OUT/box_configs/NAME.json and points the option at that file.

Scales (fixed before any result was seen; see docs/paper-lab.md):
    smoke  plumbing only: a few scenes, 2 steps, 1 seed; a whole study in well under a minute
    cpu    what 2 CPU cores afford: 1600 scenes, 2 epochs = 200 steps of 16 images, 3 seeds,
           1 thread, about 4-8 minutes a run
    gpu    for a GPU: 3200 scenes, 30 epochs = 3000 steps of 32 images, 3 seeds

The model is compact256 at its 256 px input (its layers fix the size) on the procedural
scenes; it has no atrous convolution, so Table 2's atrous row is not run.

The paper's numbers (SSD300, VOC2007 test mAP, %) sit beside each variant (`paper`), and
`paper_diff` is the variant's minus the full recipe's. No torch import.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ssd.training.options import TrainOptions

BOX_CONFIGS_DIR = "box_configs"
FULL = "full"  # the name of every study's reference variant


@dataclass(frozen=True)
class Scale:
    """How big each training run of a study is (fixed before any result was seen)."""

    name: str
    train_size: int  # procedural training scenes
    val_size: int  # procedural validation scenes (the evaluation: AP, AP50, AP_small)
    batch_size: int
    epochs: int  # passes over the training scenes: the learning-rate schedule spans exactly these
    max_steps: int  # optimiser steps per run = epochs * train_size // batch_size
    warmup_steps: int
    seeds: int  # default number of training seeds per variant
    threads: int  # torch CPU threads per run (0: torch's default)
    tune_images: int  # training scenes the box tuner reads (the `boxes` study)


SCALES = {
    "smoke": Scale("smoke", train_size=8, val_size=4, batch_size=4, epochs=1, max_steps=2, warmup_steps=1,
                   seeds=1, threads=1, tune_images=8),
    "cpu": Scale("cpu", train_size=1600, val_size=200, batch_size=16, epochs=2, max_steps=200, warmup_steps=20,
                 seeds=3, threads=1, tune_images=500),
    "gpu": Scale("gpu", train_size=3200, val_size=500, batch_size=32, epochs=30, max_steps=3000, warmup_steps=100,
                 seeds=3, threads=0, tune_images=3200),
}


@dataclass(frozen=True)
class Variant:
    """One row of a study: the full recipe with `changes` (TrainOptions field -> value)."""

    name: str
    what: str  # what changed, in the paper's words
    changes: dict = field(default_factory=dict)
    paper: float | None = None  # the paper's VOC2007 test mAP (%) of this row; None: the paper has no number


@dataclass(frozen=True)
class Study:
    """A named ablation: its variants (the first is the full recipe) and the recipe's tweaks."""

    name: str
    title: str
    source: str  # where in the paper
    variants: tuple[Variant, ...]
    recipe: dict = field(default_factory=dict)  # changes to the base recipe for every variant (scenes)
    # Runs of this study train `length` times the scale's epochs and steps. The boxes study
    # asks whether tuned boxes win once the learning curves have flattened; at 200 steps
    # the cpu scale's curves still fall (~8% over the last 80 steps in the zoomout study).
    length: int = 1

    def scaled(self, scale: Scale) -> Scale:
        """`scale` with this study's run length: epochs, steps and warmup times `length`."""
        if self.length == 1:
            return scale
        return dataclasses.replace(scale, epochs=scale.epochs * self.length, max_steps=scale.max_steps * self.length,
                                   warmup_steps=scale.warmup_steps * self.length)

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValueError(f"study {self.name} has no variant {name!r}; it has {[v.name for v in self.variants]}")

    def paper_diff(self, variant: Variant) -> float | None:
        """The paper's mAP difference (points) of `variant` from the full recipe; None without numbers."""
        full = self.variants[0].paper
        return None if variant.paper is None or full is None else round(variant.paper - full, 2)


ALL_STEPS = "photometric,zoom_out,iou_crop,flip"
SMALL_OBJECTS = "0.03,0.25"  # scenes of small objects (fractions of the side) for the boxes study

STUDIES = {s.name: s for s in (
    Study("table2", "Effects of design choices", "Table 2", (
        Variant(FULL, "all choices (SSD augmentation; ratios 1, 2, 1/2, 3, 1/3 + extra box)", {}, 74.3),
        Variant("no_augmentation", "no data augmentation (photometric, zoom-out, crop, flip off)",
                {"augment_steps": "none"}, 65.5),
        Variant("ratios_1_2", "no {1/3, 3} boxes: ratios 1, 2, 1/2 + extra box",
                {"box_config": "@ratios_1_2"}, 73.7),
        Variant("ratios_1", "no {1/2, 2} and {1/3, 3} boxes: ratio 1 + extra box",
                {"box_config": "@ratios_1"}, 71.6),
    )),
    Study("table3", "Multiple output layers", "Table 3", (
        Variant(FULL, "predict from all 6 levels (conv4_3 .. conv11_2)", {}, 74.3),
        Variant("no_level5", "without the coarsest level (conv11_2)", {"levels": "0,1,2,3,4"}, 74.6),
        Variant("no_level4_5", "without conv10_2 too", {"levels": "0,1,2,3"}, 73.8),
        Variant("no_level3_5", "without conv9_2 too", {"levels": "0,1,2"}, 70.7),
        Variant("levels_0_1", "conv4_3 and conv7 only", {"levels": "0,1"}, 64.2),
        Variant("level_1", "conv7 alone", {"levels": "1"}, 62.4),
    )),
    Study("zoomout", "Zoom-out (expansion) augmentation for small objects", "Sec. 3.6", (
        Variant(FULL, "SSD augmentation with zoom-out", {}, 77.2),
        Variant("no_zoom_out", "without the zoom-out (photometric, crop, flip only)",
                {"augment_steps": "photometric,iou_crop,flip"}, 74.3),
    )),
    Study("mining", "Hard negative mining and the forced best match", "Sec. 2.2", (
        Variant(FULL, "3:1 hard negatives, forced best match", {}, None),
        Variant("neg_1to1", "1:1 hard negatives", {"neg_pos_ratio": 1.0}, None),
        Variant("all_negatives", "every negative (no mining)", {"neg_pos_ratio": float("inf")}, None),
        Variant("no_forced_match", "no forced best match (IoU >= 0.5 only)", {"forced_match": 0}, None),
    )),
    Study("boxes", "Preset vs tuned default boxes on small objects", "Sec. 2.2 (open question)", (
        Variant(FULL, "the model's preset default boxes", {}, None),
        Variant("tuned", "boxes tuned by ssd.tune_boxes on the training split", {"box_config": "@tuned"}, None),
    ), recipe={"object_size": SMALL_OBJECTS}, length=2),
)}


def base_options(scale: Scale, seed: int, out: str = "") -> TrainOptions:
    """The full recipe at `scale`: compact256 on procedural scenes with the paper's
    augmentation, 3:1 mining and forced matching; the cosine schedule spans the run's
    epochs exactly (so it ends at the last step); evaluation once, at the end."""
    return TrainOptions(
        dataset="procedural", train_size=scale.train_size, val_size=scale.val_size, data_seed=0, augment="ssd",
        model="compact256", epochs=scale.epochs, batch_size=scale.batch_size, lr=2e-3, warmup_steps=scale.warmup_steps,
        seed=seed, out=out, eval_every=1000, max_steps=scale.max_steps, log_every=max(1, scale.max_steps // 20),
        save_every=max(1, scale.max_steps // 4), threads=scale.threads,
    )


def made_box_config(study: Study, variant: Variant) -> str:
    """The made box config a variant names ("@ratios_1" -> "ratios_1"), "" when none."""
    value = variant.changes.get("box_config", "")
    return value[1:] if isinstance(value, str) and value.startswith("@") else ""


def run_name(variant: str, seed: int) -> str:
    """The run folder of a variant's seed: OUT/runs/<variant>-s<seed>."""
    return f"{variant}-s{seed}"


def resolve_options(study: Study, variant: Variant, scale: Scale, seed: int, out_dir: Path | str) -> TrainOptions:
    """The training options of one run: the full recipe (+ the study's recipe), then the
    variant's changes; a made box config points at OUT/box_configs/NAME.json (written by
    `ssd.ablation.runner`, not here). The run folder is OUT/runs/<variant>-s<seed>."""
    out_dir = Path(out_dir)
    scale = study.scaled(scale)
    opts = dataclasses.replace(base_options(scale, seed, str(out_dir / "runs" / run_name(variant.name, seed))),
                               **study.recipe)
    changes = dict(variant.changes)
    made = made_box_config(study, variant)
    if made:
        changes["box_config"] = str(out_dir / BOX_CONFIGS_DIR / f"{made}.json")
    return dataclasses.replace(opts, **changes)


def changed_fields(a: TrainOptions, b: TrainOptions) -> set[str]:
    """The TrainOptions fields whose values differ between `a` and `b`."""
    return {f.name for f in dataclasses.fields(TrainOptions) if getattr(a, f.name) != getattr(b, f.name)}
