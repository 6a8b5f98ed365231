"""explorer/inputs/weights_file.py: a model from a weights file on the server or uploaded."""
import os

import pytest
import torch

from explorer.inputs import models as mm
from explorer.inputs import weights_file as wf

LITE = "ssdlite320_mobilenet_v3_large"


@pytest.fixture
def lite_weights(tmp_path):
    import torchvision

    torch.manual_seed(2)
    tv = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=91)
    path = tmp_path / "data" / "ssdlite_coco.pth"
    path.parent.mkdir()
    torch.save(tv.state_dict(), path)
    return path


def test_a_path_inside_the_roots_becomes_a_model_that_loads(lite_weights):
    model_id = wf.from_path(LITE, str(lite_weights), roots=(lite_weights.parent.resolve(),))
    loaded = mm.load_model(model_id)
    assert len(loaded.class_names) == 91 and "ssdlite_coco.pth" in loaded.label
    choice = mm.extra_choice(model_id)  # the picker shows it
    assert choice.model_id == model_id and "ssdlite_coco.pth" in choice.label
    lite_weights.unlink()
    assert mm.extra_choice(model_id) is None and mm.extra_choice("file:yolo:/x") is None


def test_paths_outside_the_roots_missing_or_not_files_are_refused(lite_weights, tmp_path):
    roots = (lite_weights.parent.resolve(),)
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(lite_weights.read_bytes())
    link = lite_weights.parent / "link.pth"
    link.symlink_to(outside)  # a link inside that points outside: refused after resolving
    for path_text, why in ((str(outside), "outside the allowed data folders"), (str(link), "outside"),
                           (str(lite_weights.parent / "nope.pth"), "does not exist"),
                           (str(lite_weights.parent), "not a regular file"), ("  ", "give the path")):
        with pytest.raises(mm.ModelLoadError, match=why):
            wf.from_path(LITE, path_text, roots)
    with pytest.raises(mm.ModelLoadError, match="outside"):  # an exposed server with no roots listed
        wf.from_path(LITE, str(lite_weights), roots=())
    with pytest.raises(mm.ModelLoadError, match="unknown architecture"):
        wf.from_path("yolo", str(lite_weights), roots)


def test_a_project_checkpoint_by_path_is_its_own_id():
    shipped = mm.SHIPPED_CHECKPOINT
    model_id = wf.from_path(wf.CHECKPOINT, str(shipped), roots=(shipped.parent.resolve(),))
    assert model_id == str(shipped.resolve()) and mm.load_model(model_id).model.cfg.name


def test_uploads_are_written_once_and_only_the_newest_kept(lite_weights, tmp_path):
    folder = tmp_path / "up"
    data = lite_weights.read_bytes()
    model_id = wf.from_upload(LITE, "ssdlite.pth", data, folder)
    assert wf.from_upload(LITE, "again.pth", data, folder) == model_id
    assert len(mm.load_model(model_id).class_names) == 91
    for n in range(3):
        wf.from_upload(wf.CHECKPOINT, f"{n}.pt", bytes([n]) * 10, folder)
        os.utime(sorted(folder.iterdir())[0], (1, 1))  # make some file the oldest
    assert len(list(folder.iterdir())) == wf.MAX_UPLOADED and not list(folder.glob("*.tmp"))
    with pytest.raises(mm.ModelLoadError, match="empty"):
        wf.from_upload(LITE, "e.pth", b"", folder)


def test_an_uploaded_junk_file_fails_to_load_with_its_reason(tmp_path):
    model_id = wf.from_upload(LITE, "junk.pth", b"not torch", tmp_path)
    with pytest.raises(mm.ModelLoadError, match="not a readable PyTorch file"):
        mm.load_model(model_id)


def _evil_pickle() -> bytes:
    import io

    class Evil:
        def __reduce__(self):
            return (print, ("never run",))

    buf = io.BytesIO()
    torch.save({"x": Evil()}, buf)
    return buf.getvalue()


@pytest.mark.parametrize("arch", [wf.CHECKPOINT, LITE])
@pytest.mark.parametrize("data", [_evil_pickle(), b"not torch" * 50, b"PK\x03\x04" + b"\0" * 100],
                         ids=["pickle-with-code", "junk", "cut-zip"])
def test_upload_errors_name_the_uploaded_file_not_server_paths(tmp_path, arch, data):
    """Issue 20 #11: no `/tmp/ssd_weights_.../<sha1>.pt`, no pages of torch advice."""
    model_id = wf.from_upload(arch, "my weights.pt", data, tmp_path)
    with pytest.raises(mm.ModelLoadError) as info:
        mm.load_model(model_id)
    shown = info.value.for_user(wf.shown_name(model_id))
    assert "my weights.pt" in shown, shown
    assert str(tmp_path) not in shown and "/" not in shown.replace(" / ", ""), shown
    assert len(shown) < 400 and "weights_only=False" not in shown and "weights_only` set to `False" not in shown, shown


def test_a_typed_path_error_names_what_was_typed(tmp_path):
    bad = tmp_path / "data" / "cut.pth"
    bad.parent.mkdir()
    bad.write_bytes(b"junk" * 10)
    model_id = wf.from_path(LITE, str(bad), (tmp_path / "data",))
    with pytest.raises(mm.ModelLoadError) as info:
        mm.load_model(model_id)
    assert "/" not in str(info.value)  # the base name only, by default
    assert info.value.for_user("~/cut.pth").startswith("Could not load ~/cut.pth as ")


def test_user_reason_cuts_paths_and_keeps_urls():
    e = OSError("weights file /srv/x/y/z.pth is bad. Long advice follows here. More.")
    assert mm.user_reason(e) == "weights file z.pth is bad."
    url = "https://download.pytorch.org/models/a.pth"
    assert url in mm.user_reason(ValueError(f"could not download from {url} (URLError)"))
    assert len(mm.user_reason(ValueError("x" * 1000))) == mm.MAX_REASON_CHARS


def test_offline_torchvision_model_message_is_one_clear_sentence(monkeypatch, tmp_path):
    """The app's words for torchvision's COCO weights that cannot be downloaded (the real
    download through a closed local proxy): the host, "no network?", the URL to fetch and
    the sidebar's loader; no exception class, no server path, no doubled punctuation."""
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path))
    for var in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(var, raising=False)
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(mm.ModelLoadError) as info:
        mm.load_model("torchvision:ssdlite320_mobilenet_v3_large")
    msg = str(info.value)
    assert msg.startswith("Could not download the COCO weights of SSDlite320 MobileNetV3 from download.pytorch.org "
                          "(no network? "), msg
    assert "download https://download.pytorch.org/models/ssdlite320_mobilenet_v3_large_coco" in msg
    assert msg.endswith('load the file here with "Load a model from a weights file" in the sidebar.')
    assert str(tmp_path) not in msg and "Error" not in msg and "<" not in msg
    assert ".." not in msg and msg.count(". ") == 0  # one sentence
