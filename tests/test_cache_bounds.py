"""Tests for explorer/bounded_cache.py and the bounds of pages/_cache.py: per-image
caches bounded by bytes as well as entries, measured on a real 39.9-megapixel PNG run
through the shipped model (issue 14: 20 NMS slider moves took the server from 1.2 to
3.6 GB), and the app's COCO upload path refusing 17,000 boxes for one image."""
import io
import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from explorer.bounded_cache import ByteLRU, nbytes

MB = 1 << 20


@dataclass
class _Holder:
    a: object
    b: object


def test_nbytes_counts_buffers_once():
    t = torch.zeros(1000, 10)  # 40,000 bytes
    assert nbytes(t) == 40_000
    assert nbytes([t, t[:10], t.view(-1)]) < 40_000 + 1000  # views share one storage
    assert nbytes(np.zeros(1000, dtype=np.float64)) == 8000
    assert nbytes(Image.new("RGB", (100, 50))) == 100 * 50 * 4  # PIL pads RGB to 4 bytes a pixel
    assert nbytes(Image.new("L", (100, 50))) == 5000
    h = _Holder(t, {"x": b"y" * 5000})
    assert 45_000 <= nbytes(h) < 47_000


def test_byte_lru_evicts_by_bytes_and_entries_and_keeps_nothing_oversize():
    cache = ByteLRU(max_bytes=10_000, max_entries=3, sizeof=len)
    calls = []

    def make(n):
        calls.append(n)
        return b"x" * n

    cache.get_or_compute("a", lambda: make(4000))
    cache.get_or_compute("b", lambda: make(4000))
    cache.get_or_compute("a", lambda: make(4000))  # hit: "a" is now the most recent
    cache.get_or_compute("c", lambda: make(4000))  # 12,000 > 10,000: the least recent ("b") goes
    assert calls == [4000, 4000, 4000] and len(cache) == 2 and cache.total_bytes == 8000
    cache.get_or_compute("b", lambda: make(4000))
    assert cache.total_bytes <= 10_000
    for k in "def":
        cache.get_or_compute(k, lambda: make(10))
    assert len(cache) == 3  # the entry bound
    big = cache.get_or_compute("big", lambda: make(20_000))
    assert len(big) == 20_000 and cache.total_bytes <= 10_000  # returned, not kept
    with pytest.raises(ValueError):
        ByteLRU(0, 1)


@pytest.fixture(scope="module")
def big_upload():
    """A 39.9 MP PNG (7300 x 5466): a few hundred KB on disk, 160 MB decoded."""
    from explorer.inputs.samples import load_upload

    img = Image.new("RGB", (7300, 5466), (90, 120, 150))
    draw = ImageDraw.Draw(img)
    draw.ellipse((1000, 1000, 3000, 2600), fill=(220, 60, 40))
    draw.rectangle((4200, 2500, 6800, 5000), fill=(40, 200, 90))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    del img, draw
    data = buf.getvalue()
    assert len(data) < 2 * MB
    return load_upload("big.png", data)


DERIVED_BOUND = 64 * MB  # what the app keeps for one image beyond its one decoded copy, 20 slider positions


def test_a_40_megapixel_image_keeps_its_derived_caches_small(big_upload):
    from explorer.inputs import models
    from pages import _cache

    loaded = models.load_model(str(models.SHIPPED_CHECKPOINT))
    key = models.model_cache_key(str(models.SHIPPED_CHECKPOINT))
    _cache.RAW.clear()
    _cache.STAGES.clear()
    raw = _cache.raw_outputs(key, big_upload.digest, loaded.model, big_upload.image)
    for i in range(20):  # 20 NMS slider moves
        stg = _cache.stages(key, big_upload.digest, raw, nms_thresh=0.3 + 0.02 * i)
    assert raw.image is None and raw.image_hw == (5466, 7300)  # boxes stay in the image's pixels
    assert stg.detections.boxes_xyxy_px.shape[-1] == 4
    derived = _cache.RAW.total_bytes + _cache.STAGES.total_bytes  # stages count their raw again: an upper bound
    assert len(_cache.STAGES) == 16 and derived <= DERIVED_BOUND, derived / MB
    # Nothing cached holds the image: no PIL image, no tensor of the image's size.
    image_bytes = nbytes(big_upload.image)
    assert image_bytes == 7300 * 5466 * 4
    for value in (*_cache.RAW.values(), *_cache.STAGES.values()):
        assert nbytes(value) < image_bytes / 10
    # The decoded upload itself: one copy (pixels + the encoded file), at most MAX_UPLOADS kept.
    assert nbytes(big_upload) < image_bytes + 3 * MB and _cache.MAX_UPLOADS == 2
    # The figure background is at most 768 px on a side, not 40 MP.
    uri = _cache.image_uri(big_upload.digest, big_upload.image)  # outside a runtime: the data URI
    assert uri.startswith("data:image/jpeg") and len(uri) < 1 * MB


def test_the_app_refuses_17000_boxes_for_one_image():
    """The Matching page reads uploads through `parse_coco_json`, which enforces the
    readers' per-image box limit (a 2 MB file of 17,000 valid boxes cost +3.6 GB)."""
    from explorer.inputs.ground_truth import GTFileError, parse_coco_json

    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 640, "height": 480}],
           "categories": [{"id": 1, "name": "cat"}],
           "annotations": [{"id": i, "image_id": 1, "category_id": 1, "bbox": [i % 600, i % 400, 20, 20]}
                           for i in range(17_000)]}
    data = json.dumps(doc).encode()
    assert len(data) < 3 * MB
    with pytest.raises(GTFileError, match="17,000 objects for one image, over the limit of 1,000"):
        parse_coco_json(data, "a.png")
