"""The child entry point of the "evaluate" job kind (`explorer.jobs.kinds`).

    python -m explorer.evaluation.runner EVAL_DIR

Reads `EVAL_DIR/spec.json`, runs `ssd.evaluation.evaluate.collect` (with the error analysis) and
writes, each atomically: `status.json` after every batch (progress, message), `raw.pt`
(the kept network outputs, `explorer.evaluation.kept`) and `result.json` (the AP figures,
PR curves, TIDE errors, per level, misses, confusion, and per image the error counts and
where it comes from). The job framework's `run_child` owns the status protocol: SIGTERM
ends it as `cancelled`, any error as `failed` with the reason. File names: `ssd.runlog`.
No streamlit import.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from explorer.evaluation.kept import KEPT_FLOOR, KeptCollector, kept_to_bytes
from explorer.evaluation.spec import EvalSpec, image_sources, load_checked
from explorer.jobs.process import run_child
from ssd.evaluation.error_types.causes import CAUSES
from ssd.evaluation.error_types.tide import ERROR_TYPES, TP, classify_image
from ssd.evaluation.evaluate import collect, score_with_errors
from ssd.io import write_bytes_atomic, write_json_atomic
from ssd.postprocess import PostprocessConfig
from ssd.training.runlog import KEPT_FILE, RESULT_FILE, SPEC_FILE, read_json, update_status


def per_image_errors(analysis) -> list[dict]:
    """Per evaluated image: TIDE error counts ("Cls" ... "Bkg", "Miss"), misses by cause,
    GT and detection counts, from an `ssd.evaluation.error_types.ErrorAnalysis` fed with every image."""

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

    return {"error_types": list(ERROR_TYPES), "causes": list(CAUSES)}


def run(eval_dir: Path, batch_size: int = 16) -> dict:
    """Evaluate `eval_dir`'s spec and write its files; returns the result dict."""

    eval_dir = Path(eval_dir)
    spec = EvalSpec.from_dict(read_json(eval_dir / SPEC_FILE)["spec"])
    update_status(eval_dir, message="loading the checkpoint and the dataset")
    model, class_names, ds = load_checked(spec)
    kept = KeptCollector(min(KEPT_FLOOR, spec.score_thresh))
    t0 = time.time()

    def on_batch(done: int, total: int, scores, boxes_px_in, gts) -> None:
        kept.add_batch(scores, boxes_px_in, gts)
        update_status(eval_dir, progress=done / total,
                      message=f"{done}/{total} images ({done / max(time.time() - t0, 1e-9):.1f} images/s)")

    config = PostprocessConfig(**spec.thresholds())
    gts, dets, analysis = collect(model, ds, class_names, batch_size=batch_size, config=config, errors=True,
                                  on_batch=on_batch)
    update_status(eval_dir, message="scoring: AP, PR curves, TIDE errors")
    res = score_with_errors(gts, dets, class_names, analysis, curves=True)
    res.update(per_image=per_image_errors(analysis), sources=image_sources(ds, spec.dataset),
               class_names=class_names, feature_maps=list(model.cfg.feature_maps), image_size=model.cfg.image_size,
               model_config=model.cfg.to_dict(), checkpoint=spec.checkpoint, dataset=spec.dataset.describe(),
               thresholds=spec.thresholds(), seconds=time.time() - t0, **_orders())
    write_bytes_atomic(eval_dir / KEPT_FILE, kept_to_bytes(kept.result()))
    write_json_atomic(eval_dir / RESULT_FILE, res)
    return res


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer.evaluation.runner EVAL_DIR`: `run` under the job status protocol."""
    import torch

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m explorer.evaluation.runner EVAL_DIR", file=sys.stderr)
        return 2
    torch.set_num_threads(max(1, int(os.environ.get("SSD_TORCH_THREADS", 0) or (os.cpu_count() or 2) // 2)))
    return run_child(Path(argv[0]), run)


if __name__ == "__main__":
    sys.exit(main())
