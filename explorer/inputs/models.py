"""Which models the explorer can run, and loading one by its id.

A model id is a plain string (kept in Streamlit's session state as "model_choice"):
  - a path to a checkpoint written by `ssd.training.checkpoint.save` (shipped ones in
    `checkpoints/*.pt`, training runs' `RUNS_DIR/*/checkpoints/best.pt`);
  - "torchvision:ssd300_vgg16" / "torchvision:ssdlite320_mobilenet_v3_large":
    torchvision's COCO weights (needs them downloaded or in the torch hub cache);
  - "random:compact256": the compact model with random weights (always works, but
    predicts nothing meaningful; the app says so);
  - "file:ARCH:PATH": a local torchvision-format state dict (`.pth`, e.g. torchvision's
    COCO weights saved on a machine with internet) for ARCH, one of `WEIGHTS_FILE_ARCHS`
    (`weights_file_id`): a user with the weights on disk but no network runs them.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from explorer.jobs.damage import checkpoint_problem
from explorer.paths import CHECKPOINTS_DIR, REPO_ROOT, runs_dir  # noqa: F401 (re-exported)
from ssd.data.paths import PathRefused, confine
from ssd.data.procedural import CLASSES
from ssd.models import build, coco_class_names
from ssd.models.weights import DownloadError, WeightsError, read_state_dict
from ssd.training.checkpoint import load as load_checkpoint  # weights_only: code in a pickle is refused

SHIPPED_CHECKPOINT = CHECKPOINTS_DIR / "compact256_shapes.pt"
RANDOM_COMPACT = "random:compact256"
TORCHVISION_MODELS = {
    "torchvision:ssd300_vgg16": "torchvision SSD300 VGG16, COCO weights (download)",
    "torchvision:ssdlite320_mobilenet_v3_large": "torchvision SSDlite320 MobileNetV3, COCO weights (download)",
}


WEIGHTS_FILE_PREFIX = "file:"
# Architectures a local weights file may be for -> what the picker shows.
WEIGHTS_FILE_ARCHS = {
    "ssd300_vgg16": "SSD300 VGG16",
    "ssdlite320_mobilenet_v3_large": "SSDlite320 MobileNetV3",
}
# Where the app tells a user without internet to go (the sidebar's expander).
LOAD_FROM_FILE_HINT = ("In the app: sidebar, \"Load a model from a weights file\": give the path of the "
                       ".pth (or upload it) and pick its architecture.")


class ModelLoadError(RuntimeError):
    """A model id could not be loaded; the message says why, in plain words.

    Messages name files by their base name only, never by a server path (`user_reason`).
    `file` is the file that failed, so `for_user` can name it as the user knows it
    (an upload is stored under its sha1 on the server)."""

    def __init__(self, message: str, file: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.file = None if file is None else Path(file)

    def for_user(self, shown: str | None = None) -> str:
        """The message with the failed file called `shown` (the name the user uploaded
        or typed), when both are known."""
        text = str(self)
        if shown and self.file is not None:
            text = text.replace(self.file.name, shown)
        return text


# An absolute path in a library message (not a URL: no ':' or '/' or a letter before it).
_ABS_PATH_RE = re.compile(r"(?<![\w:/.~])(?:~|/)(?:[^\s/'\"]+/)+(?=[^\s/'\"])")
# torch.load's refusals start here and go on for pages of advice (load it unsafely);
# "Unsupported global": the pickle names a Python object (code) besides tensors.
_TORCH_REFUSAL, _TORCH_GLOBAL = "Weights only load failed", "Unsupported global"
MAX_REASON_CHARS = 200  # a library's reason is cut to its first sentence, at most this long


def download_message(arch_label: str, error: DownloadError) -> str:
    """One sentence for torchvision's COCO weights of `arch_label` that did not arrive:
    what failed (the host, "no network?") and what to do (the URL, the sidebar's weights
    file loader); the cache file by its base name only (no server path)."""
    if error.offline:
        return (f"Could not download the COCO weights of {arch_label} from {error.host} (no network? "
                f"{error.reason}); download {error.url} on a machine with a network and load the file here "
                "with \"Load a model from a weights file\" in the sidebar.")
    return (f"Could not load the COCO weights of {arch_label}: the downloaded file {error.file_name} cannot be "
            f"read ({error.reason}); load a good copy with \"Load a model from a weights file\" in the sidebar.")


def user_reason(error: BaseException) -> str:
    """A library error's text as the app shows it: server paths cut to the file's base
    name, the first sentence only (no pages of library advice), at most
    `MAX_REASON_CHARS`; torch's refusal of a pickle with code becomes one plain line."""
    text = str(error)
    if _TORCH_GLOBAL in text:
        return ("it holds Python objects besides tensors, and the app loads plain weights only "
                "(torch.load with weights_only=True): nothing in it was run")
    if _TORCH_REFUSAL in text:  # junk bytes: the library's own words before torch's say it
        text = text[:text.index(_TORCH_REFUSAL)].rstrip(" :") or "not a readable PyTorch file"
    text = _ABS_PATH_RE.sub("", text).strip()
    first = re.split(r"(?<=[.!?])\s+(?=[A-Z(])|\n", text, maxsplit=1)[0].strip()
    return first if len(first) <= MAX_REASON_CHARS else first[:MAX_REASON_CHARS - 3].rstrip() + "..."


@dataclass(frozen=True)
class ModelChoice:
    model_id: str  # the id `load_model` takes
    label: str  # what the picker shows
    kind: str  # "checkpoint", "run", "torchvision" or "random"


@dataclass
class LoadedModel:
    model: object  # an `ssd.models.SSDNet`, in eval mode, on the CPU
    class_names: list[str]  # C names, "background" first
    model_id: str
    label: str
    warning: str | None = None  # shown above every page when set (e.g. untrained weights)
    meta: dict = field(default_factory=dict)


def list_model_choices(checkpoints_dir: Path | None = None, runs: Path | None = None) -> list[ModelChoice]:
    """Every model the picker offers, shipped checkpoints first."""
    checkpoints_dir = CHECKPOINTS_DIR if checkpoints_dir is None else Path(checkpoints_dir)
    runs = runs_dir() if runs is None else Path(runs)
    out: list[ModelChoice] = []
    if checkpoints_dir.is_dir():
        for p in sorted(checkpoints_dir.glob("*.pt")):
            out.append(ModelChoice(str(p), f"shipped: {p.stem}", "checkpoint"))
    out.extend(_run_choices(runs))
    out.append(ModelChoice(RANDOM_COMPACT, "compact256, random weights (untrained)", "random"))
    for mid, label in TORCHVISION_MODELS.items():
        out.append(ModelChoice(mid, label, "torchvision"))
    return out


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone, a dangling link, unreadable: listed last
        return 0.0


def _run_choices(runs: Path) -> list[ModelChoice]:
    """The best.pt of every run folder, newest first. A folder someone else damaged
    (unreadable, a truncated best.pt, not a checkpoint at all) never breaks the list:
    its entry says what is wrong (looked at as a zip archive only, nothing unpickled)
    and loading it is refused with that reason."""
    try:
        found = sorted(runs.glob("*/checkpoints/best.pt"), key=_mtime, reverse=True) if runs.is_dir() else []
    except OSError:
        return []
    out = []
    for p in found:
        problem = checkpoint_problem(p)
        label = f"training run: {p.parent.parent.name} (best.pt" + (f", damaged: {problem})" if problem else ")")
        out.append(ModelChoice(str(p), label, "run"))
    return out


def extra_choice(model_id: str | None, roots: tuple[Path, ...] | None = None) -> ModelChoice | None:
    """A picker entry for a model the list does not hold: a checkpoint elsewhere on disk
    or a weights file (`weights_file_id`) the user loaded; None for anything else.

    roots: the folders such a file may lie in (the data roots, the runs folder, the
    shipped checkpoints, the weights uploads); a model id arrives in shared links, so a
    file outside them is never opened, whether it exists or not (`ssd.data.paths.confine`).
    None: no confinement (the library's own use)."""
    if not model_id:
        return None
    arch, path = _split_weights_file_id(model_id) if model_id.startswith(WEIGHTS_FILE_PREFIX) else (None, Path(model_id))
    if arch is not None and arch not in WEIGHTS_FILE_ARCHS:
        return None
    try:
        confine(path, "model file", roots, kind="file")  # inside the roots, and a regular file
    except PathRefused:
        return None
    if arch is not None:
        return ModelChoice(model_id, f"weights file: {path.name} ({WEIGHTS_FILE_ARCHS[arch]})", "file")
    return ModelChoice(model_id, f"checkpoint: {model_id}", "checkpoint")


def default_model_id(choices: list[ModelChoice]) -> str:
    """The shipped checkpoint if present, else the first checkpoint, else random compact."""
    ids = [c.model_id for c in choices]
    if str(SHIPPED_CHECKPOINT) in ids:
        return str(SHIPPED_CHECKPOINT)
    for c in choices:
        if c.kind in ("checkpoint", "run"):
            return c.model_id
    return RANDOM_COMPACT


def checkpoint_label(path: str | os.PathLike) -> str:
    """A checkpoint named so that two runs' files differ: "run demo1, best.pt" for
    `.../demo1/checkpoints/best.pt`, else the file name."""
    p = Path(path)
    if p.parent.name == "checkpoints" and p.parent.parent.name:
        return f"run {p.parent.parent.name}, {p.name}"
    return p.name


def choice_label(model_id: str, choices: list[ModelChoice]) -> str:
    for c in choices:
        if c.model_id == model_id:
            return c.label
    return model_id


def weights_file_id(arch: str, path: str | os.PathLike) -> str:
    """The model id of a local torchvision-format weights file for `arch`."""
    if arch not in WEIGHTS_FILE_ARCHS:
        raise ModelLoadError(f"unknown architecture {arch!r}: weights files are for {sorted(WEIGHTS_FILE_ARCHS)}")
    return f"{WEIGHTS_FILE_PREFIX}{arch}:{Path(path)}"


def _split_weights_file_id(model_id: str) -> tuple[str, Path]:
    arch, _, path = model_id[len(WEIGHTS_FILE_PREFIX):].partition(":")
    return arch, Path(path)


def model_cache_key(model_id: str) -> str:
    """The id plus the file's modification time, so a re-trained best.pt reloads."""
    p = _split_weights_file_id(model_id)[1] if model_id.startswith(WEIGHTS_FILE_PREFIX) else Path(model_id)
    if not model_id.startswith(("random:", "torchvision:")):
        try:
            return f"{model_id}@{p.stat().st_mtime_ns}"
        except OSError:
            return model_id
    return model_id


def load_model(model_id: str) -> LoadedModel:
    """Load a model by id (see module docstring). Raises ModelLoadError with the reason."""
    import torch

    if model_id == RANDOM_COMPACT:
        torch.manual_seed(0)  # the same "random" model on every load
        model = build("compact256", num_classes=len(CLASSES))
        return LoadedModel(
            model.eval(), list(CLASSES), model_id, "compact256, random weights",
            warning="This model has random (untrained) weights: its scores and detections mean "
                    "nothing. Default boxes, matching and the loss are still exact.",
        )
    if model_id in TORCHVISION_MODELS:
        name = model_id.split(":", 1)[1]

        try:
            model = build(name, num_classes=91, weights="coco")
        except DownloadError as e:  # offline: say what failed and what to do; the caller falls back
            raise ModelLoadError(download_message(WEIGHTS_FILE_ARCHS[name], e)) from e
        except Exception as e:
            raise ModelLoadError(f"Could not load {TORCHVISION_MODELS[model_id]}: {user_reason(e)} "
                                 f"{LOAD_FROM_FILE_HINT}") from e

        names = coco_class_names(name)
        return LoadedModel(model.eval(), names, model_id, TORCHVISION_MODELS[model_id])
    if model_id.startswith(WEIGHTS_FILE_PREFIX):
        return _load_weights_file(model_id)
    path = Path(model_id)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path.name} does not exist", path)
    problem = checkpoint_problem(path)
    if problem:
        raise ModelLoadError(f"Could not load checkpoint {path.name}: {user_reason(ValueError(problem))}", path)

    try:
        model, meta = load_checkpoint(str(path))
    except Exception as e:
        raise ModelLoadError(f"Could not load checkpoint {path.name}: {user_reason(e)}", path) from e
    names = list(meta.get("class_names") or [])
    c = model.cfg.num_classes
    if len(names) != c:
        names = ["background"] + [f"class {i}" for i in range(1, c)]
    return LoadedModel(model.eval(), names, model_id, path.stem, meta=dict(meta))


def _load_weights_file(model_id: str) -> LoadedModel:
    """A torchvision-format state dict on disk (weights_only=True) in its architecture,
    with COCO's class names when it has COCO's 91 classes."""

    arch, path = _split_weights_file_id(model_id)
    if arch not in WEIGHTS_FILE_ARCHS:
        raise ModelLoadError(f"unknown architecture {arch!r} for {path.name}: one of {sorted(WEIGHTS_FILE_ARCHS)}", path)
    try:
        state = read_state_dict(path)
        num_classes = _num_classes_of(state)
        model = build(arch, num_classes=num_classes, weights=path)
    except WeightsError as e:
        raise ModelLoadError(f"Could not load {path.name} as {WEIGHTS_FILE_ARCHS[arch]}: {user_reason(e)}", path) from e
    names = coco_class_names(arch) if num_classes == 91 else ["background"] + [f"class {i}" for i in range(1, num_classes)]
    return LoadedModel(model.eval(), names, model_id, f"{WEIGHTS_FILE_ARCHS[arch]} from {path.name}")


def _num_classes_of(state: dict) -> int:
    """Classes (background included) of a torchvision SSD state dict, from the first
    level's last conv in each head: class outputs / (box outputs / 4 coordinates)."""

    def last_bias(head: str):
        keys = [k for k in state if k.startswith(f"head.{head}.module_list.0.") and k.endswith(".bias")]
        return state[keys[-1]].shape[0] if keys else None

    cls, reg = last_bias("classification_head"), last_bias("regression_head")
    if not cls or not reg or reg % 4 or cls % (reg // 4):
        raise WeightsError("it holds no torchvision SSD heads (head.classification_head / head.regression_head)")
    return int(cls // (reg // 4))


def app_torch_threads() -> int:
    """Threads torch should use inside the app: env SSD_TORCH_THREADS, else half the cores.

    The explorer runs many small tensor ops per click. With every core busy (a training
    job, the browser, Streamlit itself), torch's intra-op threads wait on each other and
    a 2-thread `run_stages` on 2 cores measured ~10x slower than 1 thread; half the
    cores keeps a core free for everything else.
    """
    env = os.environ.get("SSD_TORCH_THREADS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"SSD_TORCH_THREADS must be a whole number, got {env!r}") from None
    return max(1, (os.cpu_count() or 2) // 2)


def trained_on_procedural(loaded: LoadedModel) -> bool:
    """Whether the model's checkpoint says it was trained on the procedural drawn scenes."""
    recipe = loaded.meta.get("recipe") or {}
    return isinstance(recipe, dict) and recipe.get("dataset") == "procedural"


def model_caveat(loaded: LoadedModel, image_source: str) -> str | None:
    """What a user must know before reading this model's detections on this image, or None.

    A model trained only on drawn shapes, run on the user's own photo, reports confident
    nonsense ("house 0.78" on a cat's eye): say what it knows and what to pick instead.
    """
    if image_source != "upload" or not trained_on_procedural(loaded):
        return None
    classes = ", ".join(loaded.class_names[1:])
    return (f"{loaded.label} was trained only on procedurally drawn scenes of {len(loaded.class_names) - 1} "
            f"shape classes ({classes}); on a photo its classes and scores mean little. For photos pick a "
            "COCO model in the sidebar (torchvision SSD300 / SSDlite; offline, give their weights file under "
            "\"Load a model from a weights file\"). Every SSD step below is still computed exactly for the "
            "chosen model.")
