"""Command line: export an SSD to ONNX (network + box decoding + NMS in one graph).

    python -m ssd.export --checkpoint checkpoints/compact256_shapes.pt --onnx compact256.onnx
    python -m ssd.export --model ssd300_vgg16 --weights ssd300.pth --onnx ssd300.onnx --dynamic-batch
    python -m ssd.export --checkpoint run/best.pt --onnx raw.onnx --raw

The thresholds baked into the graph default to the library's (`ssd.postprocess.
PostprocessConfig`: score > 0.01, NMS IoU 0.45, 400 candidates per class, 200
detections), not `ssd.detect`'s display default of 0.3: `ssd.detect --onnx` applies
its 0.3 afterwards, which gives exactly the detections of an export at 0.3.
Exit 0 on success, 2 with one "error: ..." line on bad input.
"""
from __future__ import annotations

import argparse
import json
import sys

from ssd.export.onnx_export import DEFAULT_OPSET, MIN_OPSET, ExportError, export_onnx, load_model
from ssd.detect import parse_args_checked
from ssd.models import MODEL_NAMES
from ssd.postprocess import DEFAULTS, add_threshold_flags


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssd.export",
                                description="Export an SSD to ONNX with its box decoding and NMS.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="an ssd-explorer checkpoint (.pt): its default boxes and classes are kept")
    src.add_argument("--model", choices=MODEL_NAMES, help="build this architecture (with --weights)")
    p.add_argument("--weights", help="with --model: a local state dict .pth (or 'coco': torchvision download)")
    p.add_argument("--num-classes", type=int, default=None, help="with --model: classes incl. background")
    p.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET}, at least {MIN_OPSET})")
    p.add_argument("--dynamic-batch", action="store_true", help="allow any batch size (default: 1)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--with-postprocess", dest="raw", action="store_false",
                      help="outputs: the final detections (default)")
    what.add_argument("--raw", dest="raw", action="store_true",
                      help="outputs: the per-level head outputs (cls_logits_<l>, bbox_regression_<l>)")
    p.set_defaults(raw=False)
    add_threshold_flags(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parse_args_checked(build_parser(), argv)
    if args is None:
        return 2
    try:
        config = DEFAULTS.with_overrides(score_thresh=args.score_thresh, nms_thresh=args.nms_thresh,
                                         topk_candidates=args.topk_candidates,
                                         detections_per_img=args.detections_per_img)
        model = load_model(checkpoint=args.checkpoint, model_name=args.model, weights=args.weights,
                           num_classes=args.num_classes)
        meta = export_onnx(model, args.onnx, config=config, raw=args.raw, opset=args.opset,
                           dynamic_batch=args.dynamic_batch)
    except (ExportError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.onnx}: {meta['model_name']}, {meta['outputs']}, input {json.loads(meta['input_hw'])} "
          f"(H, W), thresholds {meta['postprocess']}, opset {args.opset}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
