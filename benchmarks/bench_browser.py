"""Page responsiveness as a user feels it: one keyboard step on each page's main slider,
from key press to the page painted after the rerun's last message, in a real Chromium, against a trivial
one-slider Streamlit app on the same machine in the same run (the floor).

    python -m benchmarks.bench_browser [--repeats 7] [--json PATH] [--live-json PATH]

With --live-json it also measures the live figures (issue 21; `pages/_live.py`) against the
same floor: (a) key press -> the figure's first change (the live canvas's pixels; the floor
app's text), goal <= 0.5x the floor; (b) key press -> the page's last change (the value
synced to Python, the rest of the page), goal <= 1.5x the floor.

Steps alternate right / left so each one changes the value; the median is reported
with its ratio to the floor's median. Needs Debian's chromium and python playwright.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from benchmarks.browser import (CHROMIUM_ARGS, chromium_path, figure_step, instrument, settle, slider_step,
                                streamlit_server)

HERE = Path(__file__).resolve().parent
# (url path, slider label): each page's main control.
CONTROLS = [
    ("default_boxes", "s_max"),
    ("matching", "IoU threshold"),
    ("per_scale", "Score threshold for a level's own detections"),
    ("nms", "Score threshold"),
]


def _steps(page, label: str, repeats: int, step=None) -> list[dict]:
    """`repeats` timed key steps (right, left, ...) after one that warms caches; `step`:
    `slider_step(page, label, key)` by default, or another timer with that signature."""
    step = step or slider_step
    out = []
    for i in range(repeats + 1):
        r = step(page, label, "ArrowRight" if i % 2 == 0 else "ArrowLeft")
        settle(page)
        if i:  # the first step warms caches
            out.append(r)
    return out


def _summary(steps: list[dict]) -> dict:
    ms = sorted(r["ms"] for r in steps)
    return {"median_ms": round(statistics.median(ms)), "p90_ms": round(ms[int(0.9 * (len(ms) - 1))]),
            "server_ms": round(statistics.median(r["server_ms"] for r in steps)),
            "kb_sent": round(statistics.median(r["bytes"] for r in steps) / 1024, 1)}


def run(repeats: int = 7, controls=CONTROLS) -> dict:
    """{"floor_ms": median, "floor": {...}, "pages": [{"page", "control", "median_ms", "p90_ms",
    "server_ms" (key press -> the rerun's last message), "kb_sent", "ratio"}]}."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("no Chromium found (apt-get install -y chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_browser_"))
    result = {"pages": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            instrument(page)
            with streamlit_server(HERE / "trivial_slider_app.py", tmp / "floor.log") as (base, _):
                page.goto(base)
                settle(page)
                result["floor"] = _summary(_steps(page, "Value", repeats))
            with streamlit_server("app.py", tmp / "app.log", env={"SSD_RUNS_DIR": str(tmp / "runs")}) as (base, _):
                for path, label in controls:
                    page.goto(f"{base}/{path}")
                    settle(page)
                    result["pages"].append({"page": path, "control": label, **_summary(_steps(page, label, repeats))})
        finally:
            browser.close()
    result["floor_ms"] = result["floor"]["median_ms"]
    for r in result["pages"]:
        r["ratio"] = round(r["median_ms"] / result["floor_ms"], 2)
    return result


# (url path, live slider label): the live figures' controls the issue names.
LIVE_CONTROLS = [("default_boxes", "s_max"), ("matching", "IoU threshold"), ("nms", "Score threshold")]


def _figure_steps(page, label: str, kind: str, repeats: int) -> list[dict]:
    return _steps(page, label, repeats, lambda p, lab, key: figure_step(p, lab, kind, key))


def _figure_summary(steps: list[dict]) -> dict:
    first = sorted(r["first_ms"] for r in steps)
    last = sorted(r["ms"] for r in steps)
    return {"first_median_ms": round(statistics.median(first), 1), "first_p90_ms": round(first[int(0.9 * (len(first) - 1))], 1),
            "last_median_ms": round(statistics.median(last)), "last_p90_ms": round(last[int(0.9 * (len(last) - 1))]),
            "server_ms": round(statistics.median(r["server_ms"] for r in steps)),
            "kb_sent": round(statistics.median(r["bytes"] for r in steps) / 1024, 1)}


def run_live(repeats: int = 7, controls=LIVE_CONTROLS) -> dict:
    """{"floor": {first/last medians of the one-slider app}, "pages": [{"page", "control",
    first/last medians, "first_ratio" (vs the floor's first change), "last_ratio" (vs the
    floor's last change)}], "load_average"}: the live figures against the floor, one run."""
    import os

    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    if exe is None:
        raise SystemExit("no Chromium found (apt-get install -y chromium)")
    tmp = Path(tempfile.mkdtemp(prefix="bench_live_"))
    result = {"pages": [], "load_average_before": [round(v, 2) for v in os.getloadavg()]}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            instrument(page)
            with streamlit_server(HERE / "trivial_slider_app.py", tmp / "floor.log") as (base, _):
                page.goto(base)
                settle(page)
                result["floor"] = _figure_summary(_figure_steps(page, "Value", "text", repeats))
            with streamlit_server("app.py", tmp / "app.log", env={"SSD_RUNS_DIR": str(tmp / "runs")}) as (base, _):
                for path, label in controls:
                    page.goto(f"{base}/{path}")
                    page.locator("canvas.ssd-canvas").first.wait_for(timeout=90_000)
                    settle(page)
                    result["pages"].append({"page": path, "control": label,
                                            **_figure_summary(_figure_steps(page, label, "canvas", repeats))})
        finally:
            browser.close()
    result["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    f = result["floor"]
    for r in result["pages"]:
        r["first_ratio"] = round(r["first_median_ms"] / f["first_median_ms"], 2)
        r["last_ratio"] = round(r["last_median_ms"] / f["last_median_ms"], 2)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json")
    ap.add_argument("--live-json", help="also measure the live figures; write their results here")
    ap.add_argument("--live-only", action="store_true", help="only the live figures")
    ap.add_argument("--live-pages", help="comma-separated live pages to measure (default: all): "
                                         + ",".join(p for p, _ in LIVE_CONTROLS))
    a = ap.parse_args(argv)
    if a.live_json or a.live_only:
        wanted = a.live_pages.split(",") if a.live_pages else [p for p, _ in LIVE_CONTROLS]
        unknown = set(wanted) - {p for p, _ in LIVE_CONTROLS}
        if unknown:
            ap.error(f"unknown live pages {sorted(unknown)}")
        live = run_live(a.repeats, [c for c in LIVE_CONTROLS if c[0] in wanted])
        f = live["floor"]
        print(f"load average {live['load_average_before']} -> {live['load_average_after']}")
        print(f"floor (one-slider app): first change {f['first_median_ms']} ms, last change {f['last_median_ms']} ms")
        for r in live["pages"]:
            print(f"{r['page']:>14} {r['control']!r:>18}: first {r['first_median_ms']:>6} ms ({r['first_ratio']}x), "
                  f"last {r['last_median_ms']:>5} ms ({r['last_ratio']}x; last message {r['server_ms']} ms)")
        if a.live_json:
            Path(a.live_json).write_text(json.dumps(live, indent=1))
        if a.live_only:
            return 0
    res = run(a.repeats)
    print(f"floor (one-slider app): {res['floor_ms']} ms")
    for r in res["pages"]:
        print(f"{r['page']:>14} {r['control']!r:>50}: {r['median_ms']:>5} ms  ({r['ratio']}x floor; "
              f"last message at {r['server_ms']} ms, {r['kb_sent']} KB)")
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
