"""Coverage timings (a script, not a test).

    .venv/bin/python -m benchmarks.bench_coverage [--boxes 1000000] [--brute-sample 20000] [--json FILE]

1. `ssd.tuning.coverage.coverage` of `--boxes` random boxes against SSD300's 8732 default boxes,
   against chunked brute force (`coverage_brute`: `torchvision.ops.box_iou` with every
   default box) in the same run. `--brute-sample N` times brute force on the first N boxes
   only and extrapolates linearly to all of them (brute force is O(G * A): linear in G);
   the output says so. Both results are compared on the boxes brute force saw.
   Target: >= 50x faster, peak RSS of the fast path < 2 GB.
2. The Dataset page, one slider change on a 50,000-box procedural dataset: coverage,
   summary, the three figures and their JSON. Target < 300 ms.

Boxes for (1): centres uniform in [-0.1, 1.1]^2, side sqrt(w*h) log-uniform in
[0.0067, 1.35] of the image, aspect ratio log-uniform in [0.22, 4.5] (a fixed seed).
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from ssd.config import preset  # noqa: E402
from ssd.tuning.coverage import coverage, coverage_brute  # noqa: E402


def random_boxes(n: int, seed: int = 0) -> torch.Tensor:
    """(n, 4) xyxy normalised boxes of every size, shape and place (module docstring)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.rand(n, 2, generator=g) * 1.2 - 0.1
    s = torch.exp(torch.empty(n).uniform_(-5, 0.3, generator=g))
    ar = torch.exp(torch.empty(n).uniform_(-1.5, 1.5, generator=g))
    wh = torch.stack([s * ar.sqrt(), s / ar.sqrt()], 1)
    return torch.cat([c - wh / 2, c + wh / 2], 1)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_fast_vs_brute(n: int, preset_name: str, brute_sample: int) -> dict:
    gt = random_boxes(n)
    rss_before = peak_rss_mb()
    t0 = time.perf_counter()
    fast = coverage(gt, preset(preset_name))
    fast_s = time.perf_counter() - t0
    rss_fast = peak_rss_mb()  # measured before brute force runs
    m = n if brute_sample <= 0 else min(brute_sample, n)
    t0 = time.perf_counter()
    brute = coverage_brute(gt[:m], preset(preset_name))
    brute_sample_s = time.perf_counter() - t0
    brute_s = brute_sample_s * n / m
    return {
        "boxes": n, "config": preset_name, "fast_s": round(fast_s, 3),
        "brute_s": round(brute_s, 1), "brute_measured_on": m, "brute_extrapolated": m < n,
        "speedup": round(brute_s / fast_s, 1),
        "peak_rss_mb_before": round(rss_before, 1), "peak_rss_mb_after_fast": round(rss_fast, 1),
        "num_positive_equal": bool(torch.equal(fast.num_positive[:m], brute.num_positive)),
        "best_iou_max_abs_diff": float((fast.best_iou[:m] - brute.best_iou).abs().max()),
        "bpr": round(fast.bpr, 4),
    }


def bench_dataset_page(num_boxes: int, repeat: int) -> dict:
    from explorer.views import dataset as dsv
    from ssd.data.gt_boxes import procedural_boxes

    t0 = time.perf_counter()
    data = procedural_boxes(max(1, int(num_boxes / 3.5)), seed=1000, size=256)
    load_s = time.perf_counter() - t0
    cfg = preset("compact256")
    times = []
    for k in range(repeat + 1):
        t0 = time.perf_counter()
        cov, s = dsv.measure(data, cfg, 0.5 + 0.01 * (k % 5))  # a threshold slider moving
        figs = [dsv.size_figure(data, cfg, cov), dsv.ownership_figure(s), dsv.histogram_figure(s)]
        _ = [f.to_json() for f in figs]
        times.append(time.perf_counter() - t0)
    return {"boxes": len(data), "load_s": round(load_s, 1), "slider_change_ms_median": round(1000 * statistics.median(times[1:]), 1),
            "slider_change_ms_max": round(1000 * max(times[1:]), 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_coverage", description=__doc__.split("\n")[0])
    p.add_argument("--boxes", type=int, default=1_000_000)
    p.add_argument("--preset", default="ssd300_voc")
    p.add_argument("--brute-sample", type=int, default=0,
                   help="time brute force on the first N boxes and extrapolate linearly (0: all boxes)")
    p.add_argument("--page-boxes", type=int, default=50_000, help="dataset-page row: boxes (0: skip)")
    p.add_argument("--repeat", type=int, default=10, help="dataset-page row: slider changes timed")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: as the app on 2 cores)")
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = {"threads": args.threads, "coverage": bench_fast_vs_brute(args.boxes, args.preset, args.brute_sample)}
    c = out["coverage"]
    how = (f"measured on {c['brute_measured_on']} boxes, extrapolated linearly" if c["brute_extrapolated"]
           else "measured on all boxes")
    print(f"coverage of {c['boxes']} boxes vs {c['config']}: fast {c['fast_s']} s, brute force {c['brute_s']} s "
          f"({how}): {c['speedup']}x; peak RSS {c['peak_rss_mb_after_fast']} MB after the fast path "
          f"({c['peak_rss_mb_before']} MB before it)")
    print(f"  same result on the brute-force boxes: num_positive equal {c['num_positive_equal']}, "
          f"best IoU max |diff| {c['best_iou_max_abs_diff']:.1e}; BPR@0.5 {c['bpr']}")
    if args.page_boxes:
        out["dataset_page"] = d = bench_dataset_page(args.page_boxes, args.repeat)
        print(f"dataset page, {d['boxes']} procedural boxes (loaded in {d['load_s']} s): slider change "
              f"{d['slider_change_ms_median']} ms median, {d['slider_change_ms_max']} ms max (coverage + summary + "
              "3 figures + JSON)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
