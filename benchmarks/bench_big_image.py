"""Peak memory the first NMS view of a 40 MP photo adds to the server (issue 20 #15).

    .venv/bin/python -m benchmarks.bench_big_image [--out benchmarks/results/bench_big_image.json]

A fresh subprocess per measurement (so nothing earlier in this process counts): it loads
the shipped model, reads a 7300 x 5466 PNG (39.9 MP) into memory as an upload arrives,
then takes VmRSS (`before`), resets the peak (`/proc/self/clear_refs` 5; else
`resource.getrusage` since the start), and makes the explorer calls the NMS page makes
on a first view: decode the upload (`explorer.inputs.samples.load_upload`), the network
(`explorer.results.forward_raw_bounded`, the call in `pages/_cache.raw_outputs`), the
stages at the page's thresholds, the candidate and count tables, the live figure's data,
the figure background JPEG and the server-drawn figure. Then it reads the peak (VmHWM)
and VmRSS (`after`, what stays while the page shows the image). Goal: peak - before
<= 0.5 GB. The peer, in the same run and its own subprocess: the same calls with the
network on the full-size image (`explorer.results.forward_raw`, the page's call before).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

MB = 1 << 20
W, H = 7300, 5466  # 39.9 MP, under the app's 40 MP limit
GOAL_MB = 512


def _status_kb(field: str) -> int | None:
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return None


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_kb(reset: bool) -> int:
    if reset:
        return _status_kb("VmHWM")
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KB on Linux


def _first_nms_view(data: bytes, full: bool = False) -> dict:
    """The NMS page's explorer calls on a first view of the upload `data` (`full`: the
    network on the full-size image, as the page did before `forward_raw_bounded`)."""
    from explorer import media_files, results
    from explorer.inputs import models, samples
    from explorer.views import live_data
    from explorer.views import nms as nv

    loaded = models.load_model(str(models.SHIPPED_CHECKPOINT))
    names = loaded.class_names
    before_kb = _status_kb("VmRSS")
    reset = _reset_peak()
    img = samples.load_upload("big.png", data)
    raw = results.forward_raw(loaded.model, img.image) if full else results.forward_raw_bounded(loaded.model, img.image)
    stg = results.stages_from_raw(raw, score_threshold=0.3, nms_threshold=0.45, top_k=200)
    records = nv.candidate_records(stg, names)
    nv.count_table(records, stg.detections, names, len(stg.feature_sizes))
    nv.detection_rows(stg.detections.to_records(names))
    jpeg = media_files.jpeg_bytes(media_files.file_name(img.digest, None), img.image, None)
    uri = "media/x.jpg"
    thresholds = {"score_thresh": 0.3, "nms_thresh": 0.45, "detections_per_img": 200}
    live_data.nms_data(raw.scores, raw.boxes_px_in, raw.boxes_xyxy_px, raw.default_boxes.level, names,
                       img.image.size, thresholds, {"show_suppressed": True, "show_links": True,
                                                    "only_class": None, "gt_px": []}, uri)
    nv.nms_figure(records, uri, img.image.size, True, True, gt_xyxy_px=None, gt_names=[])
    peak_kb = _peak_kb(reset)
    after_kb = _status_kb("VmRSS")
    return {"before_mb": round(before_kb / 1024), "peak_mb": round(peak_kb / 1024), "after_mb": round(after_kb / 1024),
            "peak_added_mb": round((peak_kb - before_kb) / 1024), "after_added_mb": round((after_kb - before_kb) / 1024),
            "peak_reset": reset, "image_hw": [img.image.height, img.image.width], "raw_image_hw": list(raw.image_hw),
            "jpeg_bytes": len(jpeg), "candidates": len(records)}


def _child(png: str, full: bool) -> None:
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))  # as the app (SSD_TORCH_THREADS)
    print(json.dumps(_first_nms_view(Path(png).read_bytes(), full)))


def _measure(png: Path, full: bool) -> dict:
    argv = [sys.executable, "-m", "benchmarks.bench_big_image", "--child", str(png)] + (["--full"] if full else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _png(path: Path) -> None:
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (W, H), (90, 120, 150))
    draw = ImageDraw.Draw(img)
    draw.ellipse((1000, 1000, 3000, 2600), fill=(220, 60, 40))
    draw.rectangle((4200, 2500, 6800, 5000), fill=(40, 200, 90))
    img.save(path, format="PNG")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--out", default="benchmarks/results/bench_big_image.json")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--full", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child, args.full)
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        png = Path(tmp) / "big.png"
        _png(png)
        full = _measure(png, full=True)  # the peer, same run: the network on the full-size image
        result = _measure(png, full=False)
    result.update(full_image_network=full, goal_peak_added_mb=GOAL_MB, within_goal=result["peak_added_mb"] <= GOAL_MB,
                  command="python -m benchmarks.bench_big_image", python=platform.python_version(),
                  machine=f"{platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
