"""Tests for ssd/data/build.py: datasets from training options (procedural, VOC, COCO) and
the class list a VOC folder implies."""
import pytest

from ssd.data import procedural
from ssd.data.build import build_datasets, voc_class_names
from ssd.data.common import DatasetError
from ssd.data.voc import VOC_CLASSES
from ssd.training.options import TrainOptions


def test_procedural_sets_are_disjoint_scenes_at_the_input_size():
    train, val, names, skipped = build_datasets(TrainOptions(dataset="procedural", train_size=3, val_size=2), 64)
    assert (len(train), len(val), names, skipped) == (3, 2, procedural.CLASSES, 0)
    image, target = val[0]
    assert image.shape == (3, 64, 64) and target["boxes"].shape[1] == 4
    assert not bool((train[0][0] == image).all())  # the val seed is the next one


def test_voc_folder_gives_its_splits_and_the_classes_it_names(tmp_path):
    root = procedural.write_voc(tmp_path / "voc", 5, size=64, val_fraction=0.4)
    assert voc_class_names(root, "train") == procedural.CLASSES  # shapes, not VOC's names
    assert voc_class_names(root, "train", "voc") == VOC_CLASSES
    assert voc_class_names(root, "train", "cat, dog") == ("background", "cat", "dog")
    train, val, names, _ = build_datasets(TrainOptions(dataset="voc", data_root=str(root)), 64)
    assert (len(train), len(val), names) == (3, 2, procedural.CLASSES)


def test_coco_without_val_json_holds_out_the_last_images(tmp_path):
    json_path = procedural.write_coco(tmp_path / "c.json", tmp_path / "img", 5, size=64)
    opts = TrainOptions(dataset="coco", coco_json=str(json_path), coco_images=str(tmp_path / "img"), val_size=4)
    train, val, _, _ = build_datasets(opts, 64)
    assert (len(train), len(val)) == (4, 1)  # at most a fifth held out


@pytest.mark.parametrize("opts,match", [
    (dict(dataset="voc"), "--dataset voc needs --data-root"),
    (dict(dataset="coco"), "--dataset coco needs --coco-json and --coco-images"),
])
def test_missing_dataset_flags_name_the_flag(opts, match):
    with pytest.raises(DatasetError, match=match):
        build_datasets(TrainOptions(**opts), 64)
