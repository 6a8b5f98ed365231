"""The ground truth of the shown image: the sidebar's short summary and its annotation
file, the full-width table on the Home page (typed, drawn or read boxes), and its downloads.

Every change goes to the session's workspace (`pages/_workspace.py`, `explorer.workspace`),
so the sidebar, every figure and the page's link use it; `gt_version` gives the table a
fresh key whenever the rows change from outside it (new image, file, drawn box).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from explorer import workspace
from explorer.inputs import ground_truth as gt_mod
from explorer.inputs import samples as samples_mod
from explorer.inputs import session_store as keep_mod
from pages import _grid_keys, _ui, _workspace


def _file_key(image: samples_mod.LoadedImage) -> str:
    """The annotation uploader's key: one per image, so a file never follows another image."""
    return f"gt_file_{image.digest[:16]}"


def _read_gt_file(image: samples_mod.LoadedImage, up, want) -> None:
    """Read the annotation file `up` for `image` into the workspace (COCO image id `want`)."""
    ss, ws = st.session_state, _workspace.get()
    try:
        w, h = image.image.size
        read = gt_mod.parse_annotation_file(up.name, up.getvalue(), image_name=image.name, image_hw=(h, w),
                                            coco_image_id=want)
        ws.set_gt(keep_mod.plain_rows(read.rows), [f"file {up.name}"])
        _new_table()
        ss["gt_file_notes"], ss["gt_file_error"] = read.notes, None
        if read.coco_image_ids != (ss.get("gt_coco_ids") or []):  # a new file: a fresh image-id picker
            ss["gt_coco_ids"], ss["gt_coco_want"] = read.coco_image_ids, read.coco_image_id
            ss["gt_coco_version"] = ss.get("gt_coco_version", 0) + 1
            ss["gt_file_seen"] = (image.digest, up.name, up.size, read.coco_image_id)
            st.rerun()
    except gt_mod.GTFileError as e:
        ss["gt_file_notes"], ss["gt_coco_ids"], ss["gt_file_error"] = [], [], str(e)
        if any(s.startswith("file ") for s in ws.gt.source):  # never keep a replaced file's rows
            ws.reset_gt()
            _new_table()
            ss["gt_file_error"] += ("\nThe boxes of the previous annotation file are no longer used: the "
                                    "image's own ground truth is back" + ("." if image.gt_rows else " (none)."))


def _gt_file(image: samples_mod.LoadedImage) -> None:
    """The annotation-file uploader of `_gt_editor` (one per image): read the file for this
    image into the workspace; removing it puts the image's own boxes back. Its notes and
    errors are user text, shown as plain text (`st.code`)."""
    ss, ws = st.session_state, _workspace.get()
    up = st.file_uploader("Annotation file", type=["xml", "json"], key=_file_key(image))
    seen = ss.get("gt_file_seen")
    if up is None:
        if seen is not None and seen[0] == image.digest and any(s.startswith("file ") for s in ws.gt.source):
            ws.reset_gt()  # the user removed the file: its rows go with it
            _new_table()
        ss["gt_file_notes"], ss["gt_file_error"], ss["gt_file_seen"] = [], None, None
        return
    ids, want = ss.get("gt_coco_ids") or [], ss.get("gt_coco_want")
    if len(ids) > 1:  # several COCO images share this file name: the user picks one
        want = st.selectbox("COCO image id", ids, index=ids.index(want) if want in ids else 0,
                            key=f"gt_coco_pick_{ss.get('gt_coco_version', 0)}")
    if seen != (image.digest, up.name, up.size, want):
        ss["gt_file_seen"] = (image.digest, up.name, up.size, want)
        _read_gt_file(image, up, want)
    if ss.get("gt_file_error"):
        st.error("The annotation file was refused:")
        st.code(ss["gt_file_error"], language=None, wrap_lines=True)
    if ss.get("gt_file_notes"):
        st.warning("About this annotation file:")
        st.code("\n".join(ss["gt_file_notes"]), language=None, wrap_lines=True)


def _new_table() -> None:
    """The GT table starts again from the workspace's rows (a new key for the editor)."""
    ss = st.session_state
    ss["gt_base"] = [dict(r) for r in _workspace.get().gt.rows]
    ss["gt_version"] = ss.get("gt_version", 0) + 1


def _add_gt_source(word: str) -> None:
    """Note how the GT rows came to be ("drawn", "typed"), once each."""
    ws = _workspace.get()
    if word not in ws.gt.source:
        ws.set_gt(source=ws.gt.source + (word,))


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


def _drawn_box(image: samples_mod.LoadedImage, class_names: list[str]) -> None:
    """A box drawn on the Home page (plotly box selection, frame = original pixels) joins the GT."""
    drawn = _ui.new_selection("gt_draw_chart", "box")
    row = gt_mod.box_from_selection(drawn, image.image_hw) if drawn is not None else None
    if row is not None:
        ws = _workspace.get()
        row["label"] = st.session_state.get("gt_draw_label") or class_names[1]
        ws.set_gt(ws.gt.rows + keep_mod.plain_rows([row]))
        _add_gt_source("drawn")
        _new_table()


def sidebar_editor(image: samples_mod.LoadedImage, class_names: list[str]) -> gt_mod.GroundTruth:
    """GT of the shown image (the workspace keeps it per image): its own, an annotation
    file, the table on the Home page (`gt_table`), or boxes drawn there. The sidebar keeps
    a short summary, the file uploader, the difficult rule and the downloads. Rows flagged
    difficult or crowd are shown but are not ground truth (difficult ones unless the box is
    ticked). Messages name user text, so they are shown as plain text.
    """
    ss, ws = st.session_state, _workspace.get()
    if ws.image is None or ws.image.digest != image.digest:  # called on its own (tests): show it first
        show_image(image, None if image.source == "upload" else image.name)
    if ss.get("_gt_table_of") != image.digest or "gt_base" not in ss:
        ss["_gt_table_of"] = image.digest
        _new_table()
    _drawn_box(image, class_names)
    rows = [dict(r) for r in ws.gt.rows]
    with st.sidebar.expander("Ground-truth boxes", expanded=False):
        st.caption("Pixels of the original image. Load a VOC .xml / COCO .json here; edit the table, add rows or "
                   "draw boxes on the Home page.")
        _gt_file(image)
        keep_difficult = _workspace.bound(
            "checkbox", "gt_keep_difficult", lambda: ws.gt.keep_difficult, lambda v: ws.set_gt(keep_difficult=v),
            "Difficult objects are ground truth",
            help="VOC <difficult> objects are left out of matching by default, as the VOC devkit and the "
                 "library's reader do.")
        rows = [dict(r) for r in ws.gt.rows]  # the file may have changed them
        gt = gt_mod.validate_rows(rows, class_names, image.image_hw, keep_difficult=keep_difficult)
        st.caption(f"{len(gt)} box(es) in use, of {len(rows)} row(s). Source: "  # a file name is user text
                   + _ui.plain(keep_mod.describe_source(ws.gt.source) + "."))
        try:
            st.page_link("pages/home.py", label="Edit the boxes (Home page)", icon=":material/edit:")
        except st.errors.StreamlitAPIException:  # drawn outside the app's navigation (a test script)
            st.caption("Edit the boxes on the Home page.")
        _gt_downloads(image, rows, class_names)
    if gt.errors:
        st.sidebar.error("Skipped ground-truth rows:")
        st.sidebar.code("\n".join(gt.errors), language=None, wrap_lines=True)
    return gt


def gt_table(image: samples_mod.LoadedImage, class_names: list[str]) -> None:
    """The GT table of the shown image, full width (the Home page): it starts from the
    workspace's rows (`gt_version` gives the editor a fresh key whenever they change from
    outside it: new image, file, drawn box); an edit goes back to the workspace and reruns,
    so the sidebar and every figure use it. A label the model does not know (a refused
    row) stays shown in its cell."""
    ss, ws = st.session_state, _workspace.get()
    c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
    c1.selectbox("Label for drawn boxes", class_names[1:], key="gt_draw_label")
    if c2.button("Clear all boxes", key="gt_clear"):
        ws.set_gt((), ())
        _new_table()
        st.rerun()
    df = pd.DataFrame(ss["gt_base"], columns=list(gt_mod.GT_COLUMNS))
    df[["difficult", "crowd"]] = df[["difficult", "crowd"]].map(gt_mod.flag)  # missing -> False
    known = list(class_names[1:])
    labels = known + sorted({str(v) for v in df["label"].dropna()} - set(known))  # refused labels stay visible
    _grid_keys.guard()  # Tab / Enter commit a typed cell however soon they follow it
    edited = st.data_editor(
        df, num_rows="dynamic", hide_index=True, key=f"gt_table_{ss['gt_version']}", width="stretch",
        column_config={
            "label": st.column_config.SelectboxColumn("label", options=labels, width="medium"),
            **{c: st.column_config.NumberColumn(c, format="%g") for c in ("x1", "y1", "x2", "y2")},
            "difficult": st.column_config.CheckboxColumn("difficult", help="VOC difficult object"),
            "crowd": st.column_config.CheckboxColumn("crowd", help="COCO crowd region: never ground truth"),
        },
    )
    rows = keep_mod.plain_rows(edited.to_dict("records"))
    if rows != ws.gt.rows:  # an edit (the table starts equal to the workspace's rows)
        ws.set_gt(rows)
        _add_gt_source("typed")
        st.rerun()  # the sidebar and the figures of this run used the rows before the edit


def show_image(image: samples_mod.LoadedImage, sample_id: str | None) -> None:
    """The workspace shows `image`: its GT is what it had, else its own boxes."""
    ws = _workspace.get()
    ref = (workspace.ImageRef(sample_id=sample_id, digest=image.digest) if sample_id is not None
           else workspace.ImageRef(upload_name=image.name, digest=image.digest))
    ws.show_image(ref, keep_mod.plain_rows(image.gt_rows))
    workspace.claim_trace(ws)
