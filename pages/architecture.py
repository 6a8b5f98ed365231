"""Architecture: the model as a table, one row per source feature map (Sec. 2.1, Fig. 2)."""
import streamlit as st

from explorer.results import build_model, ssd300_voc
from explorer.views.architecture import COLUMN_EXPLANATIONS, architecture_rows, summary_lines, total_boxes
from pages import _sidebar, _ui

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Architecture",
    "SSD adds small 3x3 convolutional *predictors* to several feature maps of a base network. "
    "Each cell of a feature map owns K default boxes; for each box the predictor outputs C class "
    "scores and 4 box offsets, so a level with an H x W map needs K x (C + 4) filters and "
    "contributes H x W x K boxes. Summing the levels gives the fixed set of default boxes "
    "(8732 for SSD300).",
    "Sec. 2.1 and Fig. 2",
)


@st.cache_resource(show_spinner="Building SSD300 (random weights, for its layout)...")
def _ssd300():

    # The paper's VOC scales (0.1 for conv4_3, then 0.2..0.9), not torchvision's COCO ones.
    return build_model("ssd300_vgg16", cfg=ssd300_voc()).eval()


which = st.radio(
    "Show", [_ui.plain(f"the sidebar's model ({ctx.loaded.label})"), "SSD300 VGG16 as in the paper (21 VOC classes)"],
    horizontal=True, key="arch_which",
)
model = ctx.loaded.model if which.startswith(_ui.plain("the sidebar")) else _ssd300()
rows = architecture_rows(model)
st.metric("Default boxes in all", f"{total_boxes(model)}")
# As text: the totals row has words and blanks in number columns, which Arrow refuses to
# convert (Streamlit then logged an error and fell back on every visit).
st.dataframe([{k: str(v) for k, v in r.items()} for r in rows], hide_index=True, width="stretch")
st.markdown("\n".join(f"- {line}" for line in summary_lines(model)))
with st.expander("What each column means", expanded=True):
    st.markdown("\n".join(f"- **{k}**: {v}" for k, v in COLUMN_EXPLANATIONS.items()))
_ui.download_buttons("Architecture table", rows, key=f"architecture_{model.name}")
