"""Evaluation: AP on a whole dataset, and why the errors happen, per feature map.

Thin: widgets -> `explorer.evaluation` (background runs, cache, tuner, gallery) and
`explorer.views.evaluation` (figures). No SSD maths here, no `ssd` import.
"""
from pathlib import Path

import streamlit as st

from explorer import results
from explorer.evaluation import detfile, gallery, jobs, tuner
from explorer.evaluation.spec import DatasetSpec, EvalInputError, EvalSpec
from explorer.inputs import models as models_mod
from explorer.views import evaluation as ev
from pages import _sidebar, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Evaluation",
    "How good is a checkpoint on a whole dataset, and why does it fail? The evaluation runs in the "
    "background (it survives closing the tab) and is cached by checkpoint file, data and thresholds. "
    "It gives COCO AP, TIDE's error types with the AP50 each one costs (dAP), true and false "
    "positives per feature map, why each missed object was missed, PR curves and the class "
    "confusion. The tuner re-runs only post-processing over the kept network outputs.",
    "Sec. 3 (PASCAL VOC / COCO results, Fig. 3 and 4: error analysis with the detection analysis tool)",
)
OTHER_FILE = "__other__"


# ---------------------------------------------------------------- launch
def _checkpoint_input() -> str:
    choices = [c for c in models_mod.list_model_choices() if c.kind in ("checkpoint", "run")]
    ids = [c.model_id for c in choices] + [OTHER_FILE]
    labels = {c.model_id: c.label for c in choices} | {OTHER_FILE: "another checkpoint file (path)"}
    pick = st.selectbox("Checkpoint", ids, key="ev_ckpt", format_func=lambda i: labels.get(i, i))
    if pick == OTHER_FILE:
        return st.text_input("Checkpoint path", key="ev_ckpt_path", placeholder="runs/my_run/checkpoints/best.pt")
    return pick


def _dataset_input() -> DatasetSpec:
    kind = st.radio("Dataset", ["procedural", "voc", "coco"], horizontal=True, key="ev_kind",
                    format_func={"procedural": "procedural scenes", "voc": "VOC folder",
                                 "coco": "COCO JSON + images"}.get)
    c1, c2 = st.columns(2)
    if kind == "procedural":
        seed = c1.number_input("Scene seed (training used 0, validation 1)", 0, 10_000, 1000, key="ev_seed")
        n = c2.number_input("Scenes", 0, 5000, 200, key="ev_n")
        return DatasetSpec("procedural", seed=int(seed), num_images=int(n))
    n = c2.number_input("First N images (0: all)", 0, 1_000_000, 0, key="ev_n_files")
    if kind == "voc":
        root = c1.text_input("VOC folder (JPEGImages/, Annotations/, ImageSets/)", key="ev_voc_root")
        split = c1.text_input("Image set", "val", key="ev_voc_split")
        return DatasetSpec("voc", num_images=int(n), data_root=root, split=split)
    js = c1.text_input("COCO instances JSON", key="ev_coco_json")
    images = c1.text_input("Images folder", key="ev_coco_images")
    return DatasetSpec("coco", num_images=int(n), coco_json=js, coco_images=images)


@st.fragment
def _new_evaluation() -> None:
    with st.expander("New evaluation", expanded=not jobs.list_evals()):
        ckpt = _checkpoint_input()
        data = _dataset_input()
        c1, c2, c3, c4 = st.columns(4)
        start = results.POSTPROCESS_DEFAULTS  # an evaluation uses the library's thresholds (mAP needs the low score)
        s = c1.number_input("Score threshold", 0.0, 1.0, start.score_thresh, 0.01, key="ev_score_thresh")
        iou = c2.number_input("NMS IoU", 0.0, 1.0, start.nms_thresh, 0.05, key="ev_nms_thresh")
        cand = c3.number_input("Candidates per class (top-k into NMS)", 1, 10_000, start.topk_candidates,
                               key="ev_topk_candidates")
        k = c4.number_input("Detections per image (top k)", 0, 10_000, start.detections_per_img,
                            key="ev_detections_per_img")
        if st.button("Evaluate", type="primary", key="ev_go"):
            spec = EvalSpec(str(ckpt).strip(), data, float(s), float(iou), int(cand), int(k))
            try:
                if not spec.checkpoint:
                    raise EvalInputError("no checkpoint given: pick one or type a file path")
                d = jobs.launch(spec, roots=_ui.data_roots())
            except EvalInputError as e:
                st.error("Cannot evaluate this:")
                st.code(str(e), language=None, wrap_lines=True)
                return
            st.session_state["eval_a"] = d.name
            st.rerun(scope="app")


# ---------------------------------------------------------------- the list
def _row_controls(info: jobs.EvalInfo) -> None:
    c1, c2, c3 = st.columns([6, 1, 1])
    if info.live:  # queued or running
        c1.progress(min(max(info.progress, 0.0), 1.0), text=_ui.plain(f"{info.label}: {info.message}"))
        if c2.button("Cancel", key=f"ev_cancel_{info.key}"):
            jobs.cancel(info.eval_dir)
    elif info.state == "failed":
        c1.error(_ui.plain(f"{info.label}: failed: {info.message}"))
    else:
        c1.markdown(f"**{_ui.plain(info.label)}**: {_ui.plain(info.message)}")
    if c3.button("Delete", key=f"ev_del_{info.key}"):
        jobs.delete(info.eval_dir)
        st.rerun(scope="app")


@st.fragment(run_every=2.0)
def _evaluation_list() -> None:
    infos = jobs.list_evals()
    st.subheader("Evaluations")
    if not infos:
        st.caption(_ui.plain(f"None yet. They are kept in {jobs.evaluations_dir()}."))
    for info in infos:
        _row_controls(info)
    states = {i.key: i.state for i in infos}
    seen = st.session_state.get("_ev_states")
    st.session_state["_ev_states"] = states
    if seen is not None and seen != states and any(v == "finished" for v in states.values()):
        st.rerun(scope="app")  # a run ended: redraw the results


# ---------------------------------------------------------------- cached reads
@st.cache_data(show_spinner=False, max_entries=8)
def _result(key: str, updated_at: float, eval_dir: str) -> dict:  # noqa: ARG001 - key the cache
    return jobs.load_result(Path(eval_dir))


@st.cache_resource(show_spinner=False, max_entries=4)
def _kept(key: str, updated_at: float, eval_dir: str):  # noqa: ARG001 - key the cache
    return jobs.load_kept(Path(eval_dir))


@st.cache_data(show_spinner="Post-processing the evaluated images...", max_entries=32)
def _tuned(key: str, updated_at: float, eval_dir: str, score: float, iou: float, detections_per_img: int, n: int,
           errors: bool) -> dict:
    res = _result(key, updated_at, eval_dir)
    return tuner.tune(_kept(key, updated_at, eval_dir), res["class_names"], jobs.model_config(res), score, iou,
                      detections_per_img, topk_candidates=res["thresholds"]["topk_candidates"], num_images=n, errors=errors)


@st.cache_data(show_spinner=False, max_entries=64)
def _thumb(key: str, updated_at: float, eval_dir: str, i: int):
    return gallery.thumbnail(_kept(key, updated_at, eval_dir), _result(key, updated_at, eval_dir), i)


def _load(info: jobs.EvalInfo) -> dict:
    return _result(info.key, info.updated_at, str(info.eval_dir))


# ---------------------------------------------------------------- figures
def _pair(builder, results: list[dict], key: str) -> None:
    """One figure per evaluation, side by side, on one scale (`ev.side_by_side`)."""
    for n, (col, fig) in enumerate(zip(st.columns(len(results)), ev.side_by_side(builder, results))):
        with col:
            _ui.show_plotly(fig, key=f"{key}_{n}")


def _results(infos: list[jobs.EvalInfo]) -> None:
    results = [_load(i) for i in infos]
    names = "AB"
    for n, (col, info, res) in enumerate(zip(st.columns(len(infos)), infos, results)):
        col.markdown(f"**{names[n] if len(infos) > 1 else ''} {_ui.plain(info.label)}**  \n{res['seconds']:.0f} s, "
                     f"{res['num_images']} images")
        col.dataframe(ev.summary_rows(res), hide_index=True, width="stretch")
        col.markdown("**AP per class**")
        col.dataframe(ev.ap_table(res), hide_index=True, width="stretch")
    st.markdown("**TIDE errors.** Each bar is the AP50 (points) gained if only that kind of error were fixed.")
    _pair(ev.tide_figure, results, "ev_tide")
    st.markdown("**Per feature map.** Detections by the level of their default box; missed objects by the level "
                "of their best default box.")
    _pair(ev.level_figure, results, "ev_level")
    st.caption(ev.LEVEL_COLUMNS_NOTE)
    for col, res in zip(st.columns(len(results)), results):
        col.dataframe(ev.level_rows(res), hide_index=True, width="stretch")
    _pair(ev.causes_figure, results, "ev_causes")
    _pair(ev.pr_figure, results, "ev_pr")
    _pair(ev.confusion_figure, results, "ev_conf")
    if len(results) == 2:
        _differences(*results)
    _ui.download_buttons("Per class AP", ev.ap_table(results[0]), key="ev_ap", payload=results[0])


def _differences(a: dict, b: dict) -> None:
    st.subheader("Differences (B - A)")
    _ui.show_plotly(ev.diff_figure(a, b), key="ev_diff")
    st.dataframe(ev.compare_rows(a, b), hide_index=True, width="stretch")
    try:
        _ui.show_plotly(ev.confusion_figure(a, "Confusion, B - A", ev.confusion_diff(a, b), diverging=True),
                        key="ev_conf_diff")
    except ValueError as e:
        st.info(_ui.plain(e))


# ---------------------------------------------------------------- tuner
def _use_thresholds(checkpoint: str, score: float, iou: float, detections_per_img: int) -> None:
    """Callback: the workspace's one threshold set (Per-scale, NMS, Trace) and model take these."""
    ws = _workspace.get()
    try:
        ws.set_thresholds(score_thresh=score, nms_thresh=iou, detections_per_img=detections_per_img)
    except ValueError as e:
        st.session_state["_ev_sent"] = f"Not used: {e}."
        return
    ws.set_model(checkpoint)
    st.session_state["_ev_sent"] = (f"Per-scale, NMS and Trace now use score {score:g}, NMS IoU {iou:g}, top k "
                                    f"{detections_per_img}; model: {models_mod.checkpoint_label(checkpoint)}.")


@st.fragment
def _tuner(info: jobs.EvalInfo) -> None:
    res = _load(info)
    kept = _kept(info.key, info.updated_at, str(info.eval_dir))
    st.subheader("Dataset threshold tuner")
    st.caption(_ui.plain(f"Over the kept network outputs of {info.label}: only post-processing and AP run again, "
                         "never the network. The first values are the evaluation's own thresholds."))
    c1, c2, c3, c4 = st.columns(4)
    floor = float(kept.floor)
    score = c1.slider("Score threshold", floor, 0.95, max(floor, float(res["thresholds"]["score_thresh"])), 0.01,
                      key="evt_score_thresh")
    iou = c2.slider("NMS IoU threshold", 0.05, 0.95, results.POSTPROCESS_DEFAULTS.nms_thresh, 0.05,
                    key="evt_nms_thresh")
    detections_per_img = c3.slider("Top k detections", 1, 400, min(400, int(res["thresholds"]["detections_per_img"])), 1,
                      key="evt_detections_per_img")
    n = c4.number_input("Images", 1, kept.num_images, min(kept.num_images, 200), key="evt_n",
                        help="Tune over the first N evaluated images (fewer: faster).")
    errors = st.checkbox("TP / FP / recall per level and TIDE dAP (slower)", key="evt_errors")
    try:
        t = _tuned(info.key, info.updated_at, str(info.eval_dir), float(score), float(iou), int(detections_per_img), int(n),
                   bool(errors))
    except ValueError as e:
        st.error(_ui.plain(e))
        return
    m = st.columns(6)
    m[0].metric("AP@[.5:.95]", f"{t['AP']:.3f}")
    m[1].metric("AP50", f"{t['AP50']:.3f}")
    m[2].metric("Recall (IoU .5)", f"{t['recall']:.3f}")
    m[3].metric("Precision (IoU .5)", f"{t['precision']:.3f}")
    m[4].metric("Candidates into NMS per image", f"{t['candidates'] / t['num_images']:.1f}")
    m[5].metric("Post-processing ms per image", f"{t['postprocess_ms_per_image']:.2f}",
                help="Candidate selection + NMS (ssd.postprocess.postprocess), this server's CPU.")
    c1, c2 = st.columns(2)
    c1.markdown("**Per class**")
    c1.dataframe(t["per_class"], hide_index=True, width="stretch")
    c2.markdown("**Per level**")
    c2.dataframe(t["per_level"], hide_index=True, width="stretch")
    _ui.show_plotly(ev.tuner_level_figure(t), key="evt_levels")
    if "errors" in t:
        st.caption("TIDE dAP at these thresholds: " + ", ".join(f"{k} {v:.2f}" for k, v in t["errors"]["dAP"].items()))
    st.button("Use these thresholds in the explorer", key="evt_use", on_click=_use_thresholds,
              args=(res["checkpoint"], float(score), float(iou), int(detections_per_img)))
    if st.session_state.get("_ev_sent"):
        st.success(_ui.plain(st.session_state["_ev_sent"]))
    st.code(tuner.detect_flags(res["checkpoint"], score, iou, detections_per_img), language="bash")


# ---------------------------------------------------------------- gallery
def _open_image(source: str, checkpoint: str, page: str) -> None:
    """Open evaluated scene `source` with the evaluated checkpoint on `page`, now (from
    this fragment's run): the workspace first, then the page switch. The user's upload
    stays in the session (the Upload choice brings it back)."""
    ws = _workspace.get()
    ws.choose_sample(source)
    ws.set_model(checkpoint)
    _workspace.open_page(page)


@st.fragment
def _gallery(info: jobs.EvalInfo) -> None:
    res = _load(info)
    st.subheader("Worst images")
    kinds = gallery.gallery_kinds(res)
    c1, c2 = st.columns([3, 1])
    kind = c1.selectbox("Error type or cause of a miss", kinds, key="evg_kind")
    n = c2.number_input("Images", 1, 24, 8, key="evg_n")
    worst = gallery.worst_images(res, kind, int(n))
    if not worst:
        st.info(_ui.plain(f"No image has a {kind} error."))
        return
    st.caption("Cyan: ground truth; green: detections that match one; red: the others "
               f"(score >= {results.DISPLAY_SCORE_THRESH}).")
    cols = st.columns(4)
    for j, w in enumerate(worst):
        col = cols[j % 4]
        col.image(_thumb(info.key, info.updated_at, str(info.eval_dir), w["image"]))
        # Body text, not the image's small grey caption (issue 19 item 11: too small to read).
        col.markdown(f"**image {w['image']}**: " + _ui.plain(f"{w['count']} x {kind}, {w['total_errors']} errors, "
                                                            f"{w['num_gt']} GT"))
        if gallery.is_scene_id(w["source"]):
            b1, b2 = col.columns(2)
            if b1.button("Per-scale", key=f"evg_ps_{j}"):
                _open_image(w["source"], res["checkpoint"], "pages/per_scale.py")
            if b2.button("NMS", key=f"evg_nms_{j}"):
                _open_image(w["source"], res["checkpoint"], "pages/nms.py")
        else:
            col.caption(_ui.plain(w["source"]))


# ---------------------------------------------------------------- a detections file
@st.fragment
def _detections_file(info: jobs.EvalInfo) -> None:
    with st.expander("Score a COCO results file against this evaluation's ground truth"):
        st.caption("Image ids 1..N in the evaluation's order, boxes [x, y, w, h] in network-input pixels "
                   "(what `python -m ssd.evaluate --detections-out` writes).")
        up = st.file_uploader("COCO results JSON", type=["json"], key="ev_detfile")
        if up is None:
            return
        res = _load(info)
        kept = _kept(info.key, info.updated_at, str(info.eval_dir))
        try:
            scored = detfile.score_detections_file(up.name, up.getvalue(), kept, res["class_names"],
                                                   int(res["image_size"]))
        except EvalInputError as e:
            st.error("The detections file was refused:")
            st.code(str(e), language=None, wrap_lines=True)
            return
        st.dataframe(ev.summary_rows(scored), hide_index=True)
        st.dataframe(ev.ap_table(scored), hide_index=True)


# ---------------------------------------------------------------- the page
_new_evaluation()
_evaluation_list()
finished = [i for i in jobs.list_evals() if i.state == "finished"]
if finished:
    st.divider()
    keys = [i.key for i in finished]
    by_key = {i.key: i for i in finished}
    if st.session_state.get("eval_a") not in keys:
        st.session_state["eval_a"] = keys[0]
    c1, c2 = st.columns(2)
    a = c1.selectbox("Show evaluation (A)", keys, key="eval_a", format_func=lambda k: by_key[k].label)
    if st.session_state.get("eval_b") not in [""] + keys or st.session_state.get("eval_b") == a:
        st.session_state["eval_b"] = ""
    b = c2.selectbox("Compare with (B)", [""] + [k for k in keys if k != a], key="eval_b",
                     format_func=lambda k: by_key[k].label if k else "(none)")
    shown = [by_key[a]] + ([by_key[b]] if b else [])
    _results(shown)
    st.divider()
    _tuner(by_key[a])
    st.divider()
    _gallery(by_key[a])
    _detections_file(by_key[a])
