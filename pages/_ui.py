"""Small Streamlit helpers every page uses: the app frame, headers, downloads, charts,
and reading plotly selection events (one reader for every chart that can be clicked)."""
from __future__ import annotations

import json

import streamlit as st

from explorer import paths
from explorer.inputs.models import model_caveat
from explorer.jobs.manager import available_devices
from explorer.text import figure_plain
from explorer.views.figures import PAPER_URL, records_to_csv
from pages import _auth
from pages._text import plain  # noqa: F401 (pages call it as _ui.plain)

CTX_KEY = "_explorer_ctx"  # session-state key of the sidebar's ExplorerContext


def uses_pages_directory() -> bool:
    """Whether Streamlit is in its old `pages/`-folder mode (a private attribute).

    The only place the project touches `PagesManager.uses_pages_directory`;
    `tests/test_app_pages.py` fails loudly if Streamlit renames it.
    """
    from streamlit.runtime.pages_manager import PagesManager

    return bool(PagesManager.uses_pages_directory)


def require_app_frame() -> None:
    """Hand a run that started on a page file back to `app.py`.

    A fresh server whose very first request is a page URL (say `/training`) runs that
    page file alone, with Streamlit's old `pages/`-folder navigation and no sidebar,
    because `app.py` has not yet called `st.navigation`. Switch the server to
    `st.navigation` mode and rerun: the rerun executes `app.py`, which routes back to
    the same page (same file, same URL path, same page hash).
    """
    from streamlit.runtime.pages_manager import PagesManager

    if uses_pages_directory():
        PagesManager.uses_pages_directory = False
        st.rerun()
    _auth.gate()  # a page file run without app.py is gated too


def data_roots() -> tuple:
    """Folders a typed path may be in (`explorer.paths.data_roots`): $SSD_DATA_ROOTS, else
    data/ and home on a loopback server, none on an exposed one."""
    return paths.data_roots(paths.server_is_exposed(st.get_option("server.address")))


def page_header(title: str, intro: str, section: str, shows_detections: bool = False) -> None:
    """Title, a plain-words explanation and the paper section it comes from; on pages that
    show detections, what the model knows when it runs on an uploaded image."""
    st.title(title)
    st.markdown(intro + f"  \n*Paper: [Liu et al. 2016, SSD, {section}]({PAPER_URL}).*")
    ctx = st.session_state.get(CTX_KEY)
    if ctx is not None and ctx.loaded.warning:
        st.warning(plain(ctx.loaded.warning))
    if ctx is not None and shows_detections:
        caveat = model_caveat(ctx.loaded, ctx.image.source)
        if caveat:
            st.info(plain(caveat), icon=":material/info:")


def download_buttons(name: str, rows: list[dict], key: str, payload: dict | None = None) -> None:
    """CSV of `rows` and JSON of `payload` (or rows) side by side."""
    c1, c2 = st.columns(2)
    c1.download_button(f"{name} (CSV)", records_to_csv(rows), file_name=f"{key}.csv",
                       mime="text/csv", key=f"dl_csv_{key}")
    c2.download_button(f"{name} (JSON)", json.dumps(payload if payload is not None else rows, indent=1, default=str),
                       file_name=f"{key}.json", mime="application/json", key=f"dl_json_{key}")


def show_plotly(fig, key: str, **kw):
    """A plotly chart with the toolbar's PNG download at full resolution; its data text
    (class names, GT labels, file names) escaped by `explorer.text.figure_plain`."""
    fig = figure_plain(fig)
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "scale": 2, "filename": key}}
    return st.plotly_chart(fig, key=key, config=config, width="stretch", **kw)


def new_selection(chart_key: str, kind: str):
    """The newest plotly selection item (`kind`: "points" or "box") of the chart with
    `chart_key`, once: a later rerun with the same selection returns None.

    The browser re-sends the whole selection on every rerun; only a changed last item is
    a new click or drag.
    """
    ss = st.session_state
    try:
        items = list(ss[chart_key]["selection"][kind])
    except (KeyError, TypeError):
        return None
    if not items:
        return None
    sig = repr(items[-1])
    seen_key = f"_{chart_key}_{kind}_seen"
    if sig == ss.get(seen_key):
        return None
    ss[seen_key] = sig
    return items[-1]


# ---------------------------------------------------------------- job pages
@st.cache_resource
def devices() -> dict:
    """The machine's devices for the job pages (`explorer.jobs.manager.available_devices`, probed once)."""
    return available_devices()


def flash(key: str, kind: str, text: str) -> None:
    """Keep a message (st.success / st.error / st.info ...) for the next run of a job page:
    a button callback runs before the rerun that shows it. `text` is shown as plain text."""
    st.session_state[key] = (kind, text)


def show_flash(key: str) -> None:
    """Show (once) the message `flash` kept under `key`."""
    kind, text = st.session_state.pop(key, (None, None))
    if kind:
        getattr(st, kind)(plain(text))
