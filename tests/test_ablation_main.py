"""Tests for ssd/ablation/main.py (`python -m ssd.ablate`) and runner.py: a smoke study end
to end, its resume, and a folder holding another study refused."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ssd.ablation.runner import RESULTS_FILE, STUDY_FILE, run_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_smoke_study_end_to_end_through_the_cli_and_resume(tmp_path):
    out = tmp_path / "zoom"
    cmd = [sys.executable, "-m", "ssd.ablate", "--study", "zoomout", "--scale", "smoke", "--out", str(out), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert set(doc["runs"]) == {"full-s0", "no_zoom_out-s0"} and doc["seeds"] == [0]
    for run in doc["runs"].values():
        assert {"AP", "AP50", "AP_small"} <= set(run) and run["step"] == 2
    rows = {r["variant"]: r for r in doc["table"]}
    assert rows["no_zoom_out"]["verdict"] == "one seed: no interval" and rows["no_zoom_out"]["paper_diff"] == -2.9
    study = json.loads((out / STUDY_FILE).read_text())
    assert study["command"].startswith("python -m ssd.ablate --study zoomout") and len(study["grid"]) == 2
    config = json.loads((out / "runs" / "no_zoom_out-s0" / "config.json").read_text())
    assert config["args"]["augment_steps"] == "photometric,iou_crop,flip"  # an ordinary run folder
    # Resume: finished runs are kept, nothing trains again.
    metrics = out / "runs" / "full-s0" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    again = run_study("zoomout", "smoke", [0], out)
    assert metrics.stat().st_mtime_ns == before and again["runs"] == doc["runs"]
    assert json.loads((out / RESULTS_FILE).read_text())["table"] == doc["table"]
    with pytest.raises(ValueError, match="holds study 'zoomout'"):
        run_study("mining", "smoke", [0], out)


def test_cli_refuses_an_unknown_study(tmp_path):
    done = subprocess.run([sys.executable, "-m", "ssd.ablate", "--study", "nope", "--scale", "smoke", "--out",
                           str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ))
    assert done.returncode == 2 and "invalid choice" in done.stderr


def test_a_stopped_run_resumes_and_a_run_that_never_saved_starts_again(tmp_path):
    from ssd.ablation.runner import _train_argv
    from ssd.ablation.studies import SCALES, STUDIES, resolve_options

    study = STUDIES["mining"]
    opts = resolve_options(study, study.variants[1], SCALES["smoke"], 0, tmp_path)
    run_dir = Path(opts.out)
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"x")
    argv = _train_argv(opts, run_dir)
    assert argv[-1] == "--resume" and argv[1:3] == ["-m", "ssd.train"] and "--neg-pos-ratio" in argv
    (run_dir / "checkpoints" / "last.pt").unlink()
    assert _train_argv(opts, run_dir)[-1] != "--resume" and not run_dir.exists()
