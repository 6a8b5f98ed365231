"""Augmentation: samples of SSD's training augmentation of this image, step by step,
with every crop tried and the matching re-run (Sec. 2.2 "Data augmentation", Table 2)."""
import streamlit as st

from explorer.views import augment as av
from pages import _cache, _sidebar, _ui

_ui.require_app_frame()

ctx = _sidebar.context()
_ui.page_header(
    "Data augmentation",
    "SSD trains on random variants of each image, and the paper's Table 2 credits them with "
    "+8.8 mAP. Each variant changes the colours, may shrink the image onto a larger mean-coloured canvas "
    "(\"zoom out\"), and samples a patch. The patch must overlap some object by at least a minimum IoU "
    "drawn from {0.1, 0.3, 0.5, 0.7, 0.9}, or it is a free patch, or the whole image. An object stays only if "
    "its centre is inside the patch. Finally the variant may be flipped and is resized to the input. "
    "Below are samples drawn by the exact transform training uses. For one sample you see each step, every "
    "crop tried with the reason it was kept or refused, and, for each object, which feature map its best "
    "default box is on before and after. Zoom out moves objects to earlier, finer maps.",
    "Sec. 2.2 \"Data augmentation\", Sec. 3.6 and Table 2",
)


@st.cache_resource(show_spinner="Drawing augmented samples...", max_entries=4)
def _samples(digest: str, gt_key: tuple, size: int, steps_key: str, seed: int, n: int, _steps, _image, _gt_xyxy,
             _labels):
    """`explorer.views.augment.augment_samples`, kept per (image, GT, settings): switching the
    inspected sample redraws nothing. A resource: nothing downstream modifies the traces."""
    return av.augment_samples(_image, _gt_xyxy, _labels, size, _steps, seed, n)


def _controls():
    c1, c2, c3 = st.columns(3)
    seed = int(c1.number_input("Seed", 0, 2**31 - 1, 0, key="aug_seed",
                               help="torch.manual_seed(seed), then one draw per sample, as training draws."))
    n = c2.slider("Samples", 1, 16, 8, key="aug_n")
    c4, c5, c6, c7 = st.columns(4)
    photometric = c4.checkbox("Photometric distortion", True, key="aug_photo")
    zoom = c5.checkbox("Zoom out", True, key="aug_zoom")
    crop = c6.checkbox("Minimum-IoU crop", True, key="aug_crop")
    flip = c7.checkbox("Horizontal flip", True, key="aug_flip")
    zoom_max = c3.slider("Zoom out up to (x side)", 1.0, 4.0, 4.0, 0.5, key="aug_zoom_max", disabled=not zoom,
                         help="Training uses 4 (16x the area, Sec. 3.6).")
    return seed, n, av.AugmentSteps(photometric=photometric, zoom_out=zoom, iou_crop=crop, flip=flip,
                                    zoom_out_max=float(zoom_max))


def _one_sample(tr, gt_names) -> None:
    st.markdown("**The steps of this sample** (each in its own pixels)")
    _ui.show_plotly(av.stages_figure(tr, gt_names), key="aug_stages_chart")
    if tr.stage("IoU crop") is None:
        st.info("The minimum-IoU crop is switched off.")
        return
    st.markdown("**Crops tried** (on the image the crop samples from)")
    counts = av.outcome_counts(tr)
    cols = st.columns(len(counts))
    for col, (outcome, count) in zip(cols, counts.items()):
        col.metric(outcome, count)
    show_rejected = st.checkbox("show rejected crops", True, key="aug_show_rejected")
    _ui.show_plotly(av.crop_attempts_figure(tr, gt_names, show_rejected), key="aug_crops_chart")
    rows = av.crop_attempt_rows(tr)
    st.dataframe(rows, hide_index=True, width="stretch")
    _ui.download_buttons("Crops tried", rows, key="aug_crops")


# A fragment: moving a control here reruns this part only, not the sidebar and the page.
@st.fragment
def _augment_section(ctx) -> None:
    seed, n, steps = _controls()
    img, gt, cfg = ctx.image, ctx.gt, ctx.loaded.model.cfg
    gt_key = (tuple(map(tuple, gt.boxes_xyxy.tolist())), tuple(gt.labels.tolist()))
    traces = _samples(img.digest, gt_key, cfg.image_size, repr(steps), seed, n, steps, img.image, gt.boxes_xyxy,
                      gt.labels)
    if not len(gt):
        st.info("This image has no ground-truth boxes: no crop can hold an object, so the crop always ends "
                "with the whole image. Add boxes in the sidebar.")
    st.subheader(f"{n} samples, as training sees them ({cfg.image_size}x{cfg.image_size})")
    _ui.show_plotly(av.samples_grid_figure(traces, gt.names), key="aug_grid_chart")
    summary = av.sample_rows(traces)
    st.dataframe(summary, hide_index=True, width="stretch")

    st.subheader("One sample, step by step")
    if st.session_state.get("aug_pick", 0) >= n:
        st.session_state["aug_pick"] = 0
    pick = st.selectbox("Sample", list(range(n)), key="aug_pick",
                        format_func=lambda i: f"sample {i}: " + summary[i]["crop"])
    _one_sample(traces[pick], gt.names)

    st.subheader("Matching, re-run on each sample")
    st.markdown("For each ground truth, the level of its best default box (the one matching forces on it) "
                "in the original image and in the sample. A zoomed-out object is smaller, so its best box "
                "is on an earlier, finer map. A tight crop enlarges it and moves it to a coarser map.")
    db = _cache.default_boxes_of(cfg)
    rows = [r for i, tr in enumerate(traces)
            for r in av.matching_rows(db, tr, gt.boxes_xyxy, gt.names, img.image_hw, cfg.image_size, i)]
    cols = st.columns(len(av.MOVES))
    for col, (move, count) in zip(cols, av.move_counts(rows).items()):
        col.metric(move, count)
    st.dataframe(rows, hide_index=True, width="stretch")
    _ui.download_buttons("Matching before and after", rows, key="aug_matching",
                         payload={"seed": seed, "samples": summary, "matching": rows})


_augment_section(ctx)
