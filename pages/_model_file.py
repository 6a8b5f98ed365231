"""The sidebar's "Load a model from a weights file": a path on the server or an upload,
for torchvision-format weights (e.g. COCO weights copied from a machine with internet)
or a project checkpoint. On success the sidebar's model becomes it."""
from __future__ import annotations

import streamlit as st

from explorer.inputs import models as models_mod
from explorer.inputs import weights_file
from pages import _cache, _ui

EXPANDER = "Load a model from a weights file"  # models.LOAD_FROM_FILE_HINT names it
KINDS = {**{a: f"torchvision {label} state dict (.pth)" for a, label in models_mod.WEIGHTS_FILE_ARCHS.items()},
         weights_file.CHECKPOINT: "SSD Explorer checkpoint (.pt)"}


def _roots() -> tuple:
    return _ui.data_roots()


def weights_file_loader() -> None:
    """The expander; a successful load sets `model_choice` and reruns (the picker follows)."""
    with st.sidebar.expander(EXPANDER):
        kind = st.selectbox("What the file holds", list(KINDS), format_func=KINDS.get, key="wf_kind")
        path_text = st.text_input("Path on this server", key="wf_path", placeholder="~/weights/ssdlite320_coco.pth",
                                  help="Inside: " + (", ".join(str(r) for r in _roots()) or
                                                     "none (an administrator sets SSD_DATA_ROOTS)"))
        upload = st.file_uploader("or upload it (at most 50 MB)", type=["pth", "pt"], key="wf_upload")
        if not st.button("Load this model", key="wf_load"):
            return
        try:
            if upload is not None:
                model_id = weights_file.from_upload(kind, upload.name, upload.getvalue())
            else:
                model_id = weights_file.from_path(kind, path_text, _roots())
            _cache.load_model(model_id)  # fails here, with its reason, rather than after the switch
        except models_mod.ModelLoadError as e:  # named as the user knows the file, no server path
            st.error(_ui.plain(e.for_user(upload.name if upload is not None else path_text)))
            return
        st.session_state["model_choice"] = model_id
        st.rerun()
