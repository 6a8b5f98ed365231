"""Paper lab page: run the paper's ablations (Tables 2 and 3, the zoom-out, mining, tuned
boxes) in the background and read them in the paper's form, with error bars.

Thin: widgets -> `explorer.jobs.study` (launch, read, evaluate a run) and
`explorer.jobs.manager` (cancel, resume); tables from `explorer.views.paper_lab`.
A study is one background job; the watch section re-reads the disk every 2 s.
"""
from __future__ import annotations

import streamlit as st

from pages import _study_runs, _ui
from pages._ui import require_app_frame

from explorer.jobs import manager as jobs
from explorer.jobs.limits import JobError
from explorer.jobs.study import launch_study, list_studies
from explorer.views import paper_lab as views

require_app_frame()

REFRESH_S = 2.0


def _flash(kind: str, text: str) -> None:
    _ui.flash("lab_flash", kind, text)


def _launch(runs_dir) -> None:
    study, scale = st.session_state["lab_study"], st.session_state["lab_scale"]
    try:
        job_dir = launch_study(runs_dir, study, scale, int(st.session_state["lab_seeds"]), _ui.devices())
    except (JobError, OSError) as e:
        _flash("error", f"Not launched: {e}")
        return
    st.session_state["lab_selected"] = job_dir.name
    _flash("success", f"Launched {job_dir.name}.")


def _act(action, job_dir, done: str) -> None:
    try:
        action(job_dir)
    except JobError as e:
        _flash("error", str(e))
        return
    _flash("success", done)


def launch_form(runs_dir) -> None:
    c1, c2, c3 = st.columns([3, 1, 1])
    study = c1.selectbox("Study", views.STUDY_NAMES, key="lab_study", format_func=views.study_label)
    scale = c2.selectbox("Scale", views.SCALE_NAMES, key="lab_scale", index=views.SCALE_NAMES.index("smoke"))
    c3.number_input("Seeds (0: the scale's)", 0, 10, 0, key="lab_seeds")
    st.caption(_ui.plain(f"{scale}: {views.scale_text(scale, study)}"))
    st.dataframe(views.grid_rows(study), hide_index=True, key="lab_grid")
    st.button("Launch study", type="primary", key="lab_launch", on_click=_launch, args=(runs_dir,))


def study_details(info) -> None:
    live = info.state in ("queued", "running")
    st.progress(min(max(info.progress, 0.0), 1.0), text=_ui.plain(f"{info.state} · {info.message}"))
    b = st.columns(3)
    b[0].button("Cancel", key="lab_cancel", disabled=not (live and info.alive), on_click=_act,
                args=(jobs.cancel, info.job_dir, f"Cancel sent to {info.name}."),
                help="Stops the current training run (it saves last.pt) and the study")
    b[1].button("Resume", key="lab_resume", disabled=info.state not in ("cancelled", "failed"), on_click=_act,
                args=(jobs.resume, info.job_dir, f"Resumed {info.name}."), help="Finished runs are kept")
    st.markdown("**Runs** (each an ordinary run folder under the study's `runs/`)")
    st.dataframe(views.run_rows(info), hide_index=True, key="lab_runs", column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)})
    st.markdown("**Results** in the paper's form")
    st.dataframe(views.result_rows(info), hide_index=True, key="lab_results")
    st.caption(views.method_text())
    with st.expander("Learning curves (have they flattened?)"):
        st.plotly_chart(views.curves_figure(info, lambda d: jobs.read_metrics(d)[0]), width="stretch",
                        key="lab_curves")
    runs = views.evaluable_runs(info)
    if runs:
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox("See how a variant fails: its evaluation (error types per level)",
                            [r.name for r in runs], key="lab_eval_pick")
        run = next(r for r in runs if r.name == pick)
        c2.button("Evaluate", key="lab_evaluate", on_click=_study_runs.evaluate,
                  args=(info, run, "lab_flash", "_lab_goto"),
                  help="Opens the Evaluation page on this run's best.pt (validation scenes, default object sizes)")


@st.fragment(run_every=REFRESH_S)
def watch(runs_dir) -> None:
    goto = st.session_state.pop("_lab_goto", None)
    if goto:
        st.switch_page(goto)
    _ui.show_flash("lab_flash")
    studies = list_studies(runs_dir)
    st.subheader(f"Studies ({len(studies)})")
    if not studies:
        st.info("No studies yet: pick one above and launch it.")
        return
    names = [s.name for s in studies]
    if st.session_state.get("lab_selected") not in names:
        st.session_state["lab_selected"] = names[0]
    name = st.selectbox("Selected study", names, key="lab_selected")
    study_details(next(s for s in studies if s.name == name))


st.title("Paper lab")
st.markdown(
    "The paper's tables say *why* each piece of SSD is there. Re-run them here: each study trains "
    "the full recipe and its variants with several seeds, one after another in the background, and "
    "shows the difference from the full recipe with a 95% interval beside the paper's own number. "
    "Small scales answer small questions: an effect counts only when its interval excludes zero."
)
RUNS_DIR = jobs.default_runs_dir()
launch_form(RUNS_DIR)
st.divider()
watch(RUNS_DIR)
