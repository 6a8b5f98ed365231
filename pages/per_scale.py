"""Per-scale detections: what each feature map scores and detects (Sec. 2.1, Fig. 1)."""
import streamlit as st

from explorer.views import matching as mv
from explorer.views import per_scale as psv
from explorer.workspace import SCORE_RANGE
from pages import _cache, _sidebar, _trace_link, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Per-scale detections",
    "Each feature map predicts only with its own default boxes, whose size grows as the map "
    "shrinks: a big map with small cells finds small objects, a small map with big cells finds "
    "big ones. Below, each level's grid is coloured by the best score of the chosen class in each "
    "cell, with the boxes that level detects on its own (before the final NMS over all levels). "
    "On the cat-and-dog scene the cat lights up on the 8x8 map and the dog on the 4x4 map, as in "
    "the paper's Fig. 1.",
    "Sec. 2.1 \"Multi-scale feature maps for detection\" and Fig. 1",
    shows_detections=True,
)


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _per_scale_section(ctx) -> None:
    names = ctx.loaded.class_names
    options = [psv.ANY_CLASS] + list(range(1, len(names)))
    c1, c2, c3 = st.columns([2, 1, 1])
    cls = c1.selectbox("Class", options, key="ps_class",
                       format_func=lambda c: "any object (best non-background class)" if c == psv.ANY_CLASS else names[c])
    opacity = c2.slider("Heatmap opacity", 0.0, 1.0, 0.9, 0.05, key="ps_opacity")
    ws = _workspace.get()
    level_thr = _workspace.bound(
        "slider", "ps_level_score_thresh", lambda: ws.thresholds.score_thresh, lambda v: ws.set_thresholds(score_thresh=v),
        "Score threshold (score_thresh)", *SCORE_RANGE, step=0.01, container=c3,
        help="Each panel shows the boxes its level detects on its own (per-level NMS) above this score; the "
             "final NMS over all levels is on the NMS page. The same threshold as on NMS and Trace.")

    stg = _cache.current_stages(ctx, level_score_thresh=level_thr, **_workspace.stage_kwargs(ws.thresholds))
    maps, classes = psv.level_score_maps(stg.scores, stg.feature_sizes, cls)
    img = ctx.image
    cfg = ctx.loaded.model.cfg
    level_names = list(ctx.loaded.model.level_names)
    gt = ctx.gt
    gt_best = mv.best_default_boxes(_cache.default_boxes_of(cfg), gt.boxes_xyxy, img.image_hw)
    fig = psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, cfg.image_size,
                               _cache.image_uri(img.digest, img.image), img.image_hw, names, level_names,
                               opacity=opacity, gt_xyxy_px=gt.boxes_xyxy.numpy(), gt_names=gt.names, gt_best=gt_best)
    _ui.show_plotly(fig, key="ps_chart", on_select="rerun", selection_mode="points")
    _trace_link.chart_pick(ctx, "ps_chart")
    if gt_best:
        st.caption("Cyan dotted: ground truth. A cyan ring marks the cell of each ground truth's best default "
                   "box, on the panel of its level: the map that should find it. " + _ui.plain("; ".join(
                       f"GT {b['gt']} ({gt.names[b['gt']]}): level {b['level']}, cell ({b['row']}, {b['col']}), "
                       f"IoU {b['iou']:.2f}" for b in gt_best)))
    rows = psv.level_summary(maps, classes, stg.level_detections, stg.feature_sizes, names, level_names)
    st.dataframe(rows, hide_index=True, width="stretch")
    dets = [dict(d, level=k) for k, det in enumerate(stg.level_detections) for d in det.to_records(names)]
    _ui.download_buttons("Per-level summary", rows, key="per_scale_levels")
    _ui.download_buttons("Per-level detections", dets, key="per_scale_detections")
    # In the fragment, with the figure: a click on it moves the row's selector at once.
    _trace_link.trace_row(ctx, "ps")
    _workspace.sync_url()


_per_scale_section(ctx)
