"""Live figures: Default boxes, Matching and NMS computed in the page on every slider step
(issue 21), as `st.components.v2` components registered once, at import.

Each figure is one ES module: `pages/live/ssd_mirror.js` (float32 mirrors of the
library's maths, proved equal to it by tests/test_browser_live*.py), `common.js` (controls,
canvas, commit) and the figure's own files (`MODULE_FILES`); the files live beside the
pages because they are page code (explorer/ stays plain Python).

The module is served, not inlined: `st.components.v2` sends a component's inline JS in
every element (each release re-sent ~30 KB), and serves JS by path only from the
`asset_dir` of an installed package's manifest (this app is not installed, and
`static/` serving is off: .streamlit/config.toml says why). So the registered JS is a
small loader (`LOADER`) and the module goes into Streamlit's media store, private to this
server process like the figure backgrounds (pages/_media.py), at a URL that depends on
its bytes alone (`module_url`, sent in the data); the browser imports it once per page
load (its module map keeps it) and every later mount reuses it. Python sends the data once per image /
model / configuration (`explorer.views.live_data`); the page redraws on every step and
sends the controls' values back on release (pointer up, every key step) as the state
value `commit`; `ready` says the module ran in this browser; `have` names the large
arrays (`mount`'s `held`) the page keeps, so that later runs need not send them again. A
page that mounts its figure in a fragment of its own (NMS) reruns only that fragment on a
release.

Fallback: with `SSD_LIVE_FIGURES=0`, or when registration fails, or until the browser
has run the module once in this session, the page draws today's server figure and
controls (and says why). `mount` returns whether the live figure is in charge.
"""
from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path
from typing import Callable

import streamlit as st

LIVE_DIR = Path(__file__).resolve().parent / "live"
ENV_VAR = "SSD_LIVE_FIGURES"  # "0" turns the live figures off (server figures only)
NAMES = ("default_boxes", "matching", "nms")
LOADING = ("The live figure is loading. If this message stays, it could not run in this browser; "
           "the figure drawn by the server below shows the same.")
HTML = f'<div class="ssd-live"><p class="ssd-live-status">{LOADING}</p></div>'
FAILED = "The live figure could not load; the figure drawn by the server below shows the same. "
# The registered JS: imports the figure's module (`data.module_url`) and hands it the mount.
LOADER = """export default function (component) {
  const url = new URL(component.data.module_url, document.baseURI).href;
  import(url).then((m) => m.default(component), (e) => {
    const s = component.parentElement.querySelector(".ssd-live-status");
    if (s) s.textContent = %s + String(e);
  });
}
""" % repr(FAILED)
MIME = "text/javascript"


# Each figure's module: the files joined in this order (plain declarations, one scope).
MODULE_FILES = {"default_boxes": ("ssd_mirror.js", "common.js", "default_boxes.js"),
                "matching": ("ssd_mirror.js", "matching_tables.js", "common.js", "matching.js"),
                "nms": ("ssd_mirror.js", "common.js", "nms.js")}


def _module(name: str) -> str:
    return "\n".join((LIVE_DIR / f).read_text() for f in MODULE_FILES[name])


def _register() -> tuple[dict, dict, str | None]:
    """(components, module sources (bytes) by name, error)."""
    try:
        css = (LIVE_DIR / "live.css").read_text()
        modules = {n: _module(n).encode() for n in NAMES}
        return {n: st.components.v2.component(f"ssd_live_{n}", html=HTML, css=css, js=LOADER)
                for n in NAMES}, modules, None
    except Exception as e:  # a missing file, an older Streamlit: the server figures stay
        return {}, {}, f"{type(e).__name__}: {e}"


COMPONENTS, MODULES, REGISTER_ERROR = _register()


def module_url(name: str) -> str:
    """Where the browser imports figure `name`'s module: `media/<id>.js` (relative to the
    app's base URL) in this server's media store, registered for this session on every
    run (as `pages._media` does for images: the store drops files no session shows); a
    data URI outside a Streamlit runtime."""
    from streamlit import runtime

    if not runtime.exists():
        return f"data:{MIME};base64," + base64.b64encode(MODULES[name]).decode("ascii")
    manager = runtime.get_instance().media_file_mgr
    return manager.add(MODULES[name], MIME, f"ssd-live-module:{name}", file_name=f"ssd_live_{name}.js").lstrip("/")


def enabled() -> bool:
    """Live figures on (the default), unless SSD_LIVE_FIGURES=0 or registration failed."""
    return os.environ.get(ENV_VAR, "1") != "0" and not REGISTER_ERROR


def _ready_key(name: str) -> str:
    return f"_live_ready_{name}"


def _seq_key(name: str) -> str:
    return f"_live_seq_{name}"


def keep(*keys: str) -> None:
    """Keep these session-state values when their server widgets are not drawn (Streamlit
    drops a widget's value at the end of a run that does not draw it)."""
    ss = st.session_state
    for k in keys:
        if k in ss:
            ss[k] = ss[k]


def held_data(name: str, key: tuple, build: Callable[[], dict]) -> tuple[str, dict]:
    """Live figure `name`'s data that changes only with `key` (its model, image and GT):
    `build()` runs once per key in this session, so a release does not rebuild it, and
    the id names it for `mount`'s `held`. Returns (id, data)."""
    state_key = f"_live_held_{name}"  # (key, id, data)
    held = st.session_state.get(state_key)
    if held is None or held[0] != key:
        held = st.session_state[state_key] = (key, hashlib.sha1(repr(key).encode()).hexdigest()[:16], build())
    return held[1], held[2]


def mount(name: str, data: dict, on_commit: Callable[[dict], None], held: tuple[str, tuple[str, ...]] | None = None
          ) -> bool:
    """Mount live figure `name` with `data`; `on_commit(values)` runs (as a callback, before
    the rerun's script) with the values the user released. Returns True when the live figure
    is in charge (the browser ran it in this session), False when the page must draw its
    server figure and controls as well (not yet loaded, or off).

    `held` = (id, fields): `data[field]` for these fields is the same for every `data` with
    this id (the large arrays of one image and model). They are sent once: the page keeps
    them and says so (its state value `have` = id); later runs send the id alone, and a page
    that lost them (a new mount) asks again (`have` = None)."""
    if not enabled():
        return False
    ss = st.session_state
    key = f"live_{name}"
    if held is not None:
        data_id, fields = held
        data = {**data, "held_id": data_id, "held_fields": list(fields)}
        if _state_value(ss.get(key), "have") == data_id:
            data = {k: v for k, v in data.items() if k not in fields}

    def committed():
        values = _state_value(ss.get(key), "commit")
        if isinstance(values, dict) and values.get("seq", 0) > ss.get(_seq_key(name), 0):
            ss[_seq_key(name)] = values["seq"]
            on_commit(values)

    def ready():
        ss[_ready_key(name)] = True

    COMPONENTS[name](key=key, data={**data, "seq": ss.get(_seq_key(name), 0), "module_url": module_url(name)},
                     default={"commit": None, "ready": False, "have": None},
                     on_commit_change=committed, on_ready_change=ready, on_have_change=_nothing)
    return bool(ss.get(_ready_key(name)))


def _nothing() -> None:
    """The `have` state's callback: the next run reads it (nothing to do before)."""


def _state_value(state, field: str):
    if state is None:
        return None
    if isinstance(state, dict):
        return state.get(field)
    return getattr(state, field, None)


def fallback_note() -> None:
    """Under a server figure drawn because the live one is off or failed to register."""
    if REGISTER_ERROR:
        st.caption(f"The live figure could not be set up ({REGISTER_ERROR}); this figure is drawn by the server.")
