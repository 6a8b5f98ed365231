"""Training pieces `ssd.train` puts together (as DETR's `engine.py`, lufficc/SSD's
`engine/trainer.py`): the data loader, the
optimizer and its learning-rate schedule, a resumable distributed sampler, the
training state a checkpoint keeps, and `Trainer.train_one_epoch` over `Trainer.step`.

Devices are `ssd.device`'s, datasets `ssd.data.build`'s.

Letters: B images per batch, A default boxes, K classes (background included).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from ssd.data.common import collate
from ssd.loss import multibox_loss
from ssd.training import checkpoint

SCHEDULES = ("cosine", "step", "constant")
OPTIMIZERS = ("adamw", "sgd")
AMP_MODES = ("none", "bf16", "fp16")  # --amp: fp32, bfloat16 autocast (CPU/GPU), float16 autocast + GradScaler (GPU)


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of `--amp` on `device` (None: plain fp32).

    bf16 runs on CPU and GPU (on a CPU with AVX-512 BF16 / AMX, oneDNN runs the convs in
    bfloat16); fp16 needs CUDA, where a GradScaler keeps small gradients from underflowing.
    Raises ValueError naming the flag for fp16 on a CPU or an unknown mode."""
    if amp not in AMP_MODES:
        raise ValueError(f"--amp must be one of {AMP_MODES}, got {amp!r}")
    if amp == "fp16" and device.type != "cuda":
        raise ValueError(f"--amp fp16 needs a CUDA GPU (float16 autocast with a GradScaler); the device here is "
                         f"{device.type}: use --amp bf16 on the CPU, or --amp none")
    return {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}[amp]


def build_loader(dataset: Dataset, sampler: Sampler, batch_size: int, num_workers: int,
                 device: torch.device) -> DataLoader:
    """Training batches of `batch_size` (the last partial batch dropped) in `sampler`'s order.

    With `num_workers` > 0 the batches are made in worker processes while the step
    computes, and the workers persist across epochs (iterate the same loader again after
    `sampler.set_epoch`), so what a dataset caches in them (the procedural scenes) is
    made once per run, not once per epoch. Pinned memory on CUDA (faster copies)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, collate_fn=collate,
                      num_workers=num_workers, persistent_workers=num_workers > 0,
                      pin_memory=device.type == "cuda")


def build_optimizer(name: str, params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """SGD (momentum 0.9) or AdamW over `params`."""
    if name == "sgd":  # the paper: SGD, momentum 0.9, weight decay 5e-4 (Sec. 3)
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"--optimizer must be one of {OPTIMIZERS}, got {name!r}")


def lr_lambda(schedule: str, total_steps: int, warmup_steps: int, step_milestones=(2 / 3, 5 / 6)):
    """Multiplier of the base lr at a step: linear warmup, then cosine to 0, steps
    x0.1 at 2/3 and 5/6 of training (the paper's drops: 40k and 50k of 60k iterations
    on VOC, Sec. 3.1; 160k and 200k of 240k on COCO, Sec. 3.4), or constant."""
    if schedule not in SCHEDULES:
        raise ValueError(f"--schedule must be one of {SCHEDULES}, got {schedule!r}")
    total = max(1, int(total_steps))
    warm = max(0, int(warmup_steps))

    def f(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if schedule == "constant":
            return 1.0
        if schedule == "step":
            return 0.1 ** sum(step >= m * total for m in step_milestones)
        t = min(1.0, (step - warm) / max(1, total - warm))
        return 0.5 * (1.0 + math.cos(math.pi * t))

    return f


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int,
                    warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-step schedule (`lr_lambda`) over `total_steps` steps of the whole run."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, total_steps, warmup_steps))


class ResumableSampler(Sampler[int]):
    """DistributedSampler (shuffle per epoch with `seed + epoch`, one shard per rank)
    that can skip the first `skip` indices of its shard, so a resumed run continues
    mid-epoch exactly where it stopped."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        self.inner = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                                        seed=seed, drop_last=False)
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.inner.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self):
        return iter(list(self.inner)[self.skip:])

    def __len__(self) -> int:
        return len(self.inner) - self.skip


# ------------------------------------------------------------- state a checkpoint keeps
@dataclass
class Progress:
    """Where a run stands: saved in last.pt, restored by `--resume`."""

    step: int = 0  # optimiser steps done, over all sessions
    best_map: float | None = None  # best validation COCO AP so far (None: not evaluated yet)
    train_seconds: float = 0.0  # training wall time of the earlier sessions of a resumed run
    session_start: float = field(default_factory=time.time)  # unix time this session started

    def elapsed(self) -> float:
        """Seconds of training so far, over all sessions."""
        return self.train_seconds + time.time() - self.session_start


def save_training_state(path, model, class_names, recipe: dict, optimizer, scheduler, progress: Progress,
                        epoch: int, scaler: torch.amp.GradScaler | None = None) -> None:
    """Write last.pt: the weights plus what `restore_training_state` needs to go on
    exactly (optimizer, scheduler, step, torch's RNG state, the fp16 loss scale)."""
    extra = {
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "epoch": epoch,
        "step": progress.step, "best_map": progress.best_map, "rng": torch.get_rng_state(),
        "train_seconds": progress.elapsed(),
    }
    if scaler is not None and scaler.is_enabled():
        extra["grad_scaler"] = scaler.state_dict()
    checkpoint.save(path, model, class_names, recipe, extra=extra)


def restore_training_state(path, model, optimizer, scheduler, scaler: torch.amp.GradScaler | None = None) -> Progress:
    """Load last.pt at `path` into `model`, `optimizer`, `scheduler`, the fp16 `scaler`
    (when both have one) and torch's RNG; returns the run's `Progress`. CheckpointError
    names a bad file."""
    ckpt = checkpoint.load_state_into(model, path)
    optimizer.load_state_dict(ckpt["optimizer"])
    scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and scaler.is_enabled() and "grad_scaler" in ckpt:
        scaler.load_state_dict(ckpt["grad_scaler"])
    if "rng" in ckpt:
        torch.set_rng_state(ckpt["rng"])
    return Progress(step=int(ckpt["step"]), best_map=ckpt.get("best_map"),
                    train_seconds=float(ckpt.get("train_seconds", 0.0)))


# ------------------------------------------------------------------- training steps --
class StepResult(NamedTuple):
    """One optimisation step, agreed by every process."""

    losses: Tensor  # (3,) total, conf, loc: mean over the processes, detached
    non_finite: bool  # some process's loss was NaN or inf: no update was made
    stop: bool  # some process was asked to stop (SIGTERM / SIGINT)
    local_total: float | None  # this process's total loss when non-finite (for the message), else None


class EpochEnd(NamedTuple):
    """Why `Trainer.train_one_epoch` returned."""

    reason: str  # "epoch" (loader exhausted) | "done" (total steps reached) | "stopped" | "non_finite"
    result: StepResult | None  # the last step (None when the loader was empty)


@dataclass
class Trainer:
    """The fixed pieces of a training loop (built once per run by `ssd.train`)."""

    net: torch.nn.Module  # the model, or its DistributedDataParallel wrapper
    model: torch.nn.Module  # the bare model (its parameters are clipped)
    priors_cxcywh: Tensor  # (A, 4) default boxes, normalised, on the device
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler  # stepped once per optimiser step
    device: torch.device
    memory_format: torch.memory_format  # channels_last or contiguous_format for the images
    clip_grad: float  # max gradient norm (0: off)
    world: int  # processes in the DDP group (1: no DDP)
    amp: str = "none"  # AMP_MODES: "none" fp32, "bf16" autocast, "fp16" autocast + GradScaler (CUDA)
    neg_pos_ratio: float = 3.0  # hard negatives per positive (Sec. 2.2); inf: every negative
    force_best: bool = True  # matching step 1: each GT also takes its best default box (Sec. 2.2)

    def __post_init__(self):
        self.amp_dtype = autocast_dtype(self.amp, self.device)
        # fp16 gradients underflow without loss scaling; bf16 has fp32's range and needs none.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp == "fp16")

    def forward(self, images: Tensor):
        """The network on images (B, 3, H, W), under autocast with --amp -> `HeadOutputs`."""
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            return self.net(images)

    def loss(self, out, targets: list[dict]):
        """The Eq. 1 loss of head outputs `out`, in fp32 -> `MultiboxLoss`.

        With --amp the log-softmax runs over the class axis in (B, C, A) layout
        (`fast_cross_entropy`), ~4x faster on the CPU for few classes, equal to ~1e-7
        but not bit for bit; without --amp the loss is computed as it always was."""
        # .float() is the identity in fp32; under autocast the head outputs are bf16/fp16.
        return multibox_loss(out.cls_logits_flat().float(), out.bbox_regression_flat().float(),
                             self.priors_cxcywh, targets, fast_cross_entropy=self.amp_dtype is not None,
                             neg_pos_ratio=self.neg_pos_ratio, force_best=self.force_best)

    def forward_loss(self, images: Tensor, targets: list[dict]):
        """`loss(forward(images), targets)`."""
        return self.loss(self.forward(images), targets)

    def step(self, images: Tensor, targets: list[dict], stop_asked: bool) -> StepResult:
        """Forward, Eq. 1 loss, backward, clip, optimizer and scheduler step on a
        batch (images (B, 3, H, W) on the device). One all-reduce carries the losses,
        "all finite" and "stop asked", so every process takes the same decision."""
        loss = self.forward_loss(images, targets)
        flags = torch.stack([loss.total.detach(), loss.conf.detach(), loss.loc.detach(),
                             (~torch.isfinite(loss.total.detach())).float(),
                             torch.tensor(float(stop_asked), device=self.device)])
        if self.world > 1:
            dist.all_reduce(flags)
            flags[:3] /= self.world
        if flags[3] > 0:
            return StepResult(flags[:3], True, bool(flags[4] > 0), loss.total.item())
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss.total).backward()  # scale() is the identity unless fp16
        if self.clip_grad > 0:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.scaler.step(self.optimizer)  # fp16: skipped when a gradient overflowed
        self.scaler.update()
        self.scheduler.step()
        return StepResult(flags[:3], False, bool(flags[4] > 0), None)

    def train_one_epoch(self, loader: Iterable, progress: Progress, total_steps: int,
                        stop_asked: Callable[[], bool],
                        after_step: Callable[[StepResult, int], None]) -> EpochEnd:
        """Steps over `loader` (a DataLoader or its iterator) until it ends, `total_steps` is reached, a stop is
        asked or the loss is non-finite. After each update, `progress.step` is
        counted and `after_step(result, images in the batch)` runs (logging, saving)."""
        result = None
        for images, targets in loader:
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
            targets = [{k: v.to(self.device) for k, v in t.items()} for t in targets]
            result = self.step(images, targets, stop_asked())
            if result.non_finite:
                return EpochEnd("non_finite", result)
            progress.step += 1
            after_step(result, images.shape[0])
            if result.stop:
                return EpochEnd("stopped", result)
            if progress.step >= total_steps:
                return EpochEnd("done", result)
        return EpochEnd("epoch", result)


class LossWindow:
    """Mean losses and images/s since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.steps, self.images, self.start, self.sum = 0, 0, time.time(), torch.zeros(3)

    def add(self, losses: Tensor, images: int) -> None:
        """Count one step: `losses` (3,) total, conf, loc; `images` over all processes."""
        self.steps += 1
        self.images += images
        self.sum += losses.cpu()

    def mean(self) -> list[float]:
        """[total, conf, loc] averaged over the steps of the window."""
        return (self.sum / max(1, self.steps)).tolist()

    def images_per_s(self) -> float:
        return self.images / max(time.time() - self.start, 1e-9)
