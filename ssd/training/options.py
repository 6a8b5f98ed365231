"""The options of a training run, declared once: `TrainOptions`.

The command line of `python -m ssd.train` is built from its fields (flag
`--batch-size` for field `batch_size`, the default, the choices and the help from the
field), `to_argv` turns options back into that command line (the recipe a checkpoint
records, the argv the app's job manager launches), and `explorer.jobs.spec.JobSpec`
wraps a `TrainOptions` instead of repeating its fields.

Field order is the order of the flags in `--help` and in a recorded command: keep it
(the shipped checkpoint's recorded command was written in this order).
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from dataclasses import dataclass, field, fields

from ssd.config import SSDConfig, check_levels, load_config_json
from ssd.data.procedural import parse_object_size
from ssd.data.transforms import AUGMENTATIONS, parse_augment_steps
from ssd.device import DEVICES
from ssd.models import BACKBONE_WEIGHTS_MODELS, MODEL_NAMES, default_config
from ssd.training.engine import AMP_MODES, OPTIMIZERS, SCHEDULES
from ssd.training.recipes import RECIPES
from ssd.training.runlog import RunDirError, paths, read_json

DATASETS = ("procedural", "voc", "coco")
GROUPS = ("data", "model and optimisation", "run")
# Options a resumed run may change on its command line (the rest come from config.json).
RESUME_OVERRIDABLE = ("epochs", "max_steps", "device", "num_workers", "threads", "log_every", "eval_every", "amp")
# Options that must be >= 1, and >= 0.
_AT_LEAST_ONE = ("epochs", "batch_size", "train_size", "val_size", "log_every", "eval_every", "save_every")
_AT_LEAST_ZERO = ("max_steps", "num_workers", "threads", "warmup_steps")
_KIND = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _opt(default, group: str, help: str, choices=None):
    """A field with its command-line group, help and choices as metadata."""
    return field(default=default, metadata={"group": group, "help": help, "choices": choices})


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a training run (one per `ssd.train` flag)."""

    # --- data ---
    dataset: str = _opt("procedural", "data", "which reader", DATASETS)
    data_root: str = _opt("", "data", "VOC folder (JPEGImages/, Annotations/, ImageSets/Main/)")
    classes: str = _opt("auto", "data", "VOC class list: auto | voc | shapes | comma list")
    coco_json: str = _opt("", "data", "COCO instances JSON (training)")
    coco_images: str = _opt("", "data", "COCO image folder")
    coco_val_json: str = _opt("", "data", "COCO validation JSON (default: hold out --val-size images)")
    coco_val_images: str = _opt("", "data", "COCO validation image folder (default: --coco-images)")
    train_size: int = _opt(2000, "data", "procedural: training scenes")
    val_size: int = _opt(200, "data", "procedural: validation scenes (seed + 1); COCO: held-out images")
    data_seed: int = _opt(0, "data", "procedural: scene seed of the training set")
    skip_bad: bool = _opt(False, "data", "skip bad samples (count logged) instead of failing")
    augment: str = _opt("ssd", "data", "ssd | light (flip+colour) | none", AUGMENTATIONS)
    object_size: str = _opt("", "data", "procedural: MIN,MAX object side, fractions of the image ('' = 0.05,0.9)")
    # --- model and optimisation ---
    model: str = _opt("compact256", "model and optimisation", "architecture (ssd.models.build)", MODEL_NAMES)
    box_config: str = _opt("", "model and optimisation",
                           "default boxes: an SSDConfig JSON (python -m ssd.tune_boxes --out) with the model's "
                           "input size, feature maps and steps; '' = the model's preset")
    backbone_weights: str = _opt("", "model and optimisation",
                                 "ImageNet backbone: 'imagenet' (torchvision's weights API) or a PATH in "
                                 "torchvision's format; '' = random init (ssd300_vgg16 only)")
    init: str = _opt("", "model and optimisation",
                     "fine-tune from 'coco' (torchvision's COCO model) or a PATH (state dict or a run's "
                     "checkpoint); another class count re-initialises the class predictors")
    init_keep_classes: bool = _opt(False, "model and optimisation",
                                   "with --init: keep the class-predictor rows of classes the source has")
    epochs: int = _opt(10, "model and optimisation", "passes over the training set")
    batch_size: int = _opt(16, "model and optimisation", "images per step per process")
    optimizer: str = _opt("adamw", "model and optimisation", "adamw | sgd (momentum 0.9)", OPTIMIZERS)
    lr: float = _opt(1e-3, "model and optimisation", "base learning rate (> 0)")
    schedule: str = _opt("cosine", "model and optimisation", "learning-rate schedule after warmup", SCHEDULES)
    warmup_steps: int = _opt(100, "model and optimisation", "steps of linear learning-rate warmup")
    weight_decay: float = _opt(5e-4, "model and optimisation", "weight decay")
    clip_grad: float = _opt(10.0, "model and optimisation", "max gradient norm (0: off)")
    seed: int = _opt(0, "model and optimisation", "init, shuffling and augmentation seed")
    # --- run ---
    out: str = _opt("", "run", "run directory (required)")
    resume: bool = _opt(False, "run", "continue from OUT/checkpoints/last.pt")
    device: str = _opt("auto", "run", "auto: cuda when available", DEVICES)
    eval_every: int = _opt(1, "run", "evaluate every N epochs (and at the end)")
    max_steps: int = _opt(0, "run", "stop after this many steps (0: all epochs)")
    num_workers: int = _opt(0, "run", "DataLoader worker processes")
    channels_last: int = _opt(1, "run", "1: NHWC memory format for the convolutions (faster on CPU)", (0, 1))
    threads: int = _opt(0, "run", "torch CPU threads per process (0: torch's default)")
    log_every: int = _opt(20, "run", "log every N steps")
    save_every: int = _opt(200, "run", "write last.pt every N steps (and each epoch)")
    # New fields go last: a recorded command lists only non-default flags, in field order.
    amp: str = _opt("none", "run", "mixed precision: none (fp32) | bf16 (autocast; CPU with AVX-512 BF16/AMX, "
                    "or GPU) | fp16 (autocast + GradScaler; CUDA only)", AMP_MODES)
    # The ablations of the paper (ssd.ablation); each default is the paper's recipe.
    neg_pos_ratio: float = _opt(3.0, "model and optimisation",
                                "hard negatives per positive (Sec. 2.2; 3 = 3:1); inf = every negative (no mining)")
    forced_match: int = _opt(1, "model and optimisation", "1: each ground-truth box also takes its best default "
                             "box (Sec. 2.2 matching step 1); 0: the 0.5 IoU threshold alone", (0, 1))
    augment_steps: str = _opt("", "data", "comma list of SSD augmentation steps to run (photometric, zoom_out, "
                              "iou_crop, flip) or none; replaces --augment's preset; '' = the preset")
    levels: str = _opt("", "model and optimisation", "predict from these consecutive source levels only "
                       "(comma list, 0 = the finest; the paper's Table 3); '' = all")

    def validate(self) -> "TrainOptions":
        """Return self, or raise ValueError naming the flag, the value and the rule."""
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata["choices"]
            if not _type_ok(value, f.default):
                raise ValueError(f"{flag(f.name)} must be {_KIND[type(f.default)]}, got {value!r}")
            if choices is not None and value not in choices:
                raise ValueError(f"{flag(f.name)} must be one of {tuple(choices)}, got {value!r}")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{flag(name)} must be >= 1, got {getattr(self, name)}")
        for name in _AT_LEAST_ZERO + ("clip_grad", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.init and self.backbone_weights:
            raise ValueError("--init (a whole model) and --backbone-weights (its backbone) exclude each other")
        if self.backbone_weights and self.model not in BACKBONE_WEIGHTS_MODELS:
            raise ValueError(f"--backbone-weights works with --model {' / '.join(BACKBONE_WEIGHTS_MODELS)}, "
                             f"not {self.model}")
        if self.init_keep_classes and not self.init:
            raise ValueError("--init-keep-classes needs --init")
        if not self.lr > 0:
            raise ValueError(f"--lr must be > 0, got {self.lr}")
        if self.object_size:
            if self.dataset != "procedural":
                raise ValueError("--object-size only applies to --dataset procedural")
            parse_object_size(self.object_size)  # ValueError naming the flag and the problem
        if math.isnan(self.neg_pos_ratio) or self.neg_pos_ratio < 0:
            raise ValueError(f"--neg-pos-ratio must be >= 0 (inf: every negative), got {self.neg_pos_ratio}")
        if self.augment_steps:
            parse_augment_steps(self.augment_steps)  # ValueError naming the flag and the step
        self.level_indices()
        self.box_cfg()  # a bad --box-config file fails here, before any run file is written
        return self

    def level_indices(self) -> tuple[int, ...] | None:
        """`--levels` as level indices (None: all), checked against `--model`'s levels."""
        if not self.levels:
            return None
        try:
            return check_levels(self.levels.split(","), default_config(self.model).num_levels, "--levels")
        except ValueError as e:
            raise ValueError(f"{e} ({self.model})") from None

    def box_cfg(self, num_classes: int | None = None) -> SSDConfig | None:
        """The default boxes of `--box-config` (None without it), checked to fit `--model`.

        num_classes: the dataset's class count (background included); it replaces the
            file's, which only describes default boxes.
        Raises ValueError naming the flag, the file and the problem (unreadable, not JSON,
        unknown or missing fields, invalid values, a geometry the model cannot produce)."""
        if not self.box_config:
            return None
        try:
            reference = dataclasses.replace(default_config(self.model), name=self.model)  # messages name the model
            cfg = load_config_json(self.box_config, reference=reference)
        except ValueError as e:
            raise ValueError(f"--box-config {e}") from None
        return dataclasses.replace(cfg, num_classes=num_classes) if num_classes else cfg

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_argv(self) -> list[str]:
        """The `ssd.train` flags that rebuild these options: `--out` and every option
        that differs from its default, in field order (`--resume` is left out)."""
        argv = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "resume" or (f.name != "out" and value == f.default):
                continue
            if isinstance(value, bool):
                argv += [flag(f.name)] if value else []
            else:
                argv += [flag(f.name), str(value)]
        return argv


def _type_ok(value, default) -> bool:
    """`value` has the type of `default` (an int is fine for a float; a bool is no int)."""
    if isinstance(value, bool) != isinstance(default, bool):
        return False
    return isinstance(value, type(default)) or (isinstance(default, float) and isinstance(value, int))


def flag(name: str) -> str:
    """The command-line flag of field `name`: "batch_size" -> "--batch-size"."""
    return "--" + name.replace("_", "-")


def build_parser(recipe: str = "") -> argparse.ArgumentParser:
    """The `python -m ssd.train` parser, one flag per `TrainOptions` field, plus
    `--recipe NAME`; with `recipe`, the recipe's values are the defaults."""
    p = argparse.ArgumentParser(prog="python -m ssd.train",
                                description="Train an SSD and write a run directory (see ssd.training.runlog).")
    p.add_argument("--recipe", choices=tuple(RECIPES), default="",
                   help="start from a named recipe (ssd.training.recipes); other flags override it")
    groups = {name: p.add_argument_group(name) for name in GROUPS}
    for f in fields(TrainOptions):
        group, help_text = groups[f.metadata["group"]], f.metadata["help"]
        if isinstance(f.default, bool):
            group.add_argument(flag(f.name), action="store_true", help=help_text)
        else:
            group.add_argument(flag(f.name), type=type(f.default), default=f.default, help=help_text,
                               choices=f.metadata["choices"], required=f.name == "out")
    if recipe:
        p.set_defaults(**RECIPES[recipe])
    return p


def parse_args(argv: list[str]) -> TrainOptions:
    """Options from a command line (`--recipe NAME` sets the defaults of the other
    flags, which override it); `--resume` takes the run's options from
    OUT/config.json, and only RESUME_OVERRIDABLE options from the command line.
    A bad option exits with argparse's usage error naming it."""
    pre = argparse.ArgumentParser(add_help=False)  # the recipe first: it sets the defaults
    pre.add_argument("--recipe", default="")
    recipe = pre.parse_known_args(argv)[0].recipe
    parser = build_parser(recipe if recipe in RECIPES else "")  # an unknown name: the parser's choices error
    args = vars(parser.parse_args(argv))
    args.pop("recipe")
    if args["resume"]:
        cfg_path = paths(args["out"]).config
        if not cfg_path.is_file():
            parser.error(f"--resume: {cfg_path} not found (nothing to resume)")
        try:
            saved = read_json(cfg_path)["args"]
        except (RunDirError, KeyError) as e:
            parser.error(f"--resume: {cfg_path} has no usable 'args' ({e})")
        # Which options did this command line set explicitly? Parse again without defaults.
        probe = build_parser()
        for a in probe._actions:
            a.default = argparse.SUPPRESS
        explicit = vars(probe.parse_args(argv))
        explicit.pop("recipe", None)
        known = {f.name for f in fields(TrainOptions)}
        out = args["out"]
        args = {**args, **{k: v for k, v in saved.items() if k in known}}
        args.update({k: explicit[k] for k in RESUME_OVERRIDABLE if k in explicit}, out=out, resume=True)
    try:
        return TrainOptions(**args).validate()
    except ValueError as e:
        parser.error(str(e))
