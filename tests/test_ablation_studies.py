"""Tests for ssd/ablation/studies.py: each variant changes exactly what it says."""
import dataclasses

import pytest

from ssd.ablation.studies import FULL, SCALES, STUDIES, changed_fields, resolve_options, run_name
from ssd.training.options import TrainOptions

EXPECTED = {  # study -> variant -> the TrainOptions fields it changes (besides its run folder)
    "table2": {"no_augmentation": {"augment_steps"}, "ratios_1_2": {"box_config"}, "ratios_1": {"box_config"}},
    "table3": {v: {"levels"} for v in ("no_level5", "no_level4_5", "no_level3_5", "levels_0_1", "level_1")},
    "zoomout": {"no_zoom_out": {"augment_steps"}},
    "mining": {"neg_1to1": {"neg_pos_ratio"}, "all_negatives": {"neg_pos_ratio"},
               "no_forced_match": {"forced_match"}},
    "boxes": {"tuned": {"box_config"}},
}


@pytest.mark.parametrize("scale", list(SCALES))
@pytest.mark.parametrize("study", list(STUDIES))
def test_each_variant_differs_from_the_full_recipe_in_exactly_its_changes(study, scale, tmp_path):
    s, sc = STUDIES[study], SCALES[scale]
    assert s.variants[0].name == FULL and not s.variants[0].changes
    full = resolve_options(s, s.variants[0], sc, 0, tmp_path)
    if study not in ("table2", "boxes"):  # a made box config's file is written by the runner
        full.validate()
    assert {v.name for v in s.variants[1:]} == set(EXPECTED[study])
    for v in s.variants[1:]:
        opts = resolve_options(s, v, sc, 0, tmp_path)
        assert changed_fields(opts, full) - {"out"} == EXPECTED[study][v.name] == set(v.changes)
        assert opts.out == str(tmp_path / "runs" / run_name(v.name, 0))


def test_the_full_recipe_is_the_papers():
    full = resolve_options(STUDIES["mining"], STUDIES["mining"].variants[0], SCALES["cpu"], 2, "o")
    assert (full.augment, full.augment_steps, full.neg_pos_ratio, full.forced_match, full.levels) == \
        ("ssd", "", 3.0, 1, "")
    assert full.seed == 2 and full.model == "compact256" and full.max_steps == SCALES["cpu"].max_steps
    # The boxes study trains on small objects, every variant alike.
    boxes = STUDIES["boxes"]
    assert resolve_options(boxes, boxes.variants[0], SCALES["cpu"], 0, "o").object_size == "0.03,0.25"
    assert changed_fields(full, dataclasses.replace(full, seed=3)) == {"seed"}
    assert isinstance(full, TrainOptions)


@pytest.mark.parametrize("scale", list(SCALES.values()))
def test_each_scale_ends_its_schedule_at_its_last_step(scale):
    assert scale.epochs * (scale.train_size // scale.batch_size) == scale.max_steps
    assert scale.train_size % scale.batch_size == 0


def test_paper_differences():
    t3 = STUDIES["table3"]
    assert [t3.paper_diff(v) for v in t3.variants] == [0.0, 0.3, -0.5, -3.6, -10.1, -11.9]
    assert STUDIES["zoomout"].paper_diff(STUDIES["zoomout"].variant("no_zoom_out")) == -2.9
    assert STUDIES["mining"].paper_diff(STUDIES["mining"].variant("neg_1to1")) is None
    with pytest.raises(ValueError, match="no variant"):
        t3.variant("nope")


def test_only_the_boxes_study_trains_longer_and_its_schedule_still_ends_at_its_last_step(tmp_path):
    cpu = SCALES["cpu"]
    for study in STUDIES.values():
        opts = resolve_options(study, study.variants[0], cpu, 0, tmp_path)
        expected = 2 * cpu.max_steps if study.name == "boxes" else cpu.max_steps
        assert opts.max_steps == expected, study.name
        assert opts.epochs * cpu.train_size // cpu.batch_size == opts.max_steps, study.name
