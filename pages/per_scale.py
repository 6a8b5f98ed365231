"""Per-scale detections: what each feature map scores and detects (Sec. 2.1, Fig. 1)."""
import streamlit as st

from explorer.views import per_scale as psv
from pages import _cache, _sidebar, _ui

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Per-scale detections",
    "Each feature map predicts only with its own default boxes, whose size grows as the map "
    "shrinks: a big map with small cells finds small objects, a small map with big cells finds "
    "big ones. Below, each level's grid is coloured by the best score of the chosen class in each "
    "cell, with the boxes that level detects on its own (before the final NMS over all levels). "
    "On the cat-and-dog scene the cat lights up on the 8x8 map and the dog on the 4x4 map, as in "
    "the paper's Fig. 1.",
    "Sec. 2.1 \"Multi-scale feature maps for detection\" and Fig. 1",
    shows_detections=True,
)

names = ctx.loaded.class_names
options = [psv.ANY_CLASS] + list(range(1, len(names)))
c1, c2 = st.columns([2, 1])
cls = c1.selectbox("Class", options, key="ps_class",
                   format_func=lambda c: "any object (best non-background class)" if c == psv.ANY_CLASS else names[c])
opacity = c2.slider("Heatmap opacity", 0.0, 1.0, 0.9, 0.05, key="ps_opacity")

stg = _cache.current_stages(ctx)
maps, classes = psv.level_score_maps(stg.scores, stg.feature_sizes, cls)
img = ctx.image
cfg = ctx.loaded.model.cfg
level_names = list(ctx.loaded.model.level_names)
fig = psv.per_scale_figure(maps, classes, stg.level_detections, stg.feature_sizes, cfg.steps, cfg.image_size,
                           _cache.image_uri(img.digest, img.image), img.image.size, names, level_names,
                           opacity=opacity)
_ui.show_plotly(fig, key="ps_chart")
rows = psv.level_summary(maps, classes, stg.level_detections, stg.feature_sizes, names, level_names)
st.dataframe(rows, hide_index=True, width="stretch")
dets = [dict(d, level=k) for k, det in enumerate(stg.level_detections) for d in det.to_records(names)]
_ui.download_buttons("Per-level summary", rows, key="per_scale_levels")
_ui.download_buttons("Per-level detections", dets, key="per_scale_detections")
