"""The live Matching page's numbers and tables (`pages/live/matching_tables.js` on
`ssd_mirror.js`) against the server's (`explorer.views.matching.matching_view`,
`loss_view`, i.e. `ssd.matching.match` and the mining of `ssd.loss.multibox_loss`), in
Chromium, on the data the page gets (`live_data.matching_data` + `live_matching.
matching_box_data`): the shipped model on the sample scenes and peer photos, random
logits on the peer VOC / COCO boxes and on random configurations with shared best boxes.

Same rows (every key, value and rounding) for the positives, the per-GT summary, the
per-GT-and-level table and the mined negatives (hardest first); the same N and count of
hard negatives; the loss numbers within 1e-5 relative (the page sums the float32 per-box
terms in float64, the library in float32).
"""
from __future__ import annotations

import random

import pytest
import torch

from explorer.views import matching as mv
from explorer.views.live_data import matching_data
from explorer.views.live_matching import matching_box_data
from ssd.boxes import px_to_norm
from ssd.config import compact256, ssd300_voc
from ssd.priors import default_boxes
from tests.test_browser_live import (MIRROR_JS, ROOT, _images, _peer_boxes_norm, _random_config, browser,  # noqa: F401
                                     peer_data_or_none)

TABLES_JS = (ROOT / "pages" / "live" / "matching_tables.js").read_text()

pytestmark = pytest.mark.slow

_RUN = """([d]) => {
    const s = matchingStatic(d.config, decodeF32(d.gt_norm), d.num_gt), li = lossInputs(d);
    const order = lossOrder(li.bg);
    return d.cases.map(([thr, ratio]) => {
        const m = matchIou(s.iou, s.G, s.A, thr);
        const mined = mineNegatives(order, Uint8Array.from(m.gtIndex, g => (g >= 0 ? 1 : 0)), ratio);
        return {tables: matchingTables(s, m, thr, d.gt_names), loss: lossView(s, m, mined, order, li)};
    }); }"""


@pytest.fixture(scope="module")
def page(browser):  # noqa: F811
    p = browser.new_page()
    p.set_content("<html><body></body></html>")
    p.add_script_tag(content=MIRROR_JS + "\n" + TABLES_JS)
    yield p
    p.close()


def _check(page, cfg, logits, deltas, gt_px, labels, hw, class_names, cases, where) -> int:
    """The page's tables and loss = the server's for each (threshold, ratio); returns the rows compared."""
    db = default_boxes(cfg)
    gt_norm = px_to_norm(gt_px.float().reshape(-1, 4), hw)  # as the page and `matching_view` take them
    names = [class_names[int(c)] for c in labels]
    data = {**matching_data(cfg, gt_norm, names, gt_px, hw, 0.5, 3.0, None, class_names),
            **matching_box_data(logits, deltas, db, gt_norm, labels, cfg.variances), "cases": cases}
    got = page.evaluate(_RUN, [data])
    rows = 0
    for (thr, ratio), g in zip(cases, got):
        w = (where, thr, ratio)
        view = mv.matching_view(db, cfg.image_size, gt_px, names, hw, thr)
        assert g["tables"]["records"] == view.records, w
        assert g["tables"]["summary"] == view.summary, w
        assert g["tables"]["per_gt_level"] == view.per_gt_level, w
        lv = mv.loss_view(logits, deltas, db, gt_px, labels, hw, class_names, iou_threshold=thr,
                          neg_pos_ratio=ratio, variances=cfg.variances)
        loss = g["loss"]
        assert (loss["num_pos"], loss["num_hard_negative"]) == (lv.num_pos, lv.num_hard_negative), w
        assert loss["negatives"] == lv.negatives, w  # no exact tie at the mining boundary in this data
        for key, want in (("conf", lv.conf), ("loc", lv.loc), ("total", lv.total), ("conf_sum", lv.conf_sum),
                          ("loc_sum", lv.loc_sum)):
            assert loss[key] == pytest.approx(want, rel=1e-5, abs=1e-6), (w, key)
        rows += len(view.records) + len(lv.negatives)
    return rows


CASES = [[0.5, 3.0], [0.35, 1.5], [0.65, 10.0], [0.05, 0.5], [0.95, 3.0], [0.45, 0.0]]


def test_tables_equal_the_servers_on_the_shipped_model(page, peer_data_or_none):  # noqa: F811
    from explorer.inputs.models import default_model_id, list_model_choices, load_model
    from ssd.inference import forward_raw

    loaded = load_model(default_model_id(list_model_choices()))
    cfg, names = loaded.model.cfg, loaded.class_names
    rng = random.Random(5)
    rows = 0
    for name, image, gt_px in _images(peer_data_or_none):
        if gt_px.shape[0] == 0:
            continue
        raw = forward_raw(loaded.model, image)
        labels = torch.tensor([rng.randint(1, len(names) - 1) for _ in range(gt_px.shape[0])])
        rows += _check(page, cfg, raw.cls_logits, raw.bbox_regression, gt_px, labels, image.size[::-1], names,
                       CASES, name)
    assert rows > 1000


def _random_logits(g: torch.Generator, cfg, classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = len(default_boxes(cfg))
    return torch.randn(a, classes, generator=g) * 2, torch.randn(a, 4, generator=g)


def test_tables_equal_the_servers_on_peer_boxes(page, peer_data):
    """The peer VOC and COCO boxes (in pixels of a made-up image size) with random logits."""
    rng, g = random.Random(9), torch.Generator().manual_seed(9)
    sets = _peer_boxes_norm(peer_data)
    assert len(sets) >= 10
    names = ["background", "a", "b", "c"]
    for name, gt_norm in sets:
        cfg = rng.choice([ssd300_voc(), compact256(), _random_config(rng)])
        hw = (rng.randint(200, 900), rng.randint(200, 900))
        gt_px = gt_norm * torch.tensor([hw[1], hw[0], hw[1], hw[0]], dtype=torch.float32)
        labels = torch.tensor([rng.randint(1, 3) for _ in range(gt_px.shape[0])])
        logits, deltas = _random_logits(g, cfg, len(names))
        _check(page, cfg, logits, deltas, gt_px, labels, hw, names,
               [[0.5, 3.0], [round(rng.uniform(0.05, 0.95), 2), rng.choice([0.5, 2.0, 7.5])]], name)


def test_tables_equal_the_servers_on_random_configs_and_shared_best_boxes(page):
    """Random configurations and boxes; GTs equal to one default box share it as their best
    box, so step 1 gives the second GT another box (a forced pair not of its best GT)."""
    rng, g = random.Random(4), torch.Generator().manual_seed(4)
    names = ["background", "cat", "dog"]
    for trial in range(8):
        cfg = _random_config(rng) if trial else compact256()
        db = default_boxes(cfg)
        hw = (rng.randint(100, 700), rng.randint(100, 700))
        scale = torch.tensor([hw[1], hw[0], hw[1], hw[0]], dtype=torch.float32)
        n = rng.randint(1, 8)
        xy = torch.rand(n, 2, generator=g)
        gt_norm = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 0.6 + 0.02], 1).clamp(0, 1)
        a = rng.randrange(len(db))
        same = db.xyxy[[a, a]].clamp(0, 1)
        if bool(((same[:, 2:] - same[:, :2]) > 1e-3).all()):
            gt_norm = torch.cat([gt_norm, same])
        labels = torch.tensor([rng.randint(1, 2) for _ in range(gt_norm.shape[0])])
        logits, deltas = _random_logits(g, cfg, len(names))
        gt_px = gt_norm * scale
        data = matching_box_data(logits, deltas, db, px_to_norm(gt_px, hw), labels, cfg.variances)
        if trial == 0:
            assert data["forced_pairs"], "the shared best box gives the second GT a forced pair"
        _check(page, cfg, logits, deltas, gt_px, labels, hw, names,
               [[0.5, 3.0], [0.3, 1.0], [0.8, 10.0]], (trial, cfg.name))


# ---------------------------------------------------------------- through the real page
def _page_metric(page, label: str) -> str:
    m = page.locator(".ssd-metric").filter(has=page.locator(".ssd-metric-label", has_text=label)).first
    return m.locator(".ssd-metric-value").inner_text().strip()


def _table_rows(page, n: int) -> list[list[str]]:
    trs = page.locator("table.ssd-table").nth(n).locator("tr")
    return [trs.nth(i).locator("td").all_inner_texts() for i in range(1, trs.count())]


def test_the_live_matching_page_in_the_real_app(tmp_path, browser):  # noqa: F811
    """The sample scene with the shipped model: a key step on the live IoU threshold
    (0.50 -> 0.55) reaches Python and the URL; the page's numbers, summary table and
    Matches download are the server's `matching_view` at 0.55; the ratio's step (3 -> 3.5)
    too, and the loss section's N, hard negatives and their table are `loss_view`'s. The
    figure's module is fetched once (`pages/_live.py` `module_url`), not sent per release."""
    import json
    from pathlib import Path

    from benchmarks.browser import settle, streamlit_server
    from explorer.inputs.models import default_model_id, list_model_choices, load_model
    from explorer.inputs.samples import list_samples, load_sample
    from ssd.inference import forward_raw
    from tests.test_browser_live import _wait_live

    img = load_sample(list_samples()[0].sample_id)
    gt_px = torch.tensor([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in img.gt_rows], dtype=torch.float32)
    names = [r["label"] for r in img.gt_rows]
    loaded = load_model(default_model_id(list_model_choices()))
    cfg, hw = loaded.model.cfg, img.image.size[::-1]
    db = default_boxes(cfg)
    view = mv.matching_view(db, cfg.image_size, gt_px, names, hw, 0.55)

    def url_has(key: str, value: str) -> None:
        page.wait_for_function("([k, v]) => new URLSearchParams(location.search).get(k) === v", arg=[key, value],
                               timeout=30_000)
        settle(page)

    with streamlit_server("app.py", tmp_path / "app.log", env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) as (base, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        modules = []  # the figure's module, served by the media store: fetched once per page load
        page.on("response", lambda r: modules.append(r.url) if "/media/" in r.url and
                r.headers.get("content-type", "").startswith("text/javascript") else None)
        try:
            page.goto(f"{base}/matching")
            _wait_live(page, "matching")
            iou = page.get_by_role("slider", name="IoU threshold", exact=True)
            assert iou.count() == 1 and iou.evaluate("e => e.type") == "range"
            iou.focus()
            iou.press("ArrowRight")  # 0.50 -> 0.55
            url_has("match_iou", "0.55")
            assert page.locator('[data-testid="stMetric"]').count() == 0  # the numbers are the page's
            assert _page_metric(page, "Positive default boxes") == str(len(view.records))
            assert _page_metric(page, "of them forced") == str(sum(r["forced"] for r in view.records))
            summary = _table_rows(page, 0)
            assert [[int(r[2]), int(r[3]), float(r[4]), r[7]] for r in summary] == \
                [[s["matches"], s["forced_matches"], s["best_possible_iou"], s["status"]] for s in view.summary]
            with page.expect_download() as got:
                page.get_by_role("button", name="Matches (JSON)").click()
            want = {"iou_threshold": 0.55, "summary": view.summary, "per_gt_level": view.per_gt_level,
                    "positives": view.records}
            assert json.loads(Path(got.value.path()).read_text()) == json.loads(json.dumps(want))

            ratio = page.get_by_role("slider", name="Negatives per positive (neg:pos)", exact=True)
            ratio.focus()
            ratio.press("ArrowRight")  # 3.0 -> 3.5
            url_has("neg_pos", "3.5")
            page.get_by_text("Hard negatives & loss", exact=True).click()
            page.locator(".ssd-live p.ssd-summary", has_text="Sums before dividing by N").first.wait_for(timeout=30_000)
            settle(page)
            raw = forward_raw(loaded.model, img.image)
            labels = torch.tensor([loaded.class_names.index(n) for n in names])
            lv = mv.loss_view(raw.cls_logits, raw.bbox_regression, db, gt_px, labels, hw, loaded.class_names,
                              iou_threshold=0.55, neg_pos_ratio=3.5, variances=cfg.variances)
            assert _page_metric(page, "N (positives)") == str(lv.num_pos)
            assert _page_metric(page, "hard negatives") == str(lv.num_hard_negative)
            negatives = _table_rows(page, 0)
            assert [[int(r[0]), int(r[1]), float(r[2])] for r in negatives] == \
                [[n["rank"], n["default_index"], n["conf_loss"]] for n in lv.negatives[:200]]
            assert page.locator('[data-testid="stException"]').count() == 0
            assert len(modules) == 1, modules  # two releases and a section change later: not sent again
        finally:
            page.close()


def test_a_module_that_cannot_load_leaves_the_server_figure(tmp_path, browser):  # noqa: F811
    """The figure's module refused (its request aborted, as a broken network or a blocked
    script would): the live area says it could not load, and the page keeps the server's
    figure, sliders and numbers (`pages/_live.py`'s fallback)."""
    from benchmarks.browser import settle, streamlit_server

    with streamlit_server("app.py", tmp_path / "app.log", env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) as (base, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.route("**/media/**", lambda route: route.abort() if route.request.resource_type == "script"
                   else route.continue_())
        try:
            page.goto(f"{base}/matching")
            status = page.locator(".ssd-live-status").first
            status.wait_for(timeout=90_000)
            page.wait_for_function("""() => [...document.querySelectorAll('*')].some(e => e.shadowRoot &&
                e.shadowRoot.querySelector('.ssd-live-status')?.textContent.includes('could not load'))""",
                                   timeout=30_000)
            settle(page)
            assert page.locator("canvas.ssd-canvas").count() == 0
            assert page.locator('[data-testid="stSlider"]').filter(has_text="IoU threshold").count() == 1
            assert page.locator(".js-plotly-plot").count() >= 1
            assert page.locator('[data-testid="stMetric"]').filter(has_text="Positive default boxes").count() == 1
            assert page.locator('[data-testid="stException"]').count() == 0
        finally:
            page.close()
