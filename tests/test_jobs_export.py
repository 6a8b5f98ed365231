"""explorer/jobs/export.py: a run's best checkpoint exported to ONNX as a real SHORT-lane
background job (spawned by the framework, `python -m explorer.jobs.export`), from the
library call and from the Training page; refusals and a failing export."""
import json
import shutil
import time
from pathlib import Path

import pytest

from explorer.jobs import export as exports
from explorer.jobs.limits import JobError
from explorer.jobs.state import is_alive
from explorer.text import shown

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "checkpoints" / "compact256_shapes.pt"


def _finished_run(runs_dir: Path, name: str = "done", best: bytes | None = None) -> Path:
    """A finished training run folder as the trainer leaves it, with `best` as best.pt
    (default: the shipped checkpoint)."""
    run_dir = runs_dir / name
    (run_dir / "checkpoints").mkdir(parents=True)
    if best is None:
        shutil.copyfile(SHIPPED, run_dir / "checkpoints" / "best.pt")
    else:
        (run_dir / "checkpoints" / "best.pt").write_bytes(best)
    (run_dir / "status.json").write_text(json.dumps(
        {"state": "finished", "progress": 1.0, "message": "finished", "step": 4, "total_steps": 4,
         "best_map": 0.25, "device": "cpu", "started_at": 1.0, "updated_at": 2.0}))
    return run_dir


def _wait_ended(run_dir: Path, timeout: float = 120.0) -> exports.ExportInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = exports.read_export(run_dir)
        if info is not None and not info.live and not is_alive(exports.export_dir(run_dir)):
            return info  # ended, and its process gone
        if time.monotonic() > deadline:
            log = exports.export_dir(run_dir) / "stdout.log"
            raise AssertionError(f"export did not end: {info}\n{log.read_text() if log.is_file() else ''}")
        time.sleep(0.3)


def test_a_run_without_best_pt_is_refused(runs_dir):
    run_dir = runs_dir / "young"
    run_dir.mkdir(parents=True)
    with pytest.raises(JobError, match="young has no checkpoints/best.pt"):
        exports.launch_export(runs_dir, run_dir)
    assert exports.read_export(run_dir) is None


@pytest.mark.slow
def test_export_job_writes_an_onnx_file_that_runs(runs_dir):
    ort = pytest.importorskip("onnxruntime")
    run_dir = _finished_run(runs_dir)
    exports.launch_export(runs_dir, run_dir)
    info = _wait_ended(run_dir)
    assert info.state == "finished", info.message
    meta = json.loads((exports.export_dir(run_dir) / "result.json").read_text())
    session = ort.InferenceSession(str(info.onnx_path), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == meta  # what the job reports is in the file
    shape = session.get_inputs()[0].shape
    assert shape[-2:] == [256, 256]  # compact256's fixed input
    # A second export while none is live replaces the first.
    exports.launch_export(runs_dir, run_dir)
    assert _wait_ended(run_dir).state == "finished"


@pytest.mark.slow
def test_a_file_that_is_not_a_checkpoint_fails_with_the_reason(runs_dir):
    run_dir = _finished_run(runs_dir, "broken", best=b"not a checkpoint")
    exports.launch_export(runs_dir, run_dir)
    info = _wait_ended(run_dir)
    assert info.state == "failed" and info.onnx_path is None
    assert "not a usable checkpoint" in info.message


@pytest.mark.slow
def test_export_and_download_from_the_training_page(runs_dir):
    from streamlit.testing.v1 import AppTest

    _finished_run(runs_dir)
    at = AppTest.from_file(str(ROOT / "pages" / "training.py"), default_timeout=60).run()
    assert not at.exception, at.exception
    assert any("Not exported yet" in shown(c.value) for c in at.caption)
    at.button(key="train_export").click().run()
    assert not at.exception, at.exception
    deadline = time.monotonic() + 120
    while not any(b.key == "train_export_download" for b in at.get("download_button")):
        assert time.monotonic() < deadline, [shown(c.value) for c in at.caption]
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    assert (runs_dir / "done" / "export" / "model.onnx").stat().st_size > 100_000
