"""What an evaluation is: a checkpoint file, a dataset and the post-processing thresholds.

The cache key of an evaluation is the sha1 of (the checkpoint file's sha1, the dataset's
description, the thresholds): the same file evaluated the same way is found again after
a restart, and a re-trained `best.pt` (new bytes, same path) is a new evaluation.

`check_inputs` is the quick check made before a background run starts (checkpoint
readable, classes fit the dataset, dataset paths exist, not empty); the run itself
raises the same library errors for what only the full pass finds (no ground truth).
No streamlit import.
"""
from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

from ssd.data.common import DatasetError
from ssd.data.paths import PathRefused, confine
from ssd.data.procedural import scene_seed
from ssd.evaluation.evaluate import build_eval_dataset
from ssd.postprocess import DEFAULTS, PostprocessConfig
from ssd.training import checkpoint

DATASET_KINDS = ("procedural", "voc", "coco")


class EvalInputError(ValueError):
    """A checkpoint or dataset that cannot be evaluated; the message names what and why."""


@dataclass(frozen=True)
class DatasetSpec:
    """The dataset of an evaluation (the `python -m ssd.evaluate` dataset flags)."""

    kind: str = "procedural"  # "procedural", "voc" or "coco"
    seed: int = 1000  # procedural: scene seed (training uses 0, validation 1)
    num_images: int = 200  # procedural: scenes; voc/coco: first N images (0: all)
    data_root: str = ""  # voc: the folder holding JPEGImages/, Annotations/, ImageSets/
    split: str = "val"  # voc: the image set (ImageSets/Main/<split>.txt)
    coco_json: str = ""  # coco: the instances JSON
    coco_images: str = ""  # coco: the images folder

    def describe(self) -> str:
        """One line naming the data (part of the cache key and shown on the page)."""
        if self.kind == "procedural":
            return f"procedural seed {self.seed}, {self.num_images} scenes"
        n = "all" if not self.num_images else f"first {self.num_images}"
        if self.kind == "voc":
            return f"VOC {Path(self.data_root).resolve()} split {self.split}, {n} images"
        return f"COCO {Path(self.coco_json).resolve()} images {Path(self.coco_images).resolve()}, {n} images"

    def args(self) -> argparse.Namespace:
        """The `ssd.evaluation.evaluate.build_eval_dataset` arguments (its parser's names)."""
        return argparse.Namespace(dataset=self.kind, seed=self.seed, num_images=self.num_images,
                                  data_root=self.data_root, split=self.split, coco_json=self.coco_json,
                                  coco_images=self.coco_images, skip_bad=False)


@dataclass(frozen=True)
class EvalSpec:
    """One evaluation: checkpoint, data and the thresholds of `ssd.postprocess.PostprocessConfig`."""

    checkpoint: str  # path of an `ssd.training.checkpoint` file
    dataset: DatasetSpec = field(default_factory=DatasetSpec)  # the data
    score_thresh: float = DEFAULTS.score_thresh  # candidates need a softmax score > this
    nms_thresh: float = DEFAULTS.nms_thresh  # NMS IoU
    topk_candidates: int = DEFAULTS.topk_candidates  # best boxes per class entering NMS
    detections_per_img: int = DEFAULTS.detections_per_img  # final detections per image

    def thresholds(self) -> dict:
        return {"score_thresh": self.score_thresh, "nms_thresh": self.nms_thresh,
                "topk_candidates": self.topk_candidates, "detections_per_img": self.detections_per_img}

    def to_dict(self) -> dict:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "EvalSpec":
        d = dict(d)
        d["dataset"] = DatasetSpec(**d.get("dataset", {}))
        return EvalSpec(**d)


@lru_cache(maxsize=32)
def _file_sha1(path: str, mtime_ns: int, size: int) -> str:  # noqa: ARG001 - mtime/size key the cache
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha1(path) -> str:
    """sha1 of a file's bytes (cached by path, mtime and size). EvalInputError if unreadable."""
    p = Path(path)
    if not p.is_file():
        raise EvalInputError(f"checkpoint {p} does not exist" if not p.exists() else f"checkpoint {p} is not a file")
    try:
        st = p.stat()
        return _file_sha1(str(p.resolve()), st.st_mtime_ns, st.st_size)
    except OSError as e:
        raise EvalInputError(f"checkpoint {p}: cannot read it ({e.strerror or e})") from e


def eval_key(spec: EvalSpec) -> str:
    """The cache key: 16 hex digits of sha1(checkpoint sha1, dataset description, thresholds)."""
    doc = {"checkpoint_sha1": file_sha1(spec.checkpoint), "dataset": spec.dataset.describe(),
           "thresholds": spec.thresholds()}
    return hashlib.sha1(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def check_paths(spec: EvalSpec, roots: tuple[Path, ...], checkpoint_roots: tuple[Path, ...]) -> None:
    """Refuse (EvalInputError) a checkpoint outside `checkpoint_roots` or not a regular
    file, and dataset paths outside `roots` (`ssd.data.paths.confine`: links followed,
    the same message for whatever lies outside, NUL bytes named). Nothing is read."""

    d = spec.dataset
    checks = [(spec.checkpoint, "checkpoint", checkpoint_roots, "file")]
    if d.kind == "voc":
        checks.append((d.data_root, "VOC folder", roots, "dir"))
    elif d.kind == "coco":
        checks += [(d.coco_json, "COCO JSON", roots, "file"), (d.coco_images, "COCO image folder", roots, "dir")]
    for path, what, allowed, kind in checks:
        if not str(path).strip():
            raise EvalInputError(f"no {what} given: type its path")
        try:
            confine(path, what, allowed, kind=kind)
        except PathRefused as e:
            raise EvalInputError(str(e)) from None


def load_checked(spec: EvalSpec):
    """(model, class_names, dataset) of `spec`, or EvalInputError naming the problem:
    a missing, truncated or corrupt checkpoint, classes that differ from the dataset's,
    missing dataset files, an empty dataset."""

    try:
        PostprocessConfig(**spec.thresholds())
    except ValueError as e:
        raise EvalInputError(f"thresholds: {e}") from e
    d = spec.dataset
    if d.kind not in DATASET_KINDS:
        raise EvalInputError(f"dataset kind {d.kind!r} is not one of {list(DATASET_KINDS)}")
    if d.kind == "procedural" and d.num_images < 1:
        raise EvalInputError("the dataset is empty: a procedural dataset needs at least 1 scene")
    try:
        model, meta = checkpoint.load(spec.checkpoint)
    except checkpoint.CheckpointError as e:
        raise EvalInputError(str(e)) from e
    class_names = list(meta["class_names"])
    try:
        # Raises for classes that differ from the checkpoint's (procedural, COCO categories).
        ds = build_eval_dataset(d.args(), model.cfg.image_size, class_names)
    except (DatasetError, OSError) as e:
        raise EvalInputError(f"{d.describe()}: {e}") from e
    if len(ds) == 0:
        raise EvalInputError(f"{d.describe()}: the dataset is empty: there is nothing to evaluate")
    return model.eval(), class_names, ds


def _base(ds):
    """The dataset under a `torch.utils.data.Subset`."""
    return getattr(ds, "dataset", ds)


def image_sources(ds, spec: DatasetSpec) -> list[str]:
    """Where each evaluated image comes from, in dataset order: "procedural:scene_<seed>"
    (an `explorer.inputs.samples` id the sidebar opens) or the image file's path."""
    if spec.kind == "procedural":
        return [f"procedural:scene_{scene_seed(spec.seed, i)}" for i in range(len(ds))]
    base = _base(ds)
    indices = list(getattr(ds, "indices", range(len(base))))
    return [str(base.samples[i][0]) for i in indices]
