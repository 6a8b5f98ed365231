"""Home: what SSD is, the image being explored with its ground truth (draw boxes here)."""
import streamlit as st

from explorer.views.figures import PAPER_URL, gt_figure
from pages import _cache, _ground_truth, _sidebar, _ui

_ui.require_app_frame()

ctx = _sidebar.context()
st.title("SSD Explorer")
st.markdown(
    "The **Single Shot MultiBox Detector** ([Liu et al. 2016]({url})) finds objects in one "
    "pass: a convolutional network predicts, on several feature maps of decreasing size, a "
    "class score and a box offset for each of a fixed set of **default boxes**. Small maps "
    "with big cells see big objects, large maps with small cells see small ones. Each page "
    "opens one step, on the image and model chosen in the sidebar:".format(url=PAPER_URL)
)
steps = [
    ("pages/architecture.py", "Architecture", "layers, channels, boxes (Sec. 2.1)"),
    ("pages/default_boxes.py", "Default boxes", "scales and aspect ratios (Sec. 2.2)"),
    ("pages/dataset.py", "Dataset coverage", "do the boxes fit your data? a tuner"),
    ("pages/matching.py", "Matching & hard negatives", "training targets and loss (Sec. 2.2)"),
    ("pages/per_scale.py", "Per-scale detections", "what each feature map sees (Fig. 1)"),
    ("pages/nms.py", "NMS", "from candidates to detections (Sec. 3.7)"),
    ("pages/trace.py", "Trace one object", "one object through every stage"),
    ("pages/augment.py", "Augmentation", "what training does to an image (Table 2)"),
    ("pages/evaluation.py", "Evaluation", "AP, error types, per feature map (Sec. 3)"),
    ("pages/paper_lab.py", "Paper lab", "the paper's ablations, re-run (Tables 2, 3)"),
    ("pages/training.py", "Training", "launch and watch real runs"),
]
for row in (steps[:4], steps[4:8], steps[8:]):  # every page of the menu (app.py) but this one
    for col, (path, label, what) in zip(st.columns(4), row):
        with col:
            st.page_link(path, label=label)
            st.caption(what)

img = ctx.image
w, h = img.image.size
st.subheader(_ui.plain(f"Your image: {img.name} ({w}x{h} px)"))
st.caption("Cyan: ground-truth boxes (edit them in the table below). To draw a new one, drag a "
           "rectangle on the image; it gets the label chosen in *Label for drawn boxes* below.")
fig = gt_figure(_cache.image_uri(img.digest, img.image), (h, w), ctx.gt.boxes_xyxy.numpy(), ctx.gt.names)
_ui.show_plotly(fig, key="gt_draw_chart", on_select="rerun", selection_mode="box")
st.subheader("Ground-truth boxes")
st.caption("Pixels of the original image: type in a cell, then Enter or Tab commits it (Enter moves down, "
           "Tab right); add a row at the bottom, select rows to delete them. "
           "Load a VOC .xml or COCO .json in the sidebar (*Ground-truth boxes*). Rows marked difficult or crowd "
           "are shown but not matched; a row the model cannot use is listed in the sidebar with the reason.")
_ground_truth.gt_table(img, ctx.loaded.class_names)
