"""Training page: launch background training runs, watch them live, control them.

Thin: widgets -> `explorer.jobs.manager` (launch / list / cancel / resume / delete) and
`explorer.views.training`. Runs are detached processes with their state on disk,
so they keep going when this tab closes or the server restarts; the watch section
re-reads the disk every 2 s in a fragment without blocking the page.
"""
from __future__ import annotations

import streamlit as st

from pages import _study_runs, _ui, _workspace
from pages._ui import require_app_frame

from explorer.inputs.box_config import write_for_training
from explorer.jobs import export as exports
from explorer.jobs import manager as jobs
from explorer.jobs.limits import JobLimits
from explorer.jobs.spec import JobError, JobSpec
from explorer.jobs.study import study_of
from explorer.results import DATASETS, MODELS, RECIPES, TRAIN_DEFAULTS
from explorer.views.training import loss_figure, map_figure

require_app_frame()

REFRESH_S = 2.0
LIMITS = JobLimits()  # queue length per device, free disk, batch x model, images x epochs (README)
DEFAULTS = TRAIN_DEFAULTS  # ssd.train's defaults (TrainOptions), declared once there
# Recipe options that have a widget below (field -> widget key); the others travel unseen.
RECIPE_WIDGETS = {"dataset": "train_dataset", "train_size": "train_train_size", "val_size": "train_val_size",
                  "data_seed": "train_data_seed", "model": "train_model", "epochs": "train_epochs",
                  "batch_size": "train_batch_size", "lr": "train_lr", "seed": "train_seed",
                  "eval_every": "train_eval_every", "log_every": "train_log_every"}
STARTS = ("From scratch", "ImageNet backbone", "Fine-tune from COCO", "Fine-tune from a run's checkpoint")
BOX_CHOICES = ("the model's preset", "the tuned configuration (from the Default boxes / Dataset page)")
DATASET_LABELS = {
    "procedural": "Procedural shapes (generated, no download)",
    "voc": "Pascal VOC folder",
    "coco": "COCO JSON + image folder",
}


def _flash(kind: str, text: str) -> None:
    _ui.flash("train_flash", kind, text)


# --- actions (button callbacks: they run before the rerun, so the table is fresh) ---
def _state_now(run_dir) -> str:
    """The run's state after an action, re-read from disk (what the page reports)."""
    info = jobs.read_run(run_dir)
    return info.state + (" (alive)" if info.alive else "")


def _act(action, run_dir, done: str, *args, kind: str = "success") -> None:
    """Run a control; flash what happened and the state the run is in now (two tabs
    pressing at once: one acts, the other is told why not and what the run is now)."""
    try:
        action(*args)
    except (JobError, OSError) as exc:
        now = f" The run is now {_state_now(run_dir)}." if run_dir.is_dir() else ""
        _flash("error", f"{exc}.{now}")
    else:
        now = f" It is now {_state_now(run_dir)}." if run_dir.is_dir() else ""
        _flash(kind, done + now)


def _cancel(run_dir) -> None:
    _act(jobs.cancel, run_dir, f"Cancelling {run_dir.name}: it saves a checkpoint and stops.", run_dir, kind="info")


def _resume(run_dir) -> None:
    _act(jobs.resume, run_dir, f"Resumed {run_dir.name} (queued for its device).", run_dir)


def _delete(runs_dir, name: str) -> None:
    _act(jobs.delete_run, runs_dir / name, f"Deleted run {name}.", runs_dir, name)


def _export(runs_dir, run_dir) -> None:
    _act(exports.launch_export, run_dir, f"Exporting {run_dir.name} to ONNX in the background.", runs_dir, run_dir,
         kind="info")


def export_section(runs_dir, info: jobs.RunInfo) -> None:
    """Export to ONNX (a SHORT-lane background job: it never waits behind training) and
    the download of the file once it is written."""
    ex = exports.read_export(info.run_dir)
    c1, c2 = st.columns([1, 3])
    c1.button("Export to ONNX", key="train_export", disabled=not info.has_best or (ex is not None and ex.live),
              on_click=_export, args=(runs_dir, info.run_dir),
              help="The network, the box decoding and the NMS in one ONNX graph, at the library's "
                   "post-processing defaults (python -m ssd.export; see docs/export.md)")
    if ex is None:
        c2.caption("Not exported yet." if info.has_best else "No best.pt yet: nothing to export.")
    elif ex.onnx_path is not None:
        c2.download_button(f"Download {info.name}.onnx ({ex.onnx_path.stat().st_size / 1e6:.1f} MB)",
                           data=ex.onnx_path.read_bytes, file_name=f"{info.name}.onnx",
                           mime="application/octet-stream", key="train_export_download", on_click="ignore")
    else:
        c2.caption(_ui.plain(f"Export {ex.state}: {ex.message}"))


def _use_in_explorer(info: jobs.RunInfo) -> None:
    # The sidebar's model picker takes this as its default model id.
    st.session_state["model_choice"] = str(info.best_checkpoint)
    # The button lives in the polling fragment, whose reruns leave the sidebar as it was:
    # ask `watch` for one whole-app rerun so the sidebar's model picker shows it now.
    st.session_state["_train_rerun_app"] = True
    _flash("success", f"The explorer pages now use {info.name}'s best checkpoint.")


def _apply_recipe() -> None:
    """Fill the form from the chosen recipe (on_change: runs before the rerun)."""
    values = RECIPES.get(st.session_state["train_recipe"], {})
    for field, key in RECIPE_WIDGETS.items():
        if field in values:
            st.session_state[key] = values[field]
    start = ("ImageNet backbone" if values.get("backbone_weights") == "imagenet" else
             "Fine-tune from COCO" if values.get("init") == "coco" else "From scratch")
    st.session_state["train_start"] = start


def _recipe_extras() -> dict:
    """The chosen recipe's options that have no widget (optimizer, schedule, augmentation, ...)."""
    values = RECIPES.get(st.session_state.get("train_recipe", "(custom)"), {})
    return {k: v for k, v in values.items() if k not in RECIPE_WIDGETS and k not in ("backbone_weights", "init")}


def _starting_point(runs_dir) -> dict:
    """Widgets for the starting weights -> the options `init` / `backbone_weights`."""
    c1, c2 = st.columns([1, 2])
    start = c1.radio("Starting point", STARTS, key="train_start")
    if start == "ImageNet backbone":
        c2.caption("torchvision's ImageNet VGG-16 (SSD300-VGG16 only); needs a download, or the file in "
                   "torch's hub cache")
        return {"backbone_weights": "imagenet"}
    if start == "From scratch":
        return {}
    keep = c2.checkbox("Keep the class rows of classes the source also has", key="train_keep_classes")
    if start == "Fine-tune from COCO":
        return {"init": "coco", "init_keep_classes": keep}
    best = [str(r.best_checkpoint) for r in jobs.list_runs(runs_dir) if r.has_best]
    path = c2.selectbox("Run checkpoint (best.pt)", best, key="train_init_path",
                        placeholder="no finished run yet", index=0 if best else None)
    return {"init": path or "", "init_keep_classes": keep}


def _data_roots() -> tuple:
    """Folders dataset paths may be in: $SSD_DATA_ROOTS, else data/ and home when the
    server is on loopback, none when it is exposed."""
    return _ui.data_roots()


def _box_config(choice: str, model: str, runs_dir) -> dict | None:
    """`--box-config` for the launch: {} for the preset; the shared tuned configuration written
    as JSON when it fits `model`; None (with the reason shown) when it cannot be used."""
    if choice == BOX_CHOICES[0]:
        return {}
    tuned = _workspace.get().boxes.config  # the Default boxes page's (and the Dataset tuner's, once used)
    if tuned is None:
        st.error("Not launched: there is no tuned configuration yet. Set one on the Default boxes page "
                 "or tune one on the Dataset page, or train with the model's preset.")
        return None
    try:
        return {"box_config": str(write_for_training(tuned, model, runs_dir))}
    except ValueError as exc:
        st.error(_ui.plain(f"Not launched: the tuned configuration does not fit {model}: {exc}"))
        return None


def launch_form(runs_dir) -> None:
    devices = _ui.devices()
    gpus = devices["gpu_count"]
    st.subheader("New training run")
    recipe = st.selectbox("Recipe", ("(custom)", *RECIPES), key="train_recipe", on_change=_apply_recipe,
                          help="Fills the form; its other options (optimizer, schedule, augmentation) "
                               "are used as listed below")
    if _recipe_extras():
        st.caption(_ui.plain(f"{recipe} also sets: " + ", ".join(f"{k}={v}" for k, v in _recipe_extras().items())))
    start = _starting_point(runs_dir)
    dataset = st.radio("Dataset", DATASETS, format_func=DATASET_LABELS.get, horizontal=True,
                       key="train_dataset")
    # Only the Launch button submits: Enter in a field (the run name) launches nothing.
    with st.form("train_launch", enter_to_submit=False):
        data = {}
        if dataset == "procedural":
            c1, c2, c3 = st.columns(3)
            data["train_size"] = c1.number_input("Training scenes", 1, 100_000, DEFAULTS.train_size,
                                                key="train_train_size")
            data["val_size"] = c2.number_input("Validation scenes", 1, 10_000, DEFAULTS.val_size,
                                              key="train_val_size")
            data["data_seed"] = c3.number_input("Scene seed", 0, 2**31 - 1, DEFAULTS.data_seed,
                                                key="train_data_seed")
        else:
            st.caption("Dataset paths must be inside: " + (", ".join(_ui.plain(r) for r in _data_roots()) or
                       "nothing on this exposed server (the administrator sets SSD_DATA_ROOTS)"))
        if dataset == "voc":
            data["data_root"] = st.text_input(
                "VOC folder (holding Annotations/ and JPEGImages/)", key="train_data_root",
                placeholder="/data/VOCdevkit/VOC2007")
        elif dataset == "coco":
            data["coco_json"] = st.text_input("COCO annotation JSON", key="train_coco_json",
                                              placeholder="/data/coco/annotations/instances_train2017.json")
            data["coco_images"] = st.text_input("COCO image folder", key="train_coco_images",
                                                placeholder="/data/coco/train2017")
        c1, c2, c3, c4 = st.columns(4)
        model = c1.selectbox("Model", MODELS, index=MODELS.index(DEFAULTS.model), key="train_model")
        epochs = c2.number_input("Epochs", 1, 10_000, DEFAULTS.epochs, key="train_epochs")
        batch_size = c3.number_input("Batch size", 1, 1024, DEFAULTS.batch_size, key="train_batch_size")
        lr = c4.number_input("Learning rate", 1e-6, 1.0, DEFAULTS.lr, step=1e-4, format="%.5f", key="train_lr")
        boxes = st.radio("Default boxes", BOX_CHOICES, horizontal=True, key="train_boxes",
                         help="The tuned one keeps the model's input size and feature maps; its boxes per "
                              "cell size the predictors")
        c1, c2, c3 = st.columns(3)
        device_options = ["auto", "cpu"] + (["cuda"] if devices["cuda"] else [])
        device = c1.selectbox("Device", device_options, key="train_device")
        c1.caption(f"CUDA: {gpus} GPU(s)" if devices["cuda"] else "CUDA: not available, CPU only")
        nproc = 1
        if gpus > 1:
            nproc = c2.number_input("Processes (GPUs, torchrun)", 1, gpus, 1, key="train_nproc")
        name = c3.text_input("Run name (optional)", key="train_name",
                             help="Letters, digits, '.', '_', '-'; made unique with -2, -3, ...")
        with st.expander("Advanced"):
            c1, c2, c3, c4 = st.columns(4)
            seed = c1.number_input("Training seed", 0, 2**31 - 1, DEFAULTS.seed, key="train_seed")
            max_steps = c2.number_input("Stop after N steps (0: no limit)", 0, 10**9, 0, key="train_max_steps")
            eval_every = c3.number_input("Evaluate every N epochs", 1, 10_000, DEFAULTS.eval_every,
                                         key="train_eval_every")
            log_every = c4.number_input("Log every N steps", 1, 100_000, DEFAULTS.log_every, key="train_log_every")
        submitted = st.form_submit_button("Launch", type="primary", key="train_launch_button")
    box_config = _box_config(boxes, model, runs_dir) if submitted else None
    if box_config is not None:
        spec = JobSpec.of(nproc=int(nproc), **_recipe_extras(), **start, **box_config, dataset=dataset,
                          model=model, epochs=int(epochs), batch_size=int(batch_size), lr=float(lr), device=device, seed=int(seed),
                          max_steps=int(max_steps), eval_every=int(eval_every), log_every=int(log_every),
                          **{k: (int(v) if isinstance(v, (int, float)) else str(v).strip()) for k, v in data.items()})
        try:
            run_dir = jobs.launch(runs_dir, spec, name=name.strip() or None, devices=devices,
                                  data_roots=_data_roots(), limits=LIMITS)
        except (JobError, OSError) as exc:
            st.error(_ui.plain(f"Not launched: {exc}"))
        else:
            st.session_state["train_selected"] = run_dir.name
            st.success(_ui.plain(f"Launched {run_dir.name} in {run_dir}."))


def run_details(runs_dir, info: jobs.RunInfo) -> None:
    live = info.state in ("queued", "running")
    study = study_of(info.run_dir)  # a Paper lab study: one queue entry, its variant runs under it
    steps = f"step {info.step}/{info.total_steps} · " if info.total_steps else "" if study else "waiting to start · "
    st.progress(info.progress, text=_ui.plain(f"{info.state} · {steps}{info.message}"))
    if info.state == "failed":
        st.error(_ui.plain(f"{info.name} failed: {info.message}"))
    if info.damage:
        st.warning(_ui.plain(f"{info.name}: damaged run folder, shown as far as it can be read: {info.damage}"))
    if study is not None:
        controls(runs_dir, info, live)
        _study_runs.variant_runs(study, "train_flash", "_train_goto")
        st.caption("The study's log (last lines)")
        st.code(jobs.tail_log(info.run_dir, 15) or "(empty)", language=None)
        return
    run_metrics(info)
    controls(runs_dir, info, live)
    export_section(runs_dir, info)
    log_rows, eval_rows, skipped = jobs.read_metrics_checked(info.run_dir)
    if skipped:
        st.warning(f"{skipped} record(s) of metrics.jsonl skipped: a value that is not a number (edited or "
                   "damaged file); the figures show the others")
    c1, c2 = st.columns(2)
    c1.plotly_chart(loss_figure(log_rows), width="stretch", key="train_loss_chart")
    c2.plotly_chart(map_figure(eval_rows), width="stretch", key="train_map_chart")
    st.caption("train.log (last lines)")
    st.code(jobs.tail_log(info.run_dir, 25) or "(empty)", language=None)


def run_metrics(info: jobs.RunInfo) -> None:
    """A training run's epoch, throughput, best mAP, elapsed time and ETA."""
    c = st.columns(5)
    c[0].metric("Epoch", "–" if info.epoch is None else info.epoch)
    c[1].metric("Images / s", "–" if info.images_per_s is None else f"{info.images_per_s:.1f}")
    c[2].metric("Best mAP", "–" if info.best_map is None else f"{info.best_map:.4f}")
    c[3].metric("Elapsed", info.row()["elapsed"] or "–")
    c[4].metric("ETA", info.row()["ETA"] or "–")


def controls(runs_dir, info: jobs.RunInfo, live: bool) -> None:
    """Cancel, Resume, Use in explorer, Delete (a study: the whole study)."""
    b = st.columns(4)
    b[0].button("Cancel", key="train_cancel", disabled=not (live and info.alive),
                on_click=_cancel, args=(info.run_dir,), help="SIGTERM: saves last.pt, ends as cancelled")
    b[1].button("Resume", key="train_resume", disabled=info.state not in ("cancelled", "failed"),
                on_click=_resume, args=(info.run_dir,),
                help="Continue from checkpoints/last.pt" if info.has_last else "No last.pt: starts again")
    b[2].button("Use in explorer", key="train_use", disabled=not info.has_best,
                on_click=_use_in_explorer, args=(info,), help=_ui.plain(info.best_checkpoint))
    with b[3]:
        confirm = st.checkbox(_ui.plain(f"Really delete {info.name}"), key=f"train_confirm_delete_{info.name}",
                              disabled=live)
        st.button("Delete", key="train_delete", disabled=live or not confirm,
                  on_click=_delete, args=(runs_dir, info.name))


@st.fragment(run_every=REFRESH_S)
def watch(runs_dir) -> None:
    if st.session_state.pop("_train_rerun_app", False):
        st.rerun(scope="app")
    goto = st.session_state.pop("_train_goto", None)  # a variant run's evaluation (pages/_study_runs.py)
    if goto:
        st.switch_page(goto)
    _ui.show_flash("train_flash")
    runs = jobs.list_runs(runs_dir)
    st.subheader(f"Runs ({len(runs)})")
    st.caption(f"Run folder: {_ui.plain(runs_dir)} · refreshes every {REFRESH_S:.0f} s · at most "
               f"{LIMITS.max_jobs_per_device} queued or running runs per device")
    if not runs:
        st.info("No runs yet: launch one above.")
        return
    st.dataframe(
        [r.row() for r in runs], hide_index=True, key="train_runs_table",
        column_config={"progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0)},
    )
    names = [r.name for r in runs]
    if st.session_state.get("train_selected") not in names:  # none picked yet, or the picked one deleted
        st.session_state["train_selected"] = names[0]
    # Options are the bare names: a label that changed with the state (running -> finished)
    # made the widget drop the user's pick and jump to the newest run.
    name = st.selectbox("Selected run", names, key="train_selected")
    info = next(r for r in runs if r.name == name)
    st.caption(_ui.plain(f"{info.name}: {state_text(info)}"))
    run_details(runs_dir, info)


def state_text(info: jobs.RunInfo) -> str:
    """The run's state as it is now ("running, cancel requested" between Cancel and its end)."""
    return info.state + (", cancel requested" if info.cancel_requested else "")


st.title("Training")
st.markdown(
    "Train an SSD in the background. Runs are separate processes: they keep going when "
    "you close the tab or the server restarts, wait in line when their device is busy, "
    "and can be cancelled (a checkpoint is saved) and resumed."
)
RUNS_DIR = jobs.default_runs_dir()
launch_form(RUNS_DIR)
st.divider()
watch(RUNS_DIR)
