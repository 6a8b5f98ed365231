"""One SSD300 training step, ours vs torchvision's `SSD`, same weights, same batch, one run.

    python -m benchmarks.bench_train_step [--device cpu|cuda] [--batch 8] [--repeats 5]
        [--amp none|bf16|fp16] [--channels-last] [--theirs-default] [--threads N] [--json PATH]

A step is forward + loss (matching, hard-negative mining) + backward + SGD update.
Ours: `build("ssd300_vgg16")` -> `multibox_loss` on the flat head outputs. Theirs:
torchvision's `ssd300_vgg16` in train mode (`model(images, targets)` -> loss dict),
loaded with the same state dict, fed 300x300 images so its resize is the identity.
Calls alternate ours / theirs (a busy machine slows both alike); medians are reported,
with ours broken into forward / loss / backward / optimizer (synchronised laps) and
images per second for both. ratio = ours / torchvision (target for issue 12: <= 0.8).
With --amp, ours computes the loss as `ssd.train --amp` does (fp32, (B, C, A) softmax).
--theirs-default runs torchvision's step as it comes (fp32, contiguous) while ours uses
--amp / --channels-last: each library's fastest step on the same weights and batch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import time

import torch
from torchvision.models.detection import ssd300_vgg16

from ssd.loss import multibox_loss
from ssd.models import build
from ssd.priors import default_boxes

NUM_CLASSES = 21  # VOC: 20 classes + background
SIDE = 300  # SSD300 input side (px)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_batch(batch: int, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """Random images (B, 3, 300, 300) in [0, 1] and 1-6 random boxes each (xyxy, normalised)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, SIDE, SIDE, generator=g)
    targets = []
    for _ in range(batch):
        n = int(torch.randint(1, 7, (1,), generator=g))
        cxcy = torch.rand(n, 2, generator=g) * 0.6 + 0.2
        wh = torch.rand(n, 2, generator=g) * 0.4 + 0.05
        boxes_xyxy_norm = torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1).clamp(0, 1)
        labels = torch.randint(1, NUM_CLASSES, (n,), generator=g)
        targets.append({"boxes": boxes_xyxy_norm, "labels": labels})
    return images, targets


def _autocast(device: torch.device, amp: str):
    if amp == "none":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return torch.autocast(device.type, dtype=dtype)


class OursStep:
    """Our SSD300 step; `laps` collects synchronised forward/loss/backward/optimizer ms."""

    def __init__(self, state_dict, images, targets, device, amp, channels_last):
        self.model = build("ssd300_vgg16", num_classes=NUM_CLASSES).to(device)
        self.model.load_state_dict(state_dict)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt).train()
        self.images = images.to(device).contiguous(memory_format=fmt)
        self.targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
        self.priors_cxcywh = default_boxes(self.model.cfg).cxcywh.to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.device, self.amp = device, amp
        self.laps: dict[str, list[float]] = {k: [] for k in ("forward", "loss", "backward", "optimizer")}

    def __call__(self) -> None:
        d = self.device
        t0 = time.perf_counter()
        with _autocast(d, self.amp):
            out = self.model(self.images)
            _sync(d)
            t1 = time.perf_counter()
            loss = multibox_loss(out.cls_logits_flat().float(), out.bbox_regression_flat().float(),
                                 self.priors_cxcywh, self.targets, fast_cross_entropy=self.amp != "none")
        _sync(d)
        t2 = time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss.total).backward()
        _sync(d)
        t3 = time.perf_counter()
        self.scaler.step(self.opt)
        self.scaler.update()
        _sync(d)
        t4 = time.perf_counter()
        for k, a, b in (("forward", t0, t1), ("loss", t1, t2), ("backward", t2, t3), ("optimizer", t3, t4)):
            self.laps[k].append((b - a) * 1e3)


class TheirsStep:
    """torchvision's `SSD` train step on the same weights and batch (targets in pixels)."""

    def __init__(self, state_dict, images, targets, device, amp, channels_last):
        self.model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=NUM_CLASSES).to(device)
        self.model.load_state_dict(state_dict)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        self.model = self.model.to(memory_format=fmt).train()
        self.images = [im.to(device) for im in images]
        self.targets = [{"boxes": t["boxes"].to(device) * SIDE, "labels": t["labels"].to(device)} for t in targets]
        self.opt = torch.optim.SGD(self.model.parameters(), lr=1e-4, momentum=0.9, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        self.device, self.amp = device, amp

    def __call__(self) -> None:
        with _autocast(self.device, self.amp):
            losses = self.model(self.images, self.targets)
            total = sum(losses.values())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        _sync(self.device)


def run(device: str = "cpu", batch: int = 8, repeats: int = 5, amp: str = "none",
        channels_last: bool = False, warmup: int = 2, theirs_default: bool = False) -> dict:
    """Median step time (ms) and images/s of both, ours' breakdown, and the ratio."""
    dev = torch.device(device)
    torch.manual_seed(0)
    state_dict = build("ssd300_vgg16", num_classes=NUM_CLASSES).state_dict()
    images, targets = make_batch(batch)
    ours = OursStep(state_dict, images, targets, dev, amp, channels_last)
    theirs = (TheirsStep(state_dict, images, targets, dev, "none", False) if theirs_default else
              TheirsStep(state_dict, images, targets, dev, amp, channels_last))
    t_ours, t_theirs = [], []
    for i in range(warmup + repeats):
        for fn, acc in ((ours, t_ours), (theirs, t_theirs)):
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            if i >= warmup:
                acc.append((time.perf_counter() - t0) * 1e3)
    med_o, med_t = statistics.median(t_ours), statistics.median(t_theirs)
    breakdown = {k: round(statistics.median(v[warmup:]), 1) for k, v in ours.laps.items()}
    return {"device": device, "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
            "batch": batch, "amp": amp, "channels_last": channels_last, "theirs_default": theirs_default,
            "threads": torch.get_num_threads(), "load_avg_1min": round(os.getloadavg()[0], 2),
            "ours_ms": round(med_o, 1), "torchvision_ms": round(med_t, 1), "ratio": round(med_o / med_t, 3),
            "ours_img_per_s": round(batch / med_o * 1e3, 1), "torchvision_img_per_s": round(batch / med_t * 1e3, 1),
            "ours_breakdown_ms": breakdown}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--amp", choices=("none", "bf16", "fp16"), default="none")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--theirs-default", action="store_true",
                   help="torchvision in fp32, contiguous (its default), whatever --amp/--channels-last say")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    res = run(a.device, a.batch, a.repeats, a.amp, a.channels_last, a.warmup, a.theirs_default)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
