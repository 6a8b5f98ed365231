"""Server-side cost of the Trace page (a script, not a test).

    .venv/bin/python -m benchmarks.bench_trace [--repeat 20]

A slider change on the Trace page recomputes the post-processing (`stages_from_raw`, the
network's outputs are cached) and then traces the object (`trace_gt` + `trace_figure` and
its JSON). The floor is the same slider change on the NMS page without the trace: the
post-processing alone, with the NMS trace read (the NMS page reads it too). Printed: the
median of `--repeat` runs of each, in ms, and their ratio, for the shipped compact256 on
the cat-and-dog scene and for SSD300-VGG16 with seeded random weights (~36,000 candidates,
the worst case for NMS) on the same image.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from explorer.views import trace as tv  # noqa: E402
from explorer.views.trace_figure import trace_figure  # noqa: E402
from ssd.data.procedural import cat_and_dog_scene  # noqa: E402
from ssd.inference import forward_raw, stages_from_raw  # noqa: E402
from ssd.models import build  # noqa: E402
from ssd.training import checkpoint  # noqa: E402


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def bench(name: str, model, repeat: int) -> None:
    img, boxes, labels = cat_and_dog_scene()
    raw = forward_raw(model, img)
    thresholds = iter([0.3, 0.31] * (repeat + 2))

    def floor() -> None:  # the NMS page's slider change: post-processing + the NMS trace
        stg = stages_from_raw(raw, score_thresh=next(thresholds) if name.startswith("compact") else 0.01)
        stg.nms.suppressed_by  # noqa: B018 (computed on first read)

    def with_trace() -> None:
        stg = stages_from_raw(raw, score_thresh=next(thresholds) if name.startswith("compact") else 0.01)
        tr = tv.trace_gt(stg, boxes, labels, 0)
        trace_figure(tr, None, img.size[::-1]).to_json()

    floor_ms, trace_ms = median_ms(floor, repeat), median_ms(with_trace, repeat)
    print(f"{name}: post-processing + NMS trace {floor_ms:.1f} ms; + trace_gt + figure JSON {trace_ms:.1f} ms; "
          f"ratio {trace_ms / floor_ms:.2f}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)  # as the app on 2 cores
    model, _ = checkpoint.load(ROOT / "checkpoints" / "compact256_shapes.pt")
    bench("compact256 (shipped)", model, args.repeat)
    torch.manual_seed(0)
    ssd300 = build("ssd300_vgg16", num_classes=7).eval()
    bench("ssd300_vgg16 (random weights)", ssd300, max(3, args.repeat // 4))


if __name__ == "__main__":
    main()
