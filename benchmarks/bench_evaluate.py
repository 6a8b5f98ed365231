"""Benchmark: what does evaluation cost on top of the network forward?

On the shipped model and N procedural scenes (held-out seed 1000), in one process:
- forward: the network alone (`model(images)`, batches of 32), the floor;
- on top: everything else `python -m ssd.evaluate --errors` does with the outputs, timed
  stage by stage: softmax + decode, post-processing (`ssd.postprocess`), the error
  analysis fed per batch (TIDE matching and error types, per-level counts, causes of
  misses, confusion: `ssd.evaluation.error_types.ErrorAnalysis.add_batch`), COCO AP (`ssd.evaluation.metrics.coco_eval`,
  vectorised `ssd.evaluation.coco_ap`), VOC07 curves (`ssd.evaluation.metrics.pr_curves`) and the report (TIDE's
  dAP oracle and the AP per level, `ErrorAnalysis.report`). Target: on top <= 0.30 x forward.
`--reference-ap` also times pycocotools on the same detections (main AP and per-level AP,
what the evaluation cost before `ssd.evaluation.coco_ap`) and checks that it gives the same numbers.
Scenes are drawn before timing (data loading is not either side). Both sides are the
median of `--repeats` runs.

    python -m benchmarks.bench_evaluate [--num-images 500] [--repeats 3] [--threads 2] [--device cpu] [--reference-ap]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

import torch

from ssd.data.procedural import CLASSES, ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.error_types import ErrorAnalysis
from ssd.evaluation.evaluate import _with_errors, scores_and_boxes
from ssd.evaluation.metrics import coco_eval, coco_eval_by, pr_curves, voc07_map
from ssd.postprocess import PostprocessConfig, postprocess_batch
from ssd.training import checkpoint

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


class _Clock:
    """Adds wall time per stage name (synchronising the device first)."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self._t = device, defaultdict(float), 0.0

    def start(self) -> None:
        _sync(self.device)
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        _sync(self.device)
        now = time.perf_counter()
        self.seconds[stage] += now - self._t
        self._t = now


def _score(gts, dets, clock: _Clock) -> dict:
    """`ssd.evaluation.evaluate.score`, stage by stage."""
    clock.start()
    res = coco_eval(gts, dets, CLASSES)
    clock.lap("COCO AP")
    pr = pr_curves(gts, dets, len(CLASSES), iou_threshold=0.5)
    res["voc07_map"] = voc07_map(pr)
    res["voc07_per_class"] = {CLASSES[c]: v["ap_voc07"] for c, v in pr.items()}
    res["num_images"] = len(gts)
    clock.lap("VOC07 curves")
    return res


@torch.no_grad()
def _evaluate_split(model, batches, device) -> tuple[float, dict, dict, tuple]:
    """(forward s, {stage: s} of everything else, report, (gts, dets, analysis)) for one
    full `--errors` evaluation."""
    cfg = PostprocessConfig()
    analysis = ErrorAnalysis(model.cfg, CLASSES, cfg)
    gts, dets, t_forward = [], [], 0.0
    clock = _Clock(device)
    for images, targets in batches:
        clock.start()
        out = model(images.to(device))
        clock.lap("forward")
        scores, boxes_px_in = scores_and_boxes(model, out, images.shape[-1])
        clock.lap("softmax + decode")
        posts = postprocess_batch(scores, boxes_px_in, cfg)
        s = images.shape[-1]
        batch_gts = [{"boxes_xyxy_px_in": t["boxes"] * s, "labels": t["labels"]} for t in targets]
        batch_dets = [{k: v.cpu() for k, v in p.detections().items()} for p in posts]
        clock.lap("post-processing")
        analysis.add_batch(batch_gts, batch_dets, scores, boxes_px_in, posts)
        clock.lap("errors per batch (TIDE, levels, causes, confusion)")
        gts += batch_gts
        dets += batch_dets
    res = _score(gts, dets, clock)
    clock.start()
    res = _with_errors(res, analysis)
    clock.lap("report (TIDE dAP, per-level AP)")
    t_forward = clock.seconds.pop("forward")
    return t_forward, dict(clock.seconds), res, (gts, dets, analysis)


def _per_level_args(analysis):
    ranges = {str(k): (float(k), float(k)) for k in range(len(analysis.feature_maps))}
    return analysis.gts, analysis.dets, CLASSES, analysis.gt_level, analysis.det_level, ranges


def _reference_ap(gts, dets, analysis) -> dict:
    """pycocotools on the same detections: {stage: s}; raises if any number differs."""
    out = {}
    for name, fn in (("COCO AP", lambda ref: coco_eval(gts, dets, CLASSES, reference=ref)),
                     ("per-level AP", lambda ref: coco_eval_by(*_per_level_args(analysis), reference=ref))):
        t0 = time.perf_counter()
        theirs = fn(True)
        t1 = time.perf_counter()
        ours = fn(False)
        out[name] = (time.perf_counter() - t1, t1 - t0)
        if ours != theirs:
            raise AssertionError(f"{name}: ssd.evaluation.coco_ap {ours} differs from pycocotools {theirs}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--num-images", type=int, default=500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference-ap", action="store_true",
                   help="also time pycocotools (main and per-level AP) and check it gives the same numbers")
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
        f, stages, res, kept = _evaluate_split(model, batches, device)
        forwards.append(f)
        rests.append(stages)
    floor, fwd = statistics.median(floors), statistics.median(forwards)
    stages = {k: statistics.median(r[k] for r in rests) for k in rests[0]}
    rest = statistics.median(sum(r.values()) for r in rests)
    print(f"{args.num_images} scenes, {args.threads} threads, {device}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f}")
    print(f"forward alone             {floor * 1000:9.0f} ms")
    print(f"forward inside evaluation {fwd * 1000:9.0f} ms")
    print(f"everything on top         {rest * 1000:9.0f} ms   ratio to forward alone {rest / floor:.3f} "
          f"(target <= 0.30)")
    for name, sec in stages.items():
        print(f"  {name:<52} {sec * 1000:7.0f} ms  {sec / floor:6.3f} x forward")
    lv_s = _time(lambda: coco_eval_by(*_per_level_args(kept[2])))
    print(f"    of the report, per-level AP (timed apart)          {lv_s * 1000:7.0f} ms")
    if args.reference_ap:
        for name, (ours, theirs) in _reference_ap(kept[0], kept[1], kept[2]).items():
            print(f"reference {name}: pycocotools {theirs * 1000:.0f} ms, ssd.evaluation.coco_ap {ours * 1000:.0f} ms "
                  f"({theirs / ours:.1f}x), same numbers")
    return 0


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    raise SystemExit(main())
