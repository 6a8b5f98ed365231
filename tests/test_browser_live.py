"""The page-side mirrors (`pages/live/ssd_mirror.js`) against the library, in Chromium.

Each test loads the mirror into a bare page (no server: fast) and calls its functions on
random configurations and real data: the peer VOC / COCO boxes (`peer_data`), the shipped
model's outputs on the sample scenes and on peer photos. It compares with `ssd.priors`,
`ssd.matching.match`, the mining of `ssd.loss.multibox_loss` and `ssd.postprocess`
(`torchvision.ops.batched_nms`): the same boxes (bit for bit, and within 1e-5 of the input
size as the issue asks), positives, forced matches, mined negatives, kept sets, suppressors
and final detections. Tie rules: see `pages/live/ssd_mirror.js` and docs/explorer.md.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks.browser import CHROMIUM_ARGS, settle
from explorer.views.live_data import (background_conf_loss, box_config_data, f32_b64, f32_from_b64,
                                      nms_candidates)
from ssd.config import SSDConfig, compact256, ssd300_coco, ssd300_voc, ssd512_voc
from ssd.loss import multibox_loss, negative_rank
from ssd.matching import match
from ssd.postprocess import PostprocessConfig, postprocess
from ssd.priors import default_boxes

ROOT = Path(__file__).resolve().parent.parent
MIRROR_JS = (ROOT / "pages" / "live" / "ssd_mirror.js").read_text()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser():
    """One Chromium for the module (a second sync_playwright cannot start beside it)."""
    import os

    from benchmarks.browser import chromium_path

    skip = pytest.fail if os.environ.get("SSD_REQUIRE_BROWSER") == "1" else pytest.skip  # CI sets it
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip("python playwright is not installed")
    exe = chromium_path()
    if exe is None:
        skip("no Chromium found (apt-get install -y chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def mirror(browser):
    """A bare page with the mirror loaded; tests call its functions with `page.evaluate`."""
    page = browser.new_page()
    page.set_content("<html><body></body></html>")
    page.add_script_tag(content=MIRROR_JS + "\nwindow.__b64 = a => { const u = new Uint8Array(a.buffer,"
                        " a.byteOffset, a.byteLength); let s = ''; for (let i = 0; i < u.length; i++)"
                        " s += String.fromCharCode(u[i]); return btoa(s); };")
    yield page
    page.close()


def _random_config(rng: random.Random) -> SSDConfig:
    """A valid SSD configuration with random input size, maps, steps, scales, ratios, flags."""
    m = rng.randint(2, 7)
    size = rng.choice([64, 128, 256, 300, 320, 512, 333, 1024])
    maps = sorted({rng.randint(1, 80) for _ in range(m)} | {1}, reverse=True)[:m]
    if len(maps) < 2:
        maps = [4, 1]
    m = len(maps)
    s_min = rng.uniform(0.02, 0.5)
    s_max = rng.uniform(s_min + 0.05, 1.5)
    step = (s_max - s_min) / (m - 1)
    scales = tuple(s_min + step * k for k in range(m + 1))
    pool = [1.0, 2.0, 0.5, 3.0, 1 / 3, 1.5, 4.0]
    ratios = tuple(tuple([1.0] + rng.sample(pool[1:], rng.randint(0, 4))) for _ in range(m))
    steps = tuple(rng.choice([size / f, float(round(size / f)), size / f * 1.01]) for f in maps)
    return SSDConfig(image_size=size, feature_maps=tuple(maps), steps=steps, scales=scales, aspect_ratios=ratios,
                     extra_box=rng.random() < 0.8, clip=rng.random() < 0.7, num_classes=3, name="random")


def _page_boxes(page, cfg: SSDConfig) -> dict:
    return page.evaluate("""(cfg) => { const b = defaultBoxes(cfg);
        return {cxcywh: __b64(b.cxcywh), xyxy: __b64(cxcywhToXyxy(b.cxcywh)), perLevel: b.perLevel}; }""",
                         box_config_data(cfg))


def test_default_boxes_equal_the_library_on_presets_and_random_configs(mirror):
    rng = random.Random(21)
    cfgs = [ssd300_voc(), ssd300_coco(), ssd512_voc(), compact256()] + [_random_config(rng) for _ in range(40)]
    worst = 0.0
    for cfg in cfgs:
        db = default_boxes(cfg)
        got = _page_boxes(mirror, cfg)
        assert tuple(got["perLevel"]) == db.per_level, cfg
        cxcywh = f32_from_b64(got["cxcywh"]).reshape(-1, 4)
        assert cxcywh.shape == tuple(db.cxcywh.shape), cfg
        diff = float(np.abs(cxcywh - db.cxcywh.numpy()).max())
        worst = max(worst, diff)
        assert diff <= 1e-5, (cfg, diff)  # 1e-5 of the input size (normalised frame)
        # Bit for bit, which the IoU parity below relies on.
        assert np.array_equal(cxcywh, db.cxcywh.numpy()), cfg
        assert np.array_equal(f32_from_b64(got["xyxy"]).reshape(-1, 4), db.xyxy.numpy()), cfg
    assert worst == 0.0


def test_the_picked_cells_boxes_are_the_librarys(mirror):
    """`cellBoxes` (what the Default boxes figure draws) = the cell's rows of `default_boxes`."""
    rng = random.Random(8)
    for cfg in [ssd300_voc(), ssd512_voc()] + [_random_config(rng) for _ in range(10)]:
        db = default_boxes(cfg)
        for _ in range(5):
            k = rng.randrange(cfg.num_levels)
            f = cfg.feature_maps[k]
            i, j = rng.randrange(f), rng.randrange(f)
            got = mirror.evaluate("([cfg, k, i, j]) => cellBoxes(cfg, k, i, j).boxes", [box_config_data(cfg), k, i, j])
            start = db.flat_index(k, i, j, 0)
            want = db.xyxy[start: start + db.wh_per_level[k].shape[0]].numpy()
            assert np.array_equal(np.asarray(got, dtype=np.float32), want), (cfg, k, i, j)


def test_level_rows_equal_the_explorers(mirror):
    """`levelRows` (the live Default boxes page's downloads) = `explorer.views.default_boxes.level_rows`."""
    from explorer.views.default_boxes import level_rows

    rng = random.Random(5)
    for cfg in [ssd300_voc(), ssd300_coco(), ssd512_voc(), compact256()] + [_random_config(rng) for _ in range(20)]:
        assert mirror.evaluate("(cfg) => levelRows(cfg)", box_config_data(cfg)) == level_rows(cfg), cfg


def test_rule_scales_equal_the_explorer_rule(mirror):
    from explorer.views.default_boxes import rule_scales

    for s_min, s_max, m, first in [(0.2, 0.9, 6, None), (0.2, 0.88, 6, 0.1), (0.07, 1.05, 6, None), (0.3, 0.31, 2, None)]:
        got = mirror.evaluate("([a, b, m, f]) => ruleScales(a, b, m, f)", [s_min, s_max, m, first])
        assert np.allclose(got, rule_scales(s_min, s_max, m, first), rtol=0, atol=1e-12)


def _page_match(page, cfg: SSDConfig, gt_norm: torch.Tensor, thr: float) -> dict:
    return page.evaluate("""([cfg, gt, G, thr]) => {
        const d = cxcywhToXyxy(defaultBoxes(cfg).cxcywh); const A = d.length / 4;
        const m = matchIou(boxIou(decodeF32(gt), d), G, A, thr);
        return {gt: Array.from(m.gtIndex), forced: Array.from(m.forced), iou: __b64(m.iou)}; }""",
                         [box_config_data(cfg), f32_b64(gt_norm), int(gt_norm.shape[0]), thr])


def _assert_same_match(page, cfg, gt_norm, thr, where):
    lib = match(default_boxes(cfg).xyxy, gt_norm, thr)
    got = _page_match(page, cfg, gt_norm, thr)
    assert got["gt"] == lib.gt_index.tolist(), where
    assert got["forced"] == lib.forced.int().tolist(), where
    assert np.array_equal(f32_from_b64(got["iou"]), lib.iou.numpy()), where


def _peer_boxes_norm(peer_data) -> list[tuple[str, torch.Tensor]]:
    """Every peer VOC image's boxes and every COCO image's boxes, normalised by the image size."""
    from ssd.data.formats.coco_json import read_coco_json
    from ssd.data.formats.voc_xml import read_voc_xml

    out = []
    for xml in sorted((peer_data / "mmdet").glob("VOC*/Annotations/*.xml")):
        ann = read_voc_xml(xml)
        h, w = ann.image_hw
        boxes = [o.box_xyxy for o in ann.objects if o.box_xyxy[2] > o.box_xyxy[0] and o.box_xyxy[3] > o.box_xyxy[1]]
        if boxes:
            out.append((xml.name, torch.tensor(boxes, dtype=torch.float32) / torch.tensor([w, h, w, h],
                                                                                     dtype=torch.float32)))
    for js in ("coco_sample.json", "coco_sample_v2.json"):
        coco = read_coco_json(peer_data / "mmdet" / js)
        for im in coco.images:
            h, w = im.image_hw
            boxes = [(x, y, x + bw, y + bh) for x, y, bw, bh in (a["bbox"] for a in coco.annotations_by_image.get(im.id, []))
                     if bw > 0 and bh > 0]
            if boxes:
                out.append((f"{js}:{im.id}", torch.tensor(boxes, dtype=torch.float32)
                            / torch.tensor([w, h, w, h], dtype=torch.float32)))
    return out


def test_matching_equals_the_library_on_peer_boxes(mirror, peer_data):
    rng = random.Random(7)
    sets = _peer_boxes_norm(peer_data)
    assert len(sets) >= 10
    for name, gt in sets:
        cfg = rng.choice([ssd300_voc(), compact256(), _random_config(rng)])
        for thr in (0.5, rng.choice([0.05, 0.3, 0.45, 0.7, 0.95]), rng.uniform(0.05, 0.95)):
            _assert_same_match(mirror, cfg, gt, thr, (name, cfg.name, thr))


def test_matching_equals_the_library_on_random_boxes_and_ties(mirror):
    rng = random.Random(3)
    cfg = compact256()
    db = default_boxes(cfg)
    for trial in range(25):
        g = rng.randint(1, 12)
        xy = torch.rand(g, 2)
        wh = torch.rand(g, 2) * 0.6 + 0.01
        gt = torch.cat([xy, xy + wh], 1).clamp(0, 1)
        gt[:, 2:] = torch.maximum(gt[:, 2:], gt[:, :2] + 1e-3)
        _assert_same_match(mirror, cfg, gt, rng.choice([0.35, 0.5, 0.6]), trial)
    # Ties: two GTs equal to one default box share it as their best box (the tie rule:
    # the first GT takes it, the second its next best); a GT equal to a default box has IoU 1.
    same = db.xyxy[[100, 100, 2000]].clone()
    _assert_same_match(mirror, cfg, same, 0.5, "shared best box")
    lib = match(db.xyxy, same, 0.5)
    assert int(lib.gt_index[100]) in (0, 1) and lib.num_pos >= 3


def _shipped_outputs(images) -> list[tuple[str, object, torch.Tensor, torch.Tensor]]:
    """(name, raw outputs, GT normalised, GT labels) of the shipped model on each image."""
    from explorer.inputs.models import load_model
    from ssd.boxes import px_to_norm
    from ssd.inference import forward_raw

    from explorer.inputs.models import default_model_id, list_model_choices

    loaded = load_model(default_model_id(list_model_choices()))
    out = []
    for name, image, gt_px in images:
        raw = forward_raw(loaded.model, image)
        gt = px_to_norm(gt_px.float().reshape(-1, 4), image.size[::-1])
        out.append((name, raw, gt, torch.ones(gt.shape[0], dtype=torch.long)))
    return out, loaded


def _images(peer_data=None):
    """The sample scenes with their GT; peer photos with their VOC boxes when present."""
    from explorer.inputs.samples import list_samples, load_sample
    from PIL import Image

    images = []
    for s in list_samples():
        img = load_sample(s.sample_id)
        gt = torch.tensor([[r["x1"], r["y1"], r["x2"], r["y2"]] for r in img.gt_rows], dtype=torch.float32)
        images.append((s.sample_id, img.image, gt.reshape(-1, 4)))
    if peer_data is not None:
        from ssd.data.formats.voc_xml import read_voc_xml

        for stem in ("000001", "000004"):
            ann = read_voc_xml(peer_data / "mmdet" / "VOC2007" / "Annotations" / f"{stem}.xml")
            img = Image.open(peer_data / "mmdet" / "VOC2007" / "JPEGImages" / f"{stem}.jpg").convert("RGB")
            images.append((stem, img, torch.tensor([o.box_xyxy for o in ann.objects], dtype=torch.float32)))
        images.append(("demo.jpg", Image.open(peer_data / "mmdet" / "demo.jpg").convert("RGB"), torch.zeros((0, 4))))
    return images


@pytest.fixture(scope="module")
def shipped(peer_data_or_none):
    return _shipped_outputs(_images(peer_data_or_none))


@pytest.fixture(scope="module")
def peer_data_or_none():
    from tests.conftest import PEER_DATA

    return PEER_DATA if (PEER_DATA / "SOURCES.md").is_file() else None


def test_hard_negatives_equal_the_library_on_the_shipped_model(mirror, shipped):
    outputs, loaded = shipped
    cfg = loaded.model.cfg
    db = default_boxes(cfg)
    ties_at_boundary = 0
    for name, raw, gt, labels in outputs:
        if gt.shape[0] == 0:
            continue
        loss_bg = background_conf_loss(raw.cls_logits, db.cxcywh)
        for thr, ratio in ((0.5, 3.0), (0.35, 1.5), (0.65, 10.0), (0.2, 0.5)):
            lib = multibox_loss(raw.cls_logits[None].float(), raw.bbox_regression[None].float(), db.cxcywh,
                                [{"boxes": gt, "labels": labels}], iou_threshold=thr, neg_pos_ratio=ratio)
            got = mirror.evaluate("""([cfg, gt, G, thr, loss, ratio]) => {
                const d = cxcywhToXyxy(defaultBoxes(cfg).cxcywh); const A = d.length / 4;
                const m = matchIou(boxIou(decodeF32(gt), d), G, A, thr);
                const pos = Uint8Array.from(m.gtIndex, g => g >= 0 ? 1 : 0);
                const r = mineNegatives(lossOrder(decodeF32(loss)), pos, ratio);
                return {pos: Array.from(pos), mined: Array.from(r.mined), rank: Array.from(r.rank)}; }""",
                                  [box_config_data(cfg), f32_b64(gt), int(gt.shape[0]), thr, f32_b64(loss_bg), ratio])
            where = (name, thr, ratio)
            assert got["pos"] == lib.positive[0].int().tolist(), where
            # The loss the library ranks by is the background loss the page got, for every negative.
            neg = ~lib.positive[0]
            assert torch.equal(lib.conf_loss_per_box[0][neg], loss_bg[neg]), where
            assert got["rank"] == negative_rank(lib.conf_loss_per_box[0], lib.positive[0]).tolist(), where
            mined = torch.tensor(got["mined"], dtype=torch.bool)
            k = int(lib.hard_negative[0].sum())
            assert int(mined.sum()) == k, where
            if not torch.equal(mined, lib.hard_negative[0]):
                # Only on an exact tie at the boundary (torch.topk's choice there is its own):
                # the same count, and the same negatives strictly above the boundary loss.
                edge = float(loss_bg[mined].min())
                assert torch.equal(mined & (loss_bg > edge), lib.hard_negative[0] & (loss_bg > edge)), where
                ties_at_boundary += 1
    assert ties_at_boundary == 0  # on this data the sets are identical


def test_mining_tie_rule_is_negative_rank(mirror):
    """Equal losses: the page mines the lower default-box indices first (negative_rank's order)."""
    loss = torch.tensor([0.5, 0.9, 0.5, 0.5, 0.1, 0.5], dtype=torch.float32)
    positive = torch.tensor([0, 1, 0, 0, 0, 0], dtype=torch.bool)
    got = mirror.evaluate("""([loss, pos, ratio]) => { const r = mineNegatives(lossOrder(decodeF32(loss)),
        Uint8Array.from(pos), ratio); return {mined: Array.from(r.mined), rank: Array.from(r.rank)}; }""",
                          [f32_b64(loss), positive.int().tolist(), 2.0])
    assert got["rank"] == negative_rank(loss, positive).tolist()
    assert got["mined"] == [1, 0, 1, 0, 0, 0]


def _page_nms(page, post_floor, score_thresh, nms_thresh, detections_per_img) -> dict:
    return page.evaluate("""([b, s, l, st, nt, k]) => {
        const r = nmsTrace(decodeF32(b), decodeF32(s), Int32Array.from(l), st, nt, k);
        return {selected: Array.from(r.selected), kept: Array.from(r.kept), by: Array.from(r.suppressedBy),
                iou: __b64(r.suppressIou), final: r.final}; }""",
                         [f32_b64(post_floor.candidate_boxes_px_in), f32_b64(post_floor.candidate_scores),
                          post_floor.candidate_labels.tolist(), score_thresh, nms_thresh, detections_per_img])


def _assert_same_nms(page, scores, boxes_px_in, score_thresh, nms_thresh, k, where) -> int:
    """Page NMS on the floor candidates vs `ssd.postprocess.postprocess` at these thresholds.
    Candidates are compared by (default box, class): the two lists index them differently."""
    floor = nms_candidates(scores, boxes_px_in)
    lib = postprocess(scores, boxes_px_in, PostprocessConfig(score_thresh=score_thresh, nms_thresh=nms_thresh,
                                                             detections_per_img=k))
    got = _page_nms(page, floor, score_thresh, nms_thresh, k)
    key_floor = list(zip(floor.candidate_index.tolist(), floor.candidate_labels.tolist()))
    key_lib = list(zip(lib.candidate_index.tolist(), lib.candidate_labels.tolist()))
    sel = [key_floor[n] for n, s in enumerate(got["selected"]) if s]
    assert sorted(sel) == sorted(key_lib), where
    pos_lib = {key: n for n, key in enumerate(key_lib)}
    kept_page = {key_floor[n] for n, v in enumerate(got["kept"]) if v}
    assert kept_page == {key_lib[n] for n in lib.nms.keep.tolist()}, where
    by_lib = lib.nms.suppressed_by.tolist()
    iou_page, iou_lib = f32_from_b64(got["iou"]), lib.nms.suppress_iou.numpy()
    for n, s in enumerate(got["selected"]):
        if not s:
            continue
        q = pos_lib[key_floor[n]]
        want = key_lib[by_lib[q]] if by_lib[q] >= 0 else None
        have = key_floor[got["by"][n]] if got["by"][n] >= 0 else None
        assert have == want, (where, key_floor[n])
        assert iou_page[n] == iou_lib[q], (where, key_floor[n])
    final_scores = lib.candidate_scores[lib.final].tolist()
    assert _in_order_up_to_ties([key_floor[n] for n in got["final"]], [key_lib[n] for n in lib.final.tolist()],
                                final_scores), where
    return len(sel)


def _in_order_up_to_ties(page_keys: list, lib_keys: list, lib_scores: list[float]) -> bool:
    """The same list, except that boxes of exactly equal score may come in another order
    (the library's order among them is torch.topk's, which depends on the input length;
    the page keeps the order of the candidates at the floor)."""
    if len(page_keys) != len(lib_keys):
        return False
    runs: dict[float, tuple[set, set]] = {}
    for p, q, s in zip(page_keys, lib_keys, lib_scores):
        a, b = runs.setdefault(s, (set(), set()))
        a.add(p)
        b.add(q)
    return all(a == b for a, b in runs.values())


def test_nms_equals_the_library_on_the_shipped_model(mirror, shipped):
    outputs, _ = shipped
    rng = random.Random(5)
    sizes = []
    for name, raw, _, _ in outputs:
        for st, nt, k in [(0.01, 0.45, 200), (0.3, 0.45, 200), (0.05, 0.3, 10), (0.5, 0.7, 400),
                          (round(rng.uniform(0.01, 0.95), 2), round(rng.uniform(0.05, 0.95), 2), rng.randint(1, 400))]:
            sizes.append(_assert_same_nms(mirror, raw.scores, raw.boxes_px_in, st, nt, k, (name, st, nt, k)))
    assert max(sizes) > 50  # real crowds of candidates, not a few boxes


def test_py_round_is_pythons_round(mirror):
    """The page's tables round as Python's `round` (exact ties to even; toFixed would not)."""
    rng = random.Random(3)
    values = [215.25, 0.125, 2.5, 3.5, -0.125, 1.005, 0.0, -2.5, 1e-7, 12345.675]
    values += [rng.randint(-4000, 4000) / 8 for _ in range(200)] + [rng.uniform(-1000, 1000) for _ in range(200)]
    cases = [[v, d] for v in values for d in (0, 1, 2, 4)]
    got = mirror.evaluate("(cases) => cases.map(([v, d]) => pyRound(v, d))", cases)
    assert got == [round(v, d) for v, d in cases]


def test_nms_tables_equal_the_explorers_on_the_shipped_model(mirror, shipped):
    """`nmsRecords` / `nmsCounts` (the live NMS page's tables and downloads) = the server's
    `explorer.views.nms.candidate_records` / `count_table` at the same thresholds: every
    row, numbered alike (candidate, detection, suppressor), rounded alike."""
    from explorer.views import nms as nv
    from explorer.views.live_data import nms_data
    from ssd.inference import stages_from_raw

    outputs, loaded = shipped
    names = loaded.class_names
    checked = 0
    for name, raw, _, _ in outputs:
        db = raw.default_boxes
        data = nms_data(raw.scores, raw.boxes_px_in, raw.boxes_xyxy_px, db.level, names, (1, 1),
                        {"score_thresh": 0.3, "nms_thresh": 0.45, "detections_per_img": 200}, {}, None,
                        row=db.row, col=db.col, num_levels=len(db.feature_maps))
        for st_, nt, k in [(0.3, 0.45, 200), (0.05, 0.6, 20), (0.01, 0.3, 400)]:
            stg = stages_from_raw(raw, score_thresh=st_, nms_thresh=nt, detections_per_img=k)
            want = nv.candidate_records(stg, names)
            per_class, per_level = nv.count_table(want, stg.detections, names, len(db.feature_maps))
            got = mirror.evaluate("""([d, st, nt, k]) => {
                const c = {scores: decodeF32(d.scores), labels: Int32Array.from(d.labels), level: d.level, row: d.row,
                           col: d.col, default_index: d.default_index, boxes_px: decodeF32(d.boxes_px),
                           class_names: d.class_names};
                const r = nmsTrace(decodeF32(d.boxes_px_in), c.scores, c.labels, st, nt, k);
                const records = nmsRecords(r, c);
                return {records, counts: nmsCounts(records, d.class_names, d.num_levels)}; }""", [data, st_, nt, k])
            where = (name, st_, nt, k)
            assert len(got["records"]) == len(want), where
            for g, w in zip(got["records"], want):  # rounded alike (`pyRound` = Python's round)
                assert g == w, (where, g, w)
            assert got["counts"]["perClass"] == per_class and got["counts"]["perLevel"] == per_level, where
            checked += len(want)
    assert checked > 500


def test_nms_equals_the_library_on_random_scores_both_batched_nms_paths(mirror):
    """Random scores and boxes: <= 1000 candidates take batched_nms's offset path, more its
    per-class path; exact ties in score are broken by candidate order in both."""
    g = torch.Generator().manual_seed(11)
    for n, classes in ((300, 4), (2600, 3)):
        logits = torch.randn(n, classes, generator=g) * 3
        logits[::7] = logits[1::7][: logits[::7].shape[0]]  # exact score ties
        scores = logits.softmax(-1)
        xy = torch.rand(n, 2, generator=g) * 250
        boxes = torch.cat([xy, xy + torch.rand(n, 2, generator=g) * 60 + 1], 1).clamp(0, 300)
        for st, nt in ((0.01, 0.45), (0.2, 0.6)):
            _assert_same_nms(mirror, scores, boxes, st, nt, 200, (n, st, nt))


# ---------------------------------------------------------------- through the real page
def _canvas_pixels(page, which: int = 0) -> str:
    """A digest of the live canvas's pixels (in the component's shadow root)."""
    return page.locator("canvas.ssd-canvas").nth(which).evaluate(
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                  let h = 0; for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0; return String(h); }""")


def _wait_live(page, name: str) -> None:
    """Until the live figure has run and the page has dropped its server figure."""

    page.locator("canvas.ssd-canvas").first.wait_for(timeout=90_000)
    settle(page)
    assert page.locator('[data-testid="stException"]').count() == 0


def test_live_figures_in_the_real_app(tmp_path, browser):
    """One server, Default boxes and NMS (Matching: tests/test_browser_live_matching.py): a
    key step redraws the canvas before Python answers, the released value reaches Python
    (the tables agree with the figure, the URL and the Trace page show it), a click inside the picked cell's largest box picks the cell under the
    pointer, and a click on an NMS box picks that object for the Trace page."""
    from benchmarks.browser import streamlit_server

    with streamlit_server("app.py", tmp_path / "app.log", env={"SSD_RUNS_DIR": str(tmp_path / "runs")}) as (base, _):
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        try:
            page.goto(f"{base}/default_boxes")
            _wait_live(page, "default_boxes")
            # The server's s_max slider is gone; the live one is a native range input named by its label.
            smax = page.get_by_role("slider", name="s_max", exact=True)
            assert smax.count() == 1 and smax.evaluate("e => e.type") == "range"
            scales = page.locator('input[aria-label^="Scales s_1"]').first
            before_scales, before_px = scales.input_value(), _canvas_pixels(page)
            smax.focus()
            smax.press("ArrowRight")
            assert _canvas_pixels(page) != before_px  # redrawn in the page, synchronously
            page.wait_for_function("""([sel, old]) => document.querySelector(sel)?.value !== old""",
                                   arg=['input[aria-label^="Scales s_1"]', before_scales], timeout=30_000)
            settle(page)
            assert scales.input_value().split(", ")[5] == "0.89"  # SSD300's rule: s_max 0.88 -> 0.89
            # Cell picking: 10x10 level, cell (5, 5) picked; the centre of cell (3, 4) lies inside
            # (5, 5)'s largest box (1': 135 px wide, from 108.5 to 243.5 px).
            assert page.locator('input[aria-label="Cell row i"]').first.input_value() == "5"
            canvas = page.locator("canvas.ssd-canvas").first.bounding_box()
            page.mouse.click(canvas["x"] + canvas["width"] * 144 / 300, canvas["y"] + canvas["height"] * 112 / 300)
            page.wait_for_function("""() => {
                const v = l => document.querySelector(`input[aria-label="${l}"]`)?.value;
                return v('Cell row i') === '3' && v('Cell column j') === '4'; }""", timeout=30_000)
            _default_box_tables_are_the_servers(page)

            page.goto(f"{base}/nms")
            _wait_live(page, "nms")
            score = page.get_by_role("slider", name="Score threshold", exact=True)
            score.focus()
            for _ in range(3):
                score.press("ArrowLeft")  # 0.30 -> 0.27: more candidates
            # The counts and tables are the page's own (the server draws none of them here).
            n_cand = int(page.locator(".ssd-summary").first.inner_text().split(" ")[0])
            final = page.locator(".ssd-table-title", has_text="Final detections").first
            assert final.count() == 1 and page.locator('[data-testid="stMetric"]').count() == 0
            per_level = page.locator("table.ssd-table").nth(1).locator("tr")  # level, candidates, kept, final
            assert sum(int(per_level.nth(i).locator("td").nth(1).inner_text())
                       for i in range(1, per_level.count())) == n_cand
            _released_value_reaches_the_url_and_the_trace_page(page, base)
        finally:
            page.close()


# The live NMS figure's state (`common.js` liveState), found from its canvas; and the centre
# (CSS px in the canvas) and trace key of its smallest final detection.
_SMALLEST_FINAL = """c => {
    let n = c; while (n && !n.__ssdLive) n = n.parentNode || n.host;
    const st = n.__ssdLive, b = st.boxesPx, s = st.scale;
    let best = -1, area = Infinity;
    for (const i of st.trace.final) {
        const a = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
        if (a < area) { area = a; best = i; }
    }
    return {x: (b[4 * best] + b[4 * best + 2]) / 2 * s, y: (b[4 * best + 1] + b[4 * best + 3]) / 2 * s,
            key: `det:${st.data.default_index[best]}:${st.labels[best]}`, a: st.data.default_index[best]};
}"""


def _released_value_reaches_the_url_and_the_trace_page(page, base: str) -> None:
    """After the NMS page's score step (0.30 -> 0.27 in the live figure): the URL carries
    it; a click on a final detection in the canvas picks it for the Trace page (the
    workspace's traced object, in the URL too); the Trace page, reached through the pick's
    link in the same session, shows that object at the same score threshold."""
    def query(name: str) -> str | None:
        return page.evaluate("(k) => new URLSearchParams(location.search).get(k)", name)

    page.wait_for_function("() => new URLSearchParams(location.search).get('score_thresh') === '0.27'",
                           timeout=30_000)
    canvas = page.locator("canvas.ssd-canvas").first
    target = canvas.evaluate(_SMALLEST_FINAL)
    canvas.click(position={"x": target["x"], "y": target["y"]})
    page.wait_for_function("(k) => new URLSearchParams(location.search).get('trace') === k",
                           arg=target["key"], timeout=30_000)
    settle(page)
    assert "Picked:" in page.get_by_text("Click a box on the figure").first.inner_text()
    page.get_by_role("link", name="Trace the picked object").click()
    page.wait_for_url("**/trace?**", timeout=30_000)
    where = page.locator('[data-testid="stMarkdownContainer"]').filter(has_text="Where it comes from").first
    where.wait_for(timeout=90_000)
    settle(page)
    assert f"default box {target['a']}," in where.inner_text()
    score = page.locator('[data-testid="stSlider"]').filter(has_text="Score threshold").first  # the Trace page's
    assert score.locator('[data-testid="stSliderThumbValue"]').inner_text().strip() == "0.27"
    assert query("score_thresh") == "0.27" and query("trace") == target["key"]
    assert page.locator('[data-testid="stException"]').count() == 0


def _default_box_tables_are_the_servers(page) -> None:
    """The live Default boxes tables (drawn in the page instead of the server's) = the
    server's `level_rows` and `cell_box_rows` for the shown configuration: SSD300 with the
    rule's s_max at 0.89, level 2, cell (3, 4)."""
    from explorer.views import default_boxes as dbv

    controls = {**dbv.controls_from_config(ssd300_voc()), "s_max": 0.89}
    controls["scales"] = dbv.scales_text_from_rule(controls, 6)
    cfg = dbv.config_from_controls(controls, name="custom", num_classes=21)
    tables = page.locator("table.ssd-table")

    def rows(n: int) -> list[list[str]]:
        trs = tables.nth(n).locator("tr")
        return [trs.nth(i).locator("td").all_inner_texts() for i in range(1, trs.count())]

    levels = rows(0)
    for got, want in zip(levels, dbv.level_rows(cfg)):
        assert int(got[3]) == want["boxes"] and float(got[5]) == want["scale_px"], (got, want)
        assert float(got[6]) == want["step_px"] and got[7] == want["box_sizes_px (w x h)"], (got, want)
    assert levels[-1][3] == "8732"
    cell = rows(1)
    want = dbv.cell_box_rows(default_boxes(cfg), cfg, 2, 3, 4)
    assert [[int(r[0]), r[2]] + [float(v) for v in r[3:]] for r in cell] == \
        [[w["default_index"], w["ratio"], w["cx"], w["cy"], w["w"], w["h"]] for w in want]
    # The per-level downloads, made in the page: the server's payload for this configuration.
    with page.expect_download() as got:
        page.get_by_role("button", name="Per-level default boxes (JSON)").click()
    rows_want = dbv.level_rows(cfg)
    want_json = json.loads(json.dumps({"config": cfg.to_dict(), "levels": rows_want, "total": 8732}))
    assert got.value.suggested_filename == "default_boxes_custom.json"
    assert json.loads(Path(got.value.path()).read_text()) == want_json
