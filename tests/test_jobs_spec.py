"""Tests for explorer/jobs/spec.py: run names, dataset checks before launch, the
JobSpec built on ssd.train's own options, and the argv it becomes."""
import dataclasses
import json
from pathlib import Path

import pytest
from PIL import Image

from explorer.results import DATASETS, MODELS
from explorer.jobs.spec import (
    JobError,
    JobSpec,
    check_coco,
    check_voc_root,
    job_device,
    sanitize_run_name,
    train_argv,
    validate_spec,
)
from ssd.models import MODEL_NAMES
from ssd.training.options import TrainOptions, parse_args


# ---------------------------------------------------------------- names ------------
@pytest.mark.parametrize("raw, clean", [
    ("../evil", "evil"),
    ("../../etc/passwd", "etc-passwd"),
    ("a/b\\c", "a-b-c"),
    ("my run #1", "my-run-1"),
    ("..", "run"),
    ("", "run"),
    ("  .hidden", "hidden"),
    ("x..y", "x.y"),
    ("ok_name-1.2", "ok_name-1.2"),
    ("é-ü", "run"),
])
def test_sanitize_run_name(raw, clean):
    assert sanitize_run_name(raw) == clean


def test_sanitize_run_name_length_and_charset():
    name = sanitize_run_name("a" * 200 + "/..")
    assert len(name) <= 64 and set(name) <= set("a")


# ---------------------------------------------------------------- dataset checks ---
def _write_voc(root: Path, with_image=True, with_object=True, splits=("train", "val")) -> Path:
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for split in splits:
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("000001\n")
    obj = ("<object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
           "<ymax>5</ymax></bndbox></object>") if with_object else ""
    (root / "Annotations" / "000001.xml").write_text(
        f"<annotation><filename>000001.jpg</filename>{obj}</annotation>")
    if with_image:
        Image.new("RGB", (8, 8)).save(root / "JPEGImages" / "000001.jpg")
    return root


def test_voc_check_accepts_usable_folder(tmp_path):
    assert check_voc_root(str(_write_voc(tmp_path / "voc"))) == "1 train ids"


def test_dataset_checks_accept_what_ssd_data_writes(tmp_path):
    from ssd.data import procedural

    root = procedural.write_voc(tmp_path / "voc", num_images=5, size=64)
    assert check_voc_root(str(root)).endswith("train ids")
    path = procedural.write_coco(tmp_path / "coco.json", tmp_path / "coco", num_images=3, size=64)
    assert check_coco(str(path), str(tmp_path / "coco")).startswith("3 images")


@pytest.mark.parametrize("make, words", [
    (lambda p: p / "missing", "does not exist"),
    (lambda p: p, "no Annotations/"),
    (lambda p: (p / "Annotations").mkdir() or (p / "JPEGImages").mkdir() or p, "no .xml"),
    (lambda p: _write_voc(p / "v", with_image=False), "not in JPEGImages"),
    (lambda p: _write_voc(p / "v", with_object=False), "no <object>"),
    (lambda p: _write_voc(p / "v", splits=("train",)), "val.txt is missing"),
])
def test_voc_check_refuses(tmp_path, make, words):
    with pytest.raises(JobError, match=words):
        check_voc_root(str(make(tmp_path)))


def test_voc_check_refuses_broken_xml(tmp_path):
    root = _write_voc(tmp_path / "v")
    (root / "Annotations" / "000001.xml").write_text("<annotation><filename>")
    with pytest.raises(JobError, match="no usable sample"):
        check_voc_root(str(root))


def test_voc_check_needs_a_path():
    with pytest.raises(JobError, match="give the dataset folder"):
        check_voc_root("  ")


def _write_coco(tmp_path: Path, **overrides) -> tuple[Path, Path]:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8)).save(images / "a.jpg")
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 8, "height": 8},
                       {"id": 2, "file_name": "b.jpg", "width": 8, "height": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 1, 4, 4]}],
            "categories": [{"id": 1, "name": "cat"}]}
    data.update(overrides)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_coco_check_accepts_usable_files(tmp_path):
    path, images = _write_coco(tmp_path)
    assert check_coco(str(path), str(images)) == "2 images, 1 annotations"


@pytest.mark.parametrize("overrides, words", [
    ({"images": []}, "'images'"),
    ({"annotations": []}, "'annotations'"),
    ({"categories": "cat"}, "'categories'"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}]}, "at least 2"),
    ({"images": [{"id": 1, "file_name": "x.jpg"}, {"id": 2, "file_name": "a.jpg"}]},
     "none of the annotated images"),
    ({"annotations": [{"id": 1, "image_id": 7}]}, "none of the annotated images"),
])
def test_coco_check_refuses_unusable_content(tmp_path, overrides, words):
    path, images = _write_coco(tmp_path, **overrides)
    with pytest.raises(JobError, match=words):
        check_coco(str(path), str(images))


def test_coco_check_refuses_bad_paths_and_json(tmp_path):
    path, images = _write_coco(tmp_path)
    with pytest.raises(JobError, match="does not exist"):
        check_coco(str(tmp_path / "nope.json"), str(images))
    with pytest.raises(JobError, match="image folder.* does not exist"):
        check_coco(str(path), str(tmp_path / "nope"))
    with pytest.raises(JobError, match="give both"):
        check_coco("", str(images))
    path.write_text("{not json")
    with pytest.raises(JobError, match="not valid JSON"):
        check_coco(str(path), str(images))
    path.write_text("[1, 2]")
    with pytest.raises(JobError, match="JSON object"):
        check_coco(str(path), str(images))


@pytest.mark.parametrize("spec, words", [
    (JobSpec.of(dataset="imagenet"), "--dataset must be one of"),
    (JobSpec.of(model="yolo"), "--model must be one of"),
    (JobSpec.of(epochs=0), "--epochs must be >= 1"),
    (JobSpec.of(epochs=2.5), "--epochs must be an integer"),
    (JobSpec.of(batch_size=-2), "--batch-size"),
    (JobSpec.of(lr=0.0), "--lr must be > 0"),
    (JobSpec.of(train_size=0), "--train-size"),
    (JobSpec.of(max_steps=-1), "--max-steps"),
    (JobSpec.of(nproc=0), "number of processes"),
])
def test_validate_spec_refuses_bad_settings(spec, words):
    with pytest.raises(JobError, match=words):
        validate_spec(spec)


def test_job_device_is_ssd_resolve_device_as_a_job_error():
    assert job_device("auto", False, 0) == "cpu"
    assert job_device("auto", True, 1) == "cuda"
    assert job_device("cpu", True, 2) == "cpu"
    assert job_device("cuda", True, 2, nproc=2) == "cuda"
    with pytest.raises(JobError, match="no CUDA GPU"):
        job_device("cuda", False, 0)
    with pytest.raises(JobError, match="need CUDA GPUs"):
        job_device("cpu", True, 2, nproc=2)
    with pytest.raises(JobError, match="only 2 GPU"):
        job_device("cuda", True, 2, nproc=4)
    with pytest.raises(JobError, match="device must be one of"):
        job_device("tpu", False, 0)


def test_train_argv_is_a_list_with_absolute_paths(tmp_path):
    spec = JobSpec.of(train_size=16, val_size=8, batch_size=8, max_steps=4, lr=0.01)
    argv = train_argv(spec, tmp_path / "r", "cpu", python="PY")
    assert argv[:3] == ["PY", "-m", "ssd.train"]
    flags = dict(zip(argv[3::2], argv[4::2]))
    # --out and the options that differ from ssd.train's defaults, nothing else.
    assert flags == {"--train-size": "16", "--val-size": "8", "--batch-size": "8", "--lr": "0.01",
                     "--out": str((tmp_path / "r").resolve()), "--device": "cpu", "--max-steps": "4"}
    voc = train_argv(JobSpec.of(dataset="voc", data_root="rel/voc"), tmp_path, "cpu", python="PY")
    assert voc[voc.index("--data-root") + 1] == str(Path("rel/voc").resolve())
    ddp = train_argv(JobSpec.of(nproc=2), tmp_path, "cuda", python="PY")
    assert ddp[:7] == ["PY", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                       "-m", "ssd.train"]


def test_train_argv_parses_back_to_the_same_options(tmp_path):
    """What the manager launches is what ssd.train's own parser reads: one declaration."""
    spec = JobSpec.of(dataset="voc", data_root=str(tmp_path / "voc"), model="ssd300_vgg16", epochs=3,
                      batch_size=2, lr=0.02, seed=7, max_steps=5, eval_every=2, log_every=3, skip_bad=True,
                      augment="light", optimizer="sgd", schedule="step")
    argv = train_argv(spec, tmp_path / "run", "cpu", python="PY")
    parsed = parse_args(argv[3:])
    assert parsed == dataclasses.replace(spec.train, out=str((tmp_path / "run").resolve()), device="cpu")


def test_job_spec_is_derived_from_the_training_options():
    assert MODELS == MODEL_NAMES and DATASETS == ("procedural", "voc", "coco")
    assert JobSpec().train == TrainOptions()  # the same defaults as the command line
    spec = JobSpec.of(nproc=2, epochs=3, dataset="coco")
    assert JobSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    with pytest.raises(JobError, match="unknown training option.*'colour'"):
        JobSpec.of(colour="red")
    with pytest.raises(JobError, match="unknown training option.*'out'"):
        JobSpec.of(out="/elsewhere")  # the manager chooses the run directory
