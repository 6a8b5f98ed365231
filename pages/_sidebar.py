"""The sidebar shared by every page: model, image and ground truth.

`app.py` calls `sidebar()` before running the chosen page; it stores an `ExplorerContext`
(model, image, ground truth) in session state, and each page reads it with `context()`.
No SSD maths here: it calls `explorer/` through the caches in `pages/_cache.py`.

A browser reload starts a new session: the image and GT in use are kept in `KEPT`
(`explorer.inputs.session_store`, memory of this server process) under a token in the
page URL (`?inputs=...`), which the sidebar sets again on every run (a page change in
the navigation drops the URL's query). The first run of a session with a known token
takes them back; an unknown one is ignored.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st

from explorer.inputs import ground_truth as gt_mod
from explorer.inputs import models as models_mod
from explorer.inputs import samples as samples_mod
from explorer.inputs import session_store as keep_mod
from explorer.inputs import weights_file
from explorer.views.figures import PAPER_URL
from pages import _cache, _model_file, _ui
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
    choices = models_mod.list_model_choices()
    ids = [c.model_id for c in choices]
    want = st.session_state.get("model_choice")
    extra = models_mod.extra_choice(want) if want not in ids else None
    if extra is not None:  # a checkpoint elsewhere on disk, or a weights file the user loaded
        choices.insert(0, extra)
        ids.insert(0, want)
    default = models_mod.default_model_id(choices)
    # "model_choice" is the public key (the training page sets it); the widget has its
    # own key so another page may write "model_choice" at any point of a run.
    if want and want in ids and want != st.session_state.get("_model_choice_synced"):
        st.session_state["_model_picker"] = want
    if st.session_state.get("_model_picker") not in ids:
        st.session_state["_model_picker"] = want if want in ids else default
    model_id = st.sidebar.selectbox(
        "Model", ids, key="_model_picker", format_func=lambda i: models_mod.choice_label(i, choices),
        help="Shipped checkpoints, your training runs (runs/*/checkpoints/best.pt), torchvision's "
             "COCO models (need their weights downloaded), or a weights file you load below.",
    )
    failed = st.session_state.pop("_model_load_error", None)
    if failed:
        st.sidebar.error(failed)
    st.session_state["model_choice"] = model_id
    st.session_state["_model_choice_synced"] = model_id
    try:
        return _cache.load_model(model_id), models_mod.model_cache_key(model_id)
    except models_mod.ModelLoadError as e:
        # The picker must show what really runs: switch it to the fallback and rerun,
        # keeping the reason for the next run to show.
        fallback = default if default != model_id else models_mod.RANDOM_COMPACT
        st.session_state["_model_load_error"] = _ui.plain(e.for_user(weights_file.shown_name(model_id))) + "\n\nSwitched to " + _ui.plain(
            models_mod.choice_label(fallback, choices)) + "."
        st.session_state["model_choice"] = fallback
        st.rerun()


def _upload_picker(default_id: str) -> tuple[samples_mod.LoadedImage, str | None]:
    """The upload branch of `_image_picker`: the new file, else the one kept from before a
    reload, else the default sample."""
    ss = st.session_state
    up = st.sidebar.file_uploader(
        f"Your image (JPEG, PNG, WebP, BMP, GIF; at most {samples_mod.MAX_PIXELS / 1e6:.0f} megapixels)",
        type=samples_mod.UPLOAD_TYPES, key="image_upload",
    )
    if up is not None:
        ss.pop("_kept_upload", None)  # a new upload replaces the kept one
        data = up.getvalue()
        try:
            return _cache.decode_upload(up.name, data), None
        except ValueError as e:  # ssd.images.ImageError is a ValueError
            st.sidebar.error(_ui.plain(f"Cannot use this upload: {e}"))
            st.sidebar.caption("Showing the default sample scene instead.")
    elif ss.get("_kept_upload"):
        name, data = ss["_kept_upload"]
        try:
            image = _cache.decode_upload(name, data)
            st.sidebar.caption(_ui.plain(f"Kept from before the reload: {name}. Upload a file to replace it."))
            return image, None
        except ValueError:  # cannot happen for a kept upload (it decoded before); never stop the app
            ss.pop("_kept_upload", None)
    else:
        st.sidebar.caption("No file yet: showing the default sample scene.")
    return _cache.sample_image(default_id), default_id


def _image_picker() -> tuple[samples_mod.LoadedImage, str | None, str]:
    """(the image, its sample id or None for an upload, the default sample's id)."""
    samples = samples_mod.list_samples()
    ids = [s.sample_id for s in samples]
    labels = {s.sample_id: s.label for s in samples}
    source = st.sidebar.radio("Image", ["Sample scene", "Upload"], horizontal=True, key="image_source")
    default_id = samples_mod.default_sample_id(samples)
    if source == "Upload":
        return (*_upload_picker(default_id), default_id)
    st.session_state.pop("_kept_upload", None)  # switching to a sample lets the kept upload go
    want = st.session_state.get("sample_id")
    if want and want not in ids and want.startswith("procedural:scene_"):  # sent by the Evaluation page
        ids.insert(0, want)
        labels[want] = f"evaluated scene {want.split('_', 1)[1]} (generated)"
    if st.session_state.get("sample_id") not in ids:
        st.session_state["sample_id"] = default_id
    sid = st.sidebar.selectbox("Sample scene", ids, key="sample_id", format_func=lambda i: labels.get(i, i))
    return _cache.sample_image(sid), sid, default_id


def _gt_file(image: samples_mod.LoadedImage) -> None:
    """The annotation-file uploader of `_gt_editor`: read the file for this image into
    `gt_base`; its notes and errors are user text, shown as plain text (`st.code`)."""
    ss = st.session_state
    up = st.file_uploader("Annotation file", type=["xml", "json"], key="gt_file")
    if up is None:
        ss["gt_file_notes"], ss["gt_file_error"], ss["gt_file_seen"] = [], None, None
        return
    ids, want = ss.get("gt_coco_ids") or [], ss.get("gt_coco_want")
    if len(ids) > 1:  # several COCO images share this file name: the user picks one
        want = st.selectbox("COCO image id", ids, index=ids.index(want) if want in ids else 0,
                            key=f"gt_coco_pick_{ss.get('gt_coco_version', 0)}")
    if ss.get("gt_file_seen") != (up.name, up.size, image.digest, want):
        ss["gt_file_seen"] = (up.name, up.size, image.digest, want)
        try:
            w, h = image.image.size
            read = gt_mod.parse_annotation_file(up.name, up.getvalue(), image_name=image.name, image_hw=(h, w),
                                                coco_image_id=want)
            ss["gt_base"], ss["gt_file_notes"], ss["gt_file_error"] = read.rows, read.notes, None
            ss["gt_version"] += 1
            ss["gt_source"] = [f"file {up.name}"]
            if read.coco_image_ids != ids:  # a new file: a fresh image-id picker
                ss["gt_coco_ids"], ss["gt_coco_want"] = read.coco_image_ids, read.coco_image_id
                ss["gt_coco_version"] = ss.get("gt_coco_version", 0) + 1
                ss["gt_file_seen"] = (up.name, up.size, image.digest, read.coco_image_id)
                st.rerun()
        except gt_mod.GTFileError as e:
            ss["gt_file_notes"], ss["gt_coco_ids"], ss["gt_file_error"] = [], [], str(e)
            if any(s.startswith("file ") for s in ss.get("gt_source", [])):  # never keep a replaced file's rows
                ss["gt_base"] = [dict(r) for r in image.gt_rows]
                ss["gt_version"] += 1
                ss["gt_source"] = ["image"] if image.gt_rows else []
                ss["gt_file_error"] += ("\nThe boxes of the previous annotation file are no longer used: the "
                                        "image's own ground truth is back" + ("." if image.gt_rows else " (none)."))
    if ss.get("gt_file_error"):
        st.error("The annotation file was refused:")
        st.code(ss["gt_file_error"], language=None, wrap_lines=True)
    if ss.get("gt_file_notes"):
        st.warning("About this annotation file:")
        st.code("\n".join(ss["gt_file_notes"]), language=None, wrap_lines=True)


def _add_gt_source(word: str) -> None:
    """Note how the GT rows came to be ("drawn", "typed"), once each."""
    src = list(st.session_state.get("gt_source", []))
    if word not in src:
        st.session_state["gt_source"] = src + [word]


def _gt_downloads(image: samples_mod.LoadedImage, rows: list[dict], class_names: list[str]) -> None:
    """The valid GT rows as VOC XML and COCO JSON files (the library's writers)."""
    w, h = image.image.size
    stem = Path(gt_mod.download_file_name(image.name)).stem
    st.download_button("Ground truth (VOC XML)", gt_mod.voc_xml_download(rows, class_names, image.name, (h, w)),
                       file_name=f"{stem}.xml", mime="application/xml", key="gt_dl_voc", on_click="ignore",
                       help="One Pascal VOC annotation: 1-based pixels; crowd regions written as difficult.")
    st.download_button("Ground truth (COCO JSON)", gt_mod.coco_json_download(rows, class_names, image.name, (h, w)),
                       file_name=f"{stem}.json", mime="application/json", key="gt_dl_coco", on_click="ignore",
                       help="COCO instances JSON of this image: bbox [x, y, w, h] in pixels; category ids 1..K "
                            "in the model's class order; difficult objects written as iscrowd.")


def _gt_editor(image: samples_mod.LoadedImage, class_names: list[str]) -> gt_mod.GroundTruth:
    """GT rows: the image's own, an annotation file, the table, or boxes drawn on Home.

    The table shows `gt_base` (bumping `gt_version` gives the editor a fresh key whenever
    the base changes: new image, file, drawn box); its edited result is the truth. Rows
    flagged difficult or crowd are shown but are not ground truth (difficult ones unless
    the box is ticked). Messages name user text, so they are shown as plain text.
    """
    ss = st.session_state
    if ss.get("gt_digest") != image.digest:
        ss["gt_digest"] = image.digest
        ss["gt_base"] = [dict(r) for r in image.gt_rows]
        ss["gt_version"] = ss.get("gt_version", 0) + 1
        ss["gt_file_seen"] = None
        ss["gt_source"] = ["image"] if image.gt_rows else []
    # A box drawn on the Home page (plotly box selection, frame = original pixels).
    drawn = _ui.new_selection("gt_draw_chart", "box")
    if drawn is not None:
        row = gt_mod.box_from_selection(drawn, image.image_hw)
        if row is not None:
            row["label"] = ss.get("gt_draw_label") or class_names[1]
            ss["gt_base"] = list(ss.get("gt_current", ss["gt_base"])) + [row]
            ss["gt_version"] += 1
            _add_gt_source("drawn")
    # No count in the label: it is drawn before the table's edits of this run are known.
    with st.sidebar.expander("Ground-truth boxes", expanded=False):
        st.caption("Pixels of the original image. Edit the table, add rows, load a VOC .xml / COCO "
                   ".json, or draw boxes on the Home page.")
        _gt_file(image)
        st.selectbox("Label for drawn boxes", class_names[1:], key="gt_draw_label")
        keep_difficult = st.checkbox("Difficult objects are ground truth", key="gt_keep_difficult",
                                     help="VOC <difficult> objects are left out of matching by default, as the "
                                          "VOC devkit and the library's reader do.")
        df = pd.DataFrame(ss["gt_base"], columns=list(gt_mod.GT_COLUMNS))
        df[["difficult", "crowd"]] = df[["difficult", "crowd"]].map(gt_mod.flag)  # missing -> False
        edited = st.data_editor(
            df, num_rows="dynamic", hide_index=True, key=f"gt_table_{ss['gt_version']}",
            column_config={
                # Narrow columns so label and all four corners fit the sidebar without scrolling.
                "label": st.column_config.SelectboxColumn("label", options=class_names[1:], width="small"),
                **{c: st.column_config.NumberColumn(c, format="%g", width=40) for c in ("x1", "y1", "x2", "y2")},
                "difficult": st.column_config.CheckboxColumn("diff.", help="VOC difficult object", width=40),
                "crowd": st.column_config.CheckboxColumn("crowd", help="COCO crowd region: never ground truth",
                                                         width=40),
            },
        )
        rows = edited.to_dict("records")
        ss["gt_current"] = rows
        if keep_mod.plain_rows(rows) != keep_mod.plain_rows(ss["gt_base"]):
            _add_gt_source("typed")
        gt = gt_mod.validate_rows(rows, class_names, image.image_hw, keep_difficult=keep_difficult)
        st.caption(f"{len(gt)} box(es) in use, of {len(rows)} row(s). Source: "  # a file name is user text
                   + _ui.plain(keep_mod.describe_source(tuple(ss.get("gt_source", []))) + "."))
        if st.button("Clear all boxes", key="gt_clear"):
            ss["gt_base"], ss["gt_source"] = [], []
            ss["gt_version"] += 1
            st.rerun()
        _gt_downloads(image, rows, class_names)
    if gt.errors:
        st.sidebar.error("Skipped ground-truth rows:")
        st.sidebar.code("\n".join(gt.errors), language=None, wrap_lines=True)
    return gt


# ---------------------------------------------------------------- kept across a reload
def _restore_kept() -> None:
    """On a session's first run, take back the image and GT kept under the URL's token
    (the user reloaded the page); a missing, unknown, expired or malformed token: nothing."""
    ss = st.session_state
    if "_kept_token" in ss:  # once per session
        return
    token = st.query_params.get(keep_mod.TOKEN_PARAM)
    entry = KEPT.get(token)
    ss["_kept_token"] = token if entry is not None else None
    if entry is None:
        return
    if entry.is_upload:
        ss["image_source"], ss["_kept_upload"] = "Upload", (entry.image_name, entry.upload)
    else:
        ss["image_source"], ss["sample_id"] = "Sample scene", entry.image_name
    # The GT editor keeps gt_base while the image's digest is gt_digest.
    ss["gt_digest"], ss["gt_base"], ss["gt_source"] = entry.image_digest, [dict(r) for r in entry.gt_rows], \
        list(entry.gt_source)
    ss["gt_version"] = ss.get("gt_version", 0) + 1
    ss["gt_keep_difficult"] = entry.keep_difficult
    ss["_kept_signature"] = _signature(entry)


def _signature(entry: keep_mod.KeptInputs) -> tuple:
    """What tells two entries apart, without comparing upload bytes (the digest does)."""
    return entry.image_name, entry.image_digest, entry.gt_rows, entry.gt_source, entry.keep_difficult


def _keep_inputs(image: samples_mod.LoadedImage, sample_id: str | None, default_id: str) -> None:
    """Keep this run's image and GT table under the session's token, and put the token in
    the URL (again: a page change drops it). The default sample with its own boxes needs
    nothing kept: its entry and the URL's token go."""
    ss = st.session_state
    entry = keep_mod.KeptInputs(
        image_name=image.name if sample_id is None else sample_id,
        upload=image.data if sample_id is None else None, image_digest=image.digest,
        gt_rows=keep_mod.plain_rows(ss.get("gt_current", [])), gt_source=tuple(ss.get("gt_source", [])),
        keep_difficult=bool(ss.get("gt_keep_difficult")))
    token = ss.get("_kept_token")
    if sample_id == default_id and entry.gt_rows == keep_mod.plain_rows(image.gt_rows) and not entry.keep_difficult:
        KEPT.drop(token)
        ss["_kept_signature"], ss["_kept_ok"] = None, True
        if keep_mod.TOKEN_PARAM in st.query_params:
            del st.query_params[keep_mod.TOKEN_PARAM]
        return
    if token is None:
        token = ss["_kept_token"] = keep_mod.new_token()
    # A new state, or the store let this session's entry go (LRU, idle time): put it back.
    if _signature(entry) != ss.get("_kept_signature") or (ss.get("_kept_ok") and KEPT.get(token) is None):
        ss["_kept_signature"] = _signature(entry)
        ss["_kept_ok"] = KEPT.put(token, entry)
    if not ss.get("_kept_ok", True):
        st.sidebar.caption(f"This ground truth has over {keep_mod.MAX_GT_ROWS} rows (or the image is too "
                           "large): it is not kept across a reload.")
    if st.query_params.get(keep_mod.TOKEN_PARAM) != token:
        st.query_params[keep_mod.TOKEN_PARAM] = token


def sidebar() -> ExplorerContext:
    """Draw the shared sidebar and return (and store) the context every page uses."""
    st.sidebar.markdown(f"**SSD Explorer** · [paper]({PAPER_URL})")
    _restore_kept()
    loaded, model_key = _model_picker()
    _model_file.weights_file_loader()
    image, sample_id, default_id = _image_picker()
    gt = _gt_editor(image, loaded.class_names)
    _keep_inputs(image, sample_id, default_id)
    w, h = image.image.size
    st.sidebar.caption(_ui.plain(f"{image.name}: {w}x{h} px, {len(gt)} GT boxes; model input "
                                 f"{loaded.model.cfg.image_size}x{loaded.model.cfg.image_size}."))
    ctx = ExplorerContext(loaded, model_key, image, gt)
    st.session_state[CTX_KEY] = ctx
    return ctx
