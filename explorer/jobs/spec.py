"""What a training job is: its settings, their checks, and the argv they become.

`JobSpec` is what the user picked on the training page: the training options
themselves (`ssd.training.options.TrainOptions`, declared once, with their choices,
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
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from explorer.jobs.limits import JobError, JobLimits, check_budget, inside_roots, read_regular
from ssd.data.formats import AnnotationError, MAX_VOC_XML_BYTES, read_coco_json, read_voc_xml
from ssd.device import resolve_device
from ssd.training.options import TrainOptions

__all__ = ["JobError", "JobSpec", "sanitize_run_name",
           "job_device", "check_voc_root", "check_coco", "validate_spec", "train_argv"]
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
MAX_NAME_LEN = 64
_MAX_XML_CHECKED = 200  # VOC: stop looking for a usable sample after this many files
# Options the manager sets itself: the run directory, resuming, the resolved device.
MANAGED_OPTIONS = ("out", "resume")


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


def job_device(device: str, cuda_available: bool, gpu_count: int, nproc: int = 1) -> str:
    """The device class a run trains on, "cpu" or "cuda" (what the job file records), from
    `ssd.device.resolve_device` with what the job manager probed; JobError when impossible."""
    try:
        return resolve_device(device, nproc, cuda_available=cuda_available, gpu_count=gpu_count).type
    except (ValueError, RuntimeError) as exc:
        raise JobError(str(exc)) from None


def _split_ids(split_file: Path, limits: JobLimits) -> list[str]:
    text = read_regular(split_file, "VOC split file", limits.max_list_bytes).decode("utf-8", errors="replace")
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def _voc_sample_problem(root: Path, stem: str, roots) -> str | None:
    """Why Annotations/<stem>.xml is no usable sample (None when it is one)."""

    xml_path = root / "Annotations" / f"{stem}.xml"
    try:  # each file resolved (a link may not leave the roots) and opened without blocking
        data = read_regular(inside_roots(str(xml_path), roots, "VOC annotation"), "VOC annotation",
                            MAX_VOC_XML_BYTES)
        voc = read_voc_xml(data, source=str(xml_path))  # the one VOC reader, as ssd.training.train reads it
    except (JobError, AnnotationError) as exc:
        return str(exc)
    image = root / "JPEGImages" / (stem + ".jpg")  # ssd.data.voc opens JPEGImages/<id>.jpg, as the devkit
    if not image.is_file():
        return f"{xml_path.name}: image {image.name} not in JPEGImages/"
    return None if voc.objects else f"{xml_path.name}: no <object>"


def _check_voc(data_root: str, splits: tuple[str, ...], roots, limits: JobLimits) -> tuple[str, int]:
    if not str(data_root).strip():
        raise JobError("VOC: give the dataset folder (the one holding Annotations/ and JPEGImages/)")
    root = inside_roots(data_root, roots, "VOC folder")
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
        if not split_file.exists():
            raise JobError(f"VOC: {split_file} is missing (training reads the {'/'.join(splits)} splits)")
        ids[split] = _split_ids(inside_roots(str(split_file), roots, "VOC split file"), limits)
        if not ids[split]:
            raise JobError(f"VOC: {split_file} lists no image")

    problems = []
    for stem in ids[splits[0]][:_MAX_XML_CHECKED]:
        problem = _voc_sample_problem(root, stem, roots)
        if problem is None:
            return f"{len(ids[splits[0]])} {splits[0]} ids", len(ids[splits[0]])
        problems.append(problem)
    raise JobError(f"VOC: no usable sample in {root}; first problems: " + "; ".join(problems[:3]))


def check_voc_root(data_root: str, splits: tuple[str, ...] = ("train", "val"), roots=None,
                   limits: JobLimits | None = None) -> str:
    """Raise JobError unless `data_root` holds a usable Pascal VOC sample: the split
    files ImageSets/Main/<split>.txt that `ssd.train` reads (train and val), and in the
    train split an Annotations/<id>.xml that parses, names at least one object, and
    whose image is in JPEGImages/. Returns a one-line summary ("N train ids").

    roots: folders every path must resolve into (None: anywhere). Split and XML files are
    read only when they are regular files within `limits` (a FIFO never blocks)."""
    return _check_voc(data_root, splits, roots, limits or JobLimits())[0]


def _check_coco(coco_json: str, coco_images: str, roots, limits: JobLimits) -> tuple[str, int]:
    if not str(coco_json).strip() or not str(coco_images).strip():
        raise JobError("COCO: give both the annotation JSON file and the image folder")
    json_path = inside_roots(coco_json, roots, "COCO annotation file")
    img_dir = inside_roots(coco_images, roots, "COCO image folder")
    if not img_dir.is_dir():
        raise JobError(f"COCO: image folder {img_dir} does not exist")

    data = read_regular(json_path, "COCO annotation file", limits.max_coco_json_bytes)
    try:  # size-checked above; the reader refuses deep nesting, huge numbers, a broken structure
        doc = read_coco_json(data, source=str(json_path), max_bytes=limits.max_coco_json_bytes)
    except AnnotationError as exc:
        raise JobError(f"COCO: {exc}") from None
    for key, entries in (("images", doc.images), ("annotations", doc.annotations_by_image),
                         ("categories", doc.category_ids)):
        if not entries:
            raise JobError(f"COCO: {json_path} has an empty '{key}' list")
    if len(doc.images) < 2:
        raise JobError(f"COCO: {json_path} has {len(doc.images)} image; training holds some out "
                       "for validation, so it needs at least 2")
    n_ann = sum(len(v) for v in doc.annotations_by_image.values())
    for im in doc.images:
        if im.id in doc.annotations_by_image and (img_dir / im.file_name).is_file():
            return f"{len(doc.images)} images, {n_ann} annotations", len(doc.images)
    raise JobError(f"COCO: none of the annotated images of {json_path.name} is in {img_dir}")


def check_coco(coco_json: str, coco_images: str, roots=None, limits: JobLimits | None = None) -> str:
    """Raise JobError unless `coco_json` is a COCO detection file (read by
    `ssd.data.formats.read_coco_json` after a regular-file and size check) with images,
    annotations and categories, and at least one annotated image is in `coco_images`.
    Returns a one-line summary ("N images, M annotations"). roots: as `check_voc_root`."""
    return _check_coco(coco_json, coco_images, roots, limits or JobLimits())[0]


def _check_file_option(opts, roots) -> None:
    """init / backbone_weights given as paths must resolve inside `roots` (the data roots
    plus the runs and shipped checkpoints folders, as `launch` passes them)."""
    for name in ("init", "backbone_weights"):
        value = str(getattr(opts, name, "") or "")
        if value and value not in ("coco", "imagenet"):
            path = inside_roots(value, roots, f"{name} checkpoint")
            if not path.is_file():
                raise JobError(f"{name} checkpoint: {path} is not a file")


def validate_spec(spec: JobSpec, roots=None, limits: JobLimits | None = None, checkpoint_roots=None) -> str:
    """Raise JobError naming the first bad setting; returns a dataset summary line.

    roots: folders dataset paths must resolve into (None: anywhere); checkpoint_roots:
    folders an init / backbone weights file may be in (default: `roots`); limits: the
    resource limits (default `JobLimits()`), batch x model and images x epochs."""
    limits = limits or JobLimits()
    if not isinstance(spec.nproc, int) or spec.nproc < 1:
        raise JobError(f"number of processes must be an integer >= 1, got {spec.nproc!r}")
    try:
        opts = spec.train.validate()
    except ValueError as e:
        raise JobError(str(e)) from None
    check_budget(opts, spec.nproc, None, limits)  # batch first: no dataset read for a refused launch
    _check_file_option(opts, roots if checkpoint_roots is None else checkpoint_roots)
    if opts.dataset == "procedural":
        summary, n = (f"procedural: {opts.train_size} train / {opts.val_size} val scenes, seed {opts.data_seed}",
                      opts.train_size)
    elif opts.dataset == "voc":
        summary, n = _check_voc(opts.data_root, ("train", "val"), roots, limits)
        summary = "VOC: " + summary
    else:
        summary, n = _check_coco(opts.coco_json, opts.coco_images, roots, limits)
        summary = "COCO: " + summary
        for key in ("coco_val_json", "coco_val_images"):
            if str(getattr(opts, key) or "").strip():
                inside_roots(getattr(opts, key), roots, key.replace("_", " "))
    check_budget(opts, spec.nproc, n, limits)
    return summary


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
