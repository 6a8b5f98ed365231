"""Benchmark: what does exposing every stage cost over torchvision's plain SSD forward?

Compares `ssd.inference.run_stages` on SSD300-VGG16 with torchvision's own
`ssd300_vgg16` in eval mode, same (random, seeded) weights, same input image, same
device; median over `repeats` runs after one warm-up. Target: ratio <= 1.10.

Rows:
    ssd300_vgg16 <H>x<W>          run_stages vs torchvision forward (incl. postprocess)
    ... + nms trace               also reading who-suppressed-whom (computed on demand)
    ... post-processing           only what follows the (identical) backbone and head:
                                  less noisy on a busy machine than the whole forward

Random weights are the worst case for post-processing: every class has scores near
1/C, so hundreds of candidates per class reach NMS.

    python -m benchmarks.bench_inference [--device cpu|cuda] [--repeats 5] [--num-classes 91] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torchvision.models.detection import ssd300_vgg16

from ssd.inference import run_stages
from ssd.models import build


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_ms(fn, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return (time.perf_counter() - t0) * 1000.0


def _interleaved_medians(fns: dict, device: torch.device, repeats: int) -> dict[str, float]:
    """Median ms of each function, timed in turn within every repeat, so that a change
    in machine load hits all of them alike (the CPU here is shared)."""
    for fn in fns.values():
        fn()  # warm-up (allocations, cudnn autotune, lazy caches)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(_time_ms(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def run(device: str = "cpu", repeats: int = 5, num_classes: int = 91, sizes=((300, 300), (480, 640))) -> list[dict]:
    """Time run_stages against torchvision's SSD300 forward.

    Returns:
        rows of {"name", "ours_ms", "torchvision_ms", "ratio", "device", "candidates",
        "stages_ms", "note"}.
    """
    dev = torch.device(device)
    torch.manual_seed(0)
    tv = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes).eval().to(dev)
    ours = build("ssd300_vgg16", num_classes=num_classes)
    ours.load_state_dict(tv.state_dict())
    ours.eval().to(dev)
    rows = []
    gen = torch.Generator().manual_seed(1)
    for h, w in sizes:
        image = torch.rand(3, h, w, generator=gen).to(dev)

        def tv_forward():
            with torch.inference_mode():
                return tv([image])

        ours_post_ms: list[float] = []  # run_stages time after the backbone and head

        def ours_forward():
            st = run_stages(ours, image, device=dev)
            t = st.timings
            ours_post_ms.append(t["total"] - t["backbone"] - t["head"])
            return st

        # torchvision's post-processing alone, on its own head outputs for this image.
        with torch.inference_mode():
            tv_images, _ = tv.transform([image])
            tv_features = list(tv.backbone(tv_images.tensors).values())
            tv_head = tv.head(tv_features)

        def tv_post():
            with torch.inference_mode():
                anchors = tv.anchor_generator(tv_images, tv_features)
                det = tv.postprocess_detections(tv_head, anchors, tv_images.image_sizes)
                return tv.transform.postprocess(det, tv_images.image_sizes, [(h, w)])

        def ours_with_trace():
            st = run_stages(ours, image, device=dev)
            st.nms.suppressed_by  # noqa: B018 - forces the on-demand trace
            return st

        # Same detections, or the comparison means nothing.
        ref, st = tv_forward()[0], ours_forward()
        if not torch.equal(ref["labels"].cpu(), st.detections.labels):
            raise AssertionError("run_stages and torchvision disagree on the detections")
        fns = {"tv": tv_forward, "ours": ours_forward, "trace": ours_with_trace, "tv_post": tv_post}
        ours_post_ms.clear()
        med = _interleaved_medians(fns, dev, repeats)
        t_tv, t_ours, t_trace = med["tv"], med["ours"], med["trace"]
        t_post_ours, t_post_tv = statistics.median(ours_post_ms), med["tv_post"]
        stages = {k: round(v, 1) for k, v in ours_forward().timings.items()}
        name = f"ssd300_vgg16 {h}x{w} C={num_classes}"
        notes = {
            name: f"{len(st.candidates)} NMS candidates (random weights: worst case)",
            f"{name} + nms trace": "also reads NMS who-suppressed-whom (on demand)",
            f"{name} post-processing": "after backbone+head: all per-level stages vs torchvision's postprocess",
        }
        for label, t, ref_ms in (
            (name, t_ours, t_tv),
            (f"{name} + nms trace", t_trace, t_tv),
            (f"{name} post-processing", t_post_ours, t_post_tv),
        ):
            rows.append(
                {
                    "name": label,
                    "ours_ms": round(t, 1),
                    "torchvision_ms": round(ref_ms, 1),
                    "ratio": round(t / ref_ms, 3),
                    "device": str(dev),
                    "candidates": len(st.candidates),
                    "stages_ms": stages if label == name else None,
                    "note": notes[label],
                }
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_inference", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--num-classes", type=int, default=91)
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is steadier on a busy machine)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = run(args.device, args.repeats, args.num_classes)
    print(f"{'name':<52} {'ours_ms':>9} {'tv_ms':>9} {'ratio':>7}  candidates")
    for r in rows:
        print(f"{r['name']:<52} {r['ours_ms']:>9.1f} {r['torchvision_ms']:>9.1f} {r['ratio']:>7.3f}  {r['candidates']}")
    for r in rows:
        if r["stages_ms"]:
            print(f"{r['name']} stages (ms): {r['stages_ms']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
