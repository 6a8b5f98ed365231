"""The detached process of one background evaluation.

    python -m explorer.evaluation.runner EVAL_DIR

Reads `EVAL_DIR/spec.json`, runs `ssd.evaluation.evaluate.collect` (with the error analysis) and
writes, each atomically: `status.json` after every batch (state, progress, message),
`raw.pt` (the kept network outputs, `explorer.evaluation.raw`) and `result.json` (the
AP figures, PR curves, TIDE errors, per level, misses, confusion, and per image the
error counts and where it comes from). SIGTERM ends it as `cancelled`; any error as
`failed` with the reason. No streamlit import.
"""
from __future__ import annotations

import signal
import sys
import time
import traceback
from pathlib import Path

from explorer.evaluation.spec import EvalInputError, EvalSpec, image_sources, load_checked

SPEC_FILE, STATUS_FILE, RESULT_FILE, RAW_FILE, LOG_FILE = "spec.json", "status.json", "result.json", "raw.pt", "runner.log"


class _Cancelled(Exception):
    """Raised by the SIGTERM handler: the user cancelled the evaluation."""


def _on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise _Cancelled()


def write_status(eval_dir: Path, **fields) -> dict:
    """Merge `fields` into `status.json` (atomic replace), stamping `updated_at`."""
    from ssd.training.runlog import read_json
    from ssd.io import write_json_atomic

    path = Path(eval_dir) / STATUS_FILE
    try:
        status = read_json(path)
    except (OSError, ValueError):
        status = {}
    status.update(fields, updated_at=time.time())
    write_json_atomic(path, status)
    return status


def per_image_errors(analysis) -> list[dict]:
    """Per evaluated image: TIDE error counts ("Cls" ... "Bkg", "Miss"), misses by cause,
    GT and detection counts, from an `ssd.evaluation.error_types.ErrorAnalysis` fed with every image."""
    from ssd.evaluation.error_types.causes import CAUSES
    from ssd.evaluation.error_types.tide import ERROR_TYPES, TP, classify_image

    rows = []
    for g, d in zip(analysis.gts, analysis.dets):
        res = classify_image(d["boxes_xyxy_px_in"], d["scores"], d["labels"], g["boxes_xyxy_px_in"].float(),
                             g["labels"].long(), analysis.tide_cfg)
        counts = {t: sum(k == t for k in res.kind) for t in ERROR_TYPES[:-1]}
        counts["Miss"] = int(res.gt_missed.sum())
        rows.append({"errors": counts, "causes": {c: 0 for c in CAUSES}, "num_gt": len(g["labels"]),
                     "num_det": len(d["scores"]), "tp": sum(k == TP for k in res.kind)})
    for m in analysis.misses:
        rows[m["image"]]["causes"][m["cause"]] += 1
    return rows


def _orders() -> dict:
    """The orders the page shows things in (result.json is written with sorted keys)."""
    from ssd.evaluation.error_types.causes import CAUSES
    from ssd.evaluation.error_types.tide import ERROR_TYPES

    return {"error_types": list(ERROR_TYPES), "causes": list(CAUSES)}


def run(eval_dir: Path, batch_size: int = 16) -> dict:
    """Evaluate `eval_dir`'s spec and write its files; returns the result dict."""
    from ssd.io import write_bytes_atomic
    from ssd.evaluation.evaluate import collect, score_with_errors
    from ssd.postprocess import PostprocessConfig
    from ssd.training.runlog import read_json
    from ssd.io import write_json_atomic
    from explorer.evaluation.raw import RAW_FLOOR, RawCollector, raw_to_bytes

    spec = EvalSpec.from_dict(read_json(eval_dir / SPEC_FILE)["spec"])
    write_status(eval_dir, message="loading the checkpoint and the dataset")
    model, class_names, ds = load_checked(spec)
    raw = RawCollector(min(RAW_FLOOR, spec.score_thresh))
    t0 = time.time()

    def on_batch(done: int, total: int, scores, boxes_px_in, gts) -> None:
        raw.add_batch(scores, boxes_px_in, gts)
        write_status(eval_dir, progress=done / total, done=done, total=total,
                     message=f"{done}/{total} images ({done / max(time.time() - t0, 1e-9):.1f} images/s)")

    config = PostprocessConfig(**spec.thresholds())
    gts, dets, analysis = collect(model, ds, class_names, batch_size=batch_size, config=config, errors=True,
                                  on_batch=on_batch)
    write_status(eval_dir, message="scoring: AP, PR curves, TIDE errors")
    res = score_with_errors(gts, dets, class_names, analysis, curves=True)
    res.update(per_image=per_image_errors(analysis), sources=image_sources(ds, spec.dataset),
               class_names=class_names, feature_maps=list(model.cfg.feature_maps), image_size=model.cfg.image_size,
               model_config=model.cfg.to_dict(), checkpoint=spec.checkpoint, dataset=spec.dataset.describe(),
               thresholds=spec.thresholds(), seconds=time.time() - t0, **_orders())
    write_bytes_atomic(eval_dir / RAW_FILE, raw_to_bytes(raw.result()))
    write_json_atomic(eval_dir / RESULT_FILE, res)
    return res


def main(argv: list[str] | None = None) -> int:
    import os

    import torch

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m explorer.evaluation.runner EVAL_DIR", file=sys.stderr)
        return 2
    eval_dir = Path(argv[0])
    signal.signal(signal.SIGTERM, _on_sigterm)
    torch.set_num_threads(max(1, int(os.environ.get("SSD_TORCH_THREADS", 0) or (os.cpu_count() or 2) // 2)))
    write_status(eval_dir, state="running", pid=os.getpid(), started_at=time.time(), progress=0.0)
    try:
        run(eval_dir)
    except _Cancelled:
        write_status(eval_dir, state="cancelled", message="cancelled by the user")
        return 0
    except (EvalInputError, ValueError, RuntimeError, OSError) as e:  # DatasetError, CheckpointError: ValueErrors
        traceback.print_exc()
        write_status(eval_dir, state="failed", message=str(e))
        return 1
    except Exception as e:  # anything else still ends as failed, with its type
        traceback.print_exc()
        write_status(eval_dir, state="failed", message=f"{type(e).__name__}: {e}")
        return 1
    write_status(eval_dir, state="finished", progress=1.0, message="finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
