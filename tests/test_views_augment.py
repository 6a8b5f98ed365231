"""Tests for explorer/views/augment.py: the samples are training's own draws, the matching
re-run agrees with the matcher on the augmented boxes, and the figures are valid."""
import json

import plotly.graph_objects as go
import pytest
import torch
from PIL import Image

from explorer.paths import SAMPLES_DIR
from explorer.views import augment as av
from explorer.views.matching import best_default_boxes
from ssd.config import compact256
from ssd.data.transforms import AugmentSteps, train_transform
from ssd.priors import default_boxes

S = 256  # compact256's input side


@pytest.fixture(scope="module")
def cat_and_dog():
    """The shipped Figure-1 scene: a small cat (80 px, level 2) and a large dog (136 px, level 3)."""
    ann = json.loads((SAMPLES_DIR / "annotations.json").read_text())["cat_and_dog.png"]
    img = Image.open(SAMPLES_DIR / "cat_and_dog.png").convert("RGB")
    return img, torch.tensor(ann["boxes_xyxy"]), torch.tensor(ann["labels"]), ann["label_names"]


@pytest.fixture(scope="module")
def db():
    return default_boxes(compact256())


def test_samples_are_what_training_draws(cat_and_dog, peer_data):
    """Seeded samples equal N successive calls of training's own transform after the same
    seed (the sampler training uses), and the caller's RNG state is left as it was."""
    from ssd.data.formats.voc_xml import read_voc_xml

    voc = peer_data / "mmdet" / "VOC2007"
    ann = read_voc_xml(voc / "Annotations" / "000001.xml")
    photo = (Image.open(voc / "JPEGImages" / "000001.jpg").convert("RGB"),
             torch.tensor([o.box_xyxy for o in ann.objects]), torch.arange(1, len(ann.objects) + 1))
    for img, boxes, labels in (cat_and_dog[:3], photo):
        torch.manual_seed(99)
        state = torch.get_rng_state()
        traces = av.augment_samples(img, boxes, labels, S, AugmentSteps(), seed=3, n=5)
        assert torch.equal(torch.get_rng_state(), state)
        t = train_transform(S, "ssd")
        torch.manual_seed(3)
        for tr in traces:
            x, tgt = t(img, boxes, labels)
            assert torch.equal(tr.image, x) and torch.equal(tr.target["boxes"], tgt["boxes"])
            assert torch.equal(tr.target["labels"], tgt["labels"])
        fewer = av.augment_samples(img, boxes, labels, S, AugmentSteps(), seed=3, n=2)
        assert all(torch.equal(a.image, b.image) for a, b in zip(fewer, traces))


@pytest.mark.parametrize("kwargs, match", [({"n": 0}, "number of samples"), ({"n": 33}, "number of samples"),
                                           ({"n": 2.5}, "number of samples"), ({"seed": -1}, "seed"),
                                           ({"size": 4}, "input size")])
def test_bad_arguments_are_named(cat_and_dog, kwargs, match):
    img, boxes, labels, _ = cat_and_dog
    args = {"size": S, "seed": 0, "n": 2} | kwargs
    with pytest.raises(ValueError, match=match):
        av.augment_samples(img, boxes, labels, args["size"], AugmentSteps(), seed=args["seed"], n=args["n"])


def test_matching_rows_agree_with_the_matcher(cat_and_dog, db):
    img, boxes, labels, names = cat_and_dog
    traces = av.augment_samples(img, boxes, labels, S, seed=0, n=12)
    before = best_default_boxes(db, boxes, img.size[::-1])
    assert [b["level"] for b in before] == [2, 3]  # Figure 1: cat on the 8x8 map, dog on the 4x4 map
    moves = set()
    for i, tr in enumerate(traces):
        rows = av.matching_rows(db, tr, boxes, names, img.size[::-1], S, sample=i)
        after = best_default_boxes(db, tr.target["boxes"] * S, (S, S))
        assert [r["gt"] for r in rows] == [0, 1] and all(r["sample"] == i for r in rows)
        for g, a in zip(tr.gt_index.tolist(), after):
            assert rows[g]["level after"].startswith(f"{a['level']} (") and rows[g]["IoU after"] == a["iou"]
        for r in rows:
            assert r["level before"] == f"{before[r['gt']]['level']} ({db.feature_maps[before[r['gt']]['level']]}x" \
                                        f"{db.feature_maps[before[r['gt']]['level']]})"
            moves.add(r["move"])
            if r["move"].startswith("dropped"):
                assert r["gt"] not in tr.gt_index.tolist()
                if "centre" in r["move"]:  # the centre really is outside the accepted crop
                    l, t, rr, b = tr.crop_attempts[-1].crop_xyxy
                    x1, y1, x2, y2 = av.crop_canvas(tr).boxes_xyxy_px[r["gt"]].tolist()
                    assert not (l < (x1 + x2) / 2 < rr and t < (y1 + y2) / 2 < b)
        counts = av.move_counts(rows)
        assert sum(counts.values()) == 2
    assert "earlier map (finer)" in moves and any(m.startswith("dropped") for m in moves)


def test_zoom_out_alone_shrinks_objects_onto_earlier_maps(cat_and_dog, db):
    """Zoom out without a crop: each object's side shrinks by the zoom factor (to a pixel of
    rounding), and at x2 or more the small cat leaves the 8x8 map for a finer one."""
    img, boxes, labels, names = cat_and_dog
    steps = AugmentSteps(photometric=False, iou_crop=False, flip=False)
    zoomed = 0
    for tr in av.augment_samples(img, boxes, labels, S, steps, seed=1, n=16):
        z = av.zoom_factor(tr)
        rows = av.matching_rows(db, tr, boxes, names, img.size[::-1], S)
        for r in rows:
            assert r["side after (input px)"] == pytest.approx(r["side before (input px)"] / z, abs=1.0)
        if z >= 2.0:
            zoomed += 1
            assert int(rows[0]["level after"][0]) < 2 and rows[0]["move"] == "earlier map (finer)"
        if z == 1.0:
            assert all(r["move"] == "same map" for r in rows)
    assert zoomed >= 2


def test_sample_rows_and_crop_rows(cat_and_dog):
    img, boxes, labels, _ = cat_and_dog
    traces = av.augment_samples(img, boxes, labels, S, seed=0, n=6)
    rows = av.sample_rows(traces)
    assert [r["sample"] for r in rows] == list(range(6))
    for r, tr in zip(rows, traces):
        assert r["GT kept"] == f"{tr.gt_index.numel()} of 2" and r["crops tried"] == len(tr.crop_attempts)
        crop_rows = av.crop_attempt_rows(tr)
        assert len(crop_rows) == len(tr.crop_attempts) and crop_rows[-1]["accepted"]
        assert not any(c["accepted"] for c in crop_rows[:-1])
        assert sum(av.outcome_counts(tr).values()) == len(crop_rows)
    off = av.sample_rows(av.augment_samples(img, boxes, labels, S, AugmentSteps(False, False, False, False), n=1))
    assert off[0]["photometric"] == off[0]["zoom out"] == off[0]["crop"] == off[0]["flip"] == "off"


def test_figures_are_valid(cat_and_dog):
    img, boxes, labels, names = cat_and_dog
    traces = av.augment_samples(img, boxes, labels, S, seed=0, n=5)
    grid = av.samples_grid_figure(traces, names, cols=3)
    go.Figure(grid.to_dict())  # full Plotly validation
    assert len(grid.layout.images) == 5 and len(grid.layout.annotations) == 5
    tr = next(t for t in traces if t.crop_attempts[-1].outcome == "accepted")
    stages = av.stages_figure(tr, names)
    go.Figure(stages.to_dict())
    assert len(stages.layout.images) == len(tr.stages) == 6
    crops = av.crop_attempts_figure(tr, names)
    go.Figure(crops.to_dict())
    counts = av.outcome_counts(tr)
    legend = {d.name for d in crops.data if d.showlegend}
    assert f"accepted ({counts['accepted']})" in legend
    drawn_rejected = {k for k in ("IoU below minimum", "no centre inside") if counts[k]}
    assert {f"{k} ({counts[k]})" for k in drawn_rejected} <= legend
    only_kept = av.crop_attempts_figure(tr, names, show_rejected=False)
    assert not any("below" in (d.name or "") or "no centre" in (d.name or "") for d in only_kept.data)
    no_crop = av.augment_samples(img, boxes, labels, S, AugmentSteps(iou_crop=False), n=1)[0]
    with pytest.raises(ValueError, match="IoU crop is switched off"):
        av.crop_attempts_figure(no_crop, names)
