"""Benchmark: one tuner step (new thresholds over an evaluated dataset) against the floor
it replaces, re-running the network: the evaluation of the same images at the same
thresholds (`ssd.evaluation.evaluate.evaluate_model`, forward + post-processing + AP).

On the shipped model and N procedural scenes (held-out seed 1000), in one process: an
evaluation is made once (the explorer's runner, in process), then medians of `--repeats`
runs of `explorer.evaluation.tuner.tune` (score 0.3, IoU 0.45, top k 200) and of
`evaluate_model` at the same thresholds. Their AP agree (printed). Scenes are drawn
before timing on the network side.

    python -m benchmarks.bench_tuner [--num-images 200] [--repeats 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from explorer.evaluation import jobs, runner
from explorer.evaluation.spec import DatasetSpec, EvalSpec, eval_key
from explorer.evaluation.tuner import tune
from ssd.training import checkpoint
from ssd.data.procedural import ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.evaluate import evaluate_model
from ssd.postprocess import PostprocessConfig
from ssd.training.runlog import SPEC_FILE
from ssd.io import write_json_atomic

SHIPPED = "checkpoints/compact256_shapes.pt"


def _median_s(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--num-images", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    spec = EvalSpec(SHIPPED, DatasetSpec("procedural", seed=1000, num_images=args.num_images))
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / eval_key(spec)
        write_json_atomic(d / SPEC_FILE, {"spec": spec.to_dict()})
        runner.run(d)
        res, raw = jobs.load_result(d), jobs.load_kept(d)
    cfg = jobs.model_config(res)
    model, meta = checkpoint.load(SHIPPED)
    ds = ProceduralDataset(args.num_images, 1000, 256, eval_transform(256), cache=True)
    for i in range(len(ds)):
        ds.scene(i)  # drawn before timing
    post = PostprocessConfig(score_thresh=0.3)
    t_tune, tuned = _median_s(lambda: tune(raw, res["class_names"], cfg, 0.3, 0.45, 200), args.repeats)
    t_eval, full = _median_s(lambda: evaluate_model(model, ds, meta["class_names"], config=post), args.repeats)
    print(f"{args.num_images} scenes, {args.threads} thread(s), median of {args.repeats}")
    print(f"  tuner step (post-processing + AP):        {t_tune:7.3f} s   AP {tuned['AP']:.4f}")
    print(f"  re-evaluation with the network (floor):   {t_eval:7.3f} s   AP {full['AP']:.4f}")
    print(f"  ratio tuner / re-evaluation: {t_tune / t_eval:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
