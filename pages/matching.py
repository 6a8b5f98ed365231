"""Matching & hard negatives: which default boxes become positives, which negatives the
loss keeps, and the loss of this image (Sec. 2.2)."""

import streamlit as st

from explorer import results
from explorer.views import encoding as ev
from explorer.views import live_data, live_matching
from explorer.views import matching as mv
from explorer.views.live_data import MATCH_IOU_RANGE, NEG_POS_RANGE
from pages import _cache, _live, _sidebar, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Matching & hard negatives",
    "To train, each default box gets a target. **Matching**: every ground-truth box first takes "
    "the default box it overlaps best, so no object is left out; then every default box whose IoU "
    "(jaccard overlap) with some ground truth reaches the threshold becomes a positive for it. A "
    "best box that the threshold alone would not give its ground truth (its IoU is below the "
    "threshold) is counted as **forced**. All others are negatives; since they vastly outnumber positives, "
    "**hard negative mining** keeps only the negatives the model is most wrong about (highest "
    "confidence loss), at most neg:pos = 3:1.",
    "Sec. 2.2, \"Matching strategy\", \"Training objective\" (Eq. 1) and \"Hard negative mining\"",
    shows_detections=True,
)


def _encoding_section(view, gt, db, cfg, hw) -> None:
    """The box encoding of one positive the user picks (Sec. 2.2, Eq. 2)."""
    st.caption("The regression target of a positive: the ground truth's centre offset in units of the default "
               "box's size, and the log of the size ratios (Eq. 2), each divided by a *variance* (0.1 centre, "
               "0.2 size). The variances are in every SSD code base (torchvision's BoxCoder weights 10, 10, 5, 5) "
               "but not in the paper: they scale the targets to about unit spread for Smooth L1.")
    if view.records:
        pick = st.selectbox("Positive default box", range(len(view.records)), key="enc_pick",
                            format_func=lambda i: (f"#{view.records[i]['default_index']}: GT {view.records[i]['gt']} "
                                                   f"({view.records[i]['gt_label']}), level {view.records[i]['level']}, "
                                                   f"IoU {view.records[i]['iou']:.2f}"))
        rec = view.records[pick]
        enc = ev.encoding_rows(results.px_to_norm(gt.boxes_xyxy, hw)[rec["gt"]], db.cxcywh[rec["default_index"]],
                               cfg.variances, cfg.image_size)
        e1, e2 = st.columns([3, 2])
        e1.dataframe(enc["rows"], hide_index=True, width="stretch")
        e1.caption(f"GT (cx, cy, w, h) = {enc['gt_cxcywh_px_in']} px, default box = {enc['default_cxcywh_px_in']} px "
                   f"at the {cfg.image_size} px input. Decoding the targets gives the GT back "
                   f"(max error {enc['round_trip_error']:.1e}).")
        with e2:
            _ui.show_plotly(ev.smooth_l1_figure(enc["rows"]), key="enc_chart")


SECTIONS = ("Positives", "Box encoding", "Hard negatives & loss")
LIVE_SECTIONS = dict(zip(SECTIONS, ("positives", "encoding", "loss")))  # the live figure's name of each


def _live_commit(values: dict) -> None:
    """The live figure's released values (before this run's script): the workspace's matching settings."""
    try:
        _workspace.get().set_matching(iou_thresh=float(values["iou_thresh"]),
                                      neg_pos_ratio=float(values["neg_pos_ratio"]))
    except (KeyError, TypeError, ValueError):
        pass


def _box_data(ctx) -> tuple[str, dict]:
    """The live figure's per-box data (the losses no slider changes; `live_matching`), built
    once per model, image and GT in this session (`_live.held_data`).
    Returns (its id, the data)."""
    img, gt, cfg = ctx.image, ctx.gt, ctx.loaded.model.cfg

    def build() -> dict:
        stg, db = _cache.current_stages(ctx), _cache.default_boxes_of(cfg)
        return live_matching.matching_box_data(stg.cls_logits_flat(), stg.bbox_regression_flat(), db,
                                               results.px_to_norm(gt.boxes_xyxy, img.image_hw), gt.labels,
                                               cfg.variances)

    key = (ctx.model_key, img.digest, tuple(map(tuple, gt.boxes_xyxy.tolist())), tuple(gt.labels.tolist()))
    return _live.held_data("matching", key, build)


def _live_figure(ctx, iou_thr: float, ratio: float, section: str = SECTIONS[0]) -> bool:
    """The matching figure computed in the page (True when it is in charge); the page also
    draws the numbers and the tables of `section` (none for the box encoding)."""
    img, cfg = ctx.image, ctx.loaded.model.cfg
    box_id, box_data = _box_data(ctx)
    data = live_data.matching_data(cfg, results.px_to_norm(ctx.gt.boxes_xyxy, img.image_hw), ctx.gt.names,
                                   ctx.gt.boxes_xyxy, img.image_hw, iou_thr, ratio,
                                   _cache.image_uri(img.digest, img.image), ctx.loaded.class_names,
                                   LIVE_SECTIONS[section])
    return _live.mount("matching", {**data, **box_data}, _live_commit,
                       held=(box_id, ("gt_norm",) + live_matching.HELD_FIELDS))


def _positives_section(view, gt, uri, hw, model, iou_thr) -> None:
    st.caption("Solid: matched with IoU >= threshold. Dashed: forced, a GT's best default box that the "
               "threshold alone would not give it. "
               "Hover a box centre for its level, cell, shape and IoU.")
    _ui.show_plotly(mv.matching_figure(view, uri, hw, gt.boxes_xyxy, gt.names, list(model.level_names)),
                    key="match_chart")
    _positives_tables(view, iou_thr)


def _positives_tables(view, iou_thr) -> None:
    st.subheader("Best possible match per ground truth")
    missing = [s for s in view.summary if not s["above_threshold"]]
    if missing:
        st.warning("No default box reaches the threshold for: " + _ui.plain(", ".join(
            f"GT {s['gt']} ({s['label']}, best IoU {mv.iou_text(s['best_possible_iou'])})" for s in missing))
            + ". Only the forced match trains it; other scales or ratios would fit it better.")
    st.dataframe(view.summary, hide_index=True, width="stretch")
    with st.expander("Matches per ground truth and level", expanded=True):
        st.dataframe(view.per_gt_level, hide_index=True, width="stretch")
    with st.expander(f"All {len(view.records)} positive default boxes"):
        st.dataframe(view.records, hide_index=True, width="stretch")
    _ui.download_buttons("Matches", view.records, key="matches",
                         payload={"iou_threshold": iou_thr, "summary": view.summary,
                                  "per_gt_level": view.per_gt_level, "positives": view.records})


def _loss_section(lv, db, gt, uri, hw, iou_thr, ratio) -> None:
    """The server's loss numbers, hard-negative chart and table (the fallback)."""
    st.caption(f"Sums before dividing by N: L_conf = {lv.conf_sum:.3f}, L_loc = {lv.loc_sum:.3f}. "
               f"{len(db) - lv.num_pos - lv.num_hard_negative} easy negatives are ignored.")
    _ui.show_plotly(mv.hard_negative_figure(lv, uri, hw, gt.boxes_xyxy, gt.names), key="hardneg_chart")
    st.dataframe(lv.negatives, hide_index=True, width="stretch")
    loss_numbers = {"iou_threshold": iou_thr, "neg_pos_ratio": ratio, "N": lv.num_pos,
                    "L_conf_over_N": lv.conf, "L_loc_over_N": lv.loc, "total": lv.total,
                    "L_conf_sum": lv.conf_sum, "L_loc_sum": lv.loc_sum, "hard_negatives": lv.negatives}
    _ui.download_buttons("Hard negatives and loss", lv.negatives, key="hard_negatives", payload=loss_numbers)


def _metrics(gt, view, lv) -> None:
    """The numbers of every section, always shown (cheap); the figures come one section at a time."""
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Ground-truth boxes", len(gt))
    m2.metric("Positive default boxes", len(view.records))
    m3.metric("of them forced (best box, below threshold)", sum(r["forced"] for r in view.records))
    m4.metric("GTs with no box above threshold", sum(not s["above_threshold"] for s in view.summary))
    l1, l2, l3, l4, l5 = st.columns(5)
    l1.metric("N (positives)", lv.num_pos)
    l2.metric("hard negatives", lv.num_hard_negative)
    l3.metric("L_conf / N", f"{lv.conf:.4f}")
    l4.metric("L_loc / N", f"{lv.loc:.4f}")
    l5.metric("L total", f"{lv.total:.4f}")


def _loss_text() -> None:
    st.latex(mv.LOSS_FORMULA)
    st.markdown(
        "L_conf: softmax cross-entropy over the N positives and the mined negatives; L_loc: Smooth L1 "
        "between predicted and encoded ground-truth offsets over the positives; alpha = 1.")


def _section_radio() -> str:
    # One section's figures at a time: each changed chart is rebuilt in the browser on a
    # slider step (~60 ms each here), so showing all three made the IoU step ~3x slower.
    return st.radio("Show", SECTIONS, horizontal=True, key="match_section",
                    help="The numbers cover all three; the figures and tables of one section show below.")


def _live_section(ctx) -> None:
    """The page with the live figure in charge: its sliders, numbers, tables and downloads
    are computed in the browser; a release reruns only `_live_part` (the values synced)."""
    section = _section_radio()
    if section == SECTIONS[2]:
        _loss_text()
    _live_part(ctx, section)


@st.fragment
def _live_part(ctx, section: str) -> None:
    """The live figure (and the box encoding's picker, the one server part that follows the
    threshold): a release reruns this part: the workspace takes the values (`_live_commit`),
    the URL follows."""
    model, ws = ctx.loaded.model, _workspace.get()
    iou_thr = ws.matching.iou_thresh
    _live_figure(ctx, iou_thr, ws.matching.neg_pos_ratio, section)
    if section == SECTIONS[1]:  # (the default boxes: a cached copy, only where needed)
        db = _cache.default_boxes_of(model.cfg)
        view = mv.matching_view(db, model.cfg.image_size, ctx.gt.boxes_xyxy, ctx.gt.names, ctx.image.image_hw, iou_thr)
        _encoding_section(view, ctx.gt, db, model.cfg, ctx.image.image_hw)
    _workspace.sync_url()


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _matching_section(ctx) -> None:
    if _live.enabled() and st.session_state.get("_live_ready_matching") and len(ctx.gt) > 0:
        _live_section(ctx)
        return
    model = ctx.loaded.model
    cfg = model.cfg
    db = _cache.default_boxes_of(cfg)
    img = ctx.image
    hw = img.image_hw
    gt = ctx.gt

    ws = _workspace.get()
    c1, c2 = st.columns(2)
    _workspace.bound("slider", "match_iou", lambda: ws.matching.iou_thresh,
                     lambda v: ws.set_matching(iou_thresh=v), "IoU threshold", *MATCH_IOU_RANGE[:2],
                     step=MATCH_IOU_RANGE[2], container=c1)
    _workspace.bound("slider", "match_ratio", lambda: ws.matching.neg_pos_ratio,
                     lambda v: ws.set_matching(neg_pos_ratio=v), "Negatives per positive (neg:pos)",
                     *NEG_POS_RANGE[:2], step=NEG_POS_RANGE[2], container=c2)
    iou_thr, ratio = ws.matching.iou_thresh, ws.matching.neg_pos_ratio

    if len(gt) == 0:
        st.info("This image has no ground-truth boxes: every default box is a negative. Add boxes in "
                "the sidebar (*Ground-truth boxes*) or draw them on the Home page.")
        return

    # The live figure, mounted so that the browser may run it (then `_live_section` draws the page).
    _live_figure(ctx, iou_thr, ratio)
    view = mv.matching_view(db, cfg.image_size, gt.boxes_xyxy, gt.names, hw, iou_thr)
    stg = _cache.current_stages(ctx)
    lv = mv.loss_view(stg.cls_logits_flat(), stg.bbox_regression_flat(), db, gt.boxes_xyxy, gt.labels, hw,
                      ctx.loaded.class_names, iou_threshold=iou_thr, neg_pos_ratio=ratio, variances=cfg.variances)
    _metrics(gt, view, lv)
    section = _section_radio()
    uri = _cache.image_uri(img.digest, img.image)
    if section == SECTIONS[0]:
        _live.fallback_note()
        _positives_section(view, gt, uri, hw, model, iou_thr)
    elif section == SECTIONS[1]:
        _encoding_section(view, gt, db, cfg, hw)
    else:
        _loss_text()
        _loss_section(lv, db, gt, uri, hw, iou_thr, ratio)
    _workspace.sync_url()


_matching_section(ctx)
