"""Default boxes: scales, aspect ratios and feature maps -> the boxes of each cell (Sec. 2.2)."""
import streamlit as st

from explorer.views import default_boxes as dbv
from pages import _cache, _sidebar, _ui

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Default boxes",
    "Every cell of every feature map owns a few fixed **default boxes** centred on it. Level k "
    "has scale s_k (box side as a fraction of the input), spread linearly from s_min to s_max; "
    "each aspect ratio a_r gives a box of width s_k·√a_r and height s_k/√a_r, and ratio 1 gets "
    "an extra box of scale s'_k = √(s_k·s_k+1). Move the sliders and pick a cell (click a dot on "
    "the image, or type its row and column).",
    "Sec. 2.2, \"Choosing scales and aspect ratios for default boxes\"",
)

ss = st.session_state
CUSTOM = "custom (your settings, paper's linear rule)"
model_cfg = ctx.loaded.model.cfg
presets = dict(dbv.PRESETS)
presets[f"the selected model's own ({model_cfg.name})"] = lambda: model_cfg
options = list(presets) + [CUSTOM]
CONTROL_KEYS = {"image_size": "db_size", "s_min": "db_smin", "s_max": "db_smax",
                "feature_maps": "db_maps", "ratios": "db_ratios", "extra_box": "db_extra",
                "clip": "db_clip", "four_box_levels": "db_four"}


def _apply_preset() -> None:
    name = ss["db_preset"]
    if name in presets:
        for field, value in dbv.controls_from_config(presets[name]()).items():
            ss[CONTROL_KEYS[field]] = value


def _to_custom() -> None:
    ss["db_preset"] = CUSTOM


if ss.get("db_preset") not in options:
    ss["db_preset"] = options[0]
    _apply_preset()

# A click on a cell centre (points selection) arrives before the widgets are drawn.
clicked = _ui.new_selection("db_chart", "points")
cell = dbv.cell_from_customdata(clicked.get("customdata")) if isinstance(clicked, dict) else None
if cell is not None:
    ss["db_row"], ss["db_col"] = cell

left, right = st.columns([1, 2], gap="medium")
with left:
    st.selectbox("Preset", options, key="db_preset", on_change=_apply_preset)
    st.slider("Input size S (px)", 64, 1024, step=4, key="db_size", on_change=_to_custom)
    c1, c2 = st.columns(2)
    c1.slider("s_min", 0.02, 1.0, step=0.01, key="db_smin", on_change=_to_custom)
    c2.slider("s_max", 0.05, 1.5, step=0.01, key="db_smax", on_change=_to_custom)
    st.text_input("Feature-map sizes (one per level)", key="db_maps", on_change=_to_custom,
                  help="Comma-separated sides of the square feature maps, largest first: the number "
                       "of entries is the number of levels m.")
    st.multiselect("Aspect ratios a_r", list(dbv.RATIO_CHOICES), key="db_ratios", on_change=_to_custom)
    st.checkbox("extra box s'_k = √(s_k·s_k+1) for ratio 1", key="db_extra", on_change=_to_custom)
    st.checkbox("clip box sizes to the image", key="db_clip", on_change=_to_custom)
    st.checkbox("only 1, 2, 1/2 on the first and last two levels (SSD300)", key="db_four", on_change=_to_custom)

try:
    if ss["db_preset"] in presets:
        cfg = presets[ss["db_preset"]]()
    else:
        cfg = dbv.custom_config(
            ss["db_size"], ss["db_smin"], ss["db_smax"], dbv.parse_feature_maps(ss["db_maps"]),
            tuple(dbv.RATIO_CHOICES[r] for r in ss["db_ratios"]), ss["db_extra"], ss["db_clip"], ss["db_four"],
        )
except ValueError as e:
    with right:
        st.error(f"These settings do not make a valid SSD: {e}")
    st.stop()

db = _cache.default_boxes_of(cfg)
with left:
    if ss.get("db_level", 0) >= cfg.num_levels:
        ss["db_level"] = 0
    level = st.selectbox("Level (feature map)", list(range(cfg.num_levels)), key="db_level",
                         format_func=lambda k: f"{k}: {cfg.feature_maps[k]}x{cfg.feature_maps[k]}")
    f = cfg.feature_maps[level]
    for key in ("db_row", "db_col"):
        if ss.get(key) is None or ss[key] > f - 1:
            ss[key] = f // 2
    c6, c7 = st.columns(2)
    row = c6.number_input("Cell row i", 0, f - 1, key="db_row")
    col = c7.number_input("Cell column j", 0, f - 1, key="db_col")

img = ctx.image
uri = _cache.image_uri(img.digest, img.image, (cfg.image_size, cfg.image_size))
fig = dbv.default_box_figure(cfg, db, level, (int(row), int(col)), uri)
with right:
    st.caption(f"The {cfg.image_size}x{cfg.image_size} network input (your image stretched to a square) "
               f"with the {f}x{f} grid of level {level} and the {db.wh_per_level[level].shape[0]} default "
               f"boxes of cell ({row}, {col}).")
    _ui.show_plotly(fig, key="db_chart", on_select="rerun", selection_mode="points")

rows = dbv.level_rows(cfg)
total = len(db)
m1, m2, m3 = st.columns(3)
m1.metric("Total default boxes", f"{total}")
m2.metric("Levels", cfg.num_levels)
m3.metric(f"Boxes on level {level}", db.per_level[level])
st.dataframe(rows, hide_index=True, width="stretch")
st.dataframe(dbv.cell_box_rows(db, cfg, level, int(row), int(col)), hide_index=True, width="stretch")
_ui.show_plotly(dbv.box_size_figure(cfg), key="db_sizes")
_ui.download_buttons("Per-level default boxes", rows, key=f"default_boxes_{cfg.name}",
                         payload={"config": cfg.to_dict(), "levels": rows, "total": total})
