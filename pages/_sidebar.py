"""The sidebar shared by every page: model, image and ground truth.

`app.py` calls `sidebar()` before running the chosen page; it stores an `ExplorerContext`
(model, image, ground truth) in session state, and each page reads it with `context()`.
No SSD maths here: it calls `explorer/` through the caches in `pages/_cache.py`.

What the widgets set lives in the session's workspace (`pages/_workspace.py`,
`explorer.workspace`): the model, the image picked, and the ground truth of each image
(a new image starts with its own boxes; going back restores its table).

A browser reload or a shared link starts a new session: the image and GT in use are
kept in `KEPT` (`explorer.inputs.session_store`, memory of this server process) under a
token in the page URL (`?inputs=...`); the rest of the view is in the URL itself
(`explorer.workspace.to_query`), written again on every run (a page change in the
navigation drops the URL's query). The first run of a session takes the link back; a
token it arrived with is read, never written (its first change makes its own), and an
unknown or expired one says so and falls back to the sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from explorer.evaluation.gallery import is_scene_id
from explorer.inputs import ground_truth as gt_mod
from explorer.inputs import models as models_mod
from explorer.inputs import samples as samples_mod
from explorer.inputs import session_store as keep_mod
from explorer.inputs import weights_file
from explorer.views.figures import PAPER_URL
from explorer.workspace import GTState
from pages import _cache, _ground_truth, _model_file, _ui, _workspace
from pages._ui import CTX_KEY

# Every session's kept image and GT (bounded: entries, bytes, idle time), one per server
# process; a reload finds its entry under the token in the URL.
KEPT = keep_mod.InputStore()


@dataclass
class ExplorerContext:
    loaded: models_mod.LoadedModel  # the model every page uses
    model_key: str  # cache key: id + file mtime
    image: samples_mod.LoadedImage  # the image every page shows
    gt: gt_mod.GroundTruth  # validated GT boxes, original pixels


def context() -> ExplorerContext:
    """The context the sidebar stored; a page run on its own builds the sidebar now."""
    ctx = st.session_state.get(CTX_KEY)
    if ctx is None:
        ctx = sidebar()
    return ctx


# ---------------------------------------------------------------- the sidebar
def _model_picker() -> tuple[models_mod.LoadedModel, str]:
    """The model select box, bound to the workspace's model. Another page asks for a model
    by setting `model_choice` in session state (the Training page, the weights loader)."""
    ws = _workspace.get()
    asked = st.session_state.pop("model_choice", None)
    if asked:
        ws.set_model(asked)
    choices = models_mod.list_model_choices()
    ids = [c.model_id for c in choices]
    extra = models_mod.extra_choice(ws.model_id, _model_roots()) if ws.model_id and ws.model_id not in ids else None
    if extra is not None:  # a checkpoint elsewhere on disk, or a weights file the user loaded
        choices.insert(0, extra)
        ids.insert(0, ws.model_id)
    default = models_mod.default_model_id(choices)
    _workspace.set_defaults(model=default)
    if ws.model_id not in ids:
        # A link's model that is not on offer here (gone, or outside the allowed folders:
        # the same words either way, so a link cannot probe the server's files).
        if ws.model_id:
            st.sidebar.warning("The chosen model is not available on this server (gone, or outside the "
                               "folders it may read); showing " + _ui.plain(models_mod.choice_label(default, choices)) + ".")
        ws.set_model(default)
    model_id = _workspace.bound(
        "selectbox", "_model_picker", lambda: ws.model_id, ws.set_model, "Model", ids, container=st.sidebar,
        format_func=lambda i: models_mod.choice_label(i, choices),
        help="Shipped checkpoints, your training runs (runs/*/checkpoints/best.pt), torchvision's "
             "COCO models (need their weights downloaded), or a weights file you load below.",
    )
    failed = st.session_state.pop("_model_load_error", None)
    if failed:
        st.sidebar.error(failed)
    try:
        return _cache.load_model(model_id), models_mod.model_cache_key(model_id)
    except models_mod.ModelLoadError as e:
        # The picker must show what really runs: switch it to the fallback and rerun,
        # keeping the reason for the next run to show.
        fallback = default if default != model_id else models_mod.RANDOM_COMPACT
        st.session_state["_model_load_error"] = _ui.plain(e.for_user(weights_file.shown_name(model_id))) + "\n\nSwitched to " + _ui.plain(
            models_mod.choice_label(fallback, choices)) + "."
        ws.set_model(fallback)
        st.rerun()


def _model_roots() -> tuple[Path, ...]:
    """Where a model file named by id (a link, a run, a loaded weights file) may lie."""
    return (*_ui.data_roots(), models_mod.runs_dir().resolve(), models_mod.CHECKPOINTS_DIR.resolve(),
            weights_file.upload_dir().resolve())


UPLOAD_KEY = "_kept_upload"  # (name, bytes) of the session's last upload: the upload stays when a sample is shown


def _upload_picker(default_id: str) -> tuple[samples_mod.LoadedImage, str | None]:
    """The upload branch of `_image_picker`: the new file, else the session's last upload
    (before a sample was shown, or kept across a reload), else the default sample."""
    ss = st.session_state
    up = st.sidebar.file_uploader(
        f"Your image (JPEG, PNG, WebP, BMP, GIF; at most {samples_mod.MAX_PIXELS / 1e6:.0f} megapixels)",
        type=samples_mod.UPLOAD_TYPES, key="image_upload",
    )
    if up is not None:
        data = up.getvalue()
        try:
            image = _cache.decode_upload(up.name, data)
            ss[UPLOAD_KEY], ss["_upload_from_link"] = (up.name, data), False  # it replaces the kept one
            return image, None
        except ValueError as e:  # ssd.images.ImageError is a ValueError
            st.sidebar.error(_ui.plain(f"Cannot use this upload: {e}"))
            st.sidebar.caption("Showing the default sample scene instead.")
    elif ss.get(UPLOAD_KEY):
        name, data = ss[UPLOAD_KEY]
        try:
            image = _cache.decode_upload(name, data)
            how = "Kept from before the reload" if ss.get("_upload_from_link") else "Your upload"
            st.sidebar.caption(_ui.plain(f"{how}: {name}. Upload a file to replace it."))
            return image, None
        except ValueError:  # cannot happen for a kept upload (it decoded before); never stop the app
            ss.pop(UPLOAD_KEY, None)
    else:
        st.sidebar.caption("No file yet: showing the default sample scene.")
    return _cache.sample_image(default_id), default_id


def _image_picker() -> tuple[samples_mod.LoadedImage, str | None, str]:
    """(the image, its sample id or None for an upload, the default sample's id); the
    radio and the sample box are bound to the workspace (`source`, `sample_id`)."""
    ws = _workspace.get()
    samples = samples_mod.list_samples()
    ids = [s.sample_id for s in samples]
    labels = {s.sample_id: s.label for s in samples}
    default_id = samples_mod.default_sample_id(samples)
    sources = {"sample": "Sample scene", "upload": "Upload"}  # workspace word -> the radio's label
    source = _workspace.bound("radio", "image_source", lambda: sources[ws.source],
                              lambda v: ws.choose_upload() if v == "Upload" else ws.choose_sample(ws.sample_id),
                              "Image", list(sources.values()), container=st.sidebar, horizontal=True)
    if source == "Upload":
        return (*_upload_picker(default_id), default_id)
    want = ws.sample_id
    if want and want not in ids and is_scene_id(want):  # sent by the Evaluation page or a link
        ids.insert(0, want)
        labels[want] = f"evaluated scene {want.split('_', 1)[1]} (generated)"
    if want not in ids:
        if want is not None:
            st.sidebar.warning(_ui.plain(f"No sample scene {want!r} here: showing the default one."))
        ws.choose_sample(default_id)
    sid = _workspace.bound("selectbox", "sample_id", lambda: ws.sample_id or default_id, ws.choose_sample,
                           "Sample scene", ids, container=st.sidebar, format_func=lambda i: labels.get(i, i))
    return _cache.sample_image(sid), sid, default_id


# ---------------------------------------------------------------- kept across a reload, in a link
EXPIRED = ("This link's image and ground truth are no longer kept on this server (they expire after a day "
           "unused, and a server restart forgets them): showing the sample scene instead.")


def _restore_kept() -> None:
    """On a session's first run, take back the image and GT kept under the link's token
    (a reload, or a link from someone else: a snapshot this session never writes to).
    An unknown or expired token says so and falls back to the link's sample, else the default."""
    ss, ws = st.session_state, _workspace.get()
    if "_kept_token" in ss:  # once per session
        return
    token = _workspace.link_params().get(keep_mod.TOKEN_PARAM)
    entry = KEPT.get(token)
    ss["_kept_token"] = token if entry is not None else None
    if entry is None:
        if token:
            ss["_kept_note"] = EXPIRED
        return
    ws.adopt_token(token)
    if entry.is_upload:
        ws.choose_upload()
        ss[UPLOAD_KEY], ss["_upload_from_link"] = (entry.image_name, entry.upload), True
    else:
        ws.choose_sample(entry.image_name)
    ws.restore_gt(entry.image_digest, GTState(entry.gt_rows, tuple(entry.gt_source), entry.keep_difficult))
    ss["_kept_signature"] = _signature(entry)


def _signature(entry: keep_mod.KeptInputs) -> tuple:
    """What tells two entries apart, without comparing upload bytes (the digest does)."""
    return entry.image_name, entry.image_digest, entry.gt_rows, entry.gt_source, entry.keep_difficult


def _keep_inputs(image: samples_mod.LoadedImage, sample_id: str | None, default_id: str) -> None:
    """Keep this run's image and GT under the session's own token (the URL's `inputs`,
    written by `_workspace.sync_url`). A token that came with a link is never written to:
    the first change makes a new one. A sample with its own boxes needs nothing kept."""
    ss, ws = st.session_state, _workspace.get()
    gt = ws.gt
    entry = keep_mod.KeptInputs(
        image_name=image.name if sample_id is None else sample_id,
        upload=image.data if sample_id is None else None, image_digest=image.digest,
        gt_rows=gt.rows, gt_source=gt.source, keep_difficult=gt.keep_difficult)
    if sample_id is not None and gt.rows == keep_mod.plain_rows(image.gt_rows) and not gt.keep_difficult:
        # Nothing to keep: the URL names the sample. The entry stays (bounded store) for a
        # link made before, and this session's next change reuses its own token.
        ws.token_in_use, ss["_kept_signature"], ss["_kept_ok"] = False, None, True
        return
    if ws.token is not None and not ws.token_owned and _signature(entry) == ss.get("_kept_signature"):
        return  # a link's snapshot, unchanged: read it, keep its token in the URL
    # A new state, or the store let this session's entry go (LRU, idle time): put it back.
    if _signature(entry) != ss.get("_kept_signature") or not ws.token_owned or (
            ss.get("_kept_ok") and KEPT.get(ws.token) is None):
        token = ws.token_to_write(keep_mod.new_token)
        ss["_kept_signature"] = _signature(entry)
        ss["_kept_ok"] = KEPT.put(token, entry)
    if not ss.get("_kept_ok", True):
        st.sidebar.caption(f"This ground truth has over {keep_mod.MAX_GT_ROWS} rows (or the image is too "
                           "large): it is not kept across a reload.")


def sidebar() -> ExplorerContext:
    """Draw the shared sidebar and return (and store) the context every page uses."""
    st.sidebar.markdown(f"**SSD Explorer** · [paper]({PAPER_URL})")
    _restore_kept()
    for note in st.session_state.pop(_workspace.NOTES_KEY, []) + [st.session_state.pop("_kept_note", None)]:
        if note:
            st.sidebar.warning(_ui.plain(note))
    loaded, model_key = _model_picker()
    _model_file.weights_file_loader()
    image, sample_id, default_id = _image_picker()
    _workspace.set_defaults(sample=default_id)
    _ground_truth.show_image(image, sample_id)
    gt = _ground_truth.sidebar_editor(image, loaded.class_names)
    _keep_inputs(image, sample_id, default_id)
    _workspace.sync_url()
    w, h = image.image.size
    st.sidebar.caption(_ui.plain(f"{image.name}: {w}x{h} px, {len(gt)} GT boxes; model input "
                                 f"{loaded.model.cfg.image_size}x{loaded.model.cfg.image_size}."))
    ctx = ExplorerContext(loaded, model_key, image, gt)
    st.session_state[CTX_KEY] = ctx
    return ctx
