"""Taking a model out of the project: ONNX export (`export_onnx`) and an ONNX Runtime
runner (`OnnxDetector`) that prints the same detections as `ssd.detect`.

    python -m ssd.export --checkpoint checkpoints/compact256_shapes.pt --onnx compact256.onnx
    python -m ssd.detect --onnx compact256.onnx samples/

`onnx` and `onnxruntime` are the `export` extra: this package imports them only when used.
"""
from ssd.export.onnx_export import (DEFAULT_OPSET, FORMAT, METADATA_KEYS, MIN_OPSET, ExportError,
                                    export_onnx, load_model)

__all__ = ["DEFAULT_OPSET", "FORMAT", "METADATA_KEYS", "MIN_OPSET", "ExportError", "export_onnx", "load_model"]
