"""Evaluate a checkpoint: COCO AP (pycocotools), VOC2007 11-point mAP, PR curves.

    python -m ssd.evaluate --checkpoint checkpoints/compact256_shapes.pt \
        --dataset procedural --seed 1000 --num-images 500 --json

Detections are the final ones (softmax, score >= 0.01, per-class top 400 candidates,
NMS at IoU 0.45, top 200 per image: torchvision's `SSD.postprocess_detections` and
`ssd.inference`'s final stage), computed for a whole batch at once. Boxes are compared
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
from torchvision.ops import batched_nms

from ssd.boxes import decode
from ssd.data.common import DatasetError, collate
from ssd.metrics import coco_eval, pr_curves, voc07_map
from ssd.priors import default_boxes

SCORE_THRESHOLD = 0.01  # keep low-score detections: AP integrates over the whole PR curve
NMS_THRESHOLD = 0.45  # Sec. 3 (inference): NMS with Jaccard overlap 0.45 per class
TOPK_CANDIDATES = 400  # per class, before NMS (torchvision)
TOP_K = 200  # detections kept per image (Sec. 3: top 200)


@torch.no_grad()
def detect_batch(model, images: torch.Tensor, score_threshold: float = SCORE_THRESHOLD,
                 nms_threshold: float = NMS_THRESHOLD, topk_candidates: int = TOPK_CANDIDATES,
                 top_k: int = TOP_K, priors_cxcywh: torch.Tensor | None = None) -> list[dict]:
    """Final detections for a batch.

    Args:
        images: (B, 3, S, S) in [0, 1].
    Returns:
        B dicts {"boxes_xyxy": (N, 4) px in the S x S input, "scores": (N,), "labels": (N,) in 1..C-1}.
    """
    model.eval()
    s = images.shape[-1]
    if priors_cxcywh is None:
        priors_cxcywh = default_boxes(model.cfg).cxcywh.to(images.device)
    out = model(images)
    scores_all = F.softmax(out.cls_logits_flat(), dim=-1)  # (B, A, C)
    boxes_all = decode(out.bbox_regression_flat(), priors_cxcywh, model.cfg.variances).clamp(0, 1) * s  # (B, A, 4)
    num_classes = scores_all.shape[-1]
    results = []
    for scores_per_image, boxes_per_image in zip(scores_all, boxes_all):
        boxes, scores, labels = [], [], []
        for c in range(1, num_classes):
            sc = scores_per_image[:, c]
            keep = sc > score_threshold
            sc, bx = sc[keep], boxes_per_image[keep]
            if sc.numel() > topk_candidates:
                sc, idx = sc.topk(topk_candidates)
                bx = bx[idx]
            boxes.append(bx)
            scores.append(sc)
            labels.append(torch.full_like(sc, c, dtype=torch.int64))
        boxes_c, scores_c, labels_c = torch.cat(boxes), torch.cat(scores), torch.cat(labels)
        keep = batched_nms(boxes_c, scores_c, labels_c, nms_threshold)[:top_k]
        results.append({"boxes_xyxy": boxes_c[keep].cpu(), "scores": scores_c[keep].cpu(),
                        "labels": labels_c[keep].cpu()})
    return results


@torch.no_grad()
def evaluate_model(model, dataset, class_names, device="cpu", batch_size: int = 32, curves: bool = False,
                   score_threshold: float = SCORE_THRESHOLD) -> dict:
    """Run `model` over `dataset` (items: (image (3, S, S), target with normalised boxes))
    and score it.

    Returns {"AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large", "per_class",
    "per_class_AP50", "voc07_map", "voc07_per_class", "num_images"} (+ "curves": per class
    name {"recall", "precision", "ap_voc07", "num_gt"} at IoU 0.5 when `curves`).
    """
    was_training = model.training
    model.eval()
    device = torch.device(device)
    priors = default_boxes(model.cfg).cxcywh.to(device)
    gts, dets = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
    for images, targets in loader:
        s = images.shape[-1]
        dets += detect_batch(model, images.to(device), score_threshold=score_threshold, priors_cxcywh=priors)
        gts += [{"boxes_xyxy": t["boxes"] * s, "labels": t["labels"]} for t in targets]
    if was_training:
        model.train()
    res = coco_eval(gts, dets, class_names)
    pr = pr_curves(gts, dets, len(class_names), iou_threshold=0.5)
    res["voc07_map"] = voc07_map(pr)
    res["voc07_per_class"] = {class_names[c]: v["ap_voc07"] for c, v in pr.items()}
    res["num_images"] = len(gts)
    if curves:
        res["curves"] = {class_names[c]: {k: v[k] for k in ("recall", "precision", "ap_voc07", "num_gt")}
                         for c, v in pr.items()}
    return res


def build_eval_dataset(args, image_size: int, class_names):
    from ssd.data.transforms import eval_transform

    t = eval_transform(image_size)
    if args.dataset == "procedural":
        from ssd.data.procedural import ProceduralDataset

        return ProceduralDataset(args.num_images, args.seed, image_size, t)
    if args.dataset == "voc":
        from ssd.data.voc import VOCDataset

        ds = VOCDataset(args.data_root, args.split, class_names, t, skip_bad=args.skip_bad)
    else:
        from ssd.data.coco import COCODataset

        ds = COCODataset(args.coco_json, args.coco_images, t, skip_bad=args.skip_bad)
        if tuple(ds.class_names) != tuple(class_names):
            raise DatasetError(f"{args.coco_json}: categories {ds.class_names[1:]} differ from the "
                               f"checkpoint's classes {list(class_names[1:])}")
    if args.num_images and args.num_images < len(ds):
        ds = torch.utils.data.Subset(ds, range(args.num_images))
    return ds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ssd.evaluate", description="Evaluate an SSD checkpoint.")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataset", choices=("procedural", "voc", "coco"), default="procedural")
    p.add_argument("--seed", type=int, default=1000,
                   help="procedural: scene seed (training uses --data-seed 0 and validation 1)")
    p.add_argument("--num-images", type=int, default=500, help="procedural: scenes; voc/coco: first N (0: all)")
    p.add_argument("--data-root", default="", help="VOC folder")
    p.add_argument("--split", default="val", help="VOC image set")
    p.add_argument("--coco-json", default="")
    p.add_argument("--coco-images", default="")
    p.add_argument("--skip-bad", action="store_true")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--curves-out", default="", help="write per-class PR curves (IoU 0.5) to this JSON")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    args = p.parse_args(argv)
    from ssd import checkpoint
    from ssd.engine import resolve_device

    if args.dataset == "procedural" and args.num_images < 1:
        p.error("--num-images must be >= 1 for procedural data")
    try:
        device = resolve_device(args.device)
        model, meta = checkpoint.load(args.checkpoint, device=device)
        class_names = list(meta["class_names"])
        ds = build_eval_dataset(args, model.cfg.image_size, class_names)
        res = evaluate_model(model, ds, class_names, device=device, batch_size=args.batch_size,
                             curves=bool(args.curves_out))
    except (checkpoint.CheckpointError, DatasetError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    curves = res.pop("curves", None)
    if args.curves_out:
        from ssd.runlog import write_json_atomic

        write_json_atomic(args.curves_out, {"iou_threshold": 0.5, "classes": curves})
    res["checkpoint"] = str(args.checkpoint)
    res["dataset"] = args.dataset
    if args.dataset == "procedural":
        res["seed"] = args.seed
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print(f"{Path(args.checkpoint).name} on {res['num_images']} {args.dataset} images: "
              f"AP {res['AP']:.3f}  AP50 {res['AP50']:.3f}  AP75 {res['AP75']:.3f}  VOC07 mAP {res['voc07_map']:.3f}")
        for name, ap in res["per_class"].items():
            print(f"  {name:>12}: AP {ap if ap is None else round(ap, 3)}  AP50 {res['per_class_AP50'][name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
