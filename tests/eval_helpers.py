"""Helpers for the evaluation tests: a real evaluation, run in this process (the same
`explorer.evaluation.runner.run` the detached process calls) into a folder."""
from __future__ import annotations

import time
from pathlib import Path

from explorer.evaluation import runner
from explorer.evaluation.spec import DatasetSpec, EvalSpec, eval_key

SHIPPED = str(Path(__file__).resolve().parent.parent / "checkpoints" / "compact256_shapes.pt")


def make_eval(root: Path, num_images: int = 12, seed: int = 1000, checkpoint: str = SHIPPED, **thresholds) -> Path:
    """A finished evaluation of `checkpoint` on procedural scenes under `root`; its folder."""
    from ssd.training.runlog import SPEC_FILE, update_status
    from ssd.io import write_json_atomic

    spec = EvalSpec(checkpoint, DatasetSpec("procedural", seed=seed, num_images=num_images), **thresholds)
    d = Path(root) / eval_key(spec)
    write_json_atomic(d / SPEC_FILE, {"key": d.name, "spec": spec.to_dict(), "created_at": time.time()})
    update_status(d, state="running", pid=None, started_at=time.time(), progress=0.0)
    runner.run(d)
    update_status(d, state="finished", progress=1.0, message="finished")
    return d
