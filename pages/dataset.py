"""Dataset: do the default boxes fit your data? Coverage of every ground-truth box (Sec. 2.2)."""
import streamlit as st

from explorer import workspace
from explorer.inputs import datasets
from explorer.views import dataset as dsv
from pages import _sidebar, _ui, _workspace

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Dataset: do the default boxes fit your data?",
    "Training matches each ground-truth box to the default boxes that overlap it with IoU ≥ 0.5; a box "
    "that no default box reaches only gets its single forced best match. Here every box of a dataset is "
    "measured against the configuration of the **Default boxes** page: the **best possible recall** (BPR, "
    "the share of boxes some default box reaches at the threshold), which level owns each box, how many "
    "positives each box gets, and the boxes no default box covers. The optimizer searches scales and "
    "aspect ratios for this dataset within a budget of default boxes.",
    "Sec. 2.2 \"Choosing scales and aspect ratios\" and \"Matching strategy\"",
)
ss = st.session_state
SOURCES = {"procedural": "Procedural scenes", "voc": "VOC folder on disk", "coco": "COCO JSON on disk",
           "coco upload": "Upload a COCO JSON"}

c1, c2 = st.columns([1, 2], gap="medium")
with c1:
    kind = st.radio("Dataset", list(SOURCES), format_func=SOURCES.get, key="ds_kind")
with c2:
    if kind == "procedural":
        a, b = st.columns(2)
        n = a.number_input("Scenes", 1, 100_000, 500, step=100, key="ds_n")
        seed = b.number_input("Seed", 0, 10_000, 1000, key="ds_seed")
        size = st.slider("Object size (fraction of the image side)", 0.01, 1.0, (0.05, 0.9), step=0.01, key="ds_size")
        choice = datasets.DatasetChoice("procedural", int(n), int(seed), (float(size[0]), float(size[1])))
    elif kind in ("voc", "coco"):
        label = "VOC folder (holding Annotations/)" if kind == "voc" else "COCO instances JSON"
        path = st.text_input(label, key=f"ds_path_{kind}")
        n = st.number_input("First N images (0: all)", 0, 1_000_000, 0, key=f"ds_n_{kind}")
        choice = datasets.DatasetChoice(kind, int(n), path=path) if path.strip() else None
    else:
        up = st.file_uploader("COCO instances JSON (image sizes needed, images not)", type=["json"], key="ds_upload")
        choice = None if up is None else ("upload", up.name, up.getvalue())

if choice is None:  # nothing typed or uploaded yet: say what to do, not an error
    st.info({"voc": "Type the path of a VOC folder (the one holding Annotations/) to measure it.",
             "coco": "Type the path of a COCO instances JSON to measure it."}.get(kind, "Upload a COCO JSON to measure it."))
    st.stop()
cached = ss.get("_ds_loaded")
if cached is None or cached[0] != choice:
    bar = st.progress(0.0, text="Reading the dataset's boxes...")
    try:
        if isinstance(choice, tuple):
            data = datasets.load_upload(choice[1], choice[2])
        else:
            data = datasets.load(choice, lambda done, total: bar.progress(done / total, text=f"{done}/{total} images"),
                                     roots=_ui.data_roots())
    except ValueError as e:  # DatasetError is a ValueError
        bar.empty()
        st.error(_ui.plain(e))
        st.stop()
    bar.empty()
    ss["_ds_loaded"] = cached = (choice, data)
data = cached[1]
if data.skipped:
    st.warning(_ui.plain(f"{len(data.skipped)} image(s) skipped as bad, e.g. {data.skipped[0][1]}"))

ws = _workspace.get()
cfg = ws.boxes.config or ctx.loaded.model.cfg  # what the Default boxes page shows
st.caption(_ui.plain(f"{len(data)} boxes from {data.source}. Default boxes: {cfg.name} "
                     f"({dsv.num_default_boxes(cfg)} boxes, {cfg.image_size} px input; "
                     f"{ws.boxes.origin}); edit them on the Default boxes page."))


@st.fragment
def results() -> None:
    iou = st.slider("IoU threshold", 0.1, 0.9, 0.5, step=0.05, key="ds_iou")
    cov, s = dsv.measure(data, cfg, float(iou))
    m = st.columns(5)
    m[0].metric("Best possible recall", f"{s['bpr']:.3f}")
    m[1].metric("Boxes", s["num_boxes"])
    m[2].metric("Mean positives per box", s["mean_positives"])
    m[3].metric("Forced match only", s["forced_only"])
    m[4].metric("Smaller than the smallest default box", s["smaller_than_smallest_default"])
    _ui.show_plotly(dsv.size_figure(data, cfg, cov), key="ds_sizes")
    a, b = st.columns(2)
    with a:
        _ui.show_plotly(dsv.ownership_figure(s), key="ds_levels")
    with b:
        _ui.show_plotly(dsv.histogram_figure(s), key="ds_hist")
    for title, rows in (("Per level", s["per_level"]), ("Per class", s.get("per_class", [])),
                        ("Per size (sqrt(w·h) on the network input)", s["per_size"])):
        st.markdown(f"**{title}**")
        st.dataframe(rows, hide_index=True, width="stretch")
    st.markdown(f"**Uncovered boxes** (best IoU < {iou:g}; worst {len(s['uncovered'])} shown)")
    st.dataframe(s["uncovered"], hide_index=True, width="stretch")
    _ui.download_buttons("Coverage summary", s["per_level"], key="dataset_coverage", payload=s)


results()

st.subheader("Optimizer")
st.caption(_ui.plain(f"Tunes the configuration above ({cfg.name}, {ws.boxes.origin}): keeps its input "
                     "size and feature maps, searches the scales, each level's aspect ratios and the extra box to "
                     "maximise BPR at IoU 0.5, then positives per box, and compares against it. Nothing changes on "
                     "the Default boxes page until you use the result."))
c1, c2 = st.columns(2)
budget = c1.number_input("Budget: most default boxes", 100, 200_000, dsv.num_default_boxes(cfg), step=100,
                         key="ds_budget")
any_order = c2.checkbox("let box sides shrink on coarser maps", key="ds_any_order",
                        help="By default a coarser map never gets smaller boxes than a finer one (Sec. 2.2).")
if st.button("Tune the default boxes for this dataset", key="ds_tune"):
    with st.spinner("Searching scales and aspect ratios..."):
        try:
            res = dsv.tune(data, cfg, int(budget), monotone=not any_order)
        except ValueError as e:
            st.error(_ui.plain(e))
            st.stop()
    ws.propose(workspace.TunedProposal(res.cfg, data.source, res.before, res.after, res.notes))
if ws.proposal is not None:
    p = ws.proposal
    st.info(f"Tuned on {_ui.plain(p.data)}: BPR {p.before['bpr']:.3f} -> {p.after['bpr']:.3f}, positives per box "
            f"{p.before['mean_positives']:.2f} -> {p.after['mean_positives']:.2f}, default boxes "
            f"{p.before['default_boxes']} -> {p.after['default_boxes']} (before: {_ui.plain(cfg.name)}). Scales: "
            + ", ".join(f"{s:g}" for s in p.config.scales) + ".")
    for note in p.notes:
        st.warning(_ui.plain(note))
    if st.button("Use the tuned configuration on the Default boxes page", key="ds_use", type="primary"):
        ws.use_tuned()
        st.rerun()
if ws.boxes_before is not None:
    st.success(_ui.plain(f"The Default boxes page uses the configuration {ws.boxes.origin}."))
    if st.button("Back to the configuration before tuning", key="ds_undo"):
        ws.undo_boxes()
        st.rerun()
