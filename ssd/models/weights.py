"""Loading weights into an `SSDNet`: torchvision's COCO weights or a local state dict.

An `SSDNet` has torchvision's module names, so `torch.save(torchvision_model.state_dict())`
loads into it unchanged. No download happens in tests; offline, `weights="coco"` fails
with a message that says where to put the file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import Tensor, nn
from torchvision.models import VGG16_Weights
from torchvision.models.detection import SSD300_VGG16_Weights, SSDLite320_MobileNet_V3_Large_Weights


class WeightsError(ValueError):
    """A weights file or download that cannot be used; the message says why."""


def coco_weights_enum(name: str):
    """torchvision's `WeightsEnum` member with COCO weights for model `name`."""
    table = {
        "ssd300_vgg16": SSD300_VGG16_Weights.COCO_V1,
        "ssdlite320_mobilenet_v3_large": SSDLite320_MobileNet_V3_Large_Weights.COCO_V1,
    }
    if name not in table:
        raise WeightsError(f"no COCO weights exist for {name!r}; torchvision has them for {sorted(table)}")
    return table[name]


def coco_class_names(name: str) -> list[str]:
    """The 91 COCO category names of torchvision's detection weights, "background" first."""
    cats = list(coco_weights_enum(name).meta["categories"])
    cats[0] = "background"  # torchvision calls it "__background__"
    return cats


def download_coco_state_dict(name: str) -> dict[str, Tensor]:
    """torchvision's COCO state dict for `name` (downloads with a progress bar, cached).

    Raises DownloadError (a WeightsError) offline, naming the host, the URL, the cache
    file to place by hand, and the `weights=PATH` alternative.
    """
    return _download(coco_weights_enum(name), f"COCO weights for {name}", "weights=PATH (a torchvision state dict .pth)")


class DownloadError(WeightsError):
    """torchvision weights that could not be fetched or read from torch's hub cache.

    `offline` is True when the network failed (no connection, DNS, timeout, HTTP error),
    False when a file in the cache is there but unusable (truncated, wrong hash). `host`
    is the URL's host, `file_name` the file to fetch by hand, `cache_file` where torch
    looks for it, `reason` the cause in a few words (no exception class, no raw repr).
    """

    def __init__(self, what: str, url: str, cache_file: Path, error: BaseException, alternative: str):
        self.what, self.url, self.cache_file = what, url, Path(cache_file)
        self.host = urlparse(url).hostname or url
        self.file_name = self.cache_file.name
        self.offline = _is_network_error(error)
        self.reason = short_reason(error)
        if self.offline:
            text = (f"could not download torchvision's {what} from {self.host} (no network? {self.reason}): "
                    f"download {url} on a machine with a network and put it at {cache_file}, or pass {alternative}")
        else:
            text = (f"torchvision's {what} in the download cache cannot be read ({self.reason}): delete "
                    f"{cache_file} to download it again, or pass {alternative}")
        super().__init__(text)


def _is_network_error(error: BaseException) -> bool:
    """True for a failure to reach the server (urllib's URLError/HTTPError, socket errors,
    timeouts), False for a file that arrived or was cached but is unusable."""
    return isinstance(error, OSError) and not isinstance(error, (FileNotFoundError, IsADirectoryError,
                                                                 PermissionError))  # URLError is an OSError


def short_reason(error: BaseException) -> str:
    """An exception as a few plain words: urllib's `<urlopen error [Errno 111] Connection
    refused>` -> "connection refused"; no class name, no angle brackets, no final period."""
    reason = getattr(error, "reason", None)  # urllib: an OSError inside, or words
    inner = reason if isinstance(reason, BaseException) else error
    text = getattr(inner, "strerror", None) or (reason if isinstance(reason, str) else str(inner))
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(text).strip().strip("<>")).strip().rstrip(".")
    text = text.splitlines()[0] if text else type(inner).__name__
    return (text[:1].lower() + text[1:])[:120]


def _download(w, what: str, alternative: str) -> dict[str, Tensor]:
    """The state dict of torchvision weights enum `w` (downloaded, or from torch's hub
    cache); DownloadError naming the host, the file to place by hand (where) and the
    `alternative` (what: "COCO weights for ssd300_vgg16", ...)."""
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
    try:
        return w.get_state_dict(progress=True, check_hash=True)
    except Exception as e:  # URLError, socket errors, hash mismatch, a junk cached file, ...
        raise DownloadError(what, w.url, cache, e, alternative) from e


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a torchvision-format state dict (`torch.save(model.state_dict(), path)`).

    Also accepts an ssd-explorer checkpoint dict (takes its "state_dict"). Loaded with
    `weights_only=True`; raises WeightsError naming the file and the problem.
    """
    p = Path(path)
    if not p.is_file():
        raise WeightsError(f"weights file {p} does not exist")
    if p.stat().st_size == 0:
        raise WeightsError(f"weights file {p} is empty (0 bytes)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # the unpickler raises many types on junk (KeyError, EOFError, ...)
        raise WeightsError(f"weights file {p} is not a readable PyTorch file (truncated or corrupt?): {e}") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise WeightsError(f"weights file {p} does not hold a state dict (name -> tensor), got {type(obj).__name__}")
    return obj


def load_state_dict_checked(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> None:
    """`model.load_state_dict(state_dict)` with a message naming missing, unexpected and
    wrongly shaped keys (the usual cause: another architecture or class count)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shape = [
        f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shape:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing key(s), e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected key(s), e.g. {unexpected[:3]}")
        if shape:
            parts.append(f"{len(shape)} shape mismatch(es), e.g. {shape[:3]}")
        hint = ""
        if shape and all("head." in s for s in shape) and not missing and not unexpected:
            hint = " Only the head differs: the number of classes (or boxes per cell) is not the same."
        raise WeightsError(f"{source} does not fit {getattr(model, 'name', 'the model')}: " + "; ".join(parts) + "." + hint)
    model.load_state_dict(state_dict, strict=True)


# ------------------------------------------------------------------ ImageNet backbones --
def imagenet_backbone_enum(name: str):
    """torchvision's `WeightsEnum` member that its own SSD builder loads into model
    `name`'s backbone (`ssd300_vgg16(weights_backbone=VGG16_Weights.IMAGENET1K_FEATURES)`)."""
    # SSDlite's ImageNet MobileNetV3 comes with a full-size tail (torchvision builds the
    # reduced tail only without it), i.e. another architecture than "ssdlite320_mobilenet_v3_large"
    # here; compact256 has no ImageNet backbone.
    table = {"ssd300_vgg16": VGG16_Weights.IMAGENET1K_FEATURES}
    if name not in table:
        raise WeightsError(f"no ImageNet backbone weights are wired for {name!r}; they exist for {sorted(table)}")
    return table[name]


def backbone_state_dict(name: str, source: str | os.PathLike) -> tuple[dict[str, Tensor], str]:
    """(state dict in torchvision's backbone format, a name for messages) for
    `source` = "imagenet" (downloaded through torchvision's weights API, cached) or the
    path of a local file in that format (`torch.save(torchvision.models.vgg16().state_dict())`).

    Raises WeightsError offline (naming the URL, the cache file to place by hand and
    the PATH alternative) or for a missing / empty / truncated file."""
    if str(source) != "imagenet":
        return read_state_dict(source), f"backbone weights file {source}"
    state = _download(imagenet_backbone_enum(name), f"ImageNet backbone weights for {name}",
                      "backbone_weights=PATH (--backbone-weights PATH)")
    return state, f"torchvision's ImageNet backbone for {name}"


def load_vgg16_features(features: nn.Sequential, state_dict: dict[str, Tensor], source: str) -> None:
    """Load the "features.*" tensors of a torchvision VGG-16 state dict into VGG-16's
    conv layers `features` (the classifier, which SSD drops, is ignored, as torchvision does)."""
    sub = {k[len("features."):]: v for k, v in state_dict.items() if k.startswith("features.")}
    if not sub:
        raise WeightsError(f"{source} is not a torchvision VGG-16 state dict: it has no 'features.*' keys "
                           f"(found e.g. {list(state_dict)[:3]})")
    load_state_dict_checked(features, sub, source)


# ------------------------------------------------------------------------ fine-tuning --
CLASS_HEAD = "head.classification_head."  # the class predictors' keys (torchvision's SSDHead)


def read_class_names(path: str | os.PathLike) -> list[str] | None:
    """The class names an ssd-explorer checkpoint at `path` records (None for a bare state dict)."""
    try:
        obj = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception:  # read_state_dict reports unreadable files
        return None
    names = obj.get("class_names") if isinstance(obj, dict) else None
    return list(names) if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names) else None


def _predictor_key(state_dict: dict[str, Tensor], level: int) -> str | None:
    """Key of level `level`'s class predictor conv weight: the last 4-D weight under
    module_list.<level> (SSD300: the conv itself; SSDlite: the conv after its depthwise block)."""
    prefix = f"{CLASS_HEAD}module_list.{level}."
    keys = [k for k, v in state_dict.items() if k.startswith(prefix) and k.endswith(".weight") and v.dim() == 4]
    return keys[-1] if keys else None


def _source_class_count(model: nn.Module, state_dict: dict[str, Tensor], source: str) -> int:
    """C of the file's class head: each level's predictor has K_l * C outputs for the
    model's K_l boxes per cell. WeightsError when no single C fits: the boxes per cell
    (or the levels) differ, which is not a class-count change."""
    ks = model.cfg.boxes_per_location()
    keys = [_predictor_key(state_dict, level) for level in range(len(ks))]
    if any(k is None for k in keys):
        raise WeightsError(f"{source} has no class predictor for each of the {len(ks)} levels of "
                           f"{getattr(model, 'name', 'the model')} (another architecture?)")
    outs = [state_dict[k].shape[0] for k in keys]
    counts = {o / k for o, k in zip(outs, ks)}
    if len(counts) != 1 or not next(iter(counts)).is_integer():
        raise WeightsError(
            f"{source}: class predictors with {outs} outputs do not fit {list(ks)} boxes per "
            f"cell for any class count: the head differs by more than its number of classes")
    return int(next(iter(counts)))


def _copy_class_rows(model: nn.Module, state_dict: dict[str, Tensor], rows: list[int], c_src: int) -> None:
    """Copy the file's class-predictor rows `rows` (one per new class) into the model's head.
    Letters: K boxes per cell, C classes, I input channels per group."""
    ks = model.cfg.boxes_per_location()
    with torch.no_grad():
        for level, k in enumerate(ks):
            key = _predictor_key(state_dict, level)
            weight, bias = state_dict[key], state_dict[key[: -len("weight")] + "bias"]
            # (K*C_src, I, 3, 3) -> (K, C_src, I, 3, 3) -> pick rows -> (K*C_new, I, 3, 3)
            picked = weight.view(k, c_src, *weight.shape[1:])[:, rows].reshape(-1, *weight.shape[1:])
            model.get_parameter(key).copy_(picked)
            # (K*C_src,) -> (K, C_src) -> pick rows -> (K*C_new,)
            model.get_parameter(key[: -len("weight")] + "bias").copy_(bias.view(k, c_src)[:, rows].reshape(-1))


def load_for_fine_tuning(model: nn.Module, state_dict: dict[str, Tensor], source: str,
                         source_class_names: list[str] | None = None, class_names: list[str] | None = None,
                         keep_class_rows: bool = False) -> str:
    """Load `state_dict` into `model`; when only its class count differs, everything but
    the class predictors (backbone and box predictors), which keep the model's fresh
    init, or, with `keep_class_rows` and `class_names` a subset of `source_class_names`
    (background first in both), the file's rows of those classes. Returns what was done
    (one line, for the log). WeightsError for any other mismatch."""
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith(CLASS_HEAD)}
    body = {k: v for k, v in state_dict.items() if not k.startswith(CLASS_HEAD)}
    load_state_dict_checked(model, {**body, **fresh_head}, source)  # all but the class predictors must fit
    c_src = _source_class_count(model, state_dict, source)
    if c_src == model.num_classes and not keep_class_rows:
        load_state_dict_checked(model, state_dict, source)
        return f"all weights from {source}"
    what = f"backbone and box predictors from {source} ({c_src} classes -> {model.num_classes})"
    if not keep_class_rows:
        return what + "; class predictors re-initialised"
    missing = [n for n in (class_names or []) if n not in (source_class_names or [])]
    if not class_names or not source_class_names or missing or class_names[0] != "background":
        return what + (f"; class predictors re-initialised (not kept: {missing[:5]} not among the source's "
                       f"classes)" if missing else "; class predictors re-initialised (no class names to match)")
    _copy_class_rows(model, state_dict, [source_class_names.index(n) for n in class_names], c_src)
    return what + f"; class predictor rows kept for {class_names[1:]}"
