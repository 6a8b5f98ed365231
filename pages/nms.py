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
    "keeps the top k (200) detections. Dotted boxes were removed; the table of every candidate names "
    "the kept box that removed each and their IoU.",
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


# The floor data's large arrays: sent to the page once per model / image / GT (`_live.mount`'s `held`).
HELD_FIELDS = ("boxes_px_in", "boxes_px", "scores", "labels", "default_index", "level", "row", "col")


def _floor_data(ctx) -> tuple[str, dict]:
    """The live figure's data that no threshold changes (`live_data.nms_data` at the floor),
    built once per model, image and GT in this session (`_live.held_data`).
    Returns (its id, the data)."""
    img, gt = ctx.image, ctx.gt

    def build() -> dict:
        raw = _cache.raw_outputs(ctx.model_key, img.digest, ctx.loaded.model, img.image)
        db = raw.default_boxes
        data = live_data.nms_data(raw.scores, raw.boxes_px_in, raw.boxes_xyxy_px, db.level, ctx.loaded.class_names,
                                  img.image_hw, _workspace.get().thresholds.as_dict(), {},
                                  _cache.image_uri(img.digest, img.image),
                                  row=db.row, col=db.col, num_levels=len(db.feature_maps))
        return {**data, "gt_px": gt.boxes_xyxy.tolist()}

    return _live.held_data("nms", (ctx.model_key, img.digest, tuple(map(tuple, gt.boxes_xyxy.tolist()))), build)


def _live_figure(ctx, thresholds: dict, draw: dict) -> bool:
    """The NMS figure computed in the page (True when it is in charge)."""
    floor_id, floor = _floor_data(ctx)
    data = {**floor, "score_thresh": float(thresholds["score_thresh"]), "nms_thresh": float(thresholds["nms_thresh"]),
            "detections_per_img": int(thresholds["detections_per_img"]), "draw": {**draw, "gt_px": floor["gt_px"]}}
    return _live.mount("nms", data, _live_commit, held=(floor_id, HELD_FIELDS))


def _draw_options(ctx, present: list[str]) -> dict:
    """The figure's drawing options (checkboxes and the class shown)."""
    c4, c5, c6 = st.columns(3)
    show_sup = c4.checkbox("show suppressed boxes", True, key="nms_show_sup")
    show_links = c5.checkbox("link each to its suppressor", True, key="nms_links")
    if st.session_state.get("nms_class") not in [nv.ALL_CLASSES] + present:
        st.session_state["nms_class"] = nv.ALL_CLASSES
    only = c6.selectbox("Class", [nv.ALL_CLASSES] + present, key="nms_class",
                        help="NMS runs per class: pick one to see its candidates and suppressions alone.")
    return {"show_suppressed": show_sup, "show_links": show_links,
            "only_class": None if only == nv.ALL_CLASSES else only}


def _live_section(ctx) -> None:
    """The page with the live figure in charge: its sliders, counts, tables and downloads
    are computed in the browser; a release reruns only `_live_part` (the values synced)."""
    names = ctx.loaded.class_names
    present = sorted({names[c] for c in _floor_data(ctx)[1]["labels"]}, key=names.index)
    _live_part(ctx, _draw_options(ctx, present))
    # The ground truth to trace (a detection: a click on its box); no threshold changes this list.
    _trace_link.trace_row(ctx, "nms", kinds=("gt",))


@st.fragment
def _live_part(ctx, draw: dict) -> None:
    """The live figure alone: a release (a slider let go, a click on a box) reruns this
    part: the workspace takes the values (`_live_commit`), the URL follows."""
    _live_figure(ctx, _workspace.get().thresholds.as_dict(), draw)
    error = st.session_state.pop(PICK_ERROR_KEY, None)
    if error:
        st.warning(_ui.plain(error))
    _trace_link.picked_caption(ctx, "Click a box on the figure to pick that object for *Trace one object*.")
    _workspace.sync_url()


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _nms_section(ctx) -> None:
    if _live.enabled() and st.session_state.get("_live_ready_nms"):
        _live_section(ctx)
        return
    t = _workspace.threshold_sliders("nms")  # the same values on Per-scale and Trace
    names = ctx.loaded.class_names
    stg = _cache.current_stages(ctx, **_workspace.stage_kwargs(t))
    all_records = nv.candidate_records(stg, names)
    draw = _draw_options(ctx, sorted({r["class"] for r in all_records}, key=names.index))
    only = draw["only_class"] or nv.ALL_CLASSES
    records = nv.filter_by_class(all_records, only)
    per_class, per_level = nv.count_table(all_records, stg.detections, names, len(stg.feature_sizes))
    m1, m2, m3 = st.columns(3)
    m1.metric("Candidates before NMS", len(records))
    m2.metric("Kept by NMS", sum(r["kept"] for r in records))
    final_rows = nv.filter_by_class(nv.detection_rows(stg.detections.to_records(names)), only)
    m3.metric("Final detections (after top k)", len(final_rows))
    img = ctx.image
    if not _live_figure(ctx, t.as_dict(), draw):  # (once the browser has run it, `_live_section` draws the page)
        _live.fallback_note()
        fig = nv.nms_figure(records, _cache.image_uri(img.digest, img.image), img.image_hw,
                            draw["show_suppressed"], draw["show_links"],
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
