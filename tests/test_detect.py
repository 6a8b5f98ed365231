"""python -m ssd.detect on a folder of good and bad images with a real checkpoint file."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssd.detect import build_parser, expand_inputs, main
from ssd.models import build
from ssd.postprocess import DISPLAY_SCORE_THRESH
from ssd.training import checkpoint

NAMES = ["background", "cat", "dog", "bird", "car", "person", "tree"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = build("compact256", num_classes=7)
    return checkpoint.save(tmp_path_factory.mktemp("ck") / "model.pt", model, NAMES, recipe={"seed": 0})


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(d / "a_good.png")
    Image.fromarray(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)).save(d / "b_good.jpg")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (d / "c_truncated.jpg").write_bytes(buf.getvalue()[:200])
    (d / "d_text.png").write_text("not an image")
    (d / "e_empty.jpg").write_bytes(b"")
    (d / "notes.txt").write_text("ignored: not an image suffix")
    return d


def test_expand_inputs(folder, tmp_path):
    files, errors = expand_inputs([str(folder), str(tmp_path / "missing.png")])
    assert [f.name for f in files] == ["a_good.png", "b_good.jpg", "c_truncated.jpg", "d_text.png", "e_empty.jpg"]
    assert errors == [f"{tmp_path / 'missing.png'}: file does not exist"]


def test_json_on_mixed_folder(folder, ckpt, capsys):
    code = main([str(folder), "--checkpoint", str(ckpt), "--json", "--per-level",
                 "--score-thresh", "0.01", "--detections-per-img", "5", "--level-score-thresh", "0.2"])
    out, err = capsys.readouterr()
    assert code == 2
    err_lines = err.strip().splitlines()
    assert len(err_lines) == 3
    assert any("c_truncated.jpg" in e and "truncated" in e for e in err_lines)
    assert any("d_text.png" in e and "not an image" in e for e in err_lines)
    assert any("e_empty.jpg" in e and "empty" in e for e in err_lines)
    doc = json.loads(out)
    assert [Path(r["image"]).name for r in doc] == ["a_good.png", "b_good.jpg"]
    first = doc[0]
    assert (first["width"], first["height"]) == (160, 120)
    assert 0 < len(first["detections"]) <= 5
    d = first["detections"][0]
    assert d["label"] in NAMES[1:]
    assert set(d) >= {"label", "score", "box_xyxy", "level", "feature_map", "cell"}
    h, w = d["feature_map"]
    assert [32, 16, 8, 4, 2, 1][d["level"]] == h == w
    assert 0 <= d["cell"][0] < h and 0 <= d["cell"][1] < w
    x1, y1, x2, y2 = d["box_xyxy"]
    assert 0 <= x1 <= x2 <= 160 and 0 <= y1 <= y2 <= 120
    assert len(first["per_level"]) == 6
    assert first["per_level"][0]["source"] == "stage3" and first["per_level"][0]["feature_map"] == [32, 32]


def test_text_output_all_good(folder, ckpt, capsys):
    code = main([str(folder / "a_good.png"), "--checkpoint", str(ckpt), "--per-level",
                 "--score-threshold", "0.01", "--top-k", "3", "--level-score-threshold", "0.2"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert "a_good.png (160x120): 3 detection(s)" in out
    assert "level 0 stage3 32x32" in out and "label" in out


def test_bad_model_arguments(tmp_path, folder, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"")
    assert main([str(folder), "--checkpoint", str(bad)]) == 2
    assert "empty" in capsys.readouterr().err
    assert main([str(folder), "--model", "compact256", "--weights", str(tmp_path / "none.pth")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([str(folder)])  # neither --checkpoint nor --model


def test_command_line_process(folder, ckpt):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-m", "ssd.detect", str(folder / "b_good.jpg"), str(folder / "d_text.png"),
         "--checkpoint", str(ckpt), "--json", "--score-threshold", "0.01", "--top-k", "2"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"error: {folder / 'd_text.png'}: not an image (format not recognised)"]
    doc = json.loads(proc.stdout)
    assert len(doc) == 1 and len(doc[0]["detections"]) == 2 and doc[0]["per_level"] is None


def test_onnx_prints_the_records_of_the_checkpoint(tmp_path, capsys):
    """`--onnx` runs the exported file with ONNX Runtime and prints the same records."""
    pytest.importorskip("onnxruntime")
    from ssd.export import export_onnx

    shipped = ROOT / "checkpoints" / "compact256_shapes.pt"
    onnx_path = tmp_path / "c.onnx"
    export_onnx(shipped, onnx_path)
    runs = {}
    for src in (["--checkpoint", str(shipped)], ["--onnx", str(onnx_path)]):
        assert main([str(ROOT / "samples"), *src, "--json", "--top-k", "20"]) == 0
        runs[src[0]] = json.loads(capsys.readouterr().out)
    a, b = runs["--checkpoint"], runs["--onnx"]
    assert [r["image"] for r in a] == [r["image"] for r in b] and sum(len(r["detections"]) for r in a) > 5
    for ra, rb in zip(a, b):
        assert len(ra["detections"]) == len(rb["detections"])
        for da, db in zip(ra["detections"], rb["detections"]):
            assert {k: v for k, v in da.items() if k not in ("score", "box_xyxy")} == \
                   {k: v for k, v in db.items() if k not in ("score", "box_xyxy")}
            assert abs(da["score"] - db["score"]) < 1e-5
            assert max(abs(u - v) for u, v in zip(da["box_xyxy"], db["box_xyxy"])) < 1e-3
    assert main([str(ROOT / "samples"), "--onnx", str(onnx_path), "--score-threshold", "0.001"]) == 2
    assert "below the 0.01 baked into" in capsys.readouterr().err
    assert main([str(ROOT / "samples"), "--onnx", str(onnx_path), "--per-level"]) == 2
    assert "--per-level needs the PyTorch model" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [
    ["--score-thresh", "0.2", "--nms-thresh", "0.5", "--detections-per-img", "7", "--level-score-thresh", "0.4"],
    ["--score-threshold", "0.2", "--nms-threshold", "0.5", "--top-k", "7", "--level-score-threshold", "0.4"],
])
def test_threshold_flags_new_names_and_old_aliases_set_the_same_fields(flags):
    args = build_parser().parse_args(["x.png", "--checkpoint", "c.pt", *flags])
    got = (args.score_thresh, args.nms_thresh, args.detections_per_img, args.level_score_thresh)
    assert got == (0.2, 0.5, 7, 0.4)


def test_threshold_flags_default_to_the_declared_defaults():
    args = build_parser().parse_args(["x.png", "--checkpoint", "c.pt"])
    assert args.score_thresh == DISPLAY_SCORE_THRESH
    assert (args.nms_thresh, args.detections_per_img, args.level_score_thresh) == (None, None, None)
