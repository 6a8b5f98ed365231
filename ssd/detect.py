"""Command line: detect objects in images and say which feature map found each one.

    python -m ssd.detect IMAGE_OR_DIR... --checkpoint PATH [options]
    python -m ssd.detect IMAGE_OR_DIR... --model ssd300_vgg16 --weights coco|PATH [options]
    python -m ssd.detect IMAGE_OR_DIR... --onnx MODEL.onnx [options]   (ONNX Runtime, see ssd.export)

Folders are expanded to the image files directly inside them (by suffix, sorted).
Output, per image: a text table (label, score, box in original pixels, level, feature
map, cell); `--per-level` adds what each feature map detects on its own.

With `--json`, one JSON document is printed: a list with one object per image,
    {"image": PATH, "width": W, "height": H,
     "detections": [{"label", "label_id", "score", "box_xyxy": [x1, y1, x2, y2],
                     "level", "feature_map": [H_l, W_l], "cell": [i, j],
                     "box_index", "default_index"}, ...],
     "per_level": [{"level", "source", "feature_map", "detections": [...]}, ...] or null}
Images that fail are left out of it.

A bad image prints one line "error: PATH: reason" on stderr; the other images are still
processed and the exit code is 2 at the end. Exit 0 when every image worked.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ssd.images import ImageError, is_image_path, load_image
from ssd.inference import Stages, run_stages
from ssd.models import MODEL_NAMES, WeightsError, build
from ssd.models.common import SSDNet
from ssd.postprocess import DEFAULTS, DISPLAY_SCORE_THRESH, add_threshold_flags
from ssd.training.checkpoint import CheckpointError
from ssd.training.checkpoint import load as load_checkpoint


def expand_inputs(paths: list[str]) -> tuple[list[Path], list[str]]:
    """Files to process (folders -> their image files, sorted) and errors for missing paths."""
    files, errors = [], []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and is_image_path(f))
            if not found:
                errors.append(f"{p}: folder has no image files")
            files.extend(found)
        elif p.exists():
            files.append(p)
        else:
            errors.append(f"{p}: file does not exist")
    return files, errors


def _load_model(args) -> SSDNet:
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, device=args.device)
        return model
    if args.weights is None:
        print(f"warning: {args.model} has random weights (pass --weights coco|PATH)", file=sys.stderr)
    model = build(args.model, num_classes=args.num_classes, weights=args.weights)
    return model.to(args.device).eval()


def _json_record(path: Path, st: Stages, per_level: bool, level_names) -> dict:
    rec = {
        "image": str(path),
        "width": st.image_hw[1],
        "height": st.image_hw[0],
        "detections": st.detections.to_records(st.class_names),
        "per_level": None,
    }
    if per_level:
        rec["per_level"] = [
            {
                "level": k,
                "source": level_names[k],
                "feature_map": list(st.feature_sizes[k]),
                "detections": det.to_records(st.class_names),
            }
            for k, det in enumerate(st.level_detections)
        ]
    return rec


def _table(records: list[dict], indent: str = "  ") -> list[str]:
    if not records:
        return [f"{indent}(none)"]
    lines = [f"{indent}{'label':<16} {'score':>6} {'x1':>7} {'y1':>7} {'x2':>7} {'y2':>7}  level  map     cell"]
    for r in records:
        x1, y1, x2, y2 = r["box_xyxy"]
        fm = f"{r['feature_map'][0]}x{r['feature_map'][1]}"
        cell = f"({r['cell'][0]},{r['cell'][1]})"
        lines.append(
            f"{indent}{r['label'][:16]:<16} {r['score']:>6.3f} {x1:>7.1f} {y1:>7.1f} {x2:>7.1f} {y2:>7.1f}"
            f"  {r['level']:>5}  {fm:<7} {cell}"
        )
    return lines


def _print_text(path: Path, st: Stages, per_level: bool, level_names) -> None:
    recs = st.detections.to_records(st.class_names)
    h, w = st.image_hw
    print(f"{path} ({w}x{h}): {len(recs)} detection(s), {st.timings.get('total', 0.0):.0f} ms")
    print("\n".join(_table(recs)))
    if per_level:
        for k, det in enumerate(st.level_detections):
            fh, fw = st.feature_sizes[k]
            print(f"  level {k} {level_names[k]} {fh}x{fw}: {len(det)} detection(s)")
            print("\n".join(_table(det.to_records(st.class_names), indent="    ")))


def _main_onnx(args) -> int:
    """`main` for --onnx: the same records, from `ssd.export.runtime.OnnxDetector`."""
    from ssd.export import ExportError
    from ssd.export.runtime import OnnxDetector

    try:
        det = OnnxDetector(args.onnx)
        baked = det.info.postprocess
        if baked is not None and args.nms_thresh not in (None, baked.nms_thresh):
            raise ValueError(f"{args.onnx} has NMS IoU {baked.nms_thresh} baked in; export again with "
                             f"--nms-thresh {args.nms_thresh}")
        if args.per_level:
            raise ValueError("--per-level needs the PyTorch model (--checkpoint or --model), not --onnx")
        det._thresholds(args.score_thresh, args.detections_per_img)  # refuse thresholds looser than the file's
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results, failed = [], []
    for path, image in _each_image(args.inputs, failed):
        dets, (h, w), ms = det.detect(image, score_thresh=args.score_thresh, detections_per_img=args.detections_per_img)
        recs = dets.to_records(list(det.info.class_names))
        if args.json:
            results.append({"image": str(path), "width": w, "height": h, "detections": recs, "per_level": None})
        else:
            print(f"{path} ({w}x{h}): {len(recs)} detection(s), {ms:.0f} ms")
            print("\n".join(_table(recs)))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 2 if failed else 0


def _each_image(inputs: list[str], failed: list[bool]):
    """(path, PIL image) of each readable image of `inputs` (files and folders); each one
    that cannot be read prints "error: ..." and appends True to `failed`."""
    files, errors = expand_inputs(inputs)
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
        failed.append(True)
    for path in files:
        try:
            image = load_image(path)
        except ImageError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(True)
            continue
        yield path, image


def parse_args_checked(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace | None:
    """`parser.parse_args(argv)`, or None after printing "error: ..." when --weights comes
    without --model (a checkpoint carries its own weights). Shared with `python -m ssd.export`."""
    args = parser.parse_args(argv)
    if args.weights is not None and args.model is None:
        print("error: --weights needs --model (a checkpoint carries its own weights)", file=sys.stderr)
        return None
    return args


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ssd.detect",
        description="Detect objects with an SSD; print each detection with its level, feature map and cell.",
    )
    p.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="image files or folders of images")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="an ssd-explorer checkpoint (.pt) written by ssd.train")
    src.add_argument("--model", choices=MODEL_NAMES, help="build this architecture (with --weights)")
    src.add_argument("--onnx", metavar="MODEL.onnx",
                     help="a file from python -m ssd.export, run with ONNX Runtime (its thresholds are baked in: "
                          "--score-thresh / --detections-per-img may only be stricter; no --per-level)")
    p.add_argument("--weights", help="with --model: 'coco' (torchvision download) or a state dict .pth")
    p.add_argument("--num-classes", type=int, default=None, help="with --model: classes incl. background")
    p.add_argument("--per-level", action="store_true", help="also show what each feature map detects")
    p.add_argument("--json", action="store_true", help="print one JSON list, one object per image")
    add_threshold_flags(p, score_thresh_default=DISPLAY_SCORE_THRESH, topk_candidates=False)
    p.add_argument("--level-score-thresh", "--level-score-threshold", dest="level_score_thresh", type=float,
                   default=None, help="score threshold for --per-level (default: --score-thresh)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default cpu)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args_checked(build_parser(), argv)
    if args is None:
        return 2
    if args.onnx:
        return _main_onnx(args)
    try:
        model = _load_model(args)
    except (CheckpointError, WeightsError, ValueError, RuntimeError) as e:
        print(f"error: cannot load the model: {e}", file=sys.stderr)
        return 2
    level_thr = args.level_score_thresh if args.level_score_thresh is not None else args.score_thresh
    try:
        post_cfg = DEFAULTS.with_overrides(score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
                                           detections_per_img=args.detections_per_img,
                                           level_score_thresh=level_thr, level_nms_thresh=args.nms_thresh)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results, failed = [], []
    for path, image in _each_image(args.inputs, failed):
        st = run_stages(model, image, post_cfg, device=args.device)
        if args.json:
            results.append(_json_record(path, st, args.per_level, model.level_names))
        else:
            _print_text(path, st, args.per_level, model.level_names)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    return 2 if failed else 0


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    raise SystemExit(main())
