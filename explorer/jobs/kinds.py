"""The kinds of background job, and the lane each waits in.

A job kind is what the framework needs to run a new sort of job, and nothing else:
its name (job.json "kind"), its lane, its child entry point and whether it resumes.
Everything else (the folder, job.json, status.json, the queue, the locks, spawn,
cancel, resume, delete, liveness, the log) is the framework's (`explorer.jobs`).

To add a kind (an ONNX export, an ablation study):
1. give it a spec written to the job folder's `spec.json` (`ssd.training.runlog.SPEC_FILE`) by
   its launch function, which calls `explorer.jobs.manager.submit`;
2. give it a child entry point `python -m MODULE JOB_DIR [--resume]` whose `main`
   calls `explorer.jobs.process.run_child(JOB_DIR, body)`: `body` reads spec.json and
   writes its outputs (`ssd.training.runlog.RESULT_FILE`, ...) with the atomic write and its
   progress with `ssd.training.runlog.update_status`; SIGTERM, errors and the end states are
   handled by `run_child`;
3. add one `JobKind` line to `KINDS` below.

Lanes (`LONG`, `SHORT`): each has its own queue per device class. A LONG job
(training, a study) runs alone on its device (one at a time, launch order); a SHORT
job (an evaluation, an export) runs beside it, one SHORT job at a time per device, so
a minute-long job never waits behind an hour-long run. The per-device limit of
`JobLimits.max_jobs_per_device` counts LONG jobs only; SHORT jobs have their own,
`JobLimits.max_short_jobs_per_device`. No streamlit, no torch import.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from ssd.training import runlog

LONG = "long"  # training runs, studies: one at a time per device
SHORT = "short"  # evaluations, exports: one at a time per device, beside the LONG job
LANES = (LONG, SHORT)


@dataclass(frozen=True)
class JobKind:
    """One kind of background job (see the module docstring for how to add one)."""

    name: str  # job.json "kind"
    lane: str  # LONG or SHORT
    module: str = ""  # child entry point `python -m MODULE JOB_DIR`; "" = the job's recorded train_argv
    resumable: bool = False  # a cancelled or failed job may start again (`--resume`)

    def child_argv(self, job_dir: Path, job: dict, resume: bool) -> list[str]:
        """The command the job's runner execs once its lane is free. Training: the
        recorded `python -m ssd.train` argv, `--resume` when checkpoints/last.pt exists."""
        if self.module:
            return [sys.executable, "-m", self.module, str(job_dir)] + (["--resume"] if resume else [])
        argv = list(job["train_argv"])
        if resume and runlog.paths(job_dir).last.is_file():
            argv.append("--resume")
        return argv


KINDS = {kind.name: kind for kind in (
    JobKind("train", LONG, resumable=True),
    JobKind("evaluate", SHORT, module="explorer.evaluation.runner"),
    JobKind("export", SHORT, module="explorer.jobs.export"),
)}


def kind_of(job: dict) -> JobKind:
    """The kind of a job.json (one written before kinds existed is a training run);
    ValueError naming the kind when it is unknown."""
    name = job.get("kind", "train")
    if name not in KINDS:
        raise ValueError(f"job.json: unknown job kind {name!r}; known: {sorted(KINDS)}")
    return KINDS[name]
