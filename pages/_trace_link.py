"""The "Trace this object" row other pages end with: pick a GT box or a final detection,
and open the Trace page on it. The pick is stored in `st.session_state["trace_target"]`
(with the image and the thresholds it was made at), so it persists across pages."""
from __future__ import annotations

import streamlit as st

from explorer.views import trace as tv
from pages import _cache

TARGET_KEY = "trace_target"  # session-state key of the traced object (a `trace_targets` dict + image, thresholds)
DEFAULT_THRESHOLDS = {"score_threshold": 0.3, "nms_threshold": 0.45, "top_k": 200}  # the NMS page's defaults


def trace_row(ctx, key: str, thresholds: dict | None = None) -> None:
    """A selector of the image's GT boxes and final detections (at `thresholds`, default the
    NMS page's) and a button that opens the Trace page on the pick. `key` prefixes the widget keys."""
    thresholds = dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
    stg = _cache.current_stages(ctx, **thresholds)
    targets = tv.trace_targets(stg, ctx.gt.labels)
    if not targets:
        st.caption("Trace one object: this image has no ground-truth box and no detection at these thresholds.")
        return
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Trace one object through every stage", range(len(targets)), key=f"{key}_trace_pick",
                        format_func=lambda i: targets[i]["text"],
                        help="Its default boxes, matches, each level's prediction, its NMS fate and the verdict.")
    if c2.button("Trace this object", key=f"{key}_trace_go", icon=":material/timeline:"):
        st.session_state[TARGET_KEY] = dict(targets[pick], image=ctx.image.digest, thresholds=thresholds)
        st.switch_page("pages/trace.py")
