"""Helpers for the ONNX export tests: the images they run on, the parity check
(ONNX Runtime's detections vs `ssd.detect`'s path, `ssd.inference.run_stages`) and the
score above which random-init models have no near-ties."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ssd.inference import Detections, forward_raw
from ssd.images import load_image

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "checkpoints" / "compact256_shapes.pt"
SAMPLES = sorted((ROOT / "samples").glob("*.png"))
PEER_PHOTOS = ("vision/astronaut.jpg", "vision/dog1.jpg", "mmdet/demo.jpg", "pillow/hopper_orientation_6.jpg")


def random_images(n: int, seed: int = 0) -> list[Image.Image]:
    """`n` noise images of different sizes and aspect ratios."""
    rng = np.random.default_rng(seed)
    sizes = [(120, 160), (300, 90), (64, 64), (333, 500)]
    return [Image.fromarray(rng.integers(0, 256, (*sizes[i % 4], 3), dtype=np.uint8)) for i in range(n)]


def peer_images(peer_data: Path) -> list[Image.Image]:
    return [load_image(peer_data / p) for p in PEER_PHOTOS]


def assert_same_detections(ort: Detections, eager: Detections, where: str = "", box_atol: float = 1e-3) -> None:
    """Same count, labels, default boxes (so level, cell), boxes within `box_atol` px
    (original image), scores within 1e-5."""
    assert len(ort) == len(eager), f"{where}: {len(ort)} ONNX detections vs {len(eager)} eager"
    assert ort.labels.tolist() == eager.labels.tolist(), where
    assert ort.default_index.tolist() == eager.default_index.tolist(), where
    for f in ("level", "row", "col", "box_index", "feature_size"):
        assert torch.equal(getattr(ort, f), getattr(eager, f)), f"{where}: {f}"
    torch.testing.assert_close(ort.boxes_xyxy_px, eager.boxes_xyxy_px, rtol=0, atol=box_atol, msg=where)
    torch.testing.assert_close(ort.scores, eager.scores, rtol=0, atol=1e-5, msg=where)


def untied_threshold(model, images, gap: float = 1e-5, most: int = 25) -> float:
    """A score threshold below the `most` best foreground scores of every image such that,
    above it, no two candidates (and none and the threshold) lie within `gap`: the
    detections above it cannot change under float noise between ONNX Runtime and torch."""
    thresholds = []
    for image in images:
        s = forward_raw(model, image).scores[:, 1:].flatten().sort(descending=True).values[: most + 1]
        gaps = s[:-1] - s[1:]
        n = int(torch.nonzero(gaps <= gap)[0, 0]) if bool((gaps <= gap).any()) else most
        assert n >= 1, "the best two scores tie: pick another seed"
        thresholds.append(float(s[n - 1] + s[n]) / 2 if n < len(s) else float(s[-1]))
    return max(thresholds)
