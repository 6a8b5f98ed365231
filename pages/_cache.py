"""Caches around `explorer/`: models (`st.cache_resource`, keyed by id + file mtime) and
per-image results (keyed by the image's sha1 + parameters), so switching pages
recomputes nothing.

Bounded by bytes as well as entries (a 127 KB PNG can decode to 40 megapixels, 160 MB):
- decoded images are resources (never pickled and copied per rerun), at most
  `MAX_UPLOADS` uploads: one full-resolution copy each, the one the pages draw from;
- the network's outputs and the thresholded stages live in `explorer.bounded_cache.ByteLRU`s
  (`RAW_BYTES`, `STAGES_BYTES`), and keep no copy of the image (`image=None`: the pages
  draw `ctx.image`, the boxes are in its pixels);
- figure backgrounds are JPEGs at most 768 px on a side, in the server's memory (`pages._media`)."""
from __future__ import annotations


import streamlit as st

from explorer import results
from explorer.bounded_cache import ByteLRU
from explorer.inputs import models as models_mod, samples as samples_mod
from pages import _media


@st.cache_resource(show_spinner="Loading model...", max_entries=4)
def _load_model_cached(model_key: str) -> models_mod.LoadedModel:
    model_id = model_key.split("@", 1)[0] if "@" in model_key else model_key
    return models_mod.load_model(model_id)


def load_model(model_id: str) -> models_mod.LoadedModel:
    return _load_model_cached(models_mod.model_cache_key(model_id))


MAX_UPLOADS = 2  # decoded uploads kept (<= 160 MB each at the 40 MP limit)
RAW_BYTES = 256 << 20  # network outputs of recent (model, image) pairs (SSD300 on one image: ~6 MB)
STAGES_BYTES = 192 << 20  # thresholded stages of recent slider positions (raw counted in each)
RAW = ByteLRU(RAW_BYTES, max_entries=8)
STAGES = ByteLRU(STAGES_BYTES, max_entries=16)


@st.cache_resource(show_spinner=False, max_entries=8)
def sample_image(sample_id: str) -> samples_mod.LoadedImage:
    """A built-in sample, decoded once (a resource: shared, never copied; nothing modifies it)."""
    return samples_mod.load_sample(sample_id)


@st.cache_resource(show_spinner=False, max_entries=MAX_UPLOADS)
def decode_upload(name: str, data: bytes) -> samples_mod.LoadedImage:
    """An uploaded image, decoded once (a resource: a 40 MP image is not pickled per rerun)."""
    return samples_mod.load_upload(name, data)


def image_uri(digest: str, image, size: tuple[int, int] | None = None) -> str:
    """The figure background's `source` for the image (stretched to `size`, (W, H), if
    given): a URL to one JPEG in Streamlit's media store, or a data URI (`pages._media`)."""
    return _media.image_source(digest, image, size)


def raw_outputs(model_key: str, digest: str, _model, _image):
    """The network's threshold-free outputs on the image (`explorer.results.forward_raw_bounded`),
    cached by (model, image sha1) in `RAW`, so threshold sliders never re-run the network.
    Shared, not copied: nothing downstream modifies it. The original image is dropped
    from it (`image=None`): the pages draw `ctx.image`."""
    def compute():
        with st.spinner("Running the model on the image..."):
            return results.forward_raw_bounded(_model, _image)  # a 40 MP photo: its 2048 px copy

    return RAW.get_or_compute((model_key, digest), compute)


def stages(model_key: str, digest: str, _raw, score_thresh: float | None = None,
           nms_thresh: float | None = None, detections_per_img: int | None = None,
           level_score_thresh: float | None = None):
    """`explorer.results.stages_from_raw`, cached by (model, image sha1, thresholds) in `STAGES`.
    A threshold left None is the library's (`results.POSTPROCESS_DEFAULTS`)."""
    key = (model_key, digest, score_thresh, nms_thresh, detections_per_img, level_score_thresh)
    return STAGES.get_or_compute(key, lambda: results.stages_from_raw(
        _raw, score_thresh=score_thresh, nms_thresh=nms_thresh, detections_per_img=detections_per_img,
        level_score_thresh=level_score_thresh))


def current_stages(ctx, score_thresh: float | None = None, nms_thresh: float | None = None,
                   detections_per_img: int | None = None, level_score_thresh: float | None = None):
    """Every stage of the sidebar's model on the sidebar's image, at these thresholds
    (`level_score_thresh`: for the per-level detections of the Per-scale page)."""
    raw = raw_outputs(ctx.model_key, ctx.image.digest, ctx.loaded.model, ctx.image.image)
    return stages(ctx.model_key, ctx.image.digest, raw, _number(score_thresh, float), _number(nms_thresh, float),
                  _number(detections_per_img, int), _number(level_score_thresh, float))


def _number(value, kind):
    """`kind(value)`, None kept (the library's default): one cache key per slider position."""
    return None if value is None else kind(value)


@st.cache_data(show_spinner=False, max_entries=8)
def default_boxes_of(cfg):
    """`explorer.results.default_boxes(cfg)`, cached by the (frozen, hashable) config."""
    return results.default_boxes(cfg)
