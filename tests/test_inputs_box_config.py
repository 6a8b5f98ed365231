"""Tests for explorer/inputs/box_config.py: the shared tuned config written for `ssd.train --box-config`."""
import dataclasses
import json

import pytest

from explorer.inputs.box_config import BOX_CONFIG_DIR, write_for_training
from explorer.jobs import manager as jobs
from ssd.config import compact256, load_config_json, ssd300_voc


def _tuned():
    cfg = compact256(21)
    return dataclasses.replace(cfg, aspect_ratios=((1.0,),) + cfg.aspect_ratios[1:], name="tuned_compact256",
                               scales=(0.04, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0))


def test_written_file_reads_back_as_the_same_config(tmp_path):
    path = write_for_training(_tuned(), "compact256", tmp_path)
    assert path.parent == tmp_path.resolve() / BOX_CONFIG_DIR
    assert load_config_json(path, reference=compact256()) == _tuned()
    assert json.loads(path.read_text())["aspect_ratios"][0] == [1.0]
    # Same content, same file (a resumed run finds it); other content, another file.
    assert write_for_training(_tuned(), "compact256", tmp_path) == path
    other = write_for_training(dataclasses.replace(_tuned(), extra_box=False), "compact256", tmp_path)
    assert other != path and path.is_file() and other.is_file()
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert jobs.list_runs(tmp_path) == []  # the dot folder is not taken for a run


def test_a_config_the_model_cannot_produce_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(ValueError, match=r"tuned configuration 'ssd300_voc'.*image_size 300.*compact256.*256"):
        write_for_training(ssd300_voc(), "compact256", tmp_path)
    steps = dataclasses.replace(_tuned(), steps=(8, 16, 32, 64, 128, 200))
    with pytest.raises(ValueError, match=r"steps .* cannot be produced by compact256"):
        write_for_training(steps, "compact256", tmp_path)
    with pytest.raises(ValueError, match="unknown model"):
        write_for_training(_tuned(), "resnet", tmp_path)
    assert not (tmp_path / BOX_CONFIG_DIR).exists()
