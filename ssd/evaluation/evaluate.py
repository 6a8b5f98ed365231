"""Evaluate a checkpoint: COCO AP (pycocotools), VOC2007 11-point mAP, PR curves.

    python -m ssd.evaluate --checkpoint checkpoints/compact256_shapes.pt \
        --dataset procedural --seed 1000 --num-images 500 --json

Detections are the final ones of `ssd.postprocess` (the same code as `ssd.inference`'s
final stage and torchvision's `SSD.postprocess_detections`, with `PostprocessConfig()`'s
thresholds), for a whole batch at once. `--errors` adds the error analysis of
`ssd.evaluation.error_types` (TIDE error types with their dAP, per level, why each miss was missed, AP by
size and by level, the class confusion matrix). Boxes are compared
in the network-input pixel frame (S x S, SSD warps images to a square), so COCO's
small/medium/large split refers to S x S pixels.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ssd.data.coco import COCODataset
from ssd.data.common import DatasetError, collate
from ssd.data.procedural import CLASSES, DEFAULT_OBJECT_SIZE, ProceduralDataset, parse_object_size
from ssd.data.transforms import eval_transform
from ssd.data.voc import VOCDataset
from ssd.device import resolve_device
from ssd.evaluation.error_types import ErrorAnalysis, format_report
from ssd.evaluation.metrics import coco_eval, coco_gt_json, coco_results_json, pr_curves, voc07_map
from ssd.io import write_json_atomic
from ssd.postprocess import PostprocessConfig, decode_boxes_px_in, default_boxes_px_in, postprocess_batch
from ssd.training import checkpoint

def scores_and_boxes(model, head_outputs, image_side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax and decode a batch's `HeadOutputs` (`ssd.postprocess.decode_boxes_px_in`).

    Returns:
        scores (B, A, C) softmax, boxes_px_in (B, A, 4) xyxy network-input pixels, clipped.
    """
    _, default_xyxy_px_in = default_boxes_px_in(model.cfg)
    scores = F.softmax(head_outputs.cls_logits_flat(), dim=-1)  # (B, A, C)
    boxes_px_in = decode_boxes_px_in(head_outputs.bbox_regression_flat(), default_xyxy_px_in, image_side,
                                     model.cfg.variances)  # (B, A, 4)
    return scores, boxes_px_in


@torch.no_grad()
def forward_batch(model, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The network on a batch, then `scores_and_boxes`.

    Args:
        images: (B, 3, S, S) in [0, 1].
    Returns:
        scores (B, A, C) softmax, boxes_px_in (B, A, 4) xyxy network-input pixels, clipped.
    """
    model.eval()
    return scores_and_boxes(model, model(images), images.shape[-1])


@torch.no_grad()
def detect_batch(model, images: torch.Tensor, config: PostprocessConfig | None = None) -> list[dict]:
    """Final detections for a batch (`forward_batch`, then `ssd.postprocess`).

    Args:
        images: (B, 3, S, S) in [0, 1].
        config: the thresholds (default `PostprocessConfig()`, torchvision's).
    Returns:
        B dicts {"boxes_xyxy_px_in": (N, 4) px in the S x S input, "scores": (N,),
        "labels": (N,) in 1..C-1, "default_index": (N,)}, on the CPU.
    """
    scores, boxes_px_in = forward_batch(model, images)
    posts = postprocess_batch(scores, boxes_px_in, config or PostprocessConfig())
    return [{k: v.cpu() for k, v in p.detections().items()} for p in posts]


def _check_classes(model, class_names) -> None:
    if model.num_classes != len(class_names):
        raise DatasetError(f"the checkpoint's model predicts {model.num_classes} classes (background included) "
                           f"but the dataset has {len(class_names)}: {list(class_names)}; evaluate it on data "
                           f"with the classes it was trained on")


@torch.no_grad()
def collect(model, dataset, class_names, device="cpu", batch_size: int = 32,
            config: PostprocessConfig | None = None, errors: bool = False, on_batch=None):
    """Run `model` over `dataset` (items: (image (3, S, S), target with normalised boxes)).

    `on_batch(done, total, scores (B, A, C), boxes_px_in (B, A, 4), batch_gts)`, when given,
    is called after each batch with the images done so far and the batch's threshold-free
    outputs (`forward_batch`), so a caller can report progress, keep the raw outputs, or
    stop the evaluation by raising.

    Returns:
        (gts, dets, analysis): per image {"boxes_xyxy_px_in" (G, 4), "labels" (G,)} and the
        final detections of `detect_batch`; `analysis` is an `ssd.evaluation.error_types.ErrorAnalysis`
        fed with every image when `errors`, else None.
    Raises DatasetError for an empty dataset, one without any ground truth, or classes
    that differ from the model's.
    """
    _check_classes(model, class_names)
    if len(dataset) == 0:
        raise DatasetError("the dataset is empty: there is nothing to evaluate")
    config = config or PostprocessConfig()
    was_training = model.training
    analysis = None
    if errors:
        analysis = ErrorAnalysis(model.cfg, class_names, config)
    gts, dets = [], []
    for images, targets in DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate):
        s = images.shape[-1]
        scores, boxes_px_in = forward_batch(model, images.to(torch.device(device)))
        posts = postprocess_batch(scores, boxes_px_in, config)
        batch_gts = [{"boxes_xyxy_px_in": t["boxes"] * s, "labels": t["labels"]} for t in targets]
        batch_dets = [{k: v.cpu() for k, v in p.detections().items()} for p in posts]
        if analysis is not None:
            analysis.add_batch(batch_gts, batch_dets, scores, boxes_px_in, posts)
        gts += batch_gts
        dets += batch_dets
        if on_batch is not None:
            on_batch(len(gts), len(dataset), scores, boxes_px_in, batch_gts)
    model.train(was_training)
    if not any(len(g["labels"]) for g in gts):
        raise DatasetError(f"none of the {len(gts)} images has a ground-truth box: AP is undefined")
    return gts, dets, analysis


def score(gts: list[dict], dets: list[dict], class_names, curves: bool = False) -> dict:
    """AP of `collect`'s output: {"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
    "per_class", "per_class_AP50", "voc07_map", "voc07_per_class", "num_images"} (+ "curves":
    per class name {"recall", "precision", "ap_voc07", "num_gt"} at IoU 0.5 when `curves`)."""
    res = coco_eval(gts, dets, class_names)
    pr = pr_curves(gts, dets, len(class_names), iou_threshold=0.5)
    res["voc07_map"] = voc07_map(pr)
    res["voc07_per_class"] = {class_names[c]: v["ap_voc07"] for c, v in pr.items()}
    res["num_images"] = len(gts)
    if curves:
        res["curves"] = {class_names[c]: {k: v[k] for k in ("recall", "precision", "ap_voc07", "num_gt")}
                         for c, v in pr.items()}
    return res


def evaluate_model(model, dataset, class_names, device="cpu", batch_size: int = 32, curves: bool = False,
                   config: PostprocessConfig | None = None, errors: bool = False) -> dict:
    """`score(*collect(...))`: the AP figures of `model` on `dataset`, plus the error
    analysis (`ssd.evaluation.error_types.ErrorAnalysis.report()` keys) when `errors`."""
    gts, dets, analysis = collect(model, dataset, class_names, device, batch_size, config, errors)
    return score_with_errors(gts, dets, class_names, analysis, curves)


def score_with_errors(gts: list[dict], dets: list[dict], class_names, analysis, curves: bool = False) -> dict:
    """`score` plus, when `analysis` (an `ssd.evaluation.error_types.ErrorAnalysis`) is given, its report:
    what `evaluate_model(errors=True)` returns, from `collect`'s three outputs."""
    return _with_errors(score(gts, dets, class_names, curves), analysis)


def _with_errors(res: dict, analysis) -> dict:
    """`res` plus the error analysis (and "ap_by_size": AP by GT area in network-input
    pixels, COCO's bins 32^2 / 96^2) when there is one."""
    by_size = res.pop("by_size", {})
    if analysis is not None:
        res.update(analysis.report())
        res["ap_by_size"] = by_size
    return res


def build_eval_dataset(args, image_size: int, class_names):
    t = eval_transform(image_size)
    if args.dataset == "procedural":
        if tuple(CLASSES) != tuple(class_names):
            raise DatasetError(f"procedural scenes have the classes {list(CLASSES[1:])} but the checkpoint's "
                               f"are {list(class_names[1:])}; evaluate it on its own dataset (--dataset voc/coco)")
        size_text = getattr(args, "object_size", "")  # the Evaluation page's args have none
        try:
            object_size = parse_object_size(size_text) if size_text else DEFAULT_OBJECT_SIZE
        except ValueError as e:
            raise DatasetError(str(e)) from None
        return ProceduralDataset(args.num_images, args.seed, image_size, t, object_size=object_size)
    if args.dataset == "voc":
        ds = VOCDataset(args.data_root, args.split, class_names, t, skip_bad=args.skip_bad)
    else:
        ds = COCODataset(args.coco_json, args.coco_images, t, skip_bad=args.skip_bad)
        if tuple(ds.class_names) != tuple(class_names):
            raise DatasetError(f"{args.coco_json}: categories {ds.class_names[1:]} differ from the "
                               f"checkpoint's classes {list(class_names[1:])}")
    if args.num_images and args.num_images < len(ds):
        ds = torch.utils.data.Subset(ds, range(args.num_images))
    return ds


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssd.evaluate", description="Evaluate an SSD checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", choices=("procedural", "voc", "coco"), default="procedural")
    p.add_argument("--seed", type=int, default=1000,
                   help="procedural: scene seed (training uses --data-seed 0 and validation 1)")
    p.add_argument("--num-images", type=int, default=500, help="procedural: scenes; voc/coco: first N (0: all)")
    p.add_argument("--object-size", default="", help="procedural: MIN,MAX object side as fractions of the image "
                                                      "(default 0.05,0.9, as training's default)")
    p.add_argument("--data-root", default="", help="VOC folder")
    p.add_argument("--split", default="val", help="VOC image set")
    p.add_argument("--coco-json", default="")
    p.add_argument("--coco-images", default="")
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--curves-out", default="", help="write per-class PR curves (IoU 0.5) to this JSON")
    p.add_argument("--errors", action="store_true",
                   help="add the error analysis: TIDE error types with their dAP, per level, causes of misses, "
                        "AP by size and level, class confusion")
    p.add_argument("--gt-out", default="", help="write the ground truth as COCO JSON (network-input pixels)")
    p.add_argument("--detections-out", default="", help="write the detections as COCO results JSON")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    return p


def _write_outputs(args, res: dict, gts: list[dict], dets: list[dict], class_names, image_side: int) -> None:
    curves = res.pop("curves", None)
    if args.curves_out:
        write_json_atomic(args.curves_out, {"iou_threshold": 0.5, "classes": curves})
    if args.gt_out:
        write_json_atomic(args.gt_out, coco_gt_json(gts, class_names, (image_side, image_side)))
    if args.detections_out:
        write_json_atomic(args.detections_out, coco_results_json(dets))


def _print_text(args, res: dict) -> None:
    print(f"{Path(args.checkpoint).name} on {res['num_images']} {args.dataset} images: "
          f"AP {res['AP']:.3f}  AP50 {res['AP50']:.3f}  AP75 {res['AP75']:.3f}  VOC07 mAP {res['voc07_map']:.3f}")
    for name, ap in res["per_class"].items():
        print(f"  {name:>12}: AP {ap if ap is None else round(ap, 3)}  AP50 {res['per_class_AP50'][name]}")
    if "errors" in res:
        print(format_report(res))


def main(argv: list[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    if args.dataset == "procedural" and args.num_images < 1:
        p.error("--num-images must be >= 1 for procedural data")
    try:
        device = resolve_device(args.device)
        model, meta = checkpoint.load(args.checkpoint, device=device)
        class_names = list(meta["class_names"])
        ds = build_eval_dataset(args, model.cfg.image_size, class_names)
        gts, dets, analysis = collect(model, ds, class_names, device=device, batch_size=args.batch_size,
                                      errors=args.errors)
        res = score(gts, dets, class_names, curves=bool(args.curves_out))
    except (checkpoint.CheckpointError, DatasetError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    res = _with_errors(res, analysis)
    _write_outputs(args, res, gts, dets, class_names, model.cfg.image_size)
    res["checkpoint"] = str(args.checkpoint)
    res["dataset"] = args.dataset
    if args.dataset == "procedural":
        res["seed"] = args.seed
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        _print_text(args, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
