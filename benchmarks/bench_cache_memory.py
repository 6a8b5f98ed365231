"""Memory of the per-image caches on a 39.9 MP PNG over 20 NMS slider moves (issue 14).

    .venv/bin/python -m benchmarks.bench_cache_memory

Peer: what the caches kept before this change, emulated in the same run: `stages` in
`st.cache_data` (16 entries, each a pickled copy of Stages whose raw held the full
image) plus the `raw_outputs` resource holding the image. Now: `pages._cache.RAW` and
`STAGES` (ByteLRUs, no image inside). Also the process's resident memory before and
after the 20 moves (VmRSS), for the new path.
"""
from __future__ import annotations

import dataclasses
import io
import pickle

from PIL import Image, ImageDraw

from explorer.bounded_cache import nbytes
from explorer.inputs import models
from explorer.inputs.samples import load_upload
from pages import _cache

MB = 1 << 20


def _rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    img = Image.new("RGB", (7300, 5466), (90, 120, 150))
    ImageDraw.Draw(img).ellipse((1000, 1000, 3000, 2600), fill=(220, 60, 40))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    del img
    upload = load_upload("big.png", buf.getvalue())
    loaded = models.load_model(str(models.SHIPPED_CHECKPOINT))
    key = models.model_cache_key(str(models.SHIPPED_CHECKPOINT))
    raw = _cache.raw_outputs(key, upload.digest, loaded.model, upload.image)
    rss0 = _rss_mb()
    for i in range(20):
        stg = _cache.stages(key, upload.digest, raw, nms_thresh=0.3 + 0.02 * i)
    rss1 = _rss_mb()
    new = _cache.RAW.total_bytes + _cache.STAGES.total_bytes
    old_stage = len(pickle.dumps(dataclasses.replace(stg, raw=dataclasses.replace(raw, image=upload.image))))
    old = 16 * old_stage + nbytes(dataclasses.replace(raw, image=upload.image))
    print(f"PNG {len(buf.getvalue()) / 1024:.0f} KB, decoded {nbytes(upload.image) / MB:.0f} MB (one copy, both)")
    print(f"peer (cache_data pickles incl. image): {old / MB:8.1f} MB")
    print(f"now  (ByteLRU, no image inside):       {new / MB:8.1f} MB  (bounds {_cache.RAW_BYTES // MB} + "
          f"{_cache.STAGES_BYTES // MB} MB)")
    print(f"ratio peer / now: {old / new:.0f}x;  RSS over the 20 moves: {rss0:.0f} -> {rss1:.0f} MB")


if __name__ == "__main__":
    main()
