"""explorer/per_scale_view.py: per-level score maps and the side-by-side figure."""
import plotly.graph_objects as go
import pytest
import torch

from explorer.views import per_scale as psv
from ssd.data.procedural import CLASSES, cat_and_dog_scene
from ssd.inference import run_stages
from ssd.models import build


def valid(fig):
    """Plotly's full validation of a figure the builders assembled unvalidated."""
    return go.Figure(fig.to_dict())


def test_level_score_maps_hand_checked():
    # One 2x2 level, K = 2 boxes per cell, C = 3 classes; rows run over (i, j, box).
    s = torch.tensor([
        [0.8, 0.1, 0.1], [0.2, 0.7, 0.1],  # cell (0, 0): box 1 says class 1 (0.7)
        [0.5, 0.2, 0.3], [0.4, 0.1, 0.5],  # cell (0, 1): best is class 2 (0.5)
        [0.9, 0.05, 0.05], [0.9, 0.02, 0.08],  # cell (1, 0)
        [0.1, 0.6, 0.3], [0.3, 0.3, 0.4],  # cell (1, 1)
    ])
    maps, classes = psv.level_score_maps([s], [(2, 2)], psv.ANY_CLASS)
    assert maps[0].flatten().tolist() == pytest.approx([0.7, 0.5, 0.08, 0.6])
    assert classes[0].tolist() == [[1, 2], [2, 1]]
    maps, classes = psv.level_score_maps([s[None]], [(2, 2)], 2)  # (1, A_l, C) works too
    assert maps[0].flatten().tolist() == pytest.approx([0.1, 0.5, 0.08, 0.4])
    assert classes[0].tolist() == [[2, 2], [2, 2]]


@pytest.fixture(scope="module")
def stages():
    torch.manual_seed(0)
    model = build("compact256", num_classes=len(CLASSES)).eval()
    img, _, _ = cat_and_dog_scene()
    return run_stages(model, img, level_score_thresh=0.2)


def test_maps_follow_the_feature_maps(stages):
    maps, classes = psv.level_score_maps(stages.scores, stages.feature_sizes)
    assert [m.shape for m in maps] == [tuple(s) for s in stages.feature_sizes]
    # the per-cell maximum of the any-class map bounds every per-level detection's score
    for m, det in zip(maps, stages.level_detections):
        if len(det):
            assert float(det.scores.max()) <= m.max() + 1e-6
    rows = psv.level_summary(maps, classes, stages.level_detections, stages.feature_sizes, list(CLASSES))
    assert [r["feature_map"] for r in rows] == ["32x32", "16x16", "8x8", "4x4", "2x2", "1x1"]
    assert [r["detections"] for r in rows] == [len(d) for d in stages.level_detections]


def test_per_scale_figure_one_panel_per_level(stages):
    maps, classes = psv.level_score_maps(stages.scores, stages.feature_sizes, 1)
    fig = psv.per_scale_figure(maps, classes, stages.level_detections, stages.feature_sizes,
                               (8, 16, 32, 64, 128, 256), 256, "data:image/png;base64,AAAA", (256, 256),
                               list(CLASSES), ["a", "b", "c", "d", "e", "f"])
    valid(fig)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 6 and len(fig.layout.images) == 6
    # the 8x8 level's cells are 32 px: first centre at 16 px
    assert heat[2].x0 == 16 and heat[2].dx == 32
    assert heat[0].zmin == 0 and heat[0].zmax == 1
    # explicit stops: plotly.js has no "Inferno" by name and the figure skips validation
    assert heat[0].colorscale[0][0] == 0 and heat[0].colorscale[-1][0] == 1
    assert "cell (0, 0)" in heat[2].customdata[0][0]


def test_ground_truth_and_its_best_cell_on_the_cat_and_dog_scene():
    """The paper's Fig. 1 lesson on the figure: the cat's best default box is on the 8x8
    map, the dog's on the 4x4 map, and each panel of those levels rings that cell."""
    from explorer.views import matching as mv
    from ssd.data.procedural import cat_and_dog_scene
    from ssd.config import compact256
    from ssd.priors import default_boxes

    img, boxes_px, labels = cat_and_dog_scene(256)
    cfg = compact256()
    best = mv.best_default_boxes(default_boxes(cfg), boxes_px, img.size[::-1])
    assert [cfg.feature_maps[b["level"]] for b in best] == [8, 4]  # cat, dog
    import numpy as np
    maps = [np.zeros((f, f)) for f in cfg.feature_maps]
    classes = [np.zeros((f, f), dtype=int) for f in cfg.feature_maps]
    from ssd.inference import Detections
    empty = Detections(**{k: torch.zeros((0, 4) if k == "boxes_xyxy_px" else (0, 2) if k == "feature_size" else (0,))
                          for k in ("boxes_xyxy_px", "scores", "labels", "level", "row", "col", "box_index",
                                    "default_index", "feature_size")})
    fig = psv.per_scale_figure(maps, classes, [empty] * 6, [(f, f) for f in cfg.feature_maps], cfg.steps, 256,
                               None, img.size, ["bg", "cat", "dog"], gt_xyxy_px=boxes_px.numpy(),
                               gt_names=["cat", "dog"], gt_best=best)
    rings = [t for t in fig.data if t.name == "best default box of a GT"]
    assert [t.xaxis for t in rings] == ["x3", "x4"]  # level 2 (8x8) and level 3 (4x4)
    assert "cat" in rings[0].text[0] and "dog" in rings[1].text[0]


def test_the_ring_legend_entry_appears_once():
    from explorer.views import matching as mv
    from ssd.config import compact256
    from ssd.data.procedural import cat_and_dog_scene
    from ssd.inference import run_stages
    from ssd.models import build
    from ssd.priors import default_boxes

    img, boxes_px, _ = cat_and_dog_scene(256)
    cfg = compact256()
    stg = run_stages(build("compact256", num_classes=7).eval(), img)
    maps, classes = psv.level_score_maps(stg.scores, stg.feature_sizes, psv.ANY_CLASS)
    best = mv.best_default_boxes(default_boxes(cfg), boxes_px, img.size[::-1])
    fig = psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, 256, None,
                               img.size, list(CLASSES), gt_xyxy_px=boxes_px.numpy(), gt_names=["cat", "dog"],
                               gt_best=best)
    rings = [t for t in fig.data if t.name == "best default box of a GT"]
    assert len(rings) == 2 and [bool(t.showlegend) for t in rings] == [True, False]


# ---------------------------------------------------------------- layout, image once, clicks
def _cat_and_dog_figure(image_uri="data:image/png;base64,AAAA", image_hw=(256, 256), **kw):
    from explorer.views import matching as mv
    from ssd.config import compact256
    from ssd.priors import default_boxes

    img, boxes_px, _ = cat_and_dog_scene(256)
    cfg = compact256()
    stg = run_stages(build("compact256", num_classes=len(CLASSES)).eval(), img, level_score_thresh=0.05)
    maps, classes = psv.level_score_maps(stg.scores, stg.feature_sizes, psv.ANY_CLASS)
    best = mv.best_default_boxes(default_boxes(cfg), boxes_px, img.size[::-1])
    fig = psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, 256, image_uri,
                               image_hw, list(CLASSES), gt_xyxy_px=boxes_px.numpy(), gt_names=["cat", "dog"],
                               gt_best=best, **kw)
    return fig, stg, boxes_px


def _panel_px(fig, k: int) -> tuple[float, float]:
    """(height, width) in px of panel k's axes domains, in the figure's plot area."""
    m = fig.layout.margin
    plot_w = psv.FIG_WIDTH_PX - m.l - m.r
    plot_h = fig.layout.height - m.t - m.b
    sfx = "" if k == 0 else str(k + 1)
    xd, yd = fig.layout[f"xaxis{sfx}"].domain, fig.layout[f"yaxis{sfx}"].domain
    return (yd[1] - yd[0]) * plot_h, (xd[1] - xd[0]) * plot_w


@pytest.mark.parametrize("image_hw", [(427, 640), (640, 427), (300, 300)], ids=["landscape", "portrait", "square"])
def test_panels_have_the_image_aspect_and_fill_the_figure(image_hw):
    """No empty band: each panel's domain is the image's aspect in pixels, and the rows
    take the whole plot height (the last row ends at the bottom)."""
    h, w = image_hw
    fig, _, _ = _cat_and_dog_figure(image_hw=image_hw)
    valid(fig)
    for k in range(6):
        ph, pw = _panel_px(fig, k)
        assert ph / pw == pytest.approx(h / w, rel=0.01), k
    m = fig.layout.margin
    plot_h = fig.layout.height - m.t - m.b
    ys = sorted({tuple(fig.layout[f"yaxis{'' if k == 0 else k + 1}"].domain) for k in range(6)})
    assert len(ys) == 2 and ys[0][0] == pytest.approx(0, abs=1e-9)  # two rows, the lower one ends at the bottom
    assert (1 - ys[1][1]) * plot_h == pytest.approx(psv.TITLE_PX)  # the top row only leaves room for its titles
    assert plot_h == 2 * (psv.TITLE_PX + round(_panel_px(fig, 0)[0]))  # nothing else in the height


def test_a_landscape_image_makes_a_shorter_figure_than_a_square_one():
    land, _, _ = _cat_and_dog_figure(image_hw=(427, 640))
    square, _, _ = _cat_and_dog_figure(image_hw=(300, 300))
    # the old layout was 330 px per row whatever the aspect: a band under landscape images
    assert land.layout.height < square.layout.height
    ph, pw = _panel_px(land, 0)
    assert pw == pytest.approx((psv.FIG_WIDTH_PX - 85 - 2 * psv.GAP_X_PX) / 3)  # as wide as the columns allow


def test_a_tall_portrait_is_capped_and_narrowed_not_stretched():
    domains, height = psv.panel_grid(6, 3, (2000, 500), fig_width_px=1400)
    plot_w = 1400 - psv.MARGIN_PX["l"] - psv.MARGIN_PX["r"]
    plot_h = height - psv.MARGIN_PX["t"] - psv.MARGIN_PX["b"]
    for xd, yd in domains:
        assert (yd[1] - yd[0]) * plot_h == pytest.approx(psv.MAX_PANEL_PX)
        assert (yd[1] - yd[0]) * plot_h / ((xd[1] - xd[0]) * plot_w) == pytest.approx(4.0)
    assert domains[0][0][0] > 0  # centred in its column, so the column has room either side


def test_panel_grid_rejects_what_it_cannot_lay_out():
    with pytest.raises(ValueError, match="n=0"):
        psv.panel_grid(0, 3, (10, 10))
    with pytest.raises(ValueError, match="image_hw"):
        psv.panel_grid(6, 3, (0, 10))


@pytest.mark.parametrize("source", ["data:image/jpeg;base64," + "Q" * 5000, "/media/abc123.jpg"],
                         ids=["data-uri", "url"])
def test_the_image_source_is_in_the_figure_once(source):
    """Six panels, one `source` in the JSON: the panels' layout images point to one named
    template image. A short URL works the same as a data URI."""
    fig, _, _ = _cat_and_dog_figure(image_uri=source)
    valid(fig)
    tail = source.rsplit("/", 1)[-1]  # the JSON writes "/" as \u002f
    assert len(tail) >= 10 and fig.to_json().count(tail) == 1
    photo = [im for im in fig.layout.template.layout.images if im.name == psv.PHOTO]
    assert len(photo) == 1 and photo[0].source == source and photo[0].sizex == 256
    assert [(im.templateitemname, im.xref, im.yref) for im in fig.layout.images] == \
        [(psv.PHOTO, "x" + s, "y" + s) for s in ["", "2", "3", "4", "5", "6"]]


def test_the_default_template_styling_is_kept_with_the_image():
    import plotly.io as pio

    fig, _, _ = _cat_and_dog_figure()
    default = pio.templates[pio.templates.default]
    assert fig.layout.template.layout.colorway == default.layout.colorway
    assert not [im for im in (default.layout.images or ()) if im.name == psv.PHOTO]  # the global one is untouched
    none, _, _ = _cat_and_dog_figure(image_uri=None)
    assert not none.layout.images and f'"name":"{psv.PHOTO}"' not in none.to_json()


def test_every_marker_names_its_object_for_a_click():
    """Detection centres carry "det:A:C" (the level detection's default box and class),
    GT corners "gt:G" at (x1, y1) on every panel, rings "gt:G": one GT marker trace per panel."""
    fig, stg, boxes_px = _cat_and_dog_figure()
    want = {f"det:{a}:{c}" for det in stg.level_detections
            for a, c in zip(det.default_index.tolist(), det.labels.tolist())}
    assert want, "the random model detects something at 0.05"
    got = {cd for t in fig.data if t.type == "scatter" and t.mode == "markers" and t.customdata is not None
           for cd in t.customdata if str(cd).startswith("det:")}
    assert got == want
    corners = [t for t in fig.data if t.type == "scatter" and t.marker.symbol == "diamond"]
    assert len(corners) == 6
    for t in corners:
        assert list(t.customdata) == ["gt:0", "gt:1"]
        assert list(t.x) == pytest.approx(boxes_px[:, 0].tolist()) and list(t.y) == pytest.approx(boxes_px[:, 1].tolist())
    rings = [t for t in fig.data if t.name == "best default box of a GT"]
    assert [list(t.customdata) for t in rings] == [["gt:0"], ["gt:1"]]
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend.count("best default box of a GT") == 1 and legend.count("ground truth") == 1
