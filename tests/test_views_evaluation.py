"""explorer/views/evaluation.py and explorer/evaluation/gallery.py: every figure passes
Plotly's full validation and shows the result's numbers; differences are B - A; the
gallery ranks images by their count of the chosen error."""
import copy
import math

import plotly.graph_objects as go
import pytest

from explorer.evaluation import gallery, jobs
from explorer.views import evaluation as ev
from tests.eval_helpers import make_eval


@pytest.fixture(scope="module")
def ev_dir(tmp_path_factory):
    return make_eval(tmp_path_factory.mktemp("evals"), num_images=10)


@pytest.fixture(scope="module")
def res(ev_dir):
    return jobs.load_result(ev_dir)


def _valid(fig):
    go.Figure(fig.to_dict())  # full validation
    return fig


def test_every_figure_is_valid_and_carries_the_numbers(res):
    tide = _valid(ev.tide_figure(res))
    assert list(tide.data[0].y) == [res["errors"]["dAP"][t] for t in tide.data[0].x]
    lvl = _valid(ev.level_figure(res))
    assert [t.name for t in lvl.data] == ["TP", "FP", "FN (missed GT)"]
    assert list(lvl.data[2].y) == [lv["gt"] - lv["gt_matched"] for lv in res["per_level"]]
    assert list(lvl.data[0].x)[0] == "L0 32x32"
    causes = _valid(ev.causes_figure(res))
    assert sum(causes.data[0].y) == len(res["misses"])
    pr = _valid(ev.pr_figure(res))
    assert len(pr.data) == len(res["class_names"]) - 1
    conf = _valid(ev.confusion_figure(res))
    assert conf.data[0].z == tuple(tuple(r) for r in res["confusion"]["matrix"]) or \
        [list(r) for r in conf.data[0].z] == res["confusion"]["matrix"]


def test_tables(res):
    rows = ev.ap_table(res)
    assert [r["class"] for r in rows] == res["class_names"][1:]
    assert {r["metric"] for r in ev.summary_rows(res)} >= {"AP", "AP50", "TIDE AP50 (points)"}
    lv = ev.level_rows(res)
    assert sum(r["its detections: TP"] for r in lv) == sum(x["tp"] for x in res["per_level"])


def test_level_table_says_what_each_count_counts_and_agrees(res):
    """Issue 19 item 9: a row read "TP 0, GT 1, recall 1" (TP counts the level's detections,
    GT the GTs it owns). Now each column names its population and recall = found / owned."""
    for row, lv in zip(ev.level_rows(res), res["per_level"]):
        assert "TP" not in row and "GT" not in row and "recall" not in row  # no bare, ambiguous names
        owned, found = row["GTs it owns"], row["of them found"]
        assert found == lv["gt_matched"] and 0 <= found <= owned
        if owned:
            assert row["recall (found / owned)"] == pytest.approx(found / owned, abs=1e-3)
    assert "found / owned" in ev.LEVEL_COLUMNS_NOTE


def test_comparison_is_b_minus_a(res):
    b = copy.deepcopy(res)
    b["AP"] += 0.1
    b["errors"]["dAP"]["Cls"] -= 2.0
    b["misses_by_cause"]["low_score"] += 3
    b["confusion"]["matrix"][1][2] += 4
    rows = {(r["group"], r["item"]): r for r in ev.compare_rows(res, b)}
    assert rows[("overall", "AP")]["B - A"] == pytest.approx(0.1, abs=1e-4)
    assert rows[("TIDE dAP (points)", "Cls")]["B - A"] == pytest.approx(-2.0, abs=1e-4)
    assert rows[("misses by cause", "low_score")]["B - A"] == 3
    assert rows[("overall", "AP50")]["B - A"] == 0
    diff = ev.confusion_diff(res, b)
    assert diff[1][2] == 4 and sum(map(sum, diff)) == 4
    fig = _valid(ev.diff_figure(res, b))
    assert dict(zip(fig.data[1].x, fig.data[1].y))["Cls"] == pytest.approx(-2.0)
    _valid(ev.confusion_figure(res, "d", diff, diverging=True))
    b["confusion"]["classes"] = ["background", "x"]
    with pytest.raises(ValueError, match="different classes"):
        ev.confusion_diff(res, b)


def test_compare_mode_draws_a_and_b_on_one_scale(res):
    """Issue 19 item 11: A's and B's charts had their own y scales, so a bar twice as high
    in B looked the same. Every side-by-side pair now shares its range (colours too)."""
    b = copy.deepcopy(res)
    for t in b["errors"]["dAP"]:
        b["errors"]["dAP"][t] = 3 * b["errors"]["dAP"][t] + 1.0
    for lv in b["per_level"]:
        lv["fp"] = 5 * lv["fp"] + 7
    b["misses_by_cause"] = {c: 2 * n + 1 for c, n in b["misses_by_cause"].items()}
    b["confusion"]["matrix"] = [[3 * v + 1 for v in row] for row in b["confusion"]["matrix"]]
    for builder in (ev.tide_figure, ev.level_figure, ev.causes_figure, ev.pr_figure):
        fa, fb = ev.side_by_side(builder, [res, b])
        _valid(fa), _valid(fb)
        assert fa.layout.yaxis.range is not None and tuple(fa.layout.yaxis.range) == tuple(fb.layout.yaxis.range)
        top = max(float(v) for f in (fa, fb) for t in f.data for v in t.y)
        assert fa.layout.yaxis.range[1] >= top, builder.__name__
    ca, cb = ev.side_by_side(ev.confusion_figure, [res, b])
    assert (ca.data[0].zmin, ca.data[0].zmax) == (cb.data[0].zmin, cb.data[0].zmax) == \
        (min(min(r) for r in res["confusion"]["matrix"]), max(max(r) for r in b["confusion"]["matrix"]))
    alone = ev.side_by_side(ev.tide_figure, [b])[0]  # one evaluation: its own scale
    assert alone.layout.yaxis.range is None


def test_tuner_level_figure(ev_dir, res):
    from explorer.evaluation.tuner import tune

    t = tune(jobs.load_kept(ev_dir), res["class_names"], jobs.model_config(res), 0.3, 0.45, 200)
    fig = _valid(ev.tuner_level_figure(t))
    assert list(fig.data[0].y) == [r["candidates (into NMS)"] for r in t["per_level"]]
    # Log axis with readable ticks (issue 19 item 11: labelled only "2, 5"): every tick labelled
    # with its value, the decades among them, and the ticks span the data.
    y = fig.layout.yaxis
    assert y.type == "log" and y.tickmode == "array" and len(y.ticktext) == len(y.tickvals) >= 3
    assert [float(s.replace(",", "")) for s in y.ticktext] == list(y.tickvals)
    counts = [v for tr in fig.data for v in tr.y if v > 0]
    assert min(y.tickvals) <= min(counts) and max(y.tickvals) >= max(counts)
    assert any(abs(v - 10 ** round(math.log10(v))) < 1e-9 for v in y.tickvals)  # a decade is labelled


def test_gallery_ranks_worst_first_and_draws_thumbnails(ev_dir, res):
    kinds = gallery.gallery_kinds(res)
    assert kinds[:6] == ["Cls", "Loc", "Both", "Dupe", "Bkg", "Miss"] and "miss: low_score" in kinds
    worst = gallery.worst_images(res, "Bkg", 3)
    counts = [r["errors"]["Bkg"] for r in res["per_image"]]
    assert [w["count"] for w in worst] == sorted(counts, reverse=True)[:3]
    assert all(gallery.is_scene_id(w["source"]) for w in worst)
    with pytest.raises(ValueError, match="unknown gallery kind"):
        gallery.worst_images(res, "Typo")
    img = gallery.thumbnail(jobs.load_kept(ev_dir), res, worst[0]["image"], side=128)
    assert max(img.size) == 128 and img.mode == "RGB"
    assert not gallery.is_scene_id("procedural:cat_and_dog") and not gallery.is_scene_id("/x/a.jpg")
