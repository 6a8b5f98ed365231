"""Trace one object: a ground-truth box or a detection, followed through every stage (issue 11)."""
import json

import streamlit as st

from explorer.views import trace as tv
from explorer.views.matching import iou_text
from explorer.views.trace_links import target_key
from explorer.views.trace_figure import trace_figure
from pages import _cache, _sidebar, _trace_link, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Trace one object",
    "Pick a ground-truth box or a detection and follow it through SSD: the default boxes that "
    "could predict it on each feature map, which of them the matching gives it (its forced best "
    "box, and those at IoU >= 0.5), the regression target it sets, what each level predicts for "
    "it, what non-maximum suppression does with its candidates, and the verdict: detected, or the "
    "cause of the miss, as the evaluation's error analysis finds it. The pick stays when you "
    "switch pages; the NMS and Per-scale pages end with a row that sends an object here.",
    "Sec. 2.2 \"Matching strategy\", Eq. 2, Sec. 2.1 and Sec. 3.7 \"Inference time\"",
    shows_detections=True,
)

def _options(ctx, stg, target: dict | None) -> tuple[list[dict], str | None]:
    """The selector's targets (GT boxes, final detections, and a traced prediction that is no
    longer a detection) and the key of the traced target, None when it no longer applies."""
    options = tv.trace_targets(stg, ctx.gt.labels)
    keys = [target_key(t) for t in options]
    if not target:
        return options, None
    want = target_key(target)
    if want not in keys:
        if target["kind"] == "gt":
            return options, None
        names = ctx.loaded.class_names
        if not 0 < target["label"] < len(names):
            return options, None
        options.append(dict(target, text=f"prediction: {names[target['label']]} at default box "
                                         f"{target['default_index']} (not a final detection now)"))
    return options, want


def _pick(ctx, stg, target: dict | None) -> dict | None:
    """The selector, bound to the workspace's traced object; returns the picked target."""
    options, want = _options(ctx, stg, target)
    if not options:
        return None
    if target and want is None:
        st.info("The object you traced is not in this image's ground truth any more (another image, or the "
                "boxes changed): pick one below.")
    keys = [target_key(t) for t in options]
    by_key = dict(zip(keys, options))
    picked = _workspace.bound("selectbox", "_trace_pick", lambda: want or keys[0],
                              lambda k: _trace_link.store(by_key[k]), "Object to trace", keys,
                              format_func=lambda k: by_key[k]["text"])
    return by_key[picked]


def _show_gt(tr: dict) -> None:
    mt = tr["matching"]
    st.markdown("**1. Default boxes and matching** (Sec. 2.2): per level, the default boxes that overlap it best, "
                "and every one matched to it: *forced* (its best box, taken in step 1) or *threshold* (IoU >= "
                f"{mt['iou_threshold']:g}).")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Matched default boxes", mt["matches"])
    m2.metric("forced", mt["forced"])
    m3.metric("by threshold", mt["threshold"])
    m4.metric("Best default-box IoU", iou_text(mt["best_default_iou"]))
    st.dataframe(tr["candidates"], hide_index=True, width="stretch")
    st.markdown("**2. Encoded regression target** (Eq. 2, divided by the variances), next to what the network "
                "predicted at that default box.")
    for enc in tr["encodings"]:
        st.caption(f"Default box {enc['default_index']}, level {enc['level']} ({enc['feature_map']}), cell "
                   f"({enc['row']}, {enc['col']}), ratio {enc['ratio']}: {enc['why']}.")
        st.dataframe(enc["rows"], hide_index=True, width="stretch")
    st.markdown("**3. Each level's prediction for it**: the level's best score for its class among the default "
                "boxes whose decoded box overlaps it at IoU >= 0.5, and the detection the level makes on its own.")
    st.dataframe(tr["levels"], hide_index=True, width="stretch")
    st.markdown("**4. NMS fate** of its class's candidates that overlap it at IoU >= 0.5 (best score first).")
    if tr["nms"]:
        st.dataframe(tr["nms"], hide_index=True, width="stretch")
    else:
        st.caption("No candidate of its class overlaps it at IoU >= 0.5.")


def _show_detection(tr: dict) -> None:
    w = tr["where"]
    st.markdown(f"**1. Where it comes from**: default box {tr['default_index']}, level {w['level']} "
                f"({w['feature_map']}), cell ({w['row']}, {w['col']}), ratio {w['ratio']}.")
    m1, m2 = st.columns(2)
    m1.metric(_ui.plain(f"Score ({tr['class_name']})"), f"{tr['score']:.3f}")
    m2.metric("Regression (t_x, t_y, t_w, t_h)", ", ".join(f"{v:.2f}" for v in tr["regression"]))
    st.dataframe(tr["class_scores"], hide_index=True)
    st.markdown(f"**2. NMS fate**: {_ui.plain(tr['fate_text'])}.")
    if tr["suppressed"]:
        st.markdown(f"It suppressed {len(tr['suppressed'])} candidate(s) of its class:")
        st.dataframe(tr["suppressed"], hide_index=True, width="stretch")
    for enc in tr["encodings"]:
        st.markdown(f"**3. Encoded regression target**: {enc['why']}, next to the prediction.")
        st.dataframe(enc["rows"], hide_index=True, width="stretch")


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _trace_section(ctx) -> None:
    _workspace.threshold_sliders("trace")
    stg = _cache.current_stages(ctx, **_workspace.stage_kwargs(_workspace.get().thresholds))
    picked = _pick(ctx, stg, _trace_link.stored(ctx))
    if picked is None:
        st.info("Nothing to trace: this image has no ground-truth box and the model makes no detection at "
                "these thresholds. Add a box in the sidebar or lower the score threshold.")
        return
    _trace_link.store(picked)
    tr = tv.trace_target(stg, picked, ctx.gt.boxes_xyxy, ctx.gt.labels)
    good = tr["verdict"]["verdict"] in ("detected", "TP")
    (st.success if good else st.warning)(_ui.plain(tr["verdict"]["text"]), icon=":material/timeline:")
    img = ctx.image
    _ui.show_plotly(trace_figure(tr, _cache.image_uri(img.digest, img.image), img.image_hw), key="trace_chart")
    (_show_gt if tr["kind"] == "gt" else _show_detection)(tr)
    st.download_button("The whole trace (JSON)", json.dumps(tr, indent=1), file_name="trace.json",
                       mime="application/json", key="dl_json_trace")
    _workspace.sync_url()


_trace_section(ctx)
