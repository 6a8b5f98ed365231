"""Datasets from training options (as lufficc/SSD's `data/build.py`): `build_datasets`
gives the train and validation sets of `--dataset procedural | voc | coco` at the model's
input size, with the SSD augmentation on the training set; `voc_class_names` picks a VOC
folder's class list. Items as every dataset here: (image (3, S, S) float in [0, 1],
{"boxes": (G, 4) xyxy normalised, "labels": (G,) int64 in 1..C-1}).
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Dataset, Subset

from ssd.data import procedural
from ssd.data.coco import COCODataset
from ssd.data.common import DatasetError
from ssd.data.formats import AnnotationError, read_voc_xml
from ssd.data.transforms import eval_transform, parse_augment_steps, train_transform
from ssd.data.voc import VOC_CLASSES, VOCDataset, read_split, split_path


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
    root = Path(root)
    counts: dict[str, int] = {}
    if split_path(root, split).is_file():
        for image_id in read_split(root, split)[:2000]:
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
    """(train set, val set, class names, samples skipped as bad) for `args` (a
    `ssd.training.options.TrainOptions`) at `image_size` px. DatasetError names a bad file."""
    steps = getattr(args, "augment_steps", "")  # '' = the preset of --augment
    t_train = train_transform(image_size, args.augment, steps=parse_augment_steps(steps) if steps else None)
    t_eval = eval_transform(image_size)
    if args.dataset == "procedural":
        size = procedural.parse_object_size(args.object_size) if args.object_size else procedural.DEFAULT_OBJECT_SIZE
        train = procedural.ProceduralDataset(args.train_size, args.data_seed, image_size, t_train, cache=True,
                                             object_size=size)
        # Validation scenes use the next seed: disjoint from the training scenes.
        val = procedural.ProceduralDataset(args.val_size, args.data_seed + 1, image_size, t_eval, cache=True,
                                           object_size=size)
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
