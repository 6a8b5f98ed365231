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
    return run_stages(model, img, level_score_threshold=0.2)


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
    best = mv.best_default_boxes(default_boxes(cfg), boxes_px, img.size)
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
    best = mv.best_default_boxes(default_boxes(cfg), boxes_px, img.size)
    fig = psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, 256, None,
                               img.size, list(CLASSES), gt_xyxy_px=boxes_px.numpy(), gt_names=["cat", "dog"],
                               gt_best=best)
    rings = [t for t in fig.data if t.name == "best default box of a GT"]
    assert len(rings) == 2 and [bool(t.showlegend) for t in rings] == [True, False]
