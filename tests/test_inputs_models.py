"""explorer/inputs/models.py: the model picker's choices and loading by id."""
import os
from pathlib import Path

import pytest
import torch

from explorer.inputs import models as mm
from ssd.models import build
from ssd.training.checkpoint import save


def test_choices_list_shipped_runs_random_torchvision(tmp_path):
    ck = tmp_path / "ck"
    ck.mkdir()
    (ck / "a.pt").write_bytes(b"x")
    runs = tmp_path / "runs"
    (runs / "r1" / "checkpoints").mkdir(parents=True)
    (runs / "r1" / "checkpoints" / "best.pt").write_bytes(b"x")
    (runs / "r2").mkdir()  # a run without a best.pt is not offered
    choices = mm.list_model_choices(ck, runs)
    kinds = [c.kind for c in choices]
    assert kinds == ["checkpoint", "run", "random", "torchvision", "torchvision"]
    assert choices[1].model_id == str(runs / "r1" / "checkpoints" / "best.pt")
    assert mm.default_model_id(choices) == str(ck / "a.pt")
    assert mm.default_model_id(mm.list_model_choices(tmp_path / "none", tmp_path / "none")) == mm.RANDOM_COMPACT


def test_runs_dir_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("SSD_RUNS_DIR", str(tmp_path))
    assert mm.runs_dir() == tmp_path
    monkeypatch.delenv("SSD_RUNS_DIR")
    assert mm.runs_dir() == mm.REPO_ROOT / "runs"


def test_load_random_compact_warns():
    loaded = mm.load_model(mm.RANDOM_COMPACT)
    assert loaded.model.cfg.name == "compact256" and not loaded.model.training
    assert loaded.class_names[:3] == ["background", "cat", "dog"]
    assert "random" in loaded.warning


def test_load_checkpoint_and_cache_key_changes_with_file(tmp_path):
    model = build("compact256", num_classes=3)
    p = tmp_path / "m.pt"
    save(p, model, ["background", "cat", "dog"])
    loaded = mm.load_model(str(p))
    assert loaded.class_names == ["background", "cat", "dog"] and loaded.warning is None
    sd = model.state_dict()
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(v, sd[k])
    key = mm.model_cache_key(str(p))
    os.utime(p, ns=(1, 1))
    assert mm.model_cache_key(str(p)) != key
    assert mm.model_cache_key(mm.RANDOM_COMPACT) == mm.RANDOM_COMPACT


def test_bad_checkpoints_raise_model_load_error(tmp_path):
    with pytest.raises(mm.ModelLoadError, match="does not exist"):
        mm.load_model(str(tmp_path / "missing.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(mm.ModelLoadError, match="bad.pt"):
        mm.load_model(str(bad))


def test_torchvision_without_weights_is_a_clear_error(monkeypatch, tmp_path):
    """No download: a corrupt file sits where torch hub caches the weights, so torchvision
    loads it instead of downloading, and the load fails with a message."""
    from torchvision.models.detection import SSDLite320_MobileNet_V3_Large_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    url = SSDLite320_MobileNet_V3_Large_Weights.COCO_V1.url
    cache = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    assert str(cache).startswith(str(tmp_path))
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"junk")
    with pytest.raises(mm.ModelLoadError, match="SSDlite320") as err:
        mm.load_model("torchvision:ssdlite320_mobilenet_v3_large")
    assert "Load a model from a weights file" in str(err.value)  # the fix that works in the app


@pytest.mark.parametrize("num_classes", [91, 5])
def test_a_local_torchvision_weights_file_loads_with_its_weights(tmp_path, num_classes):
    """torchvision's own SSDlite, saved as torchvision saves weights, loads from disk
    (no network): every tensor equal, COCO names for 91 classes, numbered ones otherwise."""
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None, num_classes=num_classes)
    path = tmp_path / "ssdlite_coco.pth"
    torch.save(tv.state_dict(), path)
    model_id = mm.weights_file_id("ssdlite320_mobilenet_v3_large", path)
    loaded = mm.load_model(model_id)
    ours = loaded.model.state_dict()
    assert set(tv.state_dict()) <= set(ours)
    assert all(torch.equal(ours[k], v) for k, v in tv.state_dict().items())
    assert len(loaded.class_names) == num_classes and loaded.label.endswith("ssdlite_coco.pth")
    assert (loaded.class_names[1] == "person") == (num_classes == 91)
    assert mm.model_cache_key(model_id).startswith(model_id + "@")  # reloads when the file changes


def test_bad_weights_files_are_clear_errors(tmp_path):
    import torchvision

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    vgg = tmp_path / "vgg_ssd.pth"
    torch.save(torchvision.models.detection.ssd300_vgg16(weights=None, weights_backbone=None).state_dict(), vgg)
    plain = tmp_path / "plain.pth"
    torch.save({"w": torch.zeros(2)}, plain)
    lite = "ssdlite320_mobilenet_v3_large"
    for path, why in ((tmp_path / "missing.pth", "does not exist"), (junk, "not a readable PyTorch file"),
                      (plain, "no torchvision SSD heads"), (vgg, "does not fit")):
        with pytest.raises(mm.ModelLoadError, match=why) as err:
            mm.load_model(mm.weights_file_id(lite, path))
        assert path.name in str(err.value)
    with pytest.raises(mm.ModelLoadError, match="unknown architecture"):
        mm.weights_file_id("yolo", junk)
    with pytest.raises(mm.ModelLoadError, match="unknown architecture"):
        mm.load_model(f"{mm.WEIGHTS_FILE_PREFIX}yolo:{junk}")


def test_app_torch_threads(monkeypatch):
    monkeypatch.setenv("SSD_TORCH_THREADS", "3")
    assert mm.app_torch_threads() == 3
    monkeypatch.setenv("SSD_TORCH_THREADS", "lots")
    with pytest.raises(ValueError, match="SSD_TORCH_THREADS"):
        mm.app_torch_threads()
    monkeypatch.delenv("SSD_TORCH_THREADS")
    assert mm.app_torch_threads() == max(1, (os.cpu_count() or 2) // 2)


def test_model_caveat_only_for_a_procedural_model_on_an_upload():
    from explorer.inputs.models import LoadedModel, model_caveat

    shapes = LoadedModel(None, ["background", "cat", "dog"], "x", "shapes", meta={"recipe": {"dataset": "procedural"}})
    voc = LoadedModel(None, ["background", "cat"], "y", "voc run", meta={"recipe": {"dataset": "voc"}})
    assert "cat, dog" in model_caveat(shapes, "upload") and "COCO model" in model_caveat(shapes, "upload")
    assert model_caveat(shapes, "sample") is None
    assert model_caveat(voc, "upload") is None


class _Planted:
    """Unpickling this would create the marker file (what a malicious checkpoint does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _malicious_checkpoint(path: Path, marker: Path) -> None:
    """A real torch.save zip whose pickle calls open(marker, "w") when unpickled."""
    torch.save({"format": "ssd-explorer/1", "model_state": _Planted(marker)}, path)
    assert not marker.exists()


def test_a_malicious_pickle_is_never_executed(tmp_path):
    """Issue 14: a best.pt with code in it. The picker lists it, loading it is refused
    (weights_only=True), the run list reads the run, and the marker never appears."""
    from explorer.jobs import manager as jobs
    from ssd.training.checkpoint import CheckpointError, load

    runs = tmp_path / "runs"
    best = runs / "evil" / "checkpoints" / "best.pt"
    best.parent.mkdir(parents=True)
    (runs / "evil" / "status.json").write_text('{"state": "finished"}')
    marker = tmp_path / "marker"
    _malicious_checkpoint(best, marker)
    choices = mm.list_model_choices(tmp_path / "none", runs)
    assert [c.model_id for c in choices if c.kind == "run"] == [str(best)]
    with pytest.raises(mm.ModelLoadError, match="best.pt"):
        mm.load_model(str(best))
    with pytest.raises(CheckpointError):
        load(best)
    assert jobs.read_run(runs / "evil").has_best and [r.name for r in jobs.list_runs(runs)] == ["evil"]
    assert not marker.exists()
    torch.load(best, weights_only=False)  # the control: this file really does run code
    assert marker.exists()


def test_damaged_best_checkpoints_are_flagged_in_the_picker(tmp_path):
    runs = tmp_path / "runs"
    good = runs / "good" / "checkpoints" / "best.pt"
    cut = runs / "cut" / "checkpoints" / "best.pt"
    for p in (good, cut):
        p.parent.mkdir(parents=True)
    save(good, build("compact256", num_classes=3), ["background", "a", "b"])
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (runs / "gone" / "checkpoints").mkdir(parents=True)
    (runs / "gone" / "checkpoints" / "best.pt").symlink_to(tmp_path / "nowhere.pt")  # dangling
    labels = {Path(c.model_id).parent.parent.name: c.label for c in mm.list_model_choices(tmp_path / "none", runs)
              if c.kind == "run"}
    assert "damaged" not in labels["good"]
    assert "damaged" in labels["cut"] and "truncated" in labels["cut"]
    assert "gone" not in labels  # a dangling best.pt is not offered (and breaks nothing)
    with pytest.raises(mm.ModelLoadError, match="truncated"):
        mm.load_model(str(cut))
    assert mm.model_cache_key(str(runs / "gone" / "checkpoints" / "best.pt")).endswith("best.pt")
    assert mm.load_model(str(good)).class_names == ["background", "a", "b"]


def test_a_checkpoint_with_tuned_default_boxes_loads_with_them(tmp_path):
    """A run trained with `--box-config` (other boxes per cell than the preset) is offered and
    loaded with its own default boxes, not compact256's."""
    import dataclasses

    from ssd.config import compact256
    from ssd.priors import default_boxes

    preset = compact256(3)
    tuned = dataclasses.replace(preset, aspect_ratios=((1.0, 2.0, 0.5),) * 6, name="tuned_compact256",
                                scales=(0.04, 0.09, 0.2, 0.4, 0.6, 0.8, 1.0))
    p = tmp_path / "runs" / "tuned" / "checkpoints" / "best.pt"
    save(p, build("compact256", cfg=tuned), ["background", "cat", "dog"])
    assert str(p) in [c.model_id for c in mm.list_model_choices(tmp_path / "none", tmp_path / "runs")]
    loaded = mm.load_model(str(p))
    assert loaded.model.cfg == tuned and loaded.model.cfg != preset
    assert loaded.model.cfg.boxes_per_location() == (4,) * 6
    assert default_boxes(loaded.model.cfg).cxcywh.shape[0] == 4 * (32**2 + 16**2 + 8**2 + 4**2 + 2**2 + 1)
