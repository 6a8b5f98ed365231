"""Ablation studies as background jobs: one queue entry per study (kind "study", LONG lane,
resumable), running its variants one after another (`ssd.ablation.runner`).

    launch_study(runs_dir, study, scale, seeds, devices) -> Path   the study's job folder
    list_studies(runs_dir) -> list[StudyInfo];  read_study(job_dir) -> StudyInfo
    study_of(job_dir) -> StudyInfo | None                           None: not a study job
    python -m explorer.jobs.study JOB_DIR [--resume]                the child entry point

A study's job folder (runs_dir/study-<study>-<scale>-<time>/) holds the framework's files
(job.json, status.json, stdout.log, the locks), its spec.json, and the study folder of
`ssd.ablation.runner` (study.json, results.json, runs/<variant>-s<seed>/: ordinary run
folders). Cancel (`explorer.jobs.controls.cancel`) sends SIGTERM to the job's process
group, which holds the current `ssd.train` run too: the run saves last.pt and ends
cancelled, and the study ends cancelled; Resume continues where it stopped, finished runs
kept. The Training page lists the study as one run, and under it each variant run
(`study_of`), read-only. No streamlit import.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path

from explorer.jobs.limits import JobError, JobLimits
from explorer.jobs.manager import available_devices, create_job_dir, submit
from explorer.jobs.process import job_main
from explorer.jobs.runs import job_state
from explorer.jobs.spec import sanitize_run_name
from ssd.ablation.runner import plan, read_results, run_study
from ssd.ablation.studies import SCALES, STUDIES, run_name
from ssd.training import runlog
from ssd.training.runlog import JOB_FILE, SPEC_FILE, read_json, update_status
from ssd.io import write_json_atomic

KIND = "study"


def launch_study(runs_dir: Path, study: str, scale: str, seeds: int = 0, devices: dict | None = None,
                 limits: JobLimits | None = None) -> Path:
    """Queue study `study` at `scale` with `seeds` training seeds (0: the scale's) as one
    LONG job on the GPU when there is one, else the CPU. Returns its job folder; JobError
    for an unknown study or scale, or a full queue."""
    if study not in STUDIES:
        raise JobError(f"unknown study {study!r}; choose one of {sorted(STUDIES)}")
    if scale not in SCALES:
        raise JobError(f"unknown scale {scale!r}; choose one of {list(SCALES)}")
    n = int(seeds) or SCALES[scale].seeds
    if not 1 <= n <= 10:
        raise JobError(f"seeds must be 1..10, got {n}")
    devices = devices if devices is not None else available_devices()
    device = "cuda" if devices.get("cuda") else "cpu"
    runs_dir = Path(runs_dir).expanduser().resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    base = sanitize_run_name(f"study-{study}-{scale}-{time.strftime('%Y%m%d-%H%M%S')}")
    spec = {"study": study, "scale": scale, "seeds": list(range(n)), "device": device}

    def make_dir() -> Path:
        job_dir = create_job_dir(runs_dir, base)
        write_json_atomic(job_dir / SPEC_FILE, {"spec": spec})
        job.update(name=job_dir.name)
        return job_dir

    job = {"kind": KIND, "created_at": time.time(), "device": device, "study": spec}
    return submit(runs_dir, job, make_dir, limits)


@dataclass(frozen=True)
class VariantRun:
    """One training run of a study, as its run folder says now."""

    name: str  # <variant>-s<seed>
    variant: str
    seed: int
    run_dir: Path
    state: str  # "pending" (not started) or the run's status state
    step: int
    total_steps: int | None
    best_checkpoint: Path | None  # checkpoints/best.pt once written


@dataclass(frozen=True)
class StudyInfo:
    """A study job as the Paper lab page shows it."""

    name: str
    job_dir: Path
    study: str
    scale: str
    seeds: list
    state: str  # the job's effective state (queued, running, finished, failed, cancelled, damaged)
    alive: bool
    progress: float
    message: str
    runs: list  # VariantRun, in the order they run
    results: dict | None  # results.json (runs finished so far and the table), None before the first


def _variant_run(job_dir: Path, variant: str, seed: int) -> VariantRun:
    name = run_name(variant, seed)
    run_dir = job_dir / "runs" / name
    status = runlog.read_status(run_dir) or {}
    best = runlog.paths(run_dir).best
    return VariantRun(name, variant, seed, run_dir, str(status.get("state") or "pending"),
                      int(status.get("step") or 0), status.get("total_steps"), best if best.is_file() else None)


def read_study(job_dir: Path) -> StudyInfo:
    """The study job in `job_dir` with its runs' progress (ValueError for a folder that is
    not a readable study)."""
    job_dir = Path(job_dir)
    spec = read_json(job_dir / SPEC_FILE)["spec"]
    js = job_state(job_dir)
    study, scale = STUDIES[spec["study"]], SCALES[spec["scale"]]
    runs = [_variant_run(job_dir, v, s) for v, s in plan(study, scale, spec["seeds"])]
    return StudyInfo(job_dir.name, job_dir, spec["study"], spec["scale"], list(spec["seeds"]), js.state, js.alive,
                     float(js.status.get("progress") or 0.0), str(js.status.get("message", "")), runs,
                     read_results(job_dir))


def study_of(job_dir: Path) -> StudyInfo | None:
    """The study in `job_dir` when it is a study job (job.json kind "study"), else None
    (a training run, an export, a folder that cannot be read as a study). The Training
    page uses it to show a study's variant runs under its entry."""
    job_dir = Path(job_dir)
    try:
        if read_json(job_dir / JOB_FILE).get("kind") != KIND:
            return None
        return read_study(job_dir)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, runlog.RunDirError):
        return None


def list_studies(runs_dir: Path) -> list[StudyInfo]:
    """Every study job under `runs_dir`, newest first (unreadable folders left out)."""
    out = []
    try:
        dirs = [d for d in Path(runs_dir).iterdir() if (d / JOB_FILE).is_file() and (d / SPEC_FILE).is_file()]
    except OSError:
        return []
    for d in dirs:
        try:
            if read_json(d / JOB_FILE).get("kind") == KIND:
                out.append(read_study(d))
        except (OSError, ValueError, KeyError, TypeError, runlog.RunDirError):
            continue
    return sorted(out, key=lambda s: s.name, reverse=True)


def run(job_dir: Path) -> dict:
    """The job's body: run (or resume) the study of spec.json in `job_dir`."""
    job_dir = Path(job_dir)
    spec = read_json(job_dir / SPEC_FILE)["spec"]

    def progress(done: int, total: int, message: str) -> None:
        update_status(job_dir, progress=done / max(1, total), message=message)

    command = (f"python -m ssd.ablate --study {spec['study']} --scale {spec['scale']} --seeds {len(spec['seeds'])} "
               f"--out {job_dir} --device {spec['device']}")
    return run_study(spec["study"], spec["scale"], spec["seeds"], job_dir, command, spec["device"], progress)


def main(argv: list[str] | None = None) -> int:
    """`python -m explorer.jobs.study JOB_DIR [--resume]` under the job status protocol
    (resuming needs no flag: the study folder says what is done)."""
    return job_main("explorer.jobs.study", run, argv, resumable=True)


def evaluate_run(info: StudyInfo, run: VariantRun, roots=None) -> Path:
    """Launch (or find in the cache) the Evaluation page's evaluation of one variant run's
    best.pt on the study's validation scenes (procedural seed 1, the scale's count): its
    error types per level, misses and PR curves. Returns the evaluation folder."""
    from explorer.evaluation import jobs as eval_jobs
    from explorer.evaluation.spec import DatasetSpec, EvalSpec

    scale = SCALES[info.scale]
    spec = EvalSpec(str(run.best_checkpoint), DatasetSpec("procedural", seed=1, num_images=scale.val_size))
    return eval_jobs.launch(spec, roots=roots)


if __name__ == "__main__":
    sys.exit(main())
