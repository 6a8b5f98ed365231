"""Checkpoints: one `torch.save` dict holding everything needed to rebuild a model.

Format "ssd-explorer/1" (a dict; every value loads with `torch.load(weights_only=True)`):
    format       "ssd-explorer/1"
    model_name   a name for `ssd.models.build` ("compact256", "ssd300_vgg16", ...)
    num_classes  C, classes including background
    class_names  C names, "background" first
    config       `SSDConfig.to_dict()` of the model's default boxes
    arch         architecture options for `build` (compact256 widths), may be {}
    state_dict   the model's weights (torchvision key names)
    recipe       how it was made: training command, seed, dataset, ... (may be {})
    + any `extra` keys; training writes `optimizer`, `scheduler`, `epoch`, `step`, `best_map`.

Files are written atomically with `ssd.io.atomic_write` (temporary file in the same
folder, fsync, then `os.replace`), so a reader never sees half a checkpoint even if
training is killed mid-write.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ssd.config import SSDConfig
from ssd.io import atomic_write
from ssd.models import MODEL_NAMES, SSDNet, WeightsError, build
from ssd.models.weights import load_state_dict_checked

FORMAT = "ssd-explorer/1"
REQUIRED_KEYS = ("format", "model_name", "num_classes", "class_names", "config", "state_dict")
RESERVED_KEYS = REQUIRED_KEYS + ("arch", "recipe")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save(
    path: str | os.PathLike,
    model: SSDNet,
    class_names: list[str] | tuple[str, ...],
    recipe: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `model` and its metadata to `path` atomically; returns the path.

    Args:
        model: an `SSDNet` (from `ssd.models.build`).
        class_names: C names, background first; C must equal the model's class count.
        recipe: how the model was made (command line, seed, data, ...).
        extra: more top-level keys (optimizer/scheduler state, epoch, step, best_map);
            they must not reuse the reserved keys above.
    """
    class_names = [str(c) for c in class_names]
    if len(class_names) != model.num_classes:
        raise ValueError(
            f"{len(class_names)} class names given for a model with {model.num_classes} classes "
            f"(background included)"
        )
    extra = dict(extra or {})
    clash = sorted(set(extra) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite reserved checkpoint fields")
    ckpt = {
        "format": FORMAT,
        "model_name": model.name,
        "num_classes": int(model.num_classes),
        "class_names": class_names,
        "config": model.cfg.to_dict(),
        "arch": dict(model.arch),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "recipe": dict(recipe or {}),
        **extra,
    }
    return atomic_write(path, lambda f: torch.save(ckpt, f))


def read(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """The checkpoint dict at `path`, checked for format and metadata (not yet the weights).

    Raises CheckpointError for a missing, empty, corrupt or wrong-format file, missing
    keys, or class names that disagree with num_classes / the config.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if not p.is_file():
        raise CheckpointError(f"checkpoint {p} is not a file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {p} is empty (0 bytes): an interrupted copy or save?")
    try:
        ckpt = torch.load(p, map_location=device, weights_only=True)
    except Exception as e:  # the unpickler raises many types on junk (KeyError, EOFError, ...)
        raise CheckpointError(
            f"checkpoint {p} is truncated or corrupt (not a readable PyTorch file): {e}"
        ) from e
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {p} holds a {type(ckpt).__name__}, not a checkpoint dict")
    if ckpt.get("format") != FORMAT:
        if "format" not in ckpt and ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
            raise CheckpointError(
                f"checkpoint {p} is a bare state dict, not an {FORMAT} checkpoint; load it with "
                f"ssd.models.build(name, num_classes, weights=PATH)"
            )
        raise CheckpointError(f"checkpoint {p} has format {ckpt.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {p} lacks the key(s) {missing}")
    name = ckpt["model_name"]
    if name not in MODEL_NAMES:
        raise CheckpointError(f"checkpoint {p} names an unknown model {name!r} (known: {list(MODEL_NAMES)})")
    n = ckpt["num_classes"]
    names = ckpt["class_names"]
    if not isinstance(n, int) or n < 2:
        raise CheckpointError(f"checkpoint {p}: num_classes must be an int >= 2, got {n!r}")
    if not isinstance(names, (list, tuple)) or not all(isinstance(c, str) for c in names):
        raise CheckpointError(f"checkpoint {p}: class_names must be a list of strings")
    if len(names) != n:
        raise CheckpointError(
            f"checkpoint {p}: wrong class count, {len(names)} class names but num_classes = {n}"
        )
    if not isinstance(ckpt["state_dict"], dict):
        raise CheckpointError(f"checkpoint {p}: state_dict is a {type(ckpt['state_dict']).__name__}, not a dict")
    return ckpt


def _config_of(ckpt: dict, p: Path) -> SSDConfig:
    try:
        cfg = SSDConfig.from_dict(dict(ckpt["config"]))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p}: invalid config: {e}") from e
    if cfg.num_classes != ckpt["num_classes"]:
        raise CheckpointError(
            f"checkpoint {p}: wrong class count, config has {cfg.num_classes} classes but num_classes = "
            f"{ckpt['num_classes']}"
        )
    return cfg


def load(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[SSDNet, dict]:
    """Rebuild the model saved at `path`.

    Returns:
        (model in eval mode on `device` with `.class_names` set, meta) where meta is the
        checkpoint dict without "state_dict" (recipe, optimizer, epoch, ...).
    Raises:
        CheckpointError naming the problem (see `read`; also a state dict that does not
        fit the named architecture or class count).
    """
    p = Path(path)
    ckpt = read(p, device="cpu")
    cfg = _config_of(ckpt, p)
    arch = ckpt.get("arch") or {}
    try:
        model = build(ckpt["model_name"], num_classes=ckpt["num_classes"], cfg=cfg, **arch)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"checkpoint {p}: cannot rebuild {ckpt['model_name']}: {e}") from e
    try:
        load_state_dict_checked(model, ckpt["state_dict"], f"checkpoint {p}")
    except WeightsError as e:
        raise CheckpointError(f"wrong architecture or class count: {e}") from e
    model.class_names = list(ckpt["class_names"])
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model, meta


def load_state_into(model: SSDNet, path: str | os.PathLike) -> dict:
    """Load the weights of checkpoint `path` into an existing `model` (e.g. to resume).

    The checkpoint's model name must match; returns the checkpoint dict (with optimizer
    and scheduler state if saved) for the caller to restore the rest.
    """
    p = Path(path)
    ckpt = read(p, device="cpu")
    if ckpt["model_name"] != model.name:
        raise CheckpointError(
            f"checkpoint {p} holds a {ckpt['model_name']} model, not {model.name}"
        )
    try:
        load_state_dict_checked(model, ckpt["state_dict"], f"checkpoint {p}")
    except WeightsError as e:
        raise CheckpointError(f"wrong architecture or class count: {e}") from e
    model.class_names = list(ckpt["class_names"])
    return ckpt
