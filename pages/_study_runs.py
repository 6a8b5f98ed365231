"""A study's variant runs, for the Training page (under the study's entry) and the link
from a variant run to its evaluation (shared with the Paper lab page).

Read-only: each variant is an ordinary run folder under the study's `runs/`, written by
its `ssd.train` process; Cancel and Resume act on the study (one queue entry), so there
are no per-variant controls here. Thin: `explorer.jobs.study` reads, the figures are
`explorer.views.training`'s, the table `explorer.views.paper_lab`'s.
"""
from __future__ import annotations

import streamlit as st

from pages import _ui

from explorer.jobs import manager as jobs
from explorer.jobs.study import StudyInfo, VariantRun, evaluate_run
from explorer.views import paper_lab as lab_views
from explorer.views.training import loss_figure, map_figure

EVALUATION_PAGE = "pages/evaluation.py"


def evaluate(info: StudyInfo, run: VariantRun, flash_key: str, goto_key: str) -> None:
    """Button callback: launch (or find in the cache) the evaluation of `run`'s best.pt,
    select it on the Evaluation page and ask the page's fragment to go there
    (`session_state[goto_key]`, popped by the page: st.switch_page cannot run in a callback)."""
    try:
        eval_dir = evaluate_run(info, run, roots=_ui.data_roots())
    except Exception as e:  # noqa: BLE001 - EvalInputError / JobError: shown, the page goes on
        _ui.flash(flash_key, "error", f"Cannot evaluate {run.name}: {e}")
        return
    st.session_state["eval_a"] = eval_dir.name
    st.session_state[goto_key] = EVALUATION_PAGE


def variant_runs(info: StudyInfo, flash_key: str, goto_key: str) -> None:
    """The study's runs as a table, then the picked one: its progress, loss and mAP curves,
    the end of its train.log and a button to its evaluation (error types per level)."""
    st.markdown("**Variant runs** of study " + _ui.plain(f"{info.study} ({info.scale} scale)") +
                ": each an ordinary training run under the study's `runs/` folder, run one after another. "
                "Cancel and Resume above act on the whole study.")
    st.dataframe(lab_views.run_rows(info), hide_index=True, key="train_study_runs", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
    names = [r.name for r in info.runs]
    if st.session_state.get("train_variant") not in names:  # the live run, else the last one that ran
        live = [r.name for r in info.runs if r.state in ("queued", "running")]
        ran = [r.name for r in info.runs if r.state != "pending"]
        st.session_state["train_variant"] = (live or ran or names)[-1 if not live and ran else 0]
    pick = st.selectbox("Variant run", names, key="train_variant")
    run = next(r for r in info.runs if r.name == pick)
    if run.state == "pending":
        st.info(_ui.plain(f"{run.name} has not started yet: the study runs its variants in turn."))
        return
    rinfo = jobs.read_run(run.run_dir)
    steps = f"step {rinfo.step}/{rinfo.total_steps}" if rinfo.total_steps else "starting"
    st.progress(rinfo.progress, text=_ui.plain(f"{run.name}: {rinfo.state} · {steps} · {rinfo.message}"))
    c = st.columns(3)
    c[0].metric("Best mAP", "–" if rinfo.best_map is None else f"{rinfo.best_map:.4f}")
    c[1].metric("Images / s", "–" if rinfo.images_per_s is None else f"{rinfo.images_per_s:.1f}")
    c[2].metric("Elapsed", rinfo.row()["elapsed"] or "–")
    log_rows, eval_rows, _ = jobs.read_metrics_checked(run.run_dir)
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure(log_rows, f"Training loss · {run.name}"), width="stretch",
                    key="train_variant_loss")
    c2.plotly_chart(map_figure(eval_rows, f"Validation mAP · {run.name}"), width="stretch",
                    key="train_variant_map_chart")
    ready = run.state == "finished" and run.best_checkpoint is not None
    st.button("Open its evaluation", key="train_variant_evaluate", disabled=not ready,
              on_click=evaluate, args=(info, run, flash_key, goto_key),
              help="Evaluates this run's best.pt on the study's validation scenes and opens the Evaluation "
                   "page (error types per level, misses by cause)" if ready else "Once the run has finished")
    st.caption(_ui.plain(f"{run.name}: train.log (last lines)"))
    st.code(jobs.tail_log(run.run_dir, 15) or "(empty)", language=None)
