"""ssd.export.onnx_export and its command line (`python -m ssd.export`): the metadata a
user needs around the graph, and a clear message for each bad input."""
from __future__ import annotations

import json

import onnx
import pytest
import torch

from export_helpers import SHIPPED
from ssd.training import checkpoint
from ssd.export import METADATA_KEYS, MIN_OPSET, ExportError, export_onnx, load_model
from ssd.export.__main__ import main
from ssd.models import build
from ssd.postprocess import PostprocessConfig


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "c.onnx"
    meta = export_onnx(SHIPPED, path, config=PostprocessConfig(score_thresh=0.2, detections_per_img=7), opset=MIN_OPSET)
    return path, meta


def test_metadata_records_input_normalisation_classes_boxes_and_thresholds(exported):
    path, meta = exported
    proto = onnx.load(str(path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == meta and sorted(props) == sorted(METADATA_KEYS)
    model, ck = checkpoint.load(SHIPPED)
    assert json.loads(props["input_hw"]) == [256, 256]
    assert json.loads(props["image_mean"]) == list(model.image_mean)
    assert json.loads(props["image_std"]) == list(model.image_std)
    assert json.loads(props["class_names"]) == ck["class_names"]
    assert json.loads(props["ssd_config"]) == model.cfg.to_dict()
    assert json.loads(props["postprocess"]) == {"score_thresh": 0.2, "nms_thresh": 0.45,
                                                "topk_candidates": 400, "detections_per_img": 7}
    assert props["dynamic_batch"] == "false" and props["outputs"] == "detections"
    assert proto.opset_import[0].version == MIN_OPSET
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["batch_index", "boxes_xyxy_px_in", "scores", "labels",
                                                     "default_index"]
    assert "NonMaxSuppression" in {n.op_type for n in proto.graph.node}


def test_exporting_leaves_the_model_as_it_was(tmp_path):
    model = build("compact256").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx", raw=True)
    assert not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_not_a_checkpoint_is_named(tmp_path):
    junk = tmp_path / "notes.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(ExportError, match=r"not a usable checkpoint: .*notes\.pt.*(truncated or corrupt)"):
        export_onnx(junk, tmp_path / "out.onnx")
    bare = tmp_path / "bare.pt"
    torch.save(build("compact256").state_dict(), bare)
    with pytest.raises(ExportError, match="bare state dict"):
        load_model(checkpoint=bare)
    assert not (tmp_path / "out.onnx").exists()


def test_opset_too_old_or_too_new_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ExportError, match=rf"opset 9 is too old for this graph: it needs ONNX opset >= {MIN_OPSET}"):
        export_onnx(SHIPPED, tmp_path / "out.onnx", opset=9)
    with pytest.raises(ExportError, match="opset 99 is newer than"):
        export_onnx(SHIPPED, tmp_path / "out.onnx", opset=99)


def test_cli_writes_the_file_and_reports_bad_input(tmp_path, capsys):
    out = tmp_path / "raw.onnx"
    assert main(["--checkpoint", str(SHIPPED), "--onnx", str(out), "--raw", "--dynamic-batch"]) == 0
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["outputs"] == "raw" and props["dynamic_batch"] == "true" and props["postprocess"] == "{}"
    assert "wrote" in capsys.readouterr().out
    assert main(["--checkpoint", str(tmp_path / "missing.pt"), "--onnx", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["--checkpoint", str(SHIPPED), "--onnx", str(out), "--opset", "10"]) == 2
    assert "opset 10 is too old" in capsys.readouterr().err
    assert main(["--checkpoint", str(SHIPPED), "--onnx", str(out), "--score-threshold", "2"]) == 2
    assert "score_thresh must be a number in [0, 1]" in capsys.readouterr().err
    assert main(["--checkpoint", str(SHIPPED), "--weights", "x.pth", "--onnx", str(out)]) == 2
    assert "--weights needs --model" in capsys.readouterr().err
