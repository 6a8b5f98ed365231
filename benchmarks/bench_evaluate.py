"""Benchmark: what does evaluation cost on top of the network forward?

On the shipped model and N procedural scenes (held-out seed 1000), in one process:
- forward: the network alone (`model(images)`, batches of 32), the floor;
- on top: everything else `python -m ssd.evaluate --errors` does with the outputs:
  softmax + decode + post-processing (`ssd.postprocess`), TIDE matching and error types,
  causes of misses, per-level counts, the confusion matrix (`ssd.errors.ErrorAnalysis`),
  AP (pycocotools, VOC07 curves, `ssd.evaluate.score`) and the report (dAP oracle, AP by
  size and by level). Target: on top <= 0.30 x forward.
Scenes are drawn before timing (data loading is not either side). Both sides are the
median of `--repeats` runs.

    python -m benchmarks.bench_evaluate [--num-images 500] [--repeats 3] [--threads 2] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from ssd import checkpoint
from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.errors import ErrorAnalysis
from ssd.evaluate import _with_errors, score, scores_and_boxes
from ssd.postprocess import PostprocessConfig, postprocess_batch

SHIPPED = "checkpoints/compact256_shapes.pt"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _forward_only(model, batches, device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for images, _ in batches:
        model(images.to(device))
    _sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def _evaluate_split(model, batches, device) -> tuple[float, float, dict]:
    """(forward s, everything-else s, report) for one full `--errors` evaluation."""
    cfg = PostprocessConfig()
    analysis = ErrorAnalysis(model.cfg, CLASSES, cfg)
    gts, dets, t_forward, t_rest = [], [], 0.0, 0.0
    for images, targets in batches:
        _sync(device)
        t0 = time.perf_counter()
        out = model(images.to(device))
        _sync(device)
        t1 = time.perf_counter()
        scores, boxes_px_in = scores_and_boxes(model, out, images.shape[-1])
        posts = postprocess_batch(scores, boxes_px_in, cfg)
        s = images.shape[-1]
        batch_gts = [{"boxes_xyxy_px_in": t["boxes"] * s, "labels": t["labels"]} for t in targets]
        batch_dets = [{k: v.cpu() for k, v in p.detections().items()} for p in posts]
        analysis.add_batch(batch_gts, batch_dets, scores, boxes_px_in, posts)
        gts += batch_gts
        dets += batch_dets
        _sync(device)
        t_forward += t1 - t0
        t_rest += time.perf_counter() - t1
    t0 = time.perf_counter()
    res = _with_errors(score(gts, dets, CLASSES), analysis)
    t_rest += time.perf_counter() - t0
    return t_forward, t_rest, res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-images", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model, _ = checkpoint.load(SHIPPED, device=device)
    model.eval()
    ds = ProceduralDataset(args.num_images, 1000, model.cfg.image_size, eval_transform(model.cfg.image_size))
    items = [ds[i] for i in range(len(ds))]
    batches = [(torch.stack([x for x, _ in items[i:i + 32]]), [t for _, t in items[i:i + 32]])
               for i in range(0, len(items), 32)]
    _forward_only(model, batches[:2], device)  # warm-up
    floors, forwards, rests = [], [], []
    for _ in range(args.repeats):
        floors.append(_forward_only(model, batches, device))
        f, r, res = _evaluate_split(model, batches, device)
        forwards.append(f)
        rests.append(r)
    floor, fwd, rest = (statistics.median(v) for v in (floors, forwards, rests))
    print(f"{args.num_images} scenes, {args.threads} threads, {device}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f}")
    print(f"forward alone             {floor * 1000:9.0f} ms")
    print(f"forward inside evaluation {fwd * 1000:9.0f} ms")
    print(f"everything on top         {rest * 1000:9.0f} ms   ratio to forward alone {rest / floor:.3f} "
          f"(target <= 0.30)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
