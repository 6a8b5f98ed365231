"""NMS: from candidates to detections, with who suppressed whom (Sec. 3)."""
import streamlit as st

from explorer.views import live_data
from explorer.views import nms as nv
from pages import _cache, _live, _sidebar, _trace_link, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Non-maximum suppression",
    "The levels together propose many overlapping boxes for one object. SSD keeps, per class, "
    "the candidates scoring above a threshold, then greedily takes the best box and removes every "
    "box of the same class that overlaps it by more than the IoU threshold (0.45), and finally "
    "keeps the top k (200) detections. Dotted boxes were removed; hover one to see which kept box "
    "removed it and their IoU.",
    "Sec. 3.7, \"Inference time\" (\"nms with jaccard overlap of 0.45 per class ... top 200 detections\")",
    shows_detections=True,
)


PICK_ERROR_KEY = "_nms_live_pick_error"  # why a click on the live figure could not be traced


def _live_commit(values: dict) -> None:
    """The live figure's released values (before this run's script): the workspace's
    thresholds, and the object a click on a box picked for the Trace page ("pick")."""
    try:
        _workspace.get().set_thresholds(score_thresh=float(values["score_thresh"]),
                                         nms_thresh=float(values["nms_thresh"]),
                                         detections_per_img=int(values["detections_per_img"]))
    except (KeyError, TypeError, ValueError):
        pass  # a value outside the workspace's ranges: the figure shows the workspace's again
    if "pick" in values:
        st.session_state[PICK_ERROR_KEY] = _trace_link.pick(ctx, values["pick"])


def _live_figure(ctx, stg, thresholds: dict, draw: dict) -> bool:
    """The NMS figure computed in the page (True when it is in charge)."""
    img, raw = ctx.image, stg.raw
    data = live_data.nms_data(raw.scores, raw.boxes_px_in, raw.boxes_xyxy_px, raw.default_boxes.level,
                              ctx.loaded.class_names, img.image_hw, thresholds,
                              {**draw, "gt_px": ctx.gt.boxes_xyxy.tolist()}, _cache.image_uri(img.digest, img.image))
    return _live.mount("nms", data, _live_commit)


def _threshold_controls(live: bool):
    """The workspace's thresholds (the same on Per-scale and Trace): the live figure's
    sliders set them when it is in charge; otherwise the server sliders."""
    if live:
        return _workspace.get().thresholds
    return _workspace.threshold_sliders("nms")


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _nms_section(ctx) -> None:
    live = _live.enabled() and bool(st.session_state.get("_live_ready_nms"))
    t = _threshold_controls(live)
    c4, c5, c6 = st.columns(3)
    show_sup = c4.checkbox("show suppressed boxes", True, key="nms_show_sup")
    show_links = c5.checkbox("link each to its suppressor", True, key="nms_links")

    names = ctx.loaded.class_names
    stg = _cache.current_stages(ctx, **_workspace.stage_kwargs(t))
    all_records = nv.candidate_records(stg, names)
    present = sorted({r["class"] for r in all_records}, key=names.index)
    if st.session_state.get("nms_class") not in [nv.ALL_CLASSES] + present:
        st.session_state["nms_class"] = nv.ALL_CLASSES
    only = c6.selectbox("Class", [nv.ALL_CLASSES] + present, key="nms_class",
                        help="NMS runs per class: pick one to see its candidates and suppressions alone.")
    records = nv.filter_by_class(all_records, only)
    per_class, per_level = nv.count_table(all_records, stg.detections, names, len(stg.feature_sizes))
    m1, m2, m3 = st.columns(3)
    m1.metric("Candidates before NMS", len(records))
    m2.metric("Kept by NMS", sum(r["kept"] for r in records))
    final_rows = nv.filter_by_class(nv.detection_rows(stg.detections.to_records(names)), only)
    m3.metric("Final detections (after top k)", len(final_rows))
    img = ctx.image
    live = _live_figure(ctx, stg, t.as_dict(),
                        {"show_suppressed": show_sup, "show_links": show_links,
                         "only_class": None if only == nv.ALL_CLASSES else only})
    if live:
        error = st.session_state.pop(PICK_ERROR_KEY, None)
        if error:
            st.warning(_ui.plain(error))
        _trace_link.picked_caption(ctx, "Click a box on the figure to pick that object for *Trace one object*.")
    else:
        _live.fallback_note()
        fig = nv.nms_figure(records, _cache.image_uri(img.digest, img.image), img.image_hw, show_sup, show_links,
                            gt_xyxy_px=ctx.gt.boxes_xyxy.numpy(), gt_names=ctx.gt.names)
        _ui.show_plotly(fig, key="nms_chart", on_select="rerun", selection_mode="points")
        _trace_link.chart_pick(ctx, "nms_chart")
    t1, t2 = st.columns(2)
    t1.markdown("**Per class**")
    t1.dataframe(per_class, hide_index=True, width="stretch")
    t2.markdown("**Per level**")
    t2.dataframe(per_level, hide_index=True, width="stretch")
    st.markdown("**Every candidate** (suppressed ones name their suppressor)")
    st.dataframe(records, hide_index=True, width="stretch")
    _ui.download_buttons("Candidates and suppression", records, key="nms_candidates",
                             payload={**t.as_dict(),
                                      "per_class": per_class, "per_level": per_level, "candidates": records})
    st.markdown("**Final detections**")
    st.dataframe(final_rows, hide_index=True, width="stretch")
    _trace_link.trace_row(ctx, "nms")
    _workspace.sync_url()


_nms_section(ctx)
