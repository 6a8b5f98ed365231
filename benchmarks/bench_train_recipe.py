"""Where a step of the shipped recipe's training goes, today's fp32 vs `--amp bf16`, in one run.

    python -m benchmarks.bench_train_recipe [--repeats 8] [--threads 1] [--json PATH]

The recipe is the shipped model's (README "The shipped model"): compact256, procedural
scenes, batch 32, AdamW, clip 10, channels-last, --threads 1. Both trainers are
`ssd.training.engine.Trainer`s (the code `ssd.train` runs) on the same weights and batch, and their
steps alternate (a busy machine slows both alike). Per step, medians (ms):

    data       making a batch: epoch 1 draws the scenes (`make_scene`), later epochs only
               the light augmentation of cached scenes (`ProceduralDataset(cache=True)`)
    forward    the network (under bf16 autocast for --amp bf16)
    loss       matching, mining and Eq. 1 (fp32 in both)
    backward   and gradient clipping
    optimizer  AdamW and the scheduler

The projection: today's command (--num-workers 0) pays data + step serially; the fast one
(--amp bf16 --num-workers 1) makes the batches in a worker process on the other core,
so it pays max(step, data). Evaluation (every 2 epochs, 200 images) is left out of both.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from ssd import models
from ssd.data import procedural
from ssd.data.common import collate
from ssd.data.transforms import train_transform
from ssd.priors import default_boxes
from ssd.training.engine import Trainer, build_optimizer, build_scheduler

BATCH = 32  # the shipped recipe's --batch-size
STEPS = 930  # 10 epochs x 93 steps of 3000 scenes
EPOCHS = 10
PARTS = ("forward", "loss", "backward", "optimizer")


def make_trainer(amp: str) -> Trainer:
    """The shipped recipe's trainer (seed 0 weights), with `amp`."""
    torch.manual_seed(0)
    model = models.build("compact256", num_classes=len(procedural.CLASSES)).to(memory_format=torch.channels_last)
    opt = build_optimizer("adamw", model.parameters(), 2e-3, 5e-4)
    return Trainer(net=model, model=model, priors_cxcywh=default_boxes(model.cfg).cxcywh, optimizer=opt,
                   scheduler=build_scheduler(opt, "cosine", STEPS, 50), device=torch.device("cpu"),
                   memory_format=torch.channels_last, clip_grad=10.0, world=1, amp=amp)


def timed_step(t: Trainer, images, targets) -> dict[str, float]:
    """`Trainer.step`'s calls, in its order, split into laps (ms)."""
    t0 = time.perf_counter()
    out = t.forward(images)
    t1 = time.perf_counter()
    loss = t.loss(out, targets)
    t2 = time.perf_counter()
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss.total).backward()
    torch.nn.utils.clip_grad_norm_(t.model.parameters(), t.clip_grad)
    t3 = time.perf_counter()
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.scheduler.step()
    t4 = time.perf_counter()
    return {"forward": (t1 - t0) * 1e3, "loss": (t2 - t1) * 1e3, "backward": (t3 - t2) * 1e3,
            "optimizer": (t4 - t3) * 1e3, "step": (t4 - t0) * 1e3}


def data_ms(repeats: int) -> tuple[float, float]:
    """(epoch-1 batch: scenes drawn, later batch: cached scenes), ms per batch of 32."""
    ds = procedural.ProceduralDataset(BATCH * repeats, 0, 256, train_transform(256, "light"), cache=True)
    t0 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    t1 = time.perf_counter()
    for i in range(len(ds)):
        ds[i]
    t2 = time.perf_counter()
    return (t1 - t0) * 1e3 / repeats, (t2 - t1) * 1e3 / repeats


def run(repeats: int = 8, warmup: int = 2) -> dict:
    ds = procedural.ProceduralDataset(BATCH, 0, 256, train_transform(256, "light"), cache=True)
    images, targets = collate([ds[i] for i in range(BATCH)])
    images = images.contiguous(memory_format=torch.channels_last)
    trainers = {"fp32": make_trainer("none"), "bf16": make_trainer("bf16")}
    laps = {k: [] for k in trainers}
    for i in range(warmup + repeats):
        for name, t in trainers.items():
            lap = timed_step(t, images, targets)
            if i >= warmup:
                laps[name].append(lap)
    med = {name: {k: round(statistics.median(lap[k] for lap in v), 1) for k in (*PARTS, "step")}
           for name, v in laps.items()}
    data_new, data_cached = data_ms(max(2, repeats // 2))
    per_epoch = STEPS // EPOCHS
    today = per_epoch * (data_new + med["fp32"]["step"]) + (STEPS - per_epoch) * (data_cached + med["fp32"]["step"])
    fast = per_epoch * max(data_new, med["bf16"]["step"]) + (STEPS - per_epoch) * max(data_cached, med["bf16"]["step"])
    return {"threads": torch.get_num_threads(), "load_avg_1min": round(os.getloadavg()[0], 2), "batch": BATCH,
            "step_ms": med, "data_ms_per_batch": {"epoch1_new_scenes": round(data_new, 1),
                                                  "cached_scenes": round(data_cached, 1)},
            "step_ratio_bf16_vs_fp32": round(med["bf16"]["step"] / med["fp32"]["step"], 3),
            "projected_train_s": {"today_fp32_serial_data": round(today / 1e3), "amp_bf16_worker": round(fast / 1e3)},
            "projected_ratio": round(fast / today, 3)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the shipped command: 1)")
    p.add_argument("--json", help="also write the result here")
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    res = run(a.repeats, a.warmup)
    print(json.dumps(res, indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
