"""Default boxes: scales, aspect ratios and feature maps -> the boxes of each cell (Sec. 2.2)."""
import streamlit as st

from explorer.views import default_box_checks as dbc
from explorer.views import default_boxes as dbv
from explorer.views import live_data
from pages import _cache, _live, _sidebar, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Default boxes",
    "Every cell of every feature map owns a few fixed **default boxes** centred on it. Level k "
    "has scale s_k (box side as a fraction of the input), spread linearly from s_min to s_max; "
    "each aspect ratio a_r gives a box of width s_k·√a_r and height s_k/√a_r, and ratio 1 gets "
    "an extra box of scale s'_k = √(s_k·s_k+1). A preset fills every control with its exact values; "
    "edit a level's scale directly, or let the paper's rule fill them. Pick a cell by clicking a dot "
    "on the image, or type its row and column. The Dataset page measures these boxes on your data.",
    "Sec. 2.2, \"Choosing scales and aspect ratios for default boxes\"",
)

ss = st.session_state
CUSTOM = "custom (your settings)"
model_cfg = ctx.loaded.model.cfg
presets = dict(dbv.PRESETS)
presets[f"the selected model's own ({model_cfg.name})"] = lambda: model_cfg
options = list(presets) + [CUSTOM]
KEYS = {"image_size": "db_size", "feature_maps": "db_maps", "steps": "db_steps", "scales": "db_scales",
        "ratio_sets": "db_ratio_sets", "extra_box": "db_extra", "clip": "db_clip", "s_min": "db_smin",
        "s_max": "db_smax", "first_separate": "db_first", "s_first": "db_sfirst"}


def _controls() -> dict:
    return {field: ss[key] for field, key in KEYS.items()}


def _set_controls(values: dict) -> None:
    for field, value in values.items():
        ss[KEYS[field]] = value


def _apply_preset() -> None:
    if ss["db_preset"] in presets:
        _set_controls(dbv.controls_from_config(presets[ss["db_preset"]]()))


PANEL_STALE = "_db_panel_stale"  # the preset box left a named preset in a rerun that may not draw it


def _to_custom() -> None:
    if ss.get("db_preset") != CUSTOM:
        ss[PANEL_STALE] = True
    ss["db_preset"] = CUSTOM


def _rule_changed() -> None:
    """A rule control moved: the scales follow the rule; nothing else changes."""
    _to_custom()
    try:
        ss["db_scales"] = dbv.scales_text_from_rule(_controls(), len(dbv.parse_feature_maps(ss["db_maps"])))
    except ValueError:
        pass  # the config below reports what is wrong


def _maps_changed() -> None:
    _to_custom()
    try:
        _set_controls(dbv.controls_for_new_maps(_controls()))
    except ValueError:
        pass


def _preset_of(origin: str) -> str:
    """The preset box's entry for a workspace origin ("preset <name>" -> name, else custom)."""
    name = origin[len("preset "):] if origin.startswith("preset ") else None
    return name if name in presets else CUSTOM


def _sync_state() -> None:
    """Before the widgets are drawn: the workspace's configuration and cell (a first visit
    shows the first preset; a return to the page, a link, a tuned configuration put in use
    on the Dataset page or taken back show theirs), and a click on a cell centre."""
    ws = _workspace.get()
    if ws.boxes.config is None:
        ss["db_preset"] = options[0]
        _apply_preset()
    elif ss.get("db_preset") not in options or ws.boxes.config != ss.get("_db_built"):
        _set_controls(dbv.controls_from_config(ws.boxes.config))
        ss["db_preset"] = _preset_of(ws.boxes.origin)
        ss["_db_built"] = ws.boxes.config
    if ws.cell is not None and "db_row" not in ss:  # the page was left: Streamlit dropped the cell's widgets
        ss["db_level"], ss["db_row"], ss["db_col"] = ws.cell.level, ws.cell.row, ws.cell.col
    clicked = _ui.new_selection("db_chart", "points")
    cell = dbv.cell_from_customdata(clicked.get("customdata")) if isinstance(clicked, dict) else None
    if cell is not None:
        ss["db_row"], ss["db_col"] = cell


LIVE_KEYS = ("db_size", "db_smin", "db_smax", "db_row", "db_col")


def _live_commit(values: dict) -> None:
    """The live figure's released values (before this run's widgets are drawn)."""
    if values.get("image_size") != ss.get("db_size"):
        ss["db_size"] = int(values["image_size"])
        _to_custom()
    if values.get("rule_moved") and (values.get("s_min"), values.get("s_max")) != (ss.get("db_smin"), ss.get("db_smax")):
        ss["db_smin"], ss["db_smax"] = float(values["s_min"]), float(values["s_max"])
        _rule_changed()
    ss["db_row"], ss["db_col"] = int(values["row"]), int(values["col"])


SCALES_LABEL = "Scales s_1 .. s_m+1 (fractions of S; the last one only sets the last extra box)"


def _scales_field(live: bool) -> None:
    st.text_input(SCALES_LABEL, key="db_scales", on_change=_to_custom,
                  help="s_min and s_max fill them by the paper's rule" + (" (the sliders above the figure)." if live
                                                                          else " (below)."))


def _config_controls(live: bool) -> None:
    """Every number of the configuration as a control; the paper's rule fills the scales.
    With the live figure in charge, its own controls replace S, s_min and s_max here, and
    the scales (which follow s_max) move under the figure, with the cell picker."""
    st.selectbox("Preset", options, key="db_preset", on_change=_apply_preset)
    if not live:
        st.slider("Input size S (px)", 64, 1024, step=4, key="db_size", on_change=_to_custom)
    st.text_input("Feature-map sizes (one per level)", key="db_maps", on_change=_maps_changed,
                  help="Comma-separated sides of the square feature maps, largest first: the number "
                       "of entries is the number of levels m. Steps, scales and ratio sets follow.")
    st.text_input("Steps (input px between cell centres, per level)", key="db_steps", on_change=_to_custom)
    if not live:
        _scales_field(live)
    st.text_input("Aspect ratios per level (levels split by ';')", key="db_ratio_sets", on_change=_to_custom,
                  help="For example '1, 2, 1/2; 1, 2, 1/2, 3, 1/3'. One set alone applies to every level.")
    c1, c2 = st.columns(2)
    c1.checkbox("extra box s'_k", key="db_extra", on_change=_to_custom,
                help="Ratio 1 gets a second box of scale s'_k = √(s_k·s_k+1) (Sec. 2.2).")
    c2.checkbox("clip box sizes to the image", key="db_clip", on_change=_to_custom)
    with st.expander("The paper's rule: fill the scales from s_min and s_max", expanded=True):
        if not live:
            c3, c4 = st.columns(2)
            c3.slider("s_min", 0.02, 1.0, step=0.01, key="db_smin", on_change=_rule_changed)
            c4.slider("s_max", 0.05, 1.5, step=0.01, key="db_smax", on_change=_rule_changed)
        else:
            st.caption("s_min and s_max: the sliders above the figure.")
        c5, c6 = st.columns(2)
        c5.checkbox("first level on its own (SSD300: 0.1 for conv4_3)", key="db_first", on_change=_rule_changed)
        c6.number_input("its scale", 0.01, 1.0, step=0.01, format="%.3f", key="db_sfirst", on_change=_rule_changed)


def _built_config():
    """The configuration the controls describe (shared with the dataset page), or the
    reason it is not a valid SSD."""
    if ss["db_preset"] in presets:
        preset_cfg = presets[ss["db_preset"]]()
        name, num_classes = preset_cfg.name, preset_cfg.num_classes
    else:  # custom keeps the class count it started from: only the boxes change here
        name, num_classes = "custom", getattr(ss.get("_db_built"), "num_classes", model_cfg.num_classes)
    try:
        cfg = dbv.config_from_controls(_controls(), name=name, num_classes=num_classes)
    except ValueError as e:
        return None, str(e)
    ss["_db_built"] = cfg
    # The configuration every page measures (Dataset, Training): the workspace's.
    _workspace.get().set_boxes(cfg, f"preset {ss['db_preset']}" if ss["db_preset"] in presets else "edited")
    return cfg, None


def _cell_picker(cfg) -> tuple[int, int, int]:
    """The level and cell (row, col) to draw; values a stale preset left are reset."""
    level = _level_picker(cfg)
    return (level, *_cell_inputs(cfg, level))


def _level_picker(cfg) -> int:
    ss["db_level"] = dbv.valid_level(ss.get("db_level"), cfg.num_levels)
    return st.selectbox("Level (feature map)", list(range(cfg.num_levels)), key="db_level",
                        format_func=lambda k: f"{k}: {cfg.feature_maps[k]}x{cfg.feature_maps[k]}")


def _valid_cell(cfg, level: int) -> int:
    """Resets a picked cell outside `level`'s map (a stale preset's) to its middle; returns the map's side."""
    f = cfg.feature_maps[level]
    for key in ("db_row", "db_col"):
        if not isinstance(ss.get(key), int) or not 0 <= ss[key] <= f - 1:
            ss[key] = f // 2
    return f


def _cell_inputs(cfg, level: int, side_by_side: bool = True) -> tuple[int, int]:
    """The picked cell (row, col) of `level` (the workspace's); values a stale preset left are reset."""
    f = _valid_cell(cfg, level)
    c6, c7 = st.columns(2) if side_by_side else (st, st)
    row = c6.number_input("Cell row i", 0, f - 1, key="db_row")
    col = c7.number_input("Cell column j", 0, f - 1, key="db_col")
    _workspace.get().pick_cell(level, int(row), int(col))
    return int(row), int(col)


def _tables(cfg, db, level: int, row: int, col: int, live: bool) -> None:
    """The server's totals, per-level table, picked cell's boxes, box-size chart and
    downloads (the fallback); with the live figure in charge the page draws the tables, the
    chart and the downloads (the same rows), and `_metrics` the totals."""
    rows = dbv.level_rows(cfg)
    if not live:
        _metrics(cfg, db, level)
        st.dataframe(rows, hide_index=True, width="stretch")
        st.dataframe(dbv.cell_box_rows(db, cfg, level, row, col), hide_index=True, width="stretch")
        _ui.show_plotly(dbv.box_size_figure(cfg), key="db_sizes")
    _ui.download_buttons("Per-level default boxes", rows, key=f"default_boxes_{cfg.name}",
                         payload={"config": cfg.to_dict(), "levels": rows, "total": len(db)})


def _metrics(cfg, db, level: int) -> None:
    """The totals (no scale changes them: the live figure's s_max leaves them as they are)."""
    m1, m2, m3 = st.columns(3)
    m1.metric("Total default boxes", f"{len(db)}")
    m2.metric("Levels", cfg.num_levels)
    m3.metric(f"Boxes on level {level}", db.per_level[level])


FIG_HEIGHT = 560  # px, the default-box chart


def _figure_caption(cfg, level: int, row: int, col: int) -> str:
    f = cfg.feature_maps[level]
    text = (f"The {cfg.image_size}x{cfg.image_size} network input (your image stretched to a square) "
            f"with the {f}x{f} grid of level {level}, the picked cell ({row}, {col}) outlined in black and "
            f"its {cfg.boxes_per_location()[level]} default boxes in colour.")
    style = dbv.grid_style(f, cfg.steps[level], cfg.image_size, dbv.PLOT_PX)
    if style.every > 1:
        text += (f" Cells are {style.cell_px:.0f} px on screen: the grid draws a line every {style.every} "
                 "cells, and every dot is still a cell to click (zoom in to see them all).")
    return text


@st.fragment
def _live_part(level: int) -> None:
    """With the live figure in charge: the figure and what follows its controls (the scales
    its s_min / s_max fill, the picked cell of `level`, the warnings, the downloads and the
    URL). A release (a slider let go, a click on a cell) reruns this part alone; a release
    that turns a named preset into custom reruns the app, so the preset box says so."""
    if ss.pop(PANEL_STALE, False):  # set by this rerun's callbacks: the panel must show "custom"
        st.rerun()
    _live.keep(*LIVE_KEYS)
    cfg, error = _built_config()
    if cfg is None:
        st.error(_ui.plain(f"These settings do not make a valid SSD: {error}"))
        _scales_field(True)
        return
    level = dbv.valid_level(level, cfg.num_levels)
    _valid_cell(cfg, level)
    row, col = ss["db_row"], ss["db_col"]
    img = ctx.image  # (no default boxes here: a release needs none, and the cache hands out a pickled copy)
    uri = _cache.image_uri(img.digest, img.image, (cfg.image_size, cfg.image_size))
    for warning in dbc.config_warnings(cfg):
        st.warning(warning.message)
    st.caption(_figure_caption(cfg, level, row, col))
    _live.mount("default_boxes", live_data.default_boxes_data(cfg, _controls(), level, (row, col), uri),
                _live_commit)
    # Under the figure (fewer elements for a release to send: no columns).
    _scales_field(True)
    _cell_inputs(cfg, level, side_by_side=False)
    _workspace.sync_url()


# A fragment: a control here reruns the controls and figures only, not the sidebar.
@st.fragment
def _default_boxes_section() -> None:
    _sync_state()
    ss.pop(PANEL_STALE, None)  # this run draws the preset box
    live = _live.enabled() and bool(ss.get("_live_ready_default_boxes"))
    if live:
        _live.keep(*LIVE_KEYS)
    left, right = st.columns([1, 2], gap="medium")
    with left:
        _config_controls(live)
    cfg, error = _built_config()
    if live and cfg is not None:
        db = _cache.default_boxes_of(cfg)
        with left:
            level = _level_picker(cfg)
        with right:
            _live_part(level)
        _metrics(cfg, db, level)
        return
    if cfg is None:
        with right:
            st.error(_ui.plain(f"These settings do not make a valid SSD: {error}"))
            if live:  # the scales (not in the panel while the live figure is in charge)
                _scales_field(live)
        return
    db = _cache.default_boxes_of(cfg)
    with left:
        level, row, col = _cell_picker(cfg)
    img = ctx.image
    uri = _cache.image_uri(img.digest, img.image, (cfg.image_size, cfg.image_size))
    with right:
        for warning in dbc.config_warnings(cfg):
            st.warning(warning.message)
        st.caption(_figure_caption(cfg, level, row, col))
        # The live figure (computed in the page on every step); the server figure until
        # the browser has run it once, or always when it is off.
        live = _live.mount("default_boxes", live_data.default_boxes_data(cfg, _controls(), level, (row, col), uri),
                           _live_commit)
        if not live:
            _live.fallback_note()
            fig = dbv.default_box_figure(cfg, db, level, (row, col), uri, fig_height=FIG_HEIGHT)
            _ui.show_plotly(fig, key="db_chart", on_select="rerun", selection_mode="points")
    _tables(cfg, db, level, row, col, live)
    _workspace.sync_url()


_default_boxes_section()
