"""ssd.export.runtime: ONNX Runtime on an exported file, its input checks, stricter
thresholds applied afterwards (exactly), and files it cannot use."""
from __future__ import annotations

import numpy as np
import pytest

from export_helpers import SAMPLES, SHIPPED, assert_same_detections
from ssd.export import ExportError, export_onnx
from ssd.export.runtime import OnnxDetector
from ssd.images import load_image
from ssd.postprocess import PostprocessConfig


@pytest.fixture(scope="module")
def fixed(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "c.onnx"
    export_onnx(SHIPPED, path)
    return OnnxDetector(path, threads=1)


def test_wrong_image_size_for_a_fixed_size_export_is_named(fixed):
    with pytest.raises(ValueError, match=r"takes images of shape \(1, 3, 256, 256\) \(fixed-size export\), "
                                         r"got \(1, 3, 200, 300\): resize each image to 256x256 first"):
        fixed.run(np.zeros((1, 3, 200, 300), np.float32))
    with pytest.raises(ValueError, match=r"got \(2, 3, 256, 256\).*export with --dynamic-batch"):
        fixed.run(np.zeros((2, 3, 256, 256), np.float32))
    with pytest.raises(ValueError, match="float32 images in \\[0, 1\\], got uint8"):
        fixed.run(np.zeros((1, 3, 256, 256), np.uint8))


def test_stricter_thresholds_afterwards_equal_an_export_with_them(fixed, tmp_path):
    strict = tmp_path / "strict.onnx"
    export_onnx(SHIPPED, strict, config=PostprocessConfig(score_thresh=0.3, detections_per_img=3))
    baked = OnnxDetector(strict, threads=1)
    for p in SAMPLES:
        image = load_image(p)
        later, _, _ = fixed.detect(image, score_thresh=0.3, detections_per_img=3)
        assert_same_detections(later, baked.detect(image)[0], p.name)
    with pytest.raises(ValueError, match="score threshold 0.1 is below the 0.3 baked into strict.onnx; export again"):
        baked.detect(image, score_thresh=0.1)
    with pytest.raises(ValueError, match="detections_per_img 10 is above the 3 detections baked into"):
        baked.detect(image, detections_per_img=10)


def test_files_it_cannot_use(tmp_path):
    with pytest.raises(ExportError, match="does not exist"):
        OnnxDetector(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not onnx")
    with pytest.raises(ExportError, match="ONNX Runtime cannot load .*junk.onnx"):
        OnnxDetector(tmp_path / "junk.onnx")
    raw = tmp_path / "raw.onnx"
    export_onnx(SHIPPED, raw, raw=True)
    with pytest.raises(ExportError, match="holds the raw head outputs"):
        OnnxDetector(raw).detect(load_image(SAMPLES[0]))
