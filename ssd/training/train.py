"""Train an SSD: `python -m ssd.train --dataset procedural --out runs/demo`.

Writes a run directory (`ssd.training.runlog`): config.json, metrics.jsonl, train.log,
status.json and checkpoints/{last,best}.pt. SIGTERM/SIGINT finish the current step,
save last.pt and end with status "cancelled" (exit 0); `--resume` continues from
last.pt with the same optimizer/scheduler state, step and RNG. A non-finite loss ends
the run "failed" (exit 1), and so does any other error (a dataset image that does not
decode, a full disk, ...): status.json and train.log then hold its message, never
"running". Under `torchrun --nproc_per_node=N` it trains with DistributedDataParallel
(gloo on CPU, nccl on GPU); only rank 0 writes files.

The options are `ssd.training.options.TrainOptions`; the pieces are in `ssd.training.engine`.
The shipped checkpoint's exact command is in the README ("The shipped model").
"""
from __future__ import annotations

import os
import shlex
import signal
import sys
import time
import traceback

import torch
import torch.distributed as dist

from ssd import models
from ssd.data.build import build_datasets
from ssd.data.common import DatasetError, skipped_on_load
from ssd.device import resolve_device
from ssd.evaluation.evaluate import evaluate_model
from ssd.priors import default_boxes
from ssd.training import checkpoint
from ssd.training.engine import (
    EpochEnd,
    LossWindow,
    Progress,
    ResumableSampler,
    StepResult,
    Trainer,
    build_loader,
    build_optimizer,
    build_scheduler,
    autocast_dtype,
    restore_training_state,
    save_training_state,
)
from ssd.training.options import TrainOptions, parse_args
from ssd.training.runlog import RunDir, paths


class TrainingError(RuntimeError):
    """A run that cannot train as asked; the message says why and what to change."""


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it after each step."""

    def __init__(self):
        self.signum = 0

    def __call__(self, signum, frame):
        self.signum = signum

    def asked(self) -> bool:
        return self.signum != 0


def main(argv: list[str] | None = None) -> int:
    """Run `python -m ssd.train ARGV`; returns the exit code (0 finished or cancelled,
    1 failed, 2 unusable device). Whatever ends the run, status.json says so."""
    opts = parse_args(list(sys.argv[1:] if argv is None else argv))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    run = RunDir(opts.out, 0, opts.device) if rank == 0 else None
    try:
        device = _init_device(opts.device, world)
        autocast_dtype(opts.amp, device)  # --amp fp16 without CUDA: refused here, before anything is built
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        _record_failure(run, str(e))
        return 2
    try:
        return _train(opts, rank, world, device, run)
    except Exception as e:  # noqa: BLE001 - every error ends the run as failed, with its reason
        expected = isinstance(e, (DatasetError, TrainingError, models.WeightsError))
        if not expected:
            traceback.print_exc()
        _record_failure(run, f"dataset error: {e}" if isinstance(e, DatasetError) else
                        str(e) if expected else f"{type(e).__name__}: {e}")
        return 1
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _record_failure(run: RunDir | None, message: str) -> None:
    """End the run as failed with `message` in status.json and train.log (rank 0)."""
    if run is None:
        print(f"error: {message}", file=sys.stderr)
        return
    run.log(f"failed: {message}")
    run.set_status(state="failed", message=message)


def _init_device(name: str, world: int) -> torch.device:
    """The device of this process; joins the DDP group when there are several."""
    device = resolve_device(name)
    if world > 1:
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def _build_model(opts: TrainOptions, class_names, device: torch.device) -> models.SSDNet:
    """The one model of the run, on `device` in the chosen memory format. A fresh run
    reads its starting weights (`--init`, `--backbone-weights`); a resumed one takes
    every weight from last.pt and only keeps the backbone stages torchvision freezes."""
    start = {}
    if opts.backbone_weights:
        start = ({"trainable_backbone_layers": 4} if opts.resume else
                 {"backbone_weights": opts.backbone_weights})
    elif opts.init and not opts.resume:
        start = {"weights": opts.init, "class_names": list(class_names), "keep_class_rows": opts.init_keep_classes}
    try:  # --box-config: the heads get its boxes per cell; parse_args has checked the file
        cfg = opts.box_cfg(num_classes=len(class_names))
    except ValueError as e:
        raise TrainingError(str(e)) from None
    model = models.build(opts.model, num_classes=len(class_names), cfg=cfg, levels=opts.level_indices(),
                         **start).to(device)
    return model.to(memory_format=_memory_format(opts))


def _memory_format(opts: TrainOptions) -> torch.memory_format:
    return torch.channels_last if opts.channels_last else torch.contiguous_format


def _advance_rng_as_before(model_name: str) -> None:
    """Draw from torch's RNG what the trainer's former throwaway 2-class model drew.

    Earlier versions built a 2-class model first, only to read its image size; its
    weight init consumed random numbers. Drawing them again keeps the seed -> weights
    mapping, so recorded commands (the shipped checkpoint's) reproduce their losses."""
    models.build(model_name, num_classes=2)


def _recipe(opts: TrainOptions, world: int) -> dict:
    """How the run was made, stored in every checkpoint."""
    return {
        "command": "python -m ssd.train " + " ".join(shlex.quote(a) for a in opts.to_argv()),
        "seed": opts.seed, "dataset": opts.dataset, "data_seed": opts.data_seed,
        "train_size": opts.train_size, "epochs": opts.epochs, "world_size": world,
        "args": {k: v for k, v in opts.to_dict().items() if k not in ("resume", "out")},
    }


def _train(opts: TrainOptions, rank: int, world: int, device: torch.device, run: RunDir | None) -> int:
    """Build the pieces once, then train (`_fit`)."""
    if opts.threads > 0:  # on a busy CPU, 1 thread avoids OpenMP threads spinning against each other
        torch.set_num_threads(opts.threads)
    torch.manual_seed(opts.seed)
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _advance_rng_as_before(opts.model)
    image_size = models.default_config(opts.model).image_size
    train_set, val_set, class_names, skipped = build_datasets(opts, image_size)
    model = _build_model(opts, class_names, device)
    model.class_names = list(class_names)
    init_note = f"; init: {model.init_note}" if getattr(model, "init_note", "") else ""
    init_note += f"; default boxes: {model.cfg.name} from {opts.box_config}" if opts.box_config else ""
    sampler = ResumableSampler(train_set, world, rank, opts.seed)
    steps_per_epoch = len(sampler) // opts.batch_size
    if steps_per_epoch == 0:
        raise TrainingError(f"{len(sampler)} training images per process is fewer than "
                            f"--batch-size {opts.batch_size}; lower --batch-size or add images")
    total_steps = opts.epochs * steps_per_epoch
    if opts.max_steps:
        total_steps = min(total_steps, opts.max_steps)
    optimizer = build_optimizer(opts.optimizer, model.parameters(), opts.lr, opts.weight_decay)
    scheduler = build_scheduler(optimizer, opts.schedule, opts.epochs * steps_per_epoch, opts.warmup_steps)
    trainer = Trainer(
        net=torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model, model=model,
        priors_cxcywh=default_boxes(model.cfg).cxcywh.to(device), optimizer=optimizer, scheduler=scheduler,
        device=device, memory_format=_memory_format(opts), clip_grad=opts.clip_grad, world=world, amp=opts.amp,
        neg_pos_ratio=opts.neg_pos_ratio, force_best=bool(opts.forced_match))
    progress = Progress()
    if opts.resume:
        progress = restore_training_state(paths(opts.out).last, model, optimizer, scheduler, trainer.scaler)
    book = RunBook(run, trainer, class_names, _recipe(opts, world), progress, total_steps, opts)
    book.start({
        "args": {k: v for k, v in opts.to_dict().items() if k != "resume"},
        "model_config": model.cfg.to_dict(), "class_names": list(class_names),
        "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "world_size": world,
        "torch": torch.__version__, "recipe": book.recipe,
    }, f"{'resuming at step ' + str(progress.step) if opts.resume else 'starting'}: {opts.model} on {device}"
       f" x{world}{'' if opts.amp == 'none' else ' --amp ' + opts.amp}, {len(train_set)} train / "
       f"{len(val_set)} val images ({opts.dataset}), "
       f"{steps_per_epoch} steps/epoch, {total_steps} steps{init_note}", skipped)
    progress.session_start = time.time()
    return _fit(trainer, book, sampler, train_set, val_set, steps_per_epoch, stop, opts)


def _fit(trainer: Trainer, book: "RunBook", sampler: ResumableSampler, train_set, val_set,
         steps_per_epoch: int, stop: _StopFlag, opts: TrainOptions) -> int:
    """The training loop: epochs of `train_one_epoch`, evaluation every `eval_every`
    epochs and at the end, last.pt after each epoch. Returns the exit code."""
    progress, total_steps = book.progress, book.total_steps
    book.open_bar()
    trainer.model.train()
    epoch = progress.step // steps_per_epoch
    evaluated_at = -1
    rng_at_resume = torch.get_rng_state() if opts.resume else None  # as last.pt saved it
    # One loader for the run: with --num-workers its workers (and their scene caches) persist.
    loader = build_loader(train_set, sampler, opts.batch_size, opts.num_workers, trainer.device)
    while progress.step < total_steps:
        # Resuming mid-epoch: the sampler skips the images this epoch already used.
        skip = (progress.step - epoch * steps_per_epoch) * opts.batch_size
        sampler.set_epoch(epoch, skip=skip)
        batches = iter(loader)
        if rng_at_resume is not None and skip:
            # Starting the loader drew its seed from torch's RNG; the uninterrupted run drew it
            # at the start of this epoch, before last.pt was saved: go back to the saved state,
            # so the resumed run augments exactly as the uninterrupted one.
            torch.set_rng_state(rng_at_resume)
        rng_at_resume = None
        book.epoch = epoch + 1
        end = trainer.train_one_epoch(batches, progress, total_steps, stop.asked, book.after_step)
        if end.reason == "non_finite":
            return book.non_finite(end, epoch + 1)
        if end.reason == "stopped":
            book.save_last(epoch + 1)
            return book.cancelled(stop.signum)
        if progress.step % steps_per_epoch == 0:  # a full epoch ended
            epoch += 1
            if epoch % opts.eval_every == 0 and progress.step < total_steps:
                book.evaluate(epoch, val_set)
                evaluated_at = progress.step
            book.report_skips(train_set, val_set)
            book.save_last(epoch)
    final_epoch = max(1, -(-progress.step // steps_per_epoch))
    if evaluated_at != progress.step:
        book.evaluate(final_epoch, val_set)
    book.save_last(final_epoch)
    book.report_skips(train_set, val_set)
    return book.finished(final_epoch)


class RunBook:
    """Run bookkeeping: config.json, train.log, metrics.jsonl, status.json, last.pt and
    best.pt. Only rank 0 has a `RunDir`; on other ranks the writes do nothing."""

    def __init__(self, run: RunDir | None, trainer: Trainer, class_names, recipe: dict, progress: Progress,
                 total_steps: int, opts: TrainOptions):
        self.run, self.trainer, self.class_names = run, trainer, list(class_names)
        self.recipe, self.progress, self.total_steps, self.opts = recipe, progress, total_steps, opts
        self.window = LossWindow()
        self.epoch = 1  # the epoch being trained (1-based)
        self.bar = None
        self.skipped = 0  # bad samples left out when the datasets were built (--skip-bad)
        self.skipped_logged = 0  # of those found only while decoding images, how many are logged

    def start(self, config: dict, message: str, skipped: int) -> None:
        if self.run is None:
            return
        self.run.write_config(config)
        self.run.log(message)
        self.skipped = skipped
        if skipped:
            self.run.log(f"skipped {skipped} bad sample(s) (--skip-bad)")
        self.run.set_status(state="running", message="training", epoch=self.progress.step //
                            max(1, config["steps_per_epoch"]) + 1, step=self.progress.step,
                            best_map=self.progress.best_map, pid=os.getpid(), total_steps=self.total_steps,
                            device=str(self.trainer.device))

    def report_skips(self, train_set, val_set) -> None:
        """Log images found bad only when decoded (--skip-bad skips them in __getitem__)."""
        on_load = skipped_on_load(train_set) + skipped_on_load(val_set)
        if self.run is not None and on_load > self.skipped_logged:
            self.run.log(f"skipped {self.skipped + on_load} bad sample(s) (--skip-bad), "
                         f"{on_load} found while decoding images")
            self.skipped_logged = on_load

    def open_bar(self) -> None:
        """Start the loss window, and a tqdm progress bar on an interactive terminal (rank 0)."""
        self.window.reset()
        if self.run is not None and sys.stderr.isatty():
            from tqdm import tqdm  # lazy: a progress bar only on an interactive terminal

            self.bar = tqdm(total=self.total_steps, initial=self.progress.step, desc="train", dynamic_ncols=True)

    def _close_bar(self) -> None:
        if self.bar:
            self.bar.close()

    def after_step(self, result: StepResult, images: int) -> None:
        """Count the step; log every `log_every` steps; write last.pt every `save_every`."""
        step = self.progress.step
        self.window.add(result.losses, images * self.trainer.world)
        if self.bar:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{float(result.losses[0]):.3f}")
        if self.run is not None and (step % self.opts.log_every == 0 or step == self.total_steps):
            self._log_window(step)
        if not result.stop and step % self.opts.save_every == 0:
            self.save_last(self.epoch)

    def _log_window(self, step: int) -> None:
        avg = self.window.mean()
        rec = {"kind": "train", "epoch": self.epoch, "step": step, "loss": avg[0], "conf": avg[1], "loc": avg[2],
               "lr": self.trainer.scheduler.get_last_lr()[0], "images_per_s": self.window.images_per_s(),
               "time": time.time()}
        self.run.log_metrics(rec)
        self.run.log(f"epoch {self.epoch} step {step}/{self.total_steps} loss {avg[0]:.4f} (conf {avg[1]:.4f} "
                     f"loc {avg[2]:.4f}) lr {rec['lr']:.2e} {rec['images_per_s']:.1f} img/s")
        self.run.set_status(epoch=self.epoch, step=step, message=f"epoch {self.epoch}, loss {avg[0]:.3f}")
        self.window.reset()

    def save_last(self, epoch: int) -> None:
        if self.run is not None:
            t = self.trainer
            save_training_state(self.run.last_path, t.model, self.class_names, self.recipe, t.optimizer,
                                t.scheduler, self.progress, epoch, t.scaler)

    def evaluate(self, epoch: int, val_set) -> None:
        """COCO AP on the validation set (rank 0); best.pt when it improves."""
        if self.run is None:
            return
        t0, step, model = time.time(), self.progress.step, self.trainer.model
        res = evaluate_model(model, val_set, self.class_names, device=self.trainer.device)
        model.train()
        self.run.log_metrics({"kind": "eval", "epoch": epoch, "step": step, "map": res["AP"], "ap50": res["AP50"],
                              "ap75": res["AP75"], "voc07_map": res["voc07_map"], "time": time.time(),
                              "ap_small": res["AP_small"]})
        self.run.log(f"eval epoch {epoch} step {step}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f} "
                     f"AP75 {res['AP75']:.3f} ({time.time() - t0:.0f}s)")
        if self.progress.best_map is None or res["AP"] > self.progress.best_map:
            self.progress.best_map = res["AP"]
            checkpoint.save(self.run.best_path, model, self.class_names, self.recipe, extra={
                "epoch": epoch, "step": step, "best_map": self.progress.best_map,
                "train_seconds": self.progress.elapsed(),
                "eval": {k: res[k] for k in ("AP", "AP50", "AP75", "voc07_map", "num_images")}})
        self.run.set_status(best_map=self.progress.best_map,
                            message=f"epoch {epoch}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f}")

    def non_finite(self, end: EpochEnd, epoch: int) -> int:
        """End the run as failed with advice; exit code 1."""
        self._close_bar()
        msg = (f"loss became non-finite ({end.result.local_total}) at step {self.progress.step + 1} "
               f"(epoch {epoch}); try a lower --lr (now {self.opts.lr:g}), a longer --warmup-steps or --clip-grad")
        if self.run is not None:
            self.run.log(msg)
            self.run.set_status(state="failed", message=msg, step=self.progress.step)
        return 1

    def cancelled(self, signum: int) -> int:
        """End the run as cancelled after last.pt was saved; exit code 0."""
        self._close_bar()
        if self.run is not None:
            step = self.progress.step
            name = signal.Signals(signum).name if signum else "a signal"
            self.run.log(f"stopped by {name} after step {step}; last.pt saved (resume with --resume)")
            self.run.set_status(state="cancelled", message=f"cancelled by {name} at step {step}", step=step)
        return 0

    def finished(self, epoch: int) -> int:
        self._close_bar()
        if self.run is not None:
            best, step = self.progress.best_map, self.progress.step
            self.run.log(f"finished: {step} steps in {self.progress.elapsed():.0f} s, best AP "
                         f"{best if best is None else round(best, 4)}")
            self.run.set_status(state="finished", message="finished", epoch=epoch, step=step, best_map=best)
        return 0


if __name__ == "__main__":
    sys.exit(main())
