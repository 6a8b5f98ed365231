"""Training pieces `ssd.train` puts together: datasets from arguments, the optimizer,
the learning-rate schedule, a resumable distributed sampler, and device selection.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler, Subset

from ssd.data import procedural
from ssd.data.coco import COCODataset
from ssd.data.common import DatasetError
from ssd.data.transforms import eval_transform, train_transform
from ssd.data.voc import VOC_CLASSES, VOCDataset

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adamw", "sgd")


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda if available else cpu; "cuda" without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA GPU")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def voc_class_names(root, split: str, choice: str = "auto") -> tuple[str, ...]:
    """Class list for a VOC folder: "voc" (the 20 classes), "shapes" (the procedural
    classes), a comma list, or "auto": VOC's if every <name> in the split is a VOC class,
    else the procedural classes if they cover them, else the list covering more objects."""
    if choice == "voc":
        return VOC_CLASSES
    if choice == "shapes":
        return procedural.CLASSES
    if choice != "auto":
        names = tuple(n.strip() for n in choice.split(",") if n.strip())
        return names if names[:1] == ("background",) else ("background", *names)
    from ssd.data.formats import AnnotationError, read_voc_xml

    root = Path(root)
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    counts: dict[str, int] = {}
    if split_file.is_file():
        ids = [ln.split()[0] for ln in split_file.read_text().splitlines() if ln.strip()]  # "id [flag]" lines
        for image_id in ids[:2000]:
            try:
                ann = read_voc_xml(root / "Annotations" / f"{image_id}.xml")
            except AnnotationError:
                continue  # the dataset reports bad files itself
            for o in ann.objects:
                counts[o.name] = counts.get(o.name, 0) + 1
    counts.pop("", None)
    if set(counts) <= set(VOC_CLASSES):
        return VOC_CLASSES
    if set(counts) <= set(procedural.CLASSES):
        return procedural.CLASSES
    # Some names fit neither list: take the list covering more objects; the dataset then
    # reports (or with --skip-bad skips) the samples with unknown names.
    covered = {names: sum(n for c, n in counts.items() if c in names) for names in (VOC_CLASSES, procedural.CLASSES)}
    return max(covered, key=covered.get)


def build_datasets(args, image_size: int) -> tuple[Dataset, Dataset, tuple[str, ...], int]:
    """(train set, val set, class names, samples skipped as bad) for the parsed arguments."""
    t_train = train_transform(image_size, args.augment)
    t_eval = eval_transform(image_size)
    if args.dataset == "procedural":
        train = procedural.ProceduralDataset(args.train_size, args.data_seed, image_size, t_train, cache=True)
        # Validation scenes use the next seed: disjoint from the training scenes.
        val = procedural.ProceduralDataset(args.val_size, args.data_seed + 1, image_size, t_eval, cache=True)
        return train, val, procedural.CLASSES, 0
    if args.dataset == "voc":
        if not args.data_root:
            raise DatasetError("--dataset voc needs --data-root (the folder holding JPEGImages/)")
        names = voc_class_names(args.data_root, "train", args.classes)
        train = VOCDataset(args.data_root, "train", names, t_train, skip_bad=args.skip_bad)
        val = VOCDataset(args.data_root, "val", names, t_eval, skip_bad=args.skip_bad)
        return train, val, names, train.num_skipped + val.num_skipped
    if args.dataset == "coco":
        if not args.coco_json or not args.coco_images:
            raise DatasetError("--dataset coco needs --coco-json and --coco-images")
        train = COCODataset(args.coco_json, args.coco_images, t_train, skip_bad=args.skip_bad)
        if args.coco_val_json:
            val = COCODataset(args.coco_val_json, args.coco_val_images or args.coco_images, t_eval,
                              skip_bad=args.skip_bad)
            if val.class_names != train.class_names:
                raise DatasetError(f"{args.coco_val_json}: categories differ from {args.coco_json}")
            return train, val, train.class_names, train.num_skipped + val.num_skipped
        # No val JSON: hold out the last images (at most a fifth) for validation.
        n = len(train)
        n_val = max(1, min(args.val_size, n // 5))
        if n - n_val < 1:
            raise DatasetError(f"{args.coco_json}: {n} image(s) is too few to hold out a validation set")
        val_full = COCODataset(args.coco_json, args.coco_images, t_eval, skip_bad=args.skip_bad)
        return (Subset(train, range(n - n_val)), Subset(val_full, range(n - n_val, n)), train.class_names,
                train.num_skipped)
    raise ValueError(f"unknown --dataset {args.dataset!r}")


def build_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "sgd":  # the paper: SGD, momentum 0.9, weight decay 5e-4 (Sec. 3)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"--optimizer must be one of {OPTIMIZERS}, got {name!r}")


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int, step_milestones=(2 / 3, 8 / 9)):
    """Multiplier of the base lr at a step: linear warmup, then cosine to 0, steps
    x0.1 at 2/3 and 8/9 of training (the paper's drops, Sec. 3.1), or constant."""
    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {SCHEDULES}, got {schedule!r}")
    total = max(1, int(total_steps))
    warm = max(0, int(warmup_steps))

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return 0.1 ** sum(step >= m * total for m in step_milestones)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * t))

    return f


class ResumableSampler(Sampler[int]):
    """DistributedSampler (shuffle per epoch with `seed + epoch`, one shard per rank)
    that can skip the first `skip` indices of its shard, so a resumed run continues
    mid-epoch exactly where it stopped."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        self.inner = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                                        seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip
