"""Benchmark: batch-1 CPU latency of an exported SSD in ONNX Runtime vs eager PyTorch.

Per model and thread count, on the same images, timed in turn within every repeat (the
CPU here is shared, so a change in load hits all paths alike); median ms per image:
    eager      `ssd.inference.run_stages`: what `ssd.detect` runs (every stage kept)
    eager_net  `forward_raw` + `ssd.postprocess.postprocess`: the network and the same
               post-processing, without the explorer's per-level views
    ort        `ssd.export.runtime.OnnxDetector.detect`: resize + the ONNX graph
               (network, decoding, NMS) + the records' level and cell
Thresholds: the library's (score 0.01, the export's default) in all three; the
detections are checked identical (count, labels, default boxes; scores 1e-5, boxes 1e-3 px).
Goal: ort <= 0.6 x eager.

Models: the shipped compact256 (trained) and SSD300-VGG16 with seeded random weights
(its post-processing then sees many candidates: a worst case for both paths).

    python -m benchmarks.bench_onnx [--repeats 5] [--threads 1 2] [--out benchmarks/results/onnx_cpu.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ssd.training.checkpoint import load as load_checkpoint
from ssd.export import export_onnx
from ssd.export.runtime import OnnxDetector
from ssd.images import load_image
from ssd.inference import forward_raw, run_stages
from ssd.models import build
from ssd.postprocess import PostprocessConfig, postprocess

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "samples").glob("*.png"))


def _models(tmp: Path) -> dict:
    """name -> (eager model, exported ONNX path)."""
    compact, _ = load_checkpoint(ROOT / "checkpoints" / "compact256_shapes.pt")
    torch.manual_seed(0)
    ssd300 = build("ssd300_vgg16").eval()
    out = {}
    for name, model in (("compact256 (shipped)", compact), ("ssd300_vgg16 (seeded init)", ssd300)):
        path = tmp / f"{model.name}.onnx"
        export_onnx(model, path)
        out[name] = (model, path)
    return out


def _identical(a, b) -> bool:
    return (len(a) == len(b) and a.labels.tolist() == b.labels.tolist()
            and a.default_index.tolist() == b.default_index.tolist()
            and bool(((a.scores - b.scores).abs() <= 1e-5).all())
            and bool(((a.boxes_xyxy_px - b.boxes_xyxy_px).abs() <= 1e-3).all()))


def _median_ms(fns: dict, repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append((time.perf_counter() - t0) * 1000.0)
    return {k: statistics.median(v) for k, v in times.items()}


def bench_model(name: str, model, onnx_path: Path, threads: int, repeats: int) -> dict:
    """One row: median ms per image of each path, their ratio, and whether the detections agree."""
    torch.set_num_threads(threads)
    det = OnnxDetector(onnx_path, threads=threads)
    cfg = PostprocessConfig()
    images = [load_image(p) for p in SAMPLES]
    per_image, identical, count = [], True, 0
    for image in images:
        eager_det = run_stages(model, image, cfg).detections
        ort_det = det.detect(image)[0]
        identical &= _identical(ort_det, eager_det)
        count += len(eager_det)
        per_image.append(_median_ms({
            "eager": lambda: run_stages(model, image, cfg),
            "eager_net": lambda: postprocess(*(lambda r: (r.scores, r.boxes_px_in))(forward_raw(model, image)), cfg),
            "ort": lambda: det.detect(image),
        }, repeats))
    ms = {k: statistics.median(r[k] for r in per_image) for k in per_image[0]}
    return {"model": name, "threads": threads, "images": len(images), "repeats": repeats,
            "eager_ms": round(ms["eager"], 1), "eager_net_ms": round(ms["eager_net"], 1), "ort_ms": round(ms["ort"], 1),
            "ratio_ort_eager": round(ms["ort"] / ms["eager"], 3),
            "ratio_ort_eager_net": round(ms["ort"] / ms["eager_net"], 3),
            "detections": count, "identical": identical}


def format_table(rows: list[dict]) -> str:
    lines = ["| model | threads | eager `run_stages` ms | eager net + postprocess ms | ONNX Runtime ms | "
             "ORT / eager | ORT / eager net | detections identical |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['threads']} | {r['eager_ms']} | {r['eager_net_ms']} | {r['ort_ms']} | "
                     f"{r['ratio_ort_eager']} | {r['ratio_ort_eager_net']} | "
                     f"{'yes' if r['identical'] else 'NO'} ({r['detections']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_onnx", description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "onnx_cpu.json"))
    args = p.parse_args(argv)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        models = _models(Path(tmp))
        rows = [bench_model(name, m, path, t, args.repeats) for t in args.threads for name, (m, path) in models.items()]
    result = {"rows": rows, "load_average_before": [round(v, 2) for v in load_before],
              "load_average_after": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "onnxruntime": __import__("onnxruntime").__version__,
              "thresholds": "library defaults (score 0.01, NMS 0.45, 400 candidates, 200 detections)"}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(format_table(rows))
    print(f"load average (1, 5, 15 min) before {result['load_average_before']}, after {result['load_average_after']}; "
          f"{os.cpu_count()} cores; written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
