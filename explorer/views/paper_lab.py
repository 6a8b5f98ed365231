"""Tables of the Paper lab page: the studies to pick, each variant run's progress, and a
study's results in the paper's form (`ssd.ablation.table`). Pure functions of
`explorer.jobs.study.StudyInfo`; no streamlit import.
"""
from __future__ import annotations

import plotly.graph_objects as go

from ssd.ablation.stats import METHOD
from ssd.ablation.studies import SCALES, STUDIES
from ssd.ablation.table import build_table, display_rows

STUDY_NAMES = tuple(STUDIES)
SCALE_NAMES = tuple(SCALES)


def study_label(name: str) -> str:
    """"table2: Effects of design choices (Table 2)"."""
    s = STUDIES[name]
    return f"{s.name}: {s.title} ({s.source})"


def scale_text(name: str, study: str = "") -> str:
    """What a scale trains, in one line (with `study`'s run length when given)."""
    s = STUDIES[study].scaled(SCALES[name]) if study else SCALES[name]
    return (f"{s.seeds} seed(s) per variant by default; each run: {s.max_steps} steps of {s.batch_size} images "
            f"from {s.train_size} procedural scenes (compact256, 256 px), evaluated on {s.val_size} scenes")


def grid_rows(name: str) -> list[dict]:
    """The study's variants before any result: what each changes and the paper's number."""
    study = STUDIES[name]
    return [{"variant": v.name, "what changed": v.what,
             "options": ", ".join(f"--{k.replace('_', '-')} {val}" for k, val in v.changes.items()) or "(full recipe)",
             "paper mAP": "-" if v.paper is None else f"{v.paper:.1f}",
             "paper diff": "-" if study.paper_diff(v) is None else f"{study.paper_diff(v):+.1f}"}
            for v in study.variants]


def run_rows(info) -> list[dict]:
    """One row per training run of a study (`StudyInfo.runs`): state and progress."""
    rows = []
    for r in info.runs:
        done = r.state == "finished"
        progress = 1.0 if done else (r.step / r.total_steps if r.total_steps else 0.0)
        rows.append({"run": r.name, "variant": r.variant, "seed": r.seed, "state": r.state,
                     "progress": round(min(max(progress, 0.0), 1.0), 3),
                     "step": f"{r.step}/{r.total_steps}" if r.total_steps else "-"})
    return rows


def result_rows(info) -> list[dict]:
    """The study's table in the paper's form, from the runs finished so far."""
    results = (info.results or {}).get("runs", {})
    return display_rows(build_table(STUDIES[info.study], results))


def method_text() -> str:
    """How the numbers are computed (shown under the table)."""
    return (f"Percent. {METHOD}. The verdict compares the AP50 difference with the paper's VOC2007 mAP "
            "difference: 'same direction as the paper', 'opposite', or 'within noise at this scale'.")


def evaluable_runs(info) -> list:
    """The study's runs that have a best.pt to evaluate (error types per level)."""
    return [r for r in info.runs if r.best_checkpoint is not None and r.state == "finished"]


def curves_figure(info, read_rows) -> go.Figure:
    """The total training loss of every run of the study, one line per run, so a reader sees
    whether the curves have flattened by the end. `read_rows(run_dir)` -> log rows
    ({"step", "loss", ...}, `explorer.jobs.metrics.read_metrics`'s first list)."""
    fig = go.Figure()
    for r in info.runs:
        rows = [row for row in read_rows(r.run_dir) if row.get("step") is not None and row.get("loss") is not None]
        if rows:
            fig.add_trace(go.Scatter(x=[row["step"] for row in rows], y=[row["loss"] for row in rows],
                                     mode="lines", name=r.name))
    fig.update_layout(title="Training loss per run (total, Eq. 1)", height=340, xaxis_title="step",
                      yaxis_title="loss", yaxis_type="log", margin=dict(l=40, r=10, t=40, b=40))
    return fig
