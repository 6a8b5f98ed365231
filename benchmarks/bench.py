"""Side-by-side timings against torchvision on the same inputs, in one process.

    python -m benchmarks.bench [--only loss,priors,inference] [--device cpu|cuda] [--repeats N] [--json PATH]

Sections:
  loss       `multibox_loss` (matching + mining + loss, batched) vs torchvision's path:
             per-image `proposal_matcher(box_iou(...))` + `SSD.compute_loss`; B = 8,
             SSD300 (8732 default boxes), 21 classes, 1-6 GT per image. Forward, and
             forward + backward. Target: ratio <= 1.
  priors     `default_boxes(ssd300_voc())` vs `DefaultBoxGenerator._grid_default_boxes`.
             Target: ours < 5 ms.
  inference  `benchmarks.bench_inference.run(device, repeats)` (written separately; skipped
             with a message when that module is missing).

Each timing: warm-up calls, then `repeats` calls alternating ours / torchvision (so a
busy machine slows both alike); the median is reported. ratio = ours / torchvision.
"""
from __future__ import annotations

import argparse
import importlib
import statistics
import time
from typing import Callable

import torch
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from ssd.boxes import cxcywh_to_xyxy
from ssd.config import ssd300_voc
from ssd.io import write_json_atomic
from ssd.loss import multibox_loss
from ssd.priors import default_boxes

SECTIONS = ("loss", "priors", "inference")
_TV_RATIOS_300 = [[2], [2, 3], [2, 3], [2, 3], [2], [2]]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


WARMUP = 3  # untimed calls of each function before timing (--warmup)


def time_pair(ours: Callable, theirs: Callable, device: str, repeats: int, warmup: int = WARMUP) -> tuple[float, float]:
    """Median milliseconds of `ours()` and `theirs()`, calls interleaved."""
    for _ in range(warmup):
        ours()
        theirs()
    _sync(device)
    t_ours, t_theirs = [], []
    for _ in range(repeats):
        for fn, acc in ((ours, t_ours), (theirs, t_theirs)):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            acc.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t_ours), statistics.median(t_theirs)


def _row(name: str, ours_ms: float, tv_ms: float, note: str = "") -> dict:
    return {"name": name, "ours_ms": ours_ms, "torchvision_ms": tv_ms, "ratio": ours_ms / tv_ms, "note": note}


def realistic_targets(batch: int, num_classes: int, seed: int = 0, device: str = "cpu") -> list[dict]:
    """1-6 GT boxes per image, sides 4%-60% of the image, normalised xyxy."""
    gen = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        g = int(torch.randint(1, 7, (1,), generator=gen))
        c = torch.rand(g, 2, generator=gen) * 0.8 + 0.1
        wh = torch.rand(g, 2, generator=gen) * 0.56 + 0.04
        boxes = torch.cat([c - wh / 2, c + wh / 2], dim=1).clamp(0, 1)
        labels = torch.randint(1, num_classes, (g,), generator=gen)
        targets.append({"boxes": boxes.to(device), "labels": labels.to(device)})
    return targets


def torchvision_ssd(num_classes: int) -> SSD:
    """torchvision's SSD class with ssd300_vgg16's loss settings; identity backbone/head
    because only `proposal_matcher` and `compute_loss` are timed."""
    return SSD(nn.Identity(), DefaultBoxGenerator(_TV_RATIOS_300), (300, 300), num_classes, head=nn.Identity())


def bench_loss(device: str, repeats: int, warmup: int = WARMUP, batch: int = 8, num_classes: int = 21) -> list[dict]:
    cfg = ssd300_voc(num_classes)
    default_cxcywh = default_boxes(cfg).cxcywh.to(device)
    A = default_cxcywh.shape[0]
    targets = realistic_targets(batch, num_classes, seed=0, device=device)
    gen = torch.Generator().manual_seed(1)
    cls_logits = torch.randn(batch, A, num_classes, generator=gen).to(device).requires_grad_()
    box_deltas = torch.randn(batch, A, 4, generator=gen).to(device).requires_grad_()

    model = torchvision_ssd(num_classes).to(device)
    # torchvision's SSD works in pixels; its matching and coding are scale-free, so give it
    # the normalised boxes: same cost, and no pixel-vs-normalised rounding flipping a GT
    # between two equally good default boxes (then both losses agree to float precision).
    anchors_xyxy = cxcywh_to_xyxy(default_cxcywh)

    def ours():
        return multibox_loss(cls_logits, box_deltas, default_cxcywh, targets).total

    def theirs():
        matched_idxs = [model.proposal_matcher(box_iou(t["boxes"], anchors_xyxy)) for t in targets]
        losses = model.compute_loss(
            targets, {"cls_logits": cls_logits, "bbox_regression": box_deltas}, [anchors_xyxy] * batch, matched_idxs
        )
        return losses["bbox_regression"] + losses["classification"]

    def with_backward(fn):
        def run():
            cls_logits.grad = box_deltas.grad = None
            fn().backward()

        return run

    a, b = ours().item(), theirs().item()
    note = f"loss ours {a:.4f} vs torchvision {b:.4f}"
    rows = []
    with torch.no_grad():
        timings = time_pair(ours, theirs, device, repeats, warmup)
        rows.append(_row(f"loss forward (B={batch}, A={A}, C={num_classes})", *timings, note))
    rows.append(
        _row(
            f"loss forward+backward (B={batch})",
            *time_pair(with_backward(ours), with_backward(theirs), device, repeats, warmup),
        )
    )
    return rows


def bench_priors(device: str, repeats: int, warmup: int = WARMUP) -> list[dict]:
    cfg = ssd300_voc()
    gen = DefaultBoxGenerator(_TV_RATIOS_300, scales=list(cfg.scales), steps=[int(s) for s in cfg.steps])
    grid = [[f, f] for f in cfg.feature_maps]
    same = torch.allclose(default_boxes(cfg).cxcywh, gen._grid_default_boxes(grid, [300, 300]), atol=1e-6)
    # Default boxes are built on the CPU in both libraries (then moved once).
    ours_ms, tv_ms = time_pair(
        lambda: default_boxes(cfg), lambda: gen._grid_default_boxes(grid, [300, 300]), "cpu", repeats, warmup
    )
    return [_row("default boxes SSD300 (8732)", ours_ms, tv_ms, f"equal: {same}; ours also keeps level/row/col/box")]


def bench_inference(device: str, repeats: int) -> list[dict]:
    try:
        module = importlib.import_module("benchmarks.bench_inference")
    except ModuleNotFoundError as e:
        if e.name != "benchmarks.bench_inference":
            raise
        print("inference: skipped (benchmarks/bench_inference.py is not there)")
        return []
    return list(module.run(device=device, repeats=repeats))


RUNNERS = {"loss": bench_loss, "priors": bench_priors, "inference": bench_inference}


def format_table(rows: list[dict]) -> str:
    lines = [f"{'benchmark':<44} {'ours ms':>9} {'tv ms':>9} {'ratio':>6}  note", "-" * 90]
    for r in rows:
        lines.append(
            f"{r['name']:<44} {r['ours_ms']:>9.2f} {r['torchvision_ms']:>9.2f} {r['ratio']:>6.2f}  {r.get('note', '')}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description="Time ssd against torchvision, side by side.")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma list of sections: {', '.join(SECTIONS)}")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls per function (median reported)")
    p.add_argument("--warmup", type=int, default=WARMUP, help="untimed calls before timing")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's; 1 is best on a busy machine)")
    p.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = p.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in only if s not in SECTIONS]
    if unknown or not only:
        p.error(f"--only: unknown section(s) {unknown}; choose from {', '.join(SECTIONS)}")
    if args.repeats < 1:
        p.error("--repeats must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    if args.threads is not None:
        if args.threads < 1:
            p.error("--threads must be >= 1")
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device available")
    if not (args.device == "cpu" or args.device.startswith("cuda")):
        p.error(f"--device must be cpu or cuda, got {args.device!r}")

    rows: list[dict] = []
    for section in only:
        if section == "inference":  # the other module's signature: run(device, repeats)
            rows += bench_inference(args.device, args.repeats)
        else:
            rows += RUNNERS[section](args.device, args.repeats, warmup=args.warmup)
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu"
    print(f"device: {args.device} ({device_name}), torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"repeats {args.repeats} (median)")
    print(format_table(rows))
    if args.json:
        write_json_atomic(args.json, {"device": args.device, "device_name": device_name, "repeats": args.repeats,
                                       "torch": torch.__version__, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
