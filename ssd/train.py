"""Train an SSD: `python -m ssd.train --dataset procedural --out runs/demo`.

Writes a run directory (see `ssd.runlog`): config.json, metrics.jsonl, train.log,
status.json and checkpoints/{last,best}.pt. SIGTERM/SIGINT finish the current step,
save last.pt and end with status "cancelled" (exit 0); `--resume` continues from
last.pt with the same optimizer/scheduler state and step. A non-finite loss ends the
run "failed" (exit 1). Under `torchrun --nproc_per_node=N` it trains with
DistributedDataParallel (gloo on CPU, nccl on GPU); only rank 0 writes files.

The shipped checkpoint's exact command is in the README ("The shipped model").
"""
from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from ssd import checkpoint
from ssd.data.common import DatasetError, collate, skipped_on_load
from ssd.data.transforms import AUGMENTATIONS
from ssd.engine import OPTIMIZERS, SCHEDULES, ResumableSampler, build_datasets, build_optimizer, lr_lambda, resolve_device
from ssd.loss import multibox_loss
from ssd.models import MODEL_NAMES, build
from ssd.priors import default_boxes
from ssd.runlog import RunDir, read_json, write_json_atomic

# Arguments a resumed run may change on its command line (the rest come from config.json).
RESUME_OVERRIDABLE = ("epochs", "max_steps", "device", "num_workers", "threads", "log_every", "eval_every")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssd.train", description=__doc__.split("\n\n")[0])
    d = p.add_argument_group("data")
    d.add_argument("--dataset", choices=("procedural", "voc", "coco"), default="procedural")
    d.add_argument("--data-root", default="", help="VOC folder (JPEGImages/, Annotations/, ImageSets/Main/)")
    d.add_argument("--classes", default="auto", help="VOC class list: auto | voc | shapes | comma list")
    d.add_argument("--coco-json", default="", help="COCO instances JSON (training)")
    d.add_argument("--coco-images", default="", help="COCO image folder")
    d.add_argument("--coco-val-json", default="", help="COCO validation JSON (default: hold out --val-size images)")
    d.add_argument("--coco-val-images", default="", help="COCO validation image folder (default: --coco-images)")
    d.add_argument("--train-size", type=int, default=2000, help="procedural: training scenes")
    d.add_argument("--val-size", type=int, default=200, help="procedural: validation scenes (seed + 1)")
    d.add_argument("--data-seed", type=int, default=0, help="procedural: scene seed of the training set")
    d.add_argument("--skip-bad", action="store_true", help="skip bad samples (count logged) instead of failing")
    d.add_argument("--augment", choices=AUGMENTATIONS, default="ssd", help="ssd | light (flip+colour) | none")
    m = p.add_argument_group("model and optimisation")
    m.add_argument("--model", choices=MODEL_NAMES, default="compact256")
    m.add_argument("--epochs", type=int, default=10)
    m.add_argument("--batch-size", type=int, default=16, help="images per step per process")
    m.add_argument("--optimizer", choices=OPTIMIZERS, default="adamw")
    m.add_argument("--lr", type=float, default=1e-3)
    m.add_argument("--schedule", choices=SCHEDULES, default="cosine")
    m.add_argument("--warmup-steps", type=int, default=100)
    m.add_argument("--weight-decay", type=float, default=5e-4)
    m.add_argument("--clip-grad", type=float, default=10.0, help="max gradient norm (0: off)")
    m.add_argument("--seed", type=int, default=0, help="init, shuffling and augmentation seed")
    r = p.add_argument_group("run")
    r.add_argument("--out", required=True, help="run directory")
    r.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    r.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    r.add_argument("--eval-every", type=int, default=1, help="evaluate every N epochs (and at the end)")
    r.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (0: all epochs)")
    r.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    r.add_argument("--channels-last", type=int, default=1, choices=(0, 1),
                   help="1: NHWC memory format for the convolutions (faster on CPU)")
    r.add_argument("--threads", type=int, default=0, help="torch CPU threads per process (0: torch's default)")
    r.add_argument("--log-every", type=int, default=20, help="log every N steps")
    r.add_argument("--save-every", type=int, default=200, help="write last.pt every N steps (and each epoch)")
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume:
        cfg_path = Path(args.out) / "config.json"
        if not cfg_path.is_file():
            parser.error(f"--resume: {cfg_path} not found (nothing to resume)")
        saved = read_json(cfg_path)["args"]
        # Which options did this command line set explicitly? Parse again without defaults.
        probe = build_parser()
        for a in probe._actions:
            a.default = argparse.SUPPRESS
        explicit = vars(probe.parse_args(argv))
        merged = dict(saved)
        for k in RESUME_OVERRIDABLE:
            if k in explicit:
                merged[k] = explicit[k]
        merged.update(out=args.out, resume=True)
        args = argparse.Namespace(**{**vars(args), **merged})
    for name in ("epochs", "batch_size", "train_size", "val_size", "log_every", "eval_every", "save_every"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.max_steps < 0 or args.num_workers < 0 or args.threads < 0 or not args.lr > 0:
        parser.error("--max-steps, --num-workers and --threads must be >= 0 and --lr > 0")
    return args


class _StopFlag:
    """Set by SIGTERM/SIGINT; the loop checks it after each step."""

    def __init__(self):
        self.signum = 0

    def __call__(self, signum, frame):
        self.signum = signum


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    try:
        device = resolve_device(args.device)
    except (RuntimeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        if rank == 0:
            RunDir(args.out, 0, args.device).set_status(state="failed", message=str(e))
        return 2
    if world > 1:
        if device.type == "cuda":
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = torch.device("cuda", local)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    try:
        return _train(args, rank, world, device)
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _train(args, rank: int, world: int, device: torch.device) -> int:
    if args.threads > 0:  # on a busy CPU, 1 thread avoids OpenMP threads spinning against each other
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    model_cfg = build(args.model, num_classes=2).cfg  # image size of the architecture
    try:
        train_set, val_set, class_names, skipped = build_datasets(args, model_cfg.image_size)
    except DatasetError as e:
        if rank == 0:
            run = RunDir(args.out, 0, str(device))
            run.log(f"dataset error: {e}")
            run.set_status(state="failed", message=f"dataset error: {e}")
        return 1
    model = build(args.model, num_classes=len(class_names)).to(device)
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    model.class_names = list(class_names)
    priors_cxcywh = default_boxes(model.cfg).cxcywh.to(device)
    sampler = ResumableSampler(train_set, world, rank, args.seed)
    steps_per_epoch = len(sampler) // args.batch_size
    if steps_per_epoch == 0:
        raise SystemExit(f"error: {len(sampler)} training images per process is fewer than --batch-size {args.batch_size}")
    total_steps = args.epochs * steps_per_epoch
    if args.max_steps:
        total_steps = min(total_steps, args.max_steps)
    net = torch.nn.parallel.DistributedDataParallel(model) if world > 1 else model
    optimizer = build_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(args.schedule, args.epochs * steps_per_epoch, args.warmup_steps)
    )
    step, best_map, train_seconds = 0, None, 0.0
    run = RunDir(args.out, total_steps, str(device)) if rank == 0 else None
    if args.resume:
        ckpt = checkpoint.load_state_into(model, Path(args.out) / "checkpoints" / "last.pt")
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        step, best_map = int(ckpt["step"]), ckpt.get("best_map")
        train_seconds = float(ckpt.get("train_seconds", 0.0))
        if "rng" in ckpt:
            torch.set_rng_state(ckpt["rng"])
    recipe = {
        "command": "python -m ssd.train " + " ".join(shlex.quote(a) for a in _argv_of(args)),
        "seed": args.seed, "dataset": args.dataset, "data_seed": args.data_seed,
        "train_size": args.train_size, "epochs": args.epochs, "world_size": world,
        "args": {k: v for k, v in vars(args).items() if k not in ("resume", "out")},
    }
    if run is not None:
        write_json_atomic(run.root / "config.json", {
            "args": {k: v for k, v in vars(args).items() if k != "resume"},
            "model_config": model.cfg.to_dict(), "class_names": list(class_names),
            "steps_per_epoch": steps_per_epoch, "total_steps": total_steps, "world_size": world,
            "torch": torch.__version__, "recipe": recipe,
        })
        run.log(f"{'resuming at step ' + str(step) if args.resume else 'starting'}: {args.model} on {device}"
                f" x{world}, {len(train_set)} train / {len(val_set)} val images ({args.dataset}), "
                f"{steps_per_epoch} steps/epoch, {total_steps} steps")
        if skipped:
            run.log(f"skipped {skipped} bad sample(s) (--skip-bad)")
        run.set_status(state="running", message="training", epoch=step // steps_per_epoch + 1, step=step,
                       best_map=best_map, pid=os.getpid())

    t_start = time.time()

    def elapsed() -> float:
        """Wall-clock seconds of training so far, over all resumed sessions."""
        return train_seconds + time.time() - t_start

    def save_last(epoch: int) -> None:
        if run is None:
            return
        checkpoint.save(run.last_path, model, class_names, recipe, extra={
            "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "step": step, "best_map": best_map, "rng": torch.get_rng_state(),
            "train_seconds": elapsed(),
        })

    def evaluate(epoch: int) -> None:
        nonlocal best_map
        if run is None:
            return
        from ssd.evaluate import evaluate_model

        t0 = time.time()
        res = evaluate_model(model, val_set, class_names, device=device)
        model.train()
        run.log_metrics({"kind": "eval", "epoch": epoch, "step": step, "map": res["AP"], "ap50": res["AP50"],
                         "ap75": res["AP75"], "voc07_map": res["voc07_map"], "time": time.time()})
        run.log(f"eval epoch {epoch} step {step}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f} "
                f"AP75 {res['AP75']:.3f} ({time.time() - t0:.0f}s)")
        if best_map is None or res["AP"] > best_map:
            best_map = res["AP"]
            checkpoint.save(run.best_path, model, class_names, recipe, extra={
                "epoch": epoch, "step": step, "best_map": best_map, "train_seconds": elapsed(),
                "eval": {k: res[k] for k in ("AP", "AP50", "AP75", "voc07_map", "num_images")}})
        run.set_status(best_map=best_map, message=f"epoch {epoch}: AP {res['AP']:.3f} AP50 {res['AP50']:.3f}")

    def report_skips() -> None:
        """Log images found bad only when decoded (--skip-bad skips them in __getitem__)."""
        nonlocal skipped_logged
        on_load = skipped_on_load(train_set) + skipped_on_load(val_set)
        if run is not None and on_load > skipped_logged:
            run.log(f"skipped {skipped + on_load} bad sample(s) (--skip-bad), {on_load} found while decoding images")
            skipped_logged = on_load

    skipped_logged = 0

    bar = None
    if rank == 0 and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=step, desc="train", dynamic_ncols=True)
    model.train()
    window = {"n": 0, "images": 0, "t": time.time(), "sum": torch.zeros(3)}
    epoch = step // steps_per_epoch
    evaluated_at = -1
    while step < total_steps:
        sampler.set_epoch(epoch, skip=(step - epoch * steps_per_epoch) * args.batch_size)
        loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True,
                            collate_fn=collate, num_workers=args.num_workers,
                            persistent_workers=False, pin_memory=device.type == "cuda")
        for images, targets in loader:
            images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
            targets = [{k: v.to(device) for k, v in t.items()} for t in targets]
            out = net(images)
            loss = multibox_loss(out.cls_logits_flat(), out.bbox_regression_flat(), priors_cxcywh, targets)
            # One all-reduce: the losses for logging, "all finite" and "stop asked".
            flags = torch.stack([loss.total.detach(), loss.conf.detach(), loss.loc.detach(),
                                 (~torch.isfinite(loss.total.detach())).float(),
                                 torch.tensor(float(stop.signum != 0), device=device)])
            if world > 1:
                dist.all_reduce(flags)
                flags[:3] /= world
            if flags[3] > 0:
                msg = (f"loss became non-finite ({loss.total.item()}) at step {step + 1} (epoch {epoch + 1}); "
                       f"try a lower --lr (now {args.lr:g}), a longer --warmup-steps or --clip-grad")
                if run is not None:
                    run.log(msg)
                    run.set_status(state="failed", message=msg, step=step)
                if bar:
                    bar.close()
                return 1
            optimizer.zero_grad(set_to_none=True)
            loss.total.backward()
            if args.clip_grad > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
            optimizer.step()
            scheduler.step()
            step += 1
            window["n"] += 1
            window["images"] += images.shape[0] * world
            window["sum"] += flags[:3].cpu()
            if bar:
                bar.update(1)
                bar.set_postfix(loss=f"{float(flags[0]):.3f}")
            if run is not None and (step % args.log_every == 0 or step == total_steps):
                dt = time.time() - window["t"]
                avg = (window["sum"] / window["n"]).tolist()
                rec = {"kind": "train", "epoch": epoch + 1, "step": step, "loss": avg[0], "conf": avg[1],
                       "loc": avg[2], "lr": scheduler.get_last_lr()[0], "images_per_s": window["images"] / dt,
                       "time": time.time()}
                run.log_metrics(rec)
                run.log(f"epoch {epoch + 1} step {step}/{total_steps} loss {avg[0]:.4f} (conf {avg[1]:.4f} "
                        f"loc {avg[2]:.4f}) lr {rec['lr']:.2e} {rec['images_per_s']:.1f} img/s")
                run.set_status(epoch=epoch + 1, step=step, message=f"epoch {epoch + 1}, loss {avg[0]:.3f}")
                window.update(n=0, images=0, t=time.time(), sum=torch.zeros(3))
            if flags[4] > 0:
                save_last(epoch + 1)
                if run is not None:
                    name = signal.Signals(stop.signum).name if stop.signum else "a signal"
                    run.log(f"stopped by {name} after step {step}; last.pt saved (resume with --resume)")
                    run.set_status(state="cancelled", message=f"cancelled by {name} at step {step}", step=step)
                if bar:
                    bar.close()
                return 0
            if step % args.save_every == 0:
                save_last(epoch + 1)
            if step >= total_steps:
                break
        if step % steps_per_epoch == 0:  # a full epoch ended
            epoch += 1
            if epoch % args.eval_every == 0 and step < total_steps:
                evaluate(epoch)
                evaluated_at = step
            report_skips()
            save_last(epoch)
    if bar:
        bar.close()
    final_epoch = max(1, -(-step // steps_per_epoch))
    if evaluated_at != step:
        evaluate(final_epoch)
    save_last(final_epoch)
    report_skips()
    if run is not None:
        run.log(f"finished: {step} steps in {elapsed():.0f} s, best AP "
                f"{best_map if best_map is None else round(best_map, 4)}")
        run.set_status(state="finished", message="finished", epoch=final_epoch, step=step, best_map=best_map)
    return 0


def _argv_of(args) -> list[str]:
    """The command-line flags that rebuild `args` (for the recipe)."""
    out = []
    defaults = vars(build_parser().parse_args(["--out", "x"]))
    for k, v in vars(args).items():
        if k in ("resume",) or (k != "out" and defaults.get(k) == v):
            continue
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            if v:
                out.append(flag)
        else:
            out += [flag, str(v)]
    return out


if __name__ == "__main__":
    sys.exit(main())
