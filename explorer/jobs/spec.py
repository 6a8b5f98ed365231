"""What a training job is: its settings, their checks, and the argv they become.

`JobSpec` is what the user picked on the training page: the training options
themselves (`ssd.train_options.TrainOptions`, declared once, with their choices,
defaults and rules) plus how many processes run them. `validate_spec` refuses a bad
one *before* anything is launched (an option out of range, missing dataset folders,
a COCO file that does not parse, an impossible device); `train_argv` turns it into
the argument list of `python -m ssd.train` (or `torch.distributed.run` for several
GPU processes) with `TrainOptions.to_argv`, the same function that writes a
checkpoint's recorded command. Nothing here reaches a shell: argv lists only.
No streamlit import.
"""
from __future__ import annotations

import dataclasses
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ssd.recipes import RECIPES
from ssd.train_options import DATASETS, DEVICES, MODEL_NAMES as MODELS, TrainOptions

__all__ = ["DATASETS", "DEVICES", "MODELS", "RECIPES", "JobError", "JobSpec", "TrainOptions", "sanitize_run_name",
           "resolve_device", "check_voc_root", "check_coco", "validate_spec", "train_argv"]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_NAME_LEN = 64
_MAX_XML_CHECKED = 200  # VOC: stop looking for a usable sample after this many files
# Options the manager sets itself: the run directory, resuming, the resolved device.
MANAGED_OPTIONS = ("out", "resume")


class JobError(ValueError):
    """A job cannot be launched/controlled; the message says what is wrong."""


@dataclass(frozen=True)
class JobSpec:
    """A training job: the options of its `ssd.train` run and its process count."""

    train: TrainOptions = field(default_factory=TrainOptions)  # ssd.train's options (out/resume: set at launch)
    nproc: int = 1  # processes (GPUs) per run; >1 launches torch.distributed.run

    @classmethod
    def of(cls, nproc: int = 1, **options) -> "JobSpec":
        """`JobSpec(TrainOptions(**options), nproc)`; JobError names an unknown option."""
        known = {f.name for f in dataclasses.fields(TrainOptions)} - set(MANAGED_OPTIONS)
        unknown = sorted(set(options) - known)
        if unknown:
            raise JobError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
        return cls(TrainOptions(**options), nproc)

    def to_dict(self) -> dict:
        """JSON-ready: {"train": {option: value}, "nproc": int}."""
        return {"train": self.train.to_dict(), "nproc": self.nproc}

    @classmethod
    def from_dict(cls, data: dict) -> "JobSpec":
        return cls.of(data.get("nproc", 1), **{k: v for k, v in data["train"].items() if k not in MANAGED_OPTIONS})


def sanitize_run_name(name: str) -> str:
    """A run name safe as one directory name: only [A-Za-z0-9._-], no path
    separators, no `..`, no leading dot or dash, at most 64 characters; "run" when
    nothing is left. `"../../etc/passwd"` -> `"etc-passwd"`."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", str(name).strip())
    name = re.sub(r"\.{2,}", ".", name)  # no ".." anywhere
    name = re.sub(r"-{2,}", "-", name)
    name = name.strip(".-")[:MAX_NAME_LEN].strip(".-")
    return name or "run"


def resolve_device(device: str, cuda_available: bool, gpu_count: int, nproc: int = 1) -> str:
    """The device class a run trains on, "cpu" or "cuda"; JobError when impossible."""
    if device not in DEVICES:
        raise JobError(f"device must be one of {DEVICES}, got {device!r}")
    if nproc < 1:
        raise JobError(f"number of processes must be >= 1, got {nproc}")
    if device == "cuda" and not cuda_available:
        raise JobError("device 'cuda' asked for, but torch sees no CUDA GPU on this machine")
    resolved = "cuda" if device == "cuda" or (device == "auto" and cuda_available) else "cpu"
    if nproc > 1 and resolved != "cuda":
        raise JobError(f"{nproc} processes need CUDA GPUs; this run would train on the CPU")
    if nproc > max(gpu_count, 1) and resolved == "cuda":
        raise JobError(f"{nproc} processes asked for, but only {gpu_count} GPU(s) are visible")
    return resolved


def check_voc_root(data_root: str, splits: tuple[str, ...] = ("train", "val")) -> str:
    """Raise JobError unless `data_root` holds a usable Pascal VOC sample: the split
    files ImageSets/Main/<split>.txt that `ssd.train` reads (train and val), and in the
    train split an Annotations/<id>.xml that parses, names at least one object, and
    whose image is in JPEGImages/. Returns a one-line summary ("N train ids")."""
    if not str(data_root).strip():
        raise JobError("VOC: give the dataset folder (the one holding Annotations/ and JPEGImages/)")
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise JobError(f"VOC: folder {root} does not exist")
    ann, img = root / "Annotations", root / "JPEGImages"
    for sub in (ann, img):
        if not sub.is_dir():
            raise JobError(f"VOC: {root} has no {sub.name}/ folder (expected Annotations/ and JPEGImages/)")
    if not any(ann.glob("*.xml")):
        raise JobError(f"VOC: {ann} holds no .xml annotation file")
    ids = {}
    for split in splits:
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise JobError(f"VOC: {split_file} is missing (training reads the {'/'.join(splits)} splits)")
        ids[split] = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]
        if not ids[split]:
            raise JobError(f"VOC: {split_file} lists no image")
    from ssd.data.formats import AnnotationError, read_voc_xml  # lazy: torch loads only when checking VOC

    problems = []
    for stem in ids[splits[0]][:_MAX_XML_CHECKED]:
        xml_path = ann / f"{stem}.xml"
        try:  # the one VOC reader (defusedxml, size limits), as ssd.train reads it
            voc = read_voc_xml(xml_path)
        except AnnotationError as exc:
            problems.append(str(exc))
            continue
        filename = stem + ".jpg"  # ssd.data.voc opens JPEGImages/<id>.jpg, as the VOC devkit
        if not (img / filename).is_file():
            problems.append(f"{xml_path.name}: image {filename} not in JPEGImages/")
        elif not voc.objects:
            problems.append(f"{xml_path.name}: no <object>")
        else:
            return f"{len(ids[splits[0]])} {splits[0]} ids"
    raise JobError(f"VOC: no usable sample in {root}; first problems: " + "; ".join(problems[:3]))


def check_coco(coco_json: str, coco_images: str) -> str:
    """Raise JobError unless `coco_json` parses as a COCO detection file with images,
    annotations and categories, and at least one annotated image is in `coco_images`.
    Returns a one-line summary ("N images, M annotations")."""
    if not str(coco_json).strip() or not str(coco_images).strip():
        raise JobError("COCO: give both the annotation JSON file and the image folder")
    json_path, img_dir = Path(coco_json).expanduser(), Path(coco_images).expanduser()
    if not json_path.is_file():
        raise JobError(f"COCO: annotation file {json_path} does not exist")
    if not img_dir.is_dir():
        raise JobError(f"COCO: image folder {img_dir} does not exist")
    try:
        with open(json_path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise JobError(f"COCO: {json_path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JobError(f"COCO: {json_path} must hold a JSON object with images/annotations/categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list) or not data[key]:
            raise JobError(f"COCO: {json_path} has no (or an empty) '{key}' list")
    if len(data["images"]) < 2:
        raise JobError(f"COCO: {json_path} has {len(data['images'])} image; training holds some out "
                       "for validation, so it needs at least 2")
    annotated = {a.get("image_id") for a in data["annotations"] if isinstance(a, dict)}
    for im in data["images"]:
        if isinstance(im, dict) and im.get("id") in annotated:
            if (img_dir / str(im.get("file_name", ""))).is_file():
                return f"{len(data['images'])} images, {len(data['annotations'])} annotations"
    raise JobError(f"COCO: none of the annotated images of {json_path.name} is in {img_dir}")


def validate_spec(spec: JobSpec) -> str:
    """Raise JobError naming the first bad setting; returns a dataset summary line."""
    if not isinstance(spec.nproc, int) or spec.nproc < 1:
        raise JobError(f"number of processes must be an integer >= 1, got {spec.nproc!r}")
    try:
        opts = spec.train.validate()
    except ValueError as e:
        raise JobError(str(e)) from None
    if opts.dataset == "procedural":
        return f"procedural: {opts.train_size} train / {opts.val_size} val scenes, seed {opts.data_seed}"
    if opts.dataset == "voc":
        return "VOC: " + check_voc_root(opts.data_root)
    return "COCO: " + check_coco(opts.coco_json, opts.coco_images)


def _absolute(path: str) -> str:
    return str(Path(path).expanduser().resolve()) if path else path


def train_argv(spec: JobSpec, run_dir: Path, device: str, python: str = sys.executable) -> list[str]:
    """argv of the training process for `spec` writing into `run_dir` on `device`
    ("cpu"/"cuda", already resolved): `--out` and the options that differ from
    their defaults. Paths are made absolute (the trainer's cwd is the project root,
    not the user's)."""
    if spec.nproc > 1:
        head = [python, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={spec.nproc}", "-m", "ssd.train"]
    else:
        head = [python, "-m", "ssd.train"]
    opts = dataclasses.replace(
        spec.train, out=str(Path(run_dir).resolve()), resume=False, device=device,
        **{k: _absolute(getattr(spec.train, k)) for k in ("data_root", "coco_json", "coco_images",
                                                          "coco_val_json", "coco_val_images")})
    return head + opts.to_argv()
