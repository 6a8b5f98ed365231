"""Tests for ssd/ablation/main.py (`python -m ssd.ablate`) and runner.py: a smoke study
resumed through the CLI (the session's one, trained from scratch by the same `run_study`),
a stopped run resumed, and a folder holding another study refused."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ssd.ablation.runner import RESULTS_FILE, STUDY_FILE, run_study

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_cli_resumes_a_finished_smoke_study_and_prints_its_results(smoke_study, tmp_path):
    """The session's smoke study (trained from scratch by `run_study` in its job, conftest),
    copied and resumed through the CLI: nothing trains again, the JSON is the table."""
    out = tmp_path / "zoom"
    shutil.copytree(smoke_study[1], out)
    metrics = out / "runs" / "full-s0" / "metrics.jsonl"
    before = metrics.stat().st_mtime_ns
    cmd = [sys.executable, "-m", "ssd.ablate", "--study", "zoomout", "--scale", "smoke", "--out", str(out), "--json"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert metrics.stat().st_mtime_ns == before  # finished runs are kept
    doc = json.loads(done.stdout)
    assert set(doc["runs"]) == {"full-s0", "no_zoom_out-s0"} and doc["seeds"] == [0]
    assert doc["command"].startswith("python -m ssd.ablate --study zoomout --scale smoke --out ")
    for run in doc["runs"].values():
        assert {"AP", "AP50", "AP_small"} <= set(run) and run["step"] == 2
    rows = {r["variant"]: r for r in doc["table"]}
    assert rows["no_zoom_out"]["verdict"] == "one seed: no interval" and rows["no_zoom_out"]["paper_diff"] == -2.9
    study = json.loads((out / STUDY_FILE).read_text())
    assert study["command"].startswith("python -m ssd.ablate --study zoomout") and len(study["grid"]) == 2
    config = json.loads((out / "runs" / "no_zoom_out-s0" / "config.json").read_text())
    assert config["args"]["augment_steps"] == "photometric,iou_crop,flip"  # an ordinary run folder
    assert json.loads((out / RESULTS_FILE).read_text())["table"] == doc["table"]
    assert run_study("zoomout", "smoke", [0], out)["runs"] == doc["runs"]
    with pytest.raises(ValueError, match="holds study 'zoomout'"):
        run_study("mining", "smoke", [0], out)


def test_cli_refuses_an_unknown_study(tmp_path, capsys):
    from ssd.ablation.main import main  # in-process: a subprocess would spend ~5 s importing torch

    with pytest.raises(SystemExit) as stop:
        main(["--study", "nope", "--scale", "smoke", "--out", str(tmp_path)])
    assert stop.value.code == 2 and "invalid choice: 'nope'" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


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
