"""Run a study: its variants one after another, each an ordinary `ssd.train` run, resumably.

The study folder OUT:
    OUT/study.json              the grid, the scale, the seeds, the command (written once; a
                                restart with another study, scale or seeds is refused)
    OUT/results.json            every finished run's AP / AP50 / AP_small and the table
                                (`ssd.ablation.table`), rewritten after each run
    OUT/box_configs/NAME.json   the made box configs (`--box-config` files)
    OUT/runs/<variant>-s<seed>/ each run: an ordinary run folder (`ssd.training.runlog`)
    OUT/logs/<variant>-s<seed>.log  what the run printed

Resuming: a run whose status says finished and that has its final evaluation is kept;
one with checkpoints/last.pt continues with `--resume`; anything else starts afresh.
Each run is a child process `python -m ssd.train` in this process's group: a SIGTERM to
the group (the app's Cancel) stops the run (it saves last.pt) and the study together;
a KeyboardInterrupt or SIGTERM here stops the run too and waits for it to save.
"""
from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ssd.ablation.studies import (
    BOX_CONFIGS_DIR, SCALES, STUDIES, Scale, Study, made_box_config, resolve_options, run_name,
)
from ssd.ablation.table import build_table
from ssd.io import write_json_atomic
from ssd.training import runlog

STUDY_FILE = "study.json"
RESULTS_FILE = "results.json"
STOP_WAIT_S = 120.0  # how long a stopped study waits for its run to save last.pt

Progress = Callable[[int, int, str], None]  # (runs done, runs in all, message)


def plan(study: Study, scale: Scale, seeds: list[int]) -> list[tuple[str, int]]:
    """(variant, seed) of every run, in the order they run: seed by seed, so a study
    stopped early has every variant at the first seeds."""
    return [(v.name, s) for s in seeds for v in study.variants]


def study_record(study: Study, scale: Scale, seeds: list[int], command: str) -> dict:
    """What study.json holds: enough to read the results without this code's version."""
    return {
        "study": study.name, "title": study.title, "source": study.source, "scale": scale.name, "seeds": seeds,
        "scale_settings": study.scaled(scale).__dict__, "recipe": study.recipe, "command": command,
        "grid": [{"name": v.name, "what": v.what, "changes": v.changes, "paper": v.paper} for v in study.variants],
        "created_at": time.time(),
    }


def _check_same(out: Path, record: dict) -> None:
    """Refuse to resume OUT with another study, scale or seeds."""
    old = runlog.read_json(out / STUDY_FILE)
    for key in ("study", "scale", "seeds"):
        if old.get(key) != record[key]:
            raise ValueError(f"{out / STUDY_FILE}: this folder holds {key} {old.get(key)!r}, not {record[key]!r}; "
                             "use another --out, or the same settings to resume")


def make_box_configs(study: Study, scale: Scale, out: Path) -> None:
    """Write each variant's made box config (once; kept on resume)."""
    from ssd.ablation.boxes import make_box_config  # torch: only when a study runs

    for v in study.variants:
        name = made_box_config(study, v)
        path = out / BOX_CONFIGS_DIR / f"{name}.json"
        if name and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(path, make_box_config(name, scale, study.recipe).to_dict())


def run_result(run_dir: Path) -> dict | None:
    """A finished run's final evaluation {"AP", "AP50", "AP_small", "step", "seconds"}; None otherwise."""
    status = runlog.read_status(run_dir) or {}
    if status.get("state") != "finished":
        return None
    _, evals = runlog.split_records(runlog.read_metrics(run_dir))
    if not evals or evals[-1].get("step") != status.get("step"):
        return None
    last = evals[-1]
    return {"AP": last["map"], "AP50": last["ap50"], "AP_small": last["ap_small"], "step": last["step"],
            "seconds": (status.get("updated_at") or 0) - (status.get("started_at") or 0)}


def _train_argv(opts, run_dir: Path) -> list[str]:
    """`python -m ssd.train` for one run: --resume when last.pt exists, else a clean folder."""
    argv = [sys.executable, "-m", "ssd.train", *opts.to_argv()]
    if runlog.paths(run_dir).last.is_file():
        return argv + ["--resume"]
    if run_dir.exists():
        shutil.rmtree(run_dir)  # a run that never saved: start it again
    return argv


def _train(argv: list[str], log_path: Path) -> int:
    """Run `argv` to its end; a KeyboardInterrupt or SIGTERM here stops it (it saves) first."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        try:
            return proc.wait()
        except BaseException:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=STOP_WAIT_S)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise


def run_study(study_name: str, scale_name: str, seeds: list[int], out: Path | str, command: str = "",
              device: str = "auto", progress: Progress | None = None) -> dict:
    """Run (or resume) a study in `out`; returns results.json's dict (module docstring).
    ValueError names an unknown study or scale, or an OUT holding another study."""
    if study_name not in STUDIES:
        raise ValueError(f"unknown study {study_name!r}; choose one of {sorted(STUDIES)}")
    if scale_name not in SCALES:
        raise ValueError(f"unknown scale {scale_name!r}; choose one of {sorted(SCALES)}")
    study, scale, out = STUDIES[study_name], SCALES[scale_name], Path(out)
    seeds = [int(s) for s in seeds]
    record = study_record(study, scale, seeds, command)
    out.mkdir(parents=True, exist_ok=True)
    if (out / STUDY_FILE).is_file():
        _check_same(out, record)
    else:
        write_json_atomic(out / STUDY_FILE, record)
    progress = progress or (lambda done, total, message: None)
    make_box_configs(study, scale, out)
    runs = plan(study, scale, seeds)
    results: dict = {}
    for i, (variant, seed) in enumerate(runs):
        name = run_name(variant, seed)
        run_dir = out / "runs" / name
        res = run_result(run_dir)
        if res is None:
            opts = resolve_options(study, study.variant(variant), scale, seed, out)
            opts = dataclasses.replace(opts, device=device)
            progress(i, len(runs), f"run {i + 1}/{len(runs)}: {variant}, seed {seed}")
            code = _train(_train_argv(opts, run_dir), out / "logs" / f"{name}.log")
            res = run_result(run_dir)
            if res is None:
                status = runlog.read_status(run_dir) or {}
                res = {"failed": f"exit {code}: {status.get('message', 'no status')}"}
        results[name] = {"variant": variant, "seed": seed, **res}
        _write_results(out, record, study, results)
    progress(len(runs), len(runs), "finished")
    return _write_results(out, record, study, results)


def _write_results(out: Path, record: dict, study: Study, results: dict) -> dict:
    doc = {"study": record["study"], "scale": record["scale"], "seeds": record["seeds"],
           "command": record["command"], "runs": results, "table": build_table(study, results)}
    write_json_atomic(out / RESULTS_FILE, doc)
    return doc


def read_results(out: Path | str) -> dict | None:
    """OUT/results.json, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(out) / RESULTS_FILE).read_text())
    except (OSError, ValueError):
        return None


def command_line(argv: list[str]) -> str:
    """The shell form of a study's command."""
    return "python -m ssd.ablate " + " ".join(shlex.quote(a) for a in argv)
