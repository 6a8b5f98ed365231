"""Issue 11 in a real browser: an uploaded photo and its ground truth survive a page change
and a browser reload (`pages/_sidebar.py` keeps them under the `?inputs=` token).

`streamlit run app.py` as a subprocess (`benchmarks.browser.streamlit_server`), driven by
Python playwright with Debian's Chromium. Skipped when no Chromium (or playwright) is
found, unless SSD_REQUIRE_BROWSER=1 (CI), which turns the skip into a failure.
"""
import re
from urllib.parse import parse_qs, urlparse

import pytest

from benchmarks.browser import CHROMIUM_ARGS, IDLE, streamlit_server

pytestmark = pytest.mark.slow
GT_XML = (b"<annotation><size><width>640</width><height>427</height><depth>3</depth></size>"
          b"<object><name>car</name><difficult>0</difficult><bndbox><xmin>101</xmin><ymin>151</ymin><xmax>300"
          b"</xmax><ymax>350</ymax></bndbox></object></annotation>")
SIDEBAR = '[data-testid="stSidebar"]'


def _settle(page, heading: str, timeout_ms: int = 90_000) -> None:
    """Until the page's heading is shown and the script is idle (twice: a rerun may follow)."""
    page.get_by_role("heading", name=heading).first.wait_for(timeout=timeout_ms)
    for _ in range(2):
        page.wait_for_selector(IDLE, timeout=timeout_ms)
        page.wait_for_timeout(700)
    boxes = page.locator('[data-testid="stException"]')
    if boxes.count():
        raise AssertionError(f"{heading}: Streamlit exception shown: {boxes.first.inner_text()[:2000]}")


def _token(page) -> str | None:
    return (parse_qs(urlparse(page.url).query).get("inputs") or [None])[-1]


def _reload_keeps_upload(page, base: str, photo, gt_file) -> None:
    """Upload a photo and a VOC file for it, change page in the menu, reload: the sidebar
    still uses the photo and its box, under the same URL token."""
    page.goto(base)
    _settle(page, "SSD Explorer")
    sidebar = page.locator(SIDEBAR)
    sidebar.locator('[data-testid="stRadioGroup"]').get_by_text("Upload", exact=True).click()
    page.wait_for_selector(f'{SIDEBAR} [data-testid="stFileUploaderDropzoneInput"]', state="attached")
    sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Your image").first \
        .locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(photo))
    sidebar.get_by_text("640x427 px", exact=False).first.wait_for(timeout=90_000)
    _settle(page, "SSD Explorer")
    sidebar.get_by_text("Ground-truth boxes", exact=True).click()  # the expander with the file uploader
    sidebar.locator('[data-testid="stFileUploader"]').filter(has_text="Annotation file").first \
        .locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(gt_file))
    sidebar.get_by_text("640x427 px, 1 GT boxes", exact=False).first.wait_for(timeout=90_000)
    _settle(page, "SSD Explorer")
    token = _token(page)
    assert token and len(token) == 32, page.url
    # A page change in the menu opens the page without the URL's query; the sidebar sets it again.
    sidebar.locator('[data-testid="stSidebarNav"]').get_by_text("Architecture", exact=True).click()
    _settle(page, "Architecture")
    page.wait_for_url(re.compile(r"/architecture\?.*inputs="), timeout=30_000)
    assert _token(page) == token, page.url
    page.reload()
    _settle(page, "Architecture")
    sidebar = page.locator(SIDEBAR)
    sidebar.get_by_text("640x427 px, 1 GT boxes", exact=False).first.wait_for(timeout=90_000)
    assert sidebar.get_by_text("Kept from before the reload", exact=False).count() == 1
    assert _token(page) == token


def test_reload_keeps_the_upload_and_its_gt_in_chromium(tmp_path, peer_data, chromium_and_playwright):
    chromium, sync_playwright = chromium_and_playwright
    gt_file = tmp_path / "demo.xml"
    gt_file.write_bytes(GT_XML)
    log_path = tmp_path / "streamlit.log"
    try:
        with streamlit_server("app.py", log_path, env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) as (base, _):
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1200})
                    _reload_keeps_upload(page, base, peer_data / "mmdet" / "demo.jpg", gt_file)
                finally:
                    browser.close()
    except Exception:
        if log_path.is_file():
            print(log_path.read_text()[-5000:])
        raise
