"""The Streamlit side of `explorer.workspace`: one `Workspace` per session, widgets bound
to it, and the page URL kept equal to it.

- `get()`: the session's workspace; its first run reads the link's query parameters
  (`explorer.workspace.apply_query`), so a copied URL opens the same view.
- `bound(widget, key, read, write, ...)`: a widget whose value lives in the workspace.
  Its session-state key is set from the workspace before it is drawn (Streamlit drops a
  widget's value when its page is not shown; the workspace keeps it), and a change
  writes back in the widget's callback, before the rerun's script.
- `threshold_sliders(prefix)`: the one post-processing set (score, NMS IoU, top k) as
  sliders; Per-scale, NMS and Trace draw the same values.
- `sync_url()`: the query string written from the workspace (only what changed), on
  every full run (the sidebar) and at the end of fragments that change it.
- `open_page(page)`: navigation that works from a fragment and from a callback: set the
  workspace first, then switch (a callback cannot switch pages: it asks the next run).
"""
from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from explorer import workspace as wsm
from explorer.views import live_data
from explorer.workspace import DETECTIONS_RANGE, NMS_RANGE, SCORE_RANGE, Workspace

WS_KEY = "_workspace"  # session-state key of the Workspace
LINK_KEY = "_ws_link"  # the query parameters this session arrived with (first run)
NOTES_KEY = "_ws_link_notes"  # what the link carried that could not be used
GOTO_KEY = "_ws_goto"  # a page asked for by a callback; the next run switches to it


def get() -> Workspace:
    """The session's workspace, made on its first run from the link's query parameters."""
    ss = st.session_state
    ws = ss.get(WS_KEY)
    if ws is None:
        ws = ss[WS_KEY] = Workspace()
        params = {k: st.query_params.get(k) for k in st.query_params}
        ss[LINK_KEY] = params
        ss[NOTES_KEY] = wsm.apply_query(ws, params)
    return ws


def link_params() -> dict:
    """The query parameters the session arrived with ({} after its first run's read)."""
    return st.session_state.get(LINK_KEY) or {}


def bound(widget: Callable, key: str, read: Callable[[], object], write: Callable[[object], None], *args,
          container=None, **kwargs):
    """Draw `widget(*args, key=key, **kwargs)` (in `container`, default the page) with its
    value from `read()`; the user's change goes to `write(value)` first. A value the
    workspace refuses (ValueError) leaves the workspace as it was."""
    ss = st.session_state

    def changed() -> None:
        try:
            write(ss[key])
        except ValueError:
            pass

    ss[key] = read()
    target = st if container is None else container
    return getattr(target, widget)(*args, key=key, on_change=changed, **kwargs)


def threshold_sliders(prefix: str, columns=None) -> wsm.Thresholds:
    """The score, NMS IoU and top-k sliders, bound to the workspace's one threshold set."""
    ws = get()
    c1, c2, c3 = columns or st.columns(3)
    score_step, nms_step, k_step = (r[2] for r in (live_data.SCORE_THRESH_RANGE, live_data.NMS_THRESH_RANGE,
                                                   live_data.DETECTIONS_PER_IMG_RANGE))
    bound("slider", f"{prefix}_score_thresh", lambda: ws.thresholds.score_thresh,
          lambda v: ws.set_thresholds(score_thresh=v), "Score threshold", *SCORE_RANGE, step=score_step, container=c1,
          help="score_thresh: a candidate needs this class score. The same value on Per-scale, NMS and Trace.")
    bound("slider", f"{prefix}_nms_thresh", lambda: ws.thresholds.nms_thresh,
          lambda v: ws.set_thresholds(nms_thresh=v), "NMS IoU threshold", *NMS_RANGE, step=nms_step, container=c2,
          help="nms_thresh: NMS removes a box that overlaps a kept box of its class above this IoU.")
    bound("slider", f"{prefix}_detections_per_img", lambda: ws.thresholds.detections_per_img,
          lambda v: ws.set_thresholds(detections_per_img=v), "Top k detections", *DETECTIONS_RANGE, step=k_step,
          container=c3, help="detections_per_img: the final list keeps the best k.")
    return ws.thresholds


def stage_kwargs(t: wsm.Thresholds) -> dict:
    """The thresholds as `pages._cache.current_stages` takes them (keywords)."""
    return t.as_dict()


DEFAULTS_KEY = "_ws_defaults"  # what the URL leaves out: {"model": id, "sample": id} (set by the sidebar)


def set_defaults(**defaults: str | None) -> None:
    """What the URL leaves out: `model=` the default model id, `sample=` the default sample id."""
    st.session_state.setdefault(DEFAULTS_KEY, {}).update(defaults)


def sync_url() -> None:
    """Write the workspace into the page's query string (only the keys that differ)."""
    defaults = st.session_state.get(DEFAULTS_KEY, {})
    want = wsm.to_query(get(), defaults.get("model"), defaults.get("sample"))
    qp = st.query_params
    for k in wsm.QUERY_KEYS:
        if k in want and qp.get(k) != want[k]:
            qp[k] = want[k]
        elif k not in want and k in qp:
            del qp[k]


def open_page(page: str) -> None:
    """Go to `page` now (from a script or a fragment run), or on the next run (from a
    callback, where switching is not allowed): call after setting the workspace."""
    st.session_state[GOTO_KEY] = page
    try:
        st.switch_page(page)
    except st.errors.StreamlitAPIException:
        pass  # in a callback: `follow_goto` switches at the start of the next run


def follow_goto() -> None:
    """At the start of a full run (app.py): a page asked for by a callback."""
    page = st.session_state.pop(GOTO_KEY, None)
    if page:
        st.switch_page(page)
