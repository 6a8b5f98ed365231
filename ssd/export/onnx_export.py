"""Export an `SSDNet` to ONNX: the network, the box decoding and the NMS in one graph.

    export_onnx("checkpoints/compact256_shapes.pt", "compact256.onnx")

The graph (`ssd.export.onnx_graph`) takes `images` (B, 3, S, S) float32 RGB in [0, 1],
already resized from the original image (bilinear, half-pixel centres: torch's
`align_corners=False`), and normalises them itself. With post-processing it returns
the detections of every image (see `DETECTION_OUTPUTS`), boxes in network-input
pixels; with `raw=True` the per-level head outputs. `metadata_props` record what a user
needs around it (`METADATA_KEYS`): input size, normalisation, class names, the default
boxes and the baked-in thresholds.

Exporter: the TorchScript one (`torch.onnx.export(..., dynamo=False)`). The NMS is one
ONNX `NonMaxSuppression` with a batch and a class axis, emitted by a `symbolic`
(`_MultiClassNMS`); torch's dynamo exporter would need that op written again in
onnxscript (an extra dependency, and slower to export). torch warns that the
TorchScript exporter is deprecated; it is the one that holds this graph today.

Letters: B = images, S = input side, C = classes incl. background.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path

import torch

from ssd.training.checkpoint import CheckpointError
from ssd.training.checkpoint import load as load_checkpoint
from ssd.export.onnx_graph import DETECTION_OUTPUTS, DetectionGraph, RawGraph
from ssd.models import MODEL_NAMES, SSDNet, WeightsError, build
from ssd.postprocess import PostprocessConfig
from ssd.io import atomic_write

FORMAT = "ssd-explorer-onnx/1"
INPUT_NAME = "images"
DEFAULT_OPSET = 17
# ScatterElements needs 11 (NonMaxSuppression 10); the TorchScript exporter stops at 20.
MIN_OPSET, MAX_OPSET = 11, 20
METADATA_KEYS = (
    "format",  # FORMAT
    "model_name",  # ssd.models name of the network
    "outputs",  # "detections" (DETECTION_OUTPUTS) or "raw" (cls_logits_<l>, bbox_regression_<l>)
    "input_name",  # INPUT_NAME
    "input_hw",  # JSON [H, W]: the network-input size, pixels
    "input_format",  # how to make the input (words)
    "image_mean",  # JSON [3]: subtracted inside the graph (RGB, [0, 1] units)
    "image_std",  # JSON [3]: divided inside the graph
    "class_names",  # JSON list of C names, "background" first (label l = class_names[l])
    "level_names",  # JSON list: the source layer of each level
    "ssd_config",  # JSON `SSDConfig.to_dict()`: the default boxes (ssd.priors rebuilds them)
    "postprocess",  # JSON thresholds baked into the graph (PostprocessConfig fields); {} for raw
    "dynamic_batch",  # "true" / "false": whether B may differ from 1
)


class ExportError(ValueError):
    """An export that cannot be done; the message names what is wrong and the fix."""


def load_model(checkpoint: str | os.PathLike | None = None, model_name: str | None = None,
               weights: str | os.PathLike | None = None, num_classes: int | None = None) -> SSDNet:
    """The model to export: an ssd-explorer checkpoint (its default boxes and class names
    kept), or `model_name` built with `weights` (a local state dict, or "coco").

    Raises ExportError naming the file and the problem.
    """
    if (checkpoint is None) == (model_name is None):
        raise ExportError("give a checkpoint or a model name, not both or neither")
    if checkpoint is not None:
        try:
            model, _ = load_checkpoint(checkpoint)
        except CheckpointError as e:
            raise ExportError(f"not a usable checkpoint: {e}") from e
        return model
    if model_name not in MODEL_NAMES:
        raise ExportError(f"unknown model {model_name!r}; choose one of {list(MODEL_NAMES)}")
    try:
        model = build(model_name, num_classes=num_classes, weights=weights)
    except (WeightsError, ValueError) as e:
        raise ExportError(f"cannot build {model_name}: {e}") from e
    return model.eval()


def _class_names(model: SSDNet) -> list[str]:
    if model.class_names and len(model.class_names) == model.num_classes:
        return list(model.class_names)
    return ["background"] + [str(c) for c in range(1, model.num_classes)]


def metadata(model: SSDNet, config: PostprocessConfig | None, dynamic_batch: bool) -> dict[str, str]:
    """The `metadata_props` of an export (`METADATA_KEYS`; config None = raw outputs)."""
    s = model.cfg.image_size
    post = {} if config is None else {k: getattr(config, k) for k in
                                      ("score_thresh", "nms_thresh", "topk_candidates", "detections_per_img")}
    return {
        "format": FORMAT,
        "model_name": model.name,
        "outputs": "raw" if config is None else "detections",
        "input_name": INPUT_NAME,
        "input_hw": json.dumps([s, s]),
        "input_format": (f"NCHW float32 RGB in [0, 1], resized to {s}x{s} with bilinear interpolation "
                         "(half-pixel centres, torch align_corners=False); the graph normalises "
                         "(x - image_mean) / image_std itself; output boxes are xyxy in input pixels: "
                         f"x * W / {s}, y * H / {s} gives original-image pixels"),
        "image_mean": json.dumps(list(model.image_mean)),
        "image_std": json.dumps(list(model.image_std)),
        "class_names": json.dumps(_class_names(model)),
        "level_names": json.dumps(list(model.level_names)),
        "ssd_config": json.dumps(model.cfg.to_dict()),
        "postprocess": json.dumps(post),
        "dynamic_batch": "true" if dynamic_batch else "false",
    }


def _check_opset(opset: int) -> None:
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ExportError(f"opset {opset} is too old for this graph: it needs ONNX opset >= {MIN_OPSET} "
                          f"(NonMaxSuppression, TopK with a computed k, ScatterElements); "
                          f"pass --opset {DEFAULT_OPSET} (the default)")
    if opset > MAX_OPSET:
        raise ExportError(f"opset {opset} is newer than torch's TorchScript ONNX exporter writes "
                          f"(at most {MAX_OPSET}); pass --opset {MAX_OPSET} or lower")


def _trace_to_onnx(graph: torch.nn.Module, example, output_names, dynamic_axes, opset: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(graph, (example,), buf, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(output_names),
                          dynamic_axes=dynamic_axes, do_constant_folding=True)
    return buf.getvalue()


def export_onnx(model: SSDNet | str | os.PathLike, onnx_path: str | os.PathLike, *,
                config: PostprocessConfig | None = None, raw: bool = False, opset: int = DEFAULT_OPSET,
                dynamic_batch: bool = False) -> dict[str, str]:
    """Write `model` as an ONNX file at `onnx_path` (atomically); returns its metadata.

    Args:
        model: an `SSDNet`, or the path of an ssd-explorer checkpoint (`ssd.checkpoint`).
        onnx_path: where to write the .onnx file (folders are created).
        config: thresholds baked into the graph (default `PostprocessConfig()`, the
            library's: score 0.01, NMS IoU 0.45, 400 candidates per class, 200 detections).
        raw: export the per-level head outputs instead of the detections.
        opset: ONNX opset, MIN_OPSET..MAX_OPSET.
        dynamic_batch: let the batch size vary (default: fixed at 1).
    Raises:
        ExportError for a bad checkpoint, opset or model.
    """
    import onnx  # the export extra; imported here so the library runs without it

    _check_opset(opset)
    if not isinstance(model, SSDNet):
        model = load_model(checkpoint=model)
    config = None if raw else (config if config is not None else PostprocessConfig())
    model = model.eval()
    s = model.cfg.image_size
    example = torch.rand(1, 3, s, s, generator=torch.Generator().manual_seed(0))
    if raw:
        levels = range(model.cfg.num_levels)
        graph, names = RawGraph(model), [f"cls_logits_{k}" for k in levels] + [f"bbox_regression_{k}" for k in levels]
        dyn = {n: {0: "batch"} for n in [INPUT_NAME, *names]} if dynamic_batch else None
    else:
        graph, names = DetectionGraph(model, config), list(DETECTION_OUTPUTS)
        dyn = {INPUT_NAME: {0: "batch"}} if dynamic_batch else None
    graph.eval()  # the exporter restores the wrapper's mode afterwards: train() would reach the model
    try:
        with torch.no_grad():
            data = _trace_to_onnx(graph, example, names, dyn, opset)
    except Exception as e:  # the exporter raises many types (SymbolicValueError, RuntimeError, ...)
        raise ExportError(f"torch.onnx could not export {model.name} at opset {opset}: "
                          f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from e
    proto = onnx.load_from_string(data)
    meta = metadata(model, config, dynamic_batch)
    for key, value in meta.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "ssd-explorer"
    onnx.checker.check_model(proto)
    atomic_write(Path(onnx_path), lambda f: f.write(proto.SerializeToString()))
    return meta
