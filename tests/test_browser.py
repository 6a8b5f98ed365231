"""The app in a real browser: `streamlit run app.py` as a subprocess, driven by Python
playwright with Debian's Chromium. Opens every page, uploads an image, fails on any
Streamlit exception box, and saves one screenshot per page to test-artifacts/ (and to
docs/screenshots/ when SSD_UPDATE_SCREENSHOTS=1).

Skipped only when no Chromium (or playwright) is found, unless SSD_REQUIRE_BROWSER=1
(set by CI), which turns the skip into a failure.
"""
import io
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.browser import CHROMIUM_ARGS, IDLE, chromium_path, streamlit_server

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ROOT / "docs" / "screenshots"
# (url path, heading the page shows, file stem of its screenshot)
PAGES = [
    ("", "SSD Explorer", "home"),
    ("architecture", "Architecture", "architecture"),
    ("default_boxes", "Default boxes", "default_boxes"),
    ("dataset", "Dataset: do the default boxes fit your data?", "dataset"),
    ("matching", "Matching & hard negatives", "matching"),
    ("per_scale", "Per-scale detections", "per_scale"),
    ("nms", "Non-maximum suppression", "nms"),
    ("trace", "Trace one object", "trace"),
    ("augment", "Data augmentation", "augment"),
    ("evaluation", "Evaluation", "evaluation"),
]

pytestmark = pytest.mark.slow


def _skip_or_fail(why: str):
    if os.environ.get("SSD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"SSD_REQUIRE_BROWSER=1 but {why}")
    pytest.skip(why)






def _settle(page, heading: str, timeout_ms: int = 90_000) -> None:
    """Wait until the page's heading is shown, the script is idle and charts are drawn."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    page.wait_for_timeout(500)  # a rerun that starts right after the first idle
    page.wait_for_selector(IDLE, timeout=timeout_ms)
    if page.locator(".js-plotly-plot").count():
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=timeout_ms)
    page.wait_for_timeout(800)


def _check_no_exception(page, where: str) -> None:
    boxes = page.locator('[data-testid="stException"]')
    if boxes.count():
        raise AssertionError(f"{where}: Streamlit exception shown: {boxes.first.inner_text()[:2000]}")


def _shot(page, stem: str, for_docs: bool = True) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{stem}.png"
    page.screenshot(path=str(path), full_page=True)
    if for_docs and os.environ.get("SSD_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, SCREENSHOTS / f"{stem}.png")


def _use_in_explorer_updates_the_sidebar_at_once(page, base: str, runs: Path) -> None:
    """Issue 11: "Use in explorer" on Training changes the sidebar's model at once, not
    after the next page change (the button sits in the 2-second polling fragment)."""
    run = runs / "browser_done"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copyfile(ROOT / "checkpoints" / "compact256_shapes.pt", run / "checkpoints" / "best.pt")
    (run / "status.json").write_text(
        '{"state": "finished", "progress": 1.0, "message": "finished", "step": 4, "total_steps": 4, '
        '"best_map": 0.25, "device": "cpu", "started_at": 1.0, "updated_at": 2.0}')
    page.goto(f"{base}/training")
    _settle(page, "Training")
    page.get_by_role("button", name="Use in explorer").click()
    # The selectbox shows its value in an input (not as text).
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stSidebar"] input')]
        .some(i => i.getAttribute('aria-label') === 'Model' && i.value.includes('browser_done'))""", timeout=30_000)
    _check_no_exception(page, "training after Use in explorer")


def test_every_page_in_chromium(tmp_path):
    chromium = chromium_path()
    if chromium is None:
        _skip_or_fail("no Chromium found (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip_or_fail("python playwright is not installed")
    pages = list(PAGES)
    if (ROOT / "pages" / "training.py").is_file():
        pages.append(("training", "Training", "training"))
    log_path = tmp_path / "streamlit.log"
    try:
        with streamlit_server("app.py", log_path, env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) as (base, _):
            _walk_the_app(sync_playwright, chromium, base, pages, tmp_path)
    except Exception:
        if log_path.is_file():
            print(log_path.read_text()[-5000:])
        raise


def _walk_the_app(sync_playwright, chromium: str, base: str, pages, tmp_path: Path) -> None:
    """Every page, a drawn GT box, an upload on Per-scale, and "Use in explorer"."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1500})
            for url, heading, stem in pages:
                page.goto(f"{base}/{url}")
                _settle(page, heading)
                _check_no_exception(page, url or "home")
                _shot(page, stem)
            # Draw a ground-truth box on Home: a drag on the image (Plotly box selection).
            page.goto(base)
            _settle(page, "SSD Explorer")
            caption = page.locator('[data-testid="stSidebar"]').get_by_text("GT boxes", exact=False).first
            n_before = int(caption.inner_text().split(" GT boxes")[0].rsplit(" ", 1)[-1])
            area = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
            x0, y0 = area["x"] + area["width"] * 0.55, area["y"] + area["height"] * 0.1
            page.mouse.move(x0, y0)
            page.mouse.down()
            page.mouse.move(x0 + area["width"] * 0.15, y0 + area["height"] * 0.15, steps=8)
            page.mouse.up()
            page.get_by_text(f"{n_before + 1} GT boxes", exact=False).first.wait_for(timeout=60_000)
            _settle(page, "SSD Explorer")
            _check_no_exception(page, "home after drawing a box")
            # An upload on the per-scale page: the whole pipeline on a new image.
            page.goto(f"{base}/per_scale")
            _settle(page, "Per-scale detections")
            sidebar_radio = page.locator('[data-testid="stSidebar"] [data-testid="stRadioGroup"]')
            sidebar_radio.get_by_text("Upload", exact=True).click()
            page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached")
            img = tmp_path / "upload_test.jpg"
            buf = io.BytesIO()
            Image.new("RGB", (480, 320), (40, 120, 200)).save(buf, format="JPEG")
            img.write_bytes(buf.getvalue())
            page.locator('[data-testid="stSidebar"] [data-testid="stFileUploaderDropzoneInput"]').first \
                .set_input_files(str(img))
            page.get_by_text("480x320 px", exact=False).first.wait_for(timeout=90_000)  # the name is shown escaped (plain text)
            _settle(page, "Per-scale detections")
            _check_no_exception(page, "per_scale after upload")
            _shot(page, "per_scale_upload", for_docs=False)
            _use_in_explorer_updates_the_sidebar_at_once(page, base, tmp_path / "runs")
        finally:
            browser.close()
