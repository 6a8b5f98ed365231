"""Picking an object to trace from another page: a click on a figure's marker
(`chart_pick`) or the "Trace this object" row (`trace_row`). The pick is stored in
`st.session_state["trace_target"]` (with the image and the thresholds it was made at), so
it persists across pages, and the Trace page opens on it."""
from __future__ import annotations

import streamlit as st

from explorer import results
from explorer.views import trace as tv
from explorer.views import trace_links as tl
from pages import _cache, _ui

TARGET_KEY = "trace_target"  # session-state key of the traced object (a `trace_targets` dict + image, thresholds)
DEFAULT_THRESHOLDS = {"score_thresh": results.DISPLAY_SCORE_THRESH,  # the NMS page's defaults
                      "nms_thresh": results.POSTPROCESS_DEFAULTS.nms_thresh,
                      "detections_per_img": results.POSTPROCESS_DEFAULTS.detections_per_img}
TRACE_PAGE = "pages/trace.py"


def _targets(ctx, thresholds: dict) -> tuple[object, list[dict]]:
    """The stages at `thresholds` and what can be traced there: each GT, each final detection."""
    stg = _cache.current_stages(ctx, **thresholds)
    return stg, tv.trace_targets(stg, ctx.gt.labels)


def _stored(ctx) -> dict | None:
    """The stored pick if it was made on this image, else None."""
    target = st.session_state.get(TARGET_KEY)
    return target if isinstance(target, dict) and target.get("image") == ctx.image.digest else None


def _store(ctx, target: dict, thresholds: dict) -> None:
    st.session_state[TARGET_KEY] = dict(target, image=ctx.image.digest, thresholds=thresholds)


def chart_pick(ctx, chart_key: str, thresholds: dict | None = None) -> None:
    """Under a figure shown with `on_select="rerun", selection_mode="points"`: a click on a
    marker that names an object (`trace_links.target_key` customdata) picks it for the Trace
    page. Says so in a caption, with the current pick and a link to the Trace page.

    `thresholds` (default the NMS page's) are the post-processing the pick is made at."""
    thresholds = dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
    point = _ui.new_selection(chart_key, "points")
    if isinstance(point, dict):
        stg, targets = _targets(ctx, thresholds)
        try:
            target = tl.clicked_target(point.get("customdata"), targets, stg, len(ctx.gt.labels))
        except ValueError as e:  # a click on a figure drawn before the GT or the model changed
            st.warning(_ui.plain(f"Cannot trace that click: {e}"))
            target = None
        if target is not None:
            _store(ctx, target, thresholds)
    stored = _stored(ctx)
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    picked = f" Picked: **{_ui.plain(stored.get('text', tl.target_key(stored)))}**." if stored else ""
    c1.caption("Click a box's centre marker, or a ground truth's corner diamond, to pick that object for "
               "*Trace one object*." + picked)
    if stored:
        c2.page_link(TRACE_PAGE, label="Trace the picked object", icon=":material/timeline:")


def _row_options(ctx, targets: list[dict]) -> list[dict]:
    """The row's choices: the targets, and the stored pick of this image when it is a
    prediction that is not a final detection here (a level's own detection, a suppressed box)."""
    stored = _stored(ctx)
    keys = {tl.target_key(t) for t in targets}
    if stored and stored.get("kind") == "detection" and tl.target_key(stored) not in keys:
        return targets + [stored]
    return targets


def trace_row(ctx, key: str, thresholds: dict | None = None) -> None:
    """A selector of the image's GT boxes and final detections (at `thresholds`, default the
    NMS page's) and a button that opens the Trace page on the pick. The selector starts at
    the stored pick, and follows a new one (a click on the figure). `key` prefixes the widget keys."""
    thresholds = dict(DEFAULT_THRESHOLDS, **(thresholds or {}))
    _, targets = _targets(ctx, thresholds)
    options = _row_options(ctx, targets)
    if not options:
        st.caption("Trace one object: this image has no ground-truth box and no detection at these thresholds.")
        return
    by_key = {tl.target_key(t): t for t in options}
    ss, pick_key, synced_key = st.session_state, f"{key}_trace_pick", f"_{key}_trace_synced"
    stored = _stored(ctx)
    if stored and (repr(stored) != ss.get(synced_key) or pick_key not in ss):
        ss[pick_key] = tl.target_key(stored)  # a new pick (or the page was left): the selector shows it
    ss[synced_key] = repr(stored)
    if ss.get(pick_key) not in by_key:
        ss[pick_key] = next(iter(by_key))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Trace one object through every stage", list(by_key), key=pick_key,
                        format_func=lambda k: by_key[k]["text"],
                        help="Its default boxes, matches, each level's prediction, its NMS fate and the verdict.")
    if c2.button("Trace this object", key=f"{key}_trace_go", icon=":material/timeline:"):
        _store(ctx, by_key[pick], thresholds)
        st.switch_page(TRACE_PAGE)
