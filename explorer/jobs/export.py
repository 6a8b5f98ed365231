"""ONNX export of a training run's best checkpoint, as a SHORT-lane background job.

    python -m explorer.jobs.export JOB_DIR

The job folder is the run's `export/` (`ssd.training.runlog.EXPORT_DIR`): `spec.json`
(the checkpoint, the opset), then the framework's `job.json` / `status.json` /
`stdout.log`, and once finished `model.onnx` (written atomically by
`ssd.export.export_onnx`: the network, the box decoding and the NMS in one graph, at the
library's post-processing defaults) and `result.json` (the metadata written into the
file). One export per run: exporting again replaces it. No streamlit import.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.jobs.limits import JobError, JobLimits
from explorer.jobs.manager import submit
from explorer.jobs.process import run_child
from explorer.jobs.runs import job_state
from explorer.jobs.state import is_alive
from ssd.export import DEFAULT_OPSET, export_onnx
from ssd.io import write_json_atomic
from ssd.training import runlog
from ssd.training.runlog import EXPORT_DIR, LIVE_STATES, ONNX_FILE, RESULT_FILE, SPEC_FILE, STATUS_FILE

@dataclass(frozen=True)
class ExportInfo:
    """A run's export as the Training page shows it."""

    state: str  # queued | running | finished | failed | cancelled | damaged
    message: str  # last status message (the reason, when failed)
    onnx_path: Path | None  # the file, once finished

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES


def export_dir(run_dir: Path) -> Path:
    """The export job folder of a training run."""
    return Path(run_dir) / EXPORT_DIR


def launch_export(runs_dir: Path, run_dir: Path, opset: int = DEFAULT_OPSET,
                  limits: JobLimits | None = None) -> Path:
    """Export `run_dir`'s checkpoints/best.pt to ONNX in the background (SHORT lane: it
    never waits behind a training run). Returns the export's folder. JobError when the
    run has no best.pt, an export of it is queued or running, or the lane is full."""
    run_dir = Path(run_dir)
    best = runlog.paths(run_dir).best
    if not best.is_file():
        raise JobError(f"{run_dir.name} has no checkpoints/best.pt to export yet")
    current = read_export(run_dir)
    if current is not None and (current.live or is_alive(export_dir(run_dir))):  # its process may still be ending
        raise JobError(f"an export of {run_dir.name} is still {current.state if current.live else 'ending'}")

    def make_dir() -> Path:
        d = export_dir(run_dir)
        d.mkdir(exist_ok=True)
        for stale in (ONNX_FILE, RESULT_FILE, STATUS_FILE):  # a new export replaces the last one
            (d / stale).unlink(missing_ok=True)
        write_json_atomic(d / SPEC_FILE, {"checkpoint": str(best.resolve()), "opset": int(opset),
                                          "created_at": time.time()})
        return d

    return submit(runs_dir, {"kind": "export", "device": "cpu", "created_at": time.time()}, make_dir, limits)


def read_export(run_dir: Path) -> ExportInfo | None:
    """The run's export (None: never exported); state from the framework (`job_state`)."""
    d = export_dir(run_dir)
    if not (d / SPEC_FILE).is_file():
        return None
    js = job_state(d)
    onnx = d / ONNX_FILE
    state, message = js.state, str(js.status.get("message") or "")
    if state == "finished" and not onnx.is_file():
        state, message = "failed", f"finished, but {ONNX_FILE} is missing"
    return ExportInfo(state, message, onnx if state == "finished" else None)


def run(job_dir: Path) -> dict:
    """The job's body: export spec.json's checkpoint to `model.onnx`, write result.json."""
    spec = runlog.read_json(Path(job_dir) / SPEC_FILE)
    runlog.update_status(job_dir, message=f"exporting {Path(spec['checkpoint']).name} to ONNX")
    meta = export_onnx(spec["checkpoint"], Path(job_dir) / ONNX_FILE, opset=int(spec["opset"]))
    write_json_atomic(Path(job_dir) / RESULT_FILE, meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer.jobs.export JOB_DIR`: `run` under the job status protocol."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m explorer.jobs.export JOB_DIR", file=sys.stderr)
        return 2
    return run_child(Path(argv[0]), run)


if __name__ == "__main__":
    sys.exit(main())
