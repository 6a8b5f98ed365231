"""Picking an object to trace from another page: a click on a figure's marker
(`chart_pick`) or the "Trace this object" row (`trace_row`). The pick is the workspace's
traced object (`explorer.workspace.Workspace.trace`, a `trace_links.target_key` of one
image), so it persists across pages and links, and the Trace page opens on it. Every
page picks at the workspace's one threshold set."""
from __future__ import annotations

import streamlit as st

from explorer.views import trace as tv
from explorer.views import trace_links as tl
from pages import _cache, _ui, _workspace

TEXTS_KEY = "_trace_texts"  # target key -> the text it was picked with (a suppressed box's name)
TRACE_PAGE = "pages/trace.py"


def _targets(ctx) -> tuple[object, list[dict]]:
    """The stages at the workspace's thresholds and what can be traced there: each GT, each final detection."""
    stg = _cache.current_stages(ctx, **_workspace.stage_kwargs(_workspace.get().thresholds))
    return stg, tv.trace_targets(stg, ctx.gt.labels)


def target_of_key(key: str) -> dict | None:
    """A target dict from its key ("gt:G" or "det:A:C"), with the text it was picked with."""
    kind, *parts = key.split(":")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        return None
    text = st.session_state.get(TEXTS_KEY, {}).get(key, key)
    if kind == "gt" and len(values) == 1:
        return {"kind": "gt", "index": values[0], "text": text}
    if kind == "det" and len(values) == 2:
        return {"kind": "detection", "default_index": values[0], "label": values[1], "text": text}
    return None


def stored(ctx) -> dict | None:  # noqa: ARG001 - the workspace knows the shown image
    """The traced object if it was picked on the shown image, else None."""
    key = _workspace.get().traced_key()
    return None if key is None else target_of_key(key)


def store(target: dict) -> None:
    """Trace `target` (a `trace_targets` dict) on the shown image."""
    key = tl.target_key(target)
    st.session_state.setdefault(TEXTS_KEY, {})[key] = target.get("text", key)
    _workspace.get().trace(key)


def pick(ctx, key) -> str | None:
    """Trace the object that `key` (a `trace_links.target_key`: a figure's click) names on
    the shown image. Returns why it cannot be traced (a click on a figure drawn before the
    GT or the model changed), else None."""
    stg, targets = _targets(ctx)
    try:
        target = tl.clicked_target(key, targets, stg, len(ctx.gt.labels))
    except ValueError as e:
        return f"Cannot trace that click: {e}"
    if target is not None:
        store(target)
    return None


def chart_pick(ctx, chart_key: str) -> None:
    """Under a figure shown with `on_select="rerun", selection_mode="points"`: a click on a
    marker that names an object (`trace_links.target_key` customdata) picks it for the Trace
    page. Says so in a caption, with the current pick and a link to the Trace page."""
    point = _ui.new_selection(chart_key, "points")
    if isinstance(point, dict):
        error = pick(ctx, point.get("customdata"))
        if error:
            st.warning(_ui.plain(error))
    picked_caption(ctx, "Click a box's centre marker, or a ground truth's corner diamond, to pick that object for "
                        "*Trace one object*.")


def picked_caption(ctx, how: str) -> None:
    """`how` (markdown) and the picked object, with a link to the Trace page when there is one."""
    picked_target = stored(ctx)
    c1, c2 = st.columns([3, 1], vertical_alignment="center")
    picked = f" Picked: **{_ui.plain(picked_target['text'])}**." if picked_target else ""
    c1.caption(how + picked)
    if picked_target:
        c2.page_link(TRACE_PAGE, label="Trace the picked object", icon=":material/timeline:")


def _row_options(ctx, targets: list[dict], kinds: tuple[str, ...]) -> list[dict]:
    """The row's choices: the targets of `kinds`, and the stored pick of this image when it
    is a prediction that is not a final detection here (a level's own detection, a
    suppressed box) and detections are among `kinds`."""
    picked = stored(ctx)
    targets = [t for t in targets if t["kind"] in kinds]
    keys = {tl.target_key(t) for t in targets}
    if picked and picked["kind"] == "detection" and "detection" in kinds and tl.target_key(picked) not in keys:
        return targets + [picked]
    return targets


def trace_row(ctx, key: str, kinds: tuple[str, ...] = ("gt", "detection")) -> None:
    """A selector of the image's GT boxes and final detections (at the workspace's
    thresholds) and a button that opens the Trace page on the pick. The selector shows the
    traced object when it changes; only the button (or a click on a figure) changes the
    pick. `key` prefixes the widget keys; `kinds` ("gt", "detection") limits the choices."""
    _, targets = _targets(ctx)
    options = _row_options(ctx, targets, kinds)
    if not options:
        st.caption("Trace one object: this image has no ground-truth box" +
                   (" and no detection at these thresholds." if "detection" in kinds else "."))
        return
    by_key = {tl.target_key(t): t for t in options}
    picked = stored(ctx)
    ss, pick_key, synced_key = st.session_state, f"{key}_trace_pick", f"_{key}_trace_synced"
    picked_key = tl.target_key(picked) if picked else None
    if picked_key in by_key and (picked_key != ss.get(synced_key) or pick_key not in ss):
        ss[pick_key] = picked_key  # a new pick (a click, another page) or the page was left: the selector shows it
    ss[synced_key] = picked_key
    if ss.get(pick_key) not in by_key:
        ss[pick_key] = next(iter(by_key))
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    pick = c1.selectbox("Trace one object through every stage", list(by_key), key=pick_key,
                        format_func=lambda k: by_key[k]["text"],
                        help="Its default boxes, matches, each level's prediction, its NMS fate and the verdict.")
    if c2.button("Trace this object", key=f"{key}_trace_go", icon=":material/timeline:"):
        store(by_key[pick])
        _workspace.open_page(TRACE_PAGE)
