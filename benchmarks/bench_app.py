"""Server-side timings of the explorer (a script, not a test).

    .venv/bin/python -m benchmarks.bench_app [--repeat 20] [--model ID] [--ssd300]

1. Default-box page, one slider change: config -> default boxes -> figure (and the
   figure's JSON, which Streamlit sends to the browser). Target < 100 ms.
2. A new upload reaching every per-level result: decode the image, `run_stages`, and
   build the per-scale and NMS figures. Target < 1.5 s for an SSD300-size (300x300)
   image with the shipped checkpoint.
Prints the median and the worst of `--repeat` runs, in milliseconds.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from explorer.views import default_boxes as dbv  # noqa: E402
from explorer.inputs import models as mm  # noqa: E402
from explorer.views import nms as nv  # noqa: E402
from explorer.views import per_scale as psv  # noqa: E402
from explorer.views.figures import image_data_uri  # noqa: E402
from explorer.inputs.samples import load_upload  # noqa: E402
from ssd.inference import forward_raw, run_stages, stages_from_raw  # noqa: E402
from ssd.priors import default_boxes  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float]:
    """(median, max) wall time of fn() in ms; one warm-up call first."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), max(times)


def bench_default_boxes(repeat: int) -> None:
    print("Default-box page: one slider change (config -> default boxes -> figure)")
    uri = image_data_uri(Image.new("RGB", (300, 300), (90, 120, 150)))
    cases = {
        "SSD300 layout (8732 boxes)": (300, (38, 19, 10, 5, 3, 1), True),
        "SSD512 layout (24564 boxes)": (512, (64, 32, 16, 8, 4, 2, 1), True),
    }
    s_values = iter(np.linspace(0.1, 0.3, 10_000))
    for name, (size, maps, four) in cases.items():
        def change(with_json: bool) -> None:
            cfg = dbv.custom_config(size, float(next(s_values)), 0.9, maps, tuple(dbv.RATIO_CHOICES.values()),
                                    four_box_levels=four)
            db = default_boxes(cfg)
            fig = dbv.default_box_figure(cfg, db, 0, (maps[0] // 2, maps[0] // 2), uri)
            sizes = dbv.box_size_figure(cfg)
            dbv.level_rows(cfg)
            if with_json:
                fig.to_json()
                sizes.to_json()

        med, worst = timed(lambda: change(False), repeat)
        med_j, worst_j = timed(lambda: change(True), repeat)
        print(f"  {name:32s} build {med:6.1f} ms (worst {worst:6.1f})   + JSON {med_j:6.1f} ms (worst {worst_j:6.1f})")


def bench_upload(loaded: mm.LoadedModel, repeat: int, side: int = 300) -> None:
    model = loaded.model
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    data = buf.getvalue()
    cfg = model.cfg
    names = loaded.class_names
    parts: dict[str, list[float]] = {"decode": [], "run_stages": [], "figures": [], "total": []}

    def once() -> None:
        t0 = time.perf_counter()
        img = load_upload("bench.jpg", data).image
        t1 = time.perf_counter()
        stg = run_stages(model, img)
        t2 = time.perf_counter()
        uri = image_data_uri(img)
        maps, classes = psv.level_score_maps(stg.scores, stg.feature_sizes)
        psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, cfg.image_size,
                             uri, img.size, names, list(model.level_names)).to_json()
        psv.level_summary(maps, classes, stg.level_detections, stg.feature_sizes, names)
        recs = nv.candidate_records(stg, names)
        nv.count_table(recs, stg.detections, names, len(stg.feature_sizes))
        nv.nms_figure(recs, uri, img.size[::-1]).to_json()
        t3 = time.perf_counter()
        for k, v in (("decode", t1 - t0), ("run_stages", t2 - t1), ("figures", t3 - t2), ("total", t3 - t0)):
            parts[k].append(v * 1000)

    once()  # warm-up
    for v in parts.values():
        v.clear()
    for _ in range(repeat):
        once()
    print(f"New upload ({side}x{side} JPEG) -> all per-level results, model {loaded.label} "
          f"({cfg.image_size} px input, {len(default_boxes(cfg))} default boxes):")
    for k, v in parts.items():
        print(f"  {k:11s} median {statistics.median(v):7.1f} ms   worst {max(v):7.1f} ms")

    # An NMS-page slider change: the network's outputs are cached (forward_raw), only the
    # thresholded stages and the NMS figure are rebuilt.
    img = load_upload("bench.jpg", data).image
    raw = forward_raw(model, img)
    uri = image_data_uri(img)

    def slider_change() -> None:
        stg = stages_from_raw(raw, score_thresh=0.05, nms_thresh=0.5, detections_per_img=100)
        recs = nv.candidate_records(stg, names)
        nv.count_table(recs, stg.detections, names, len(stg.feature_sizes))
        nv.nms_figure(recs, uri, img.size[::-1]).to_json()

    med, worst = timed(slider_change, repeat)
    print(f"  NMS slider change (cached forward): median {med:7.1f} ms   worst {worst:7.1f} ms")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--model", default=None, help="model id (default: the shipped checkpoint, else random compact256)")
    p.add_argument("--ssd300", action="store_true", help="also time SSD300-VGG16 (random weights) on the upload")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: what the app uses, explorer.inputs.models.app_torch_threads())")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads or mm.app_torch_threads())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    bench_default_boxes(args.repeat)
    model_id = args.model or mm.default_model_id(mm.list_model_choices())
    bench_upload(mm.load_model(model_id), max(3, args.repeat // 4))
    if args.ssd300:
        from ssd.models import build

        torch.manual_seed(0)
        model = build("ssd300_vgg16", num_classes=21).eval()
        names = ["background"] + [f"class {i}" for i in range(1, 21)]
        bench_upload(mm.LoadedModel(model, names, "ssd300", "SSD300-VGG16, random weights"), 3)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
