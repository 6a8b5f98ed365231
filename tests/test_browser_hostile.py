"""Issue 20, item 1 in a real browser: hostile names make the browser fetch nothing.

A local HTTP listener on a free port counts every request. The uploaded image's file name,
a run's failure message, an evaluation's failure message and a model's class name
(drawn by the in-page NMS and Matching figures, in their shadow roots) carry Markdown images and
links to it; Chromium opens Home, Training and Evaluation, and a second browser opens the
session's `?inputs=` link. Nothing may reach the listener.
"""
import http.server
import io
import threading
from urllib.parse import urlencode
from pathlib import Path

import pytest
import torch
from PIL import Image

from benchmarks.browser import CHROMIUM_ARGS, free_port, settle, streamlit_server

pytestmark = pytest.mark.slow


class _Counter(http.server.BaseHTTPRequestHandler):
    hits: list = []

    def do_GET(self):  # noqa: N802 - http.server's name
        _Counter.hits.append(self.path)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):  # quiet
        pass


def _runs_with_hostile_messages(runs: Path, bait: str) -> None:
    from explorer.evaluation.spec import DatasetSpec, EvalSpec, eval_key
    from ssd.io import write_json_atomic
    from ssd.training import checkpoint, runlog
    from ssd.models import build

    run = runs / "hostile"
    checkpoint.save(run / "checkpoints" / "best.pt", build("compact256", num_classes=2).eval(),
                    ["background", bait])
    runlog.update_status(run, state="failed", message=f"Annotations/a.xml: unknown class {bait}")
    spec = EvalSpec(str(run / "checkpoints" / "best.pt"), DatasetSpec("procedural", seed=1, num_images=2))
    ev = runs / "evaluations" / eval_key(spec)
    write_json_atomic(ev / runlog.SPEC_FILE, {"key": ev.name, "spec": spec.to_dict(), "created_at": 1.0})
    runlog.update_status(ev, state="failed", pid=None, progress=0.0, message=f"no class {bait}")


def test_hostile_names_fetch_nothing(tmp_path, chromium_and_playwright):
    chromium, sync_playwright = chromium_and_playwright
    port = free_port()
    listener = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Counter)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    bait = (f"![x](http://127.0.0.1:{port}/img.png) [l](http://127.0.0.1:{port}/link) "
            f"<img src='http://127.0.0.1:{port}/tag.png'>")
    torch.manual_seed(0)
    _runs_with_hostile_messages(tmp_path / "runs", bait)
    name = f"![x](http://127.0.0.1:{port}/P1.png).png"  # the browser's File.name, as the probe sent it
    buf = io.BytesIO()
    Image.new("RGB", (120, 80), (40, 120, 200)).save(buf, format="PNG")
    try:
        with streamlit_server("app.py", tmp_path / "streamlit.log", env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) \
                as (base, _), sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1200})
            page.goto(base)
            settle(page)
            page.locator('[data-testid="stSidebar"] [data-testid="stRadioGroup"]').get_by_text(
                "Upload", exact=True).click()
            page.wait_for_selector('[data-testid="stFileUploaderDropzoneInput"]', state="attached")
            page.locator('[data-testid="stSidebar"] [data-testid="stFileUploader"]').filter(
                has_text="Your image").first.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(files=[{"name": name, "mimeType": "image/png", "buffer": buf.getvalue()}])
            page.get_by_text("120x80 px", exact=False).first.wait_for(timeout=90_000)
            settle(page)
            shown = page.locator("h3").filter(has_text="Your image").first.inner_text()
            assert "P1.png" in shown and "![x](" in shown, shown  # shown as typed
            link = page.url
            for path in ("training", "evaluation"):
                page.goto(f"{base}/{path}")
                settle(page)
                body = page.inner_text("body").replace("\u2060", "")  # the escape's invisible word joiners
                assert bait in body, (path, body[-1500:])
            # The in-page figures (custom components, in shadow roots) with the hostile
            # model: its class name is drawn on the NMS canvas (fillText), and the Matching
            # page lists the sample's GT labels it refuses next to it.
            model = tmp_path / "runs" / "hostile" / "checkpoints" / "best.pt"
            for path in ("nms", "matching"):
                page.goto(f"{base}/{path}?{urlencode({'model': str(model), 'score_thresh': '0.01'})}")
                settle(page)
                if path == "nms":  # (Matching has no GT to draw: the sample's labels are not this model's)
                    page.locator("canvas.ssd-canvas").first.wait_for(timeout=90_000)  # the component ran
                settle(page)
                # Locators pierce open shadow roots: no element anywhere points at the listener.
                assert page.locator(f'img[src*=":{port}"], a[href*=":{port}"], .katex').count() == 0, path
            other = browser.new_page()
            other.goto(link)  # a fresh browser opening the same ?inputs= link
            settle(other)
            browser.close()
    finally:
        listener.shutdown()
    assert _Counter.hits == [], _Counter.hits
