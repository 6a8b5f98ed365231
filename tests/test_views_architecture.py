"""explorer/architecture.py: the model table, checked against the paper's SSD300."""
import pytest

from explorer.views.architecture import COLUMN_EXPLANATIONS, architecture_rows, summary_lines, total_boxes
from ssd.models import build


@pytest.fixture(scope="module")
def ssd300():
    return build("ssd300_vgg16", num_classes=21)


def test_ssd300_table_matches_the_paper(ssd300):
    rows = architecture_rows(ssd300)
    levels, total = rows[:-1], rows[-1]
    assert [r["feature_map"] for r in levels] == ["38x38", "19x19", "10x10", "5x5", "3x3", "1x1"]
    assert [r["channels"] for r in levels] == [512, 1024, 512, 256, 256, 256]  # Fig. 2
    assert [r["boxes_per_location"] for r in levels] == [4, 6, 6, 6, 4, 4]
    assert [r["boxes"] for r in levels] == [5776, 2166, 600, 150, 36, 4]
    assert total["boxes"] == 8732 == total_boxes(ssd300)
    assert levels[0]["predictor_filters"] == "4 x (21 + 4) = 100"
    assert levels[0]["class_filters"] == 84 and levels[0]["box_filters"] == 16
    assert total["outputs"] == 8732 * 25


def test_compact_table_and_explanations():
    model = build("compact256", num_classes=7)
    rows = architecture_rows(model)
    assert rows[-1]["boxes"] == total_boxes(model) == sum(f * f * k for f, k in zip(
        model.cfg.feature_maps, model.cfg.boxes_per_location()))
    assert all(c in rows[0] for c in COLUMN_EXPLANATIONS)
    lines = summary_lines(model)
    assert any("C = 7" in ln for ln in lines)


def test_total_row_has_no_none_cells():
    from ssd.models import build

    rows = architecture_rows(build("compact256", num_classes=3))
    assert all(v is not None for row in rows for v in row.values())
    assert rows[-1]["level"] == "total"


def test_paper_ssd300_uses_the_voc_scales():
    """The Architecture page's "SSD300 as in the paper" is built on `ssd300_voc()`:
    conv4_3's boxes are 30 px (scale 0.1), not torchvision's COCO 21 px."""
    from explorer.results import build_model, ssd300_voc

    model = build_model("ssd300_vgg16", cfg=ssd300_voc())
    scales = [r["scale_px"] for r in architecture_rows(model)[:-1]]
    assert scales[:2] == [30.0, 60.0]
    assert total_boxes(model) == 8732
