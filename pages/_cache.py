"""Streamlit caches around `explorer/`: models (`st.cache_resource`, keyed by id + file
mtime) and per-image results (`st.cache_data`, keyed by the image's sha1 + parameters),
so switching pages recomputes nothing."""
from __future__ import annotations

import streamlit as st

from explorer import results
from explorer.inputs import models as models_mod
from explorer.inputs import samples as samples_mod
from explorer.views.figures import image_data_uri


@st.cache_resource(show_spinner="Loading model...", max_entries=4)
def _load_model_cached(model_key: str) -> models_mod.LoadedModel:
    model_id = model_key.split("@", 1)[0] if "@" in model_key else model_key
    return models_mod.load_model(model_id)


def load_model(model_id: str) -> models_mod.LoadedModel:
    return _load_model_cached(models_mod.model_cache_key(model_id))


@st.cache_data(show_spinner=False, max_entries=8)
def sample_image(sample_id: str) -> samples_mod.LoadedImage:
    return samples_mod.load_sample(sample_id)


@st.cache_data(show_spinner=False, max_entries=4)
def decode_upload(name: str, data: bytes) -> samples_mod.LoadedImage:
    return samples_mod.load_upload(name, data)


@st.cache_data(show_spinner=False, max_entries=8)
def image_uri(digest: str, _image, size: tuple[int, int] | None = None) -> str:
    """JPEG data URI of the image (stretched to `size` if given), keyed by its sha1."""
    img = _image if size is None else _image.resize(size)
    return image_data_uri(img)


@st.cache_resource(show_spinner="Running the model on the image...", max_entries=8)
def raw_outputs(model_key: str, digest: str, _model, _image):
    """The network's threshold-free outputs on the image (`explorer.results.forward_raw`),
    cached by (model, image sha1), so threshold sliders never re-run the network.
    A resource (not copied per rerun): nothing downstream modifies it."""
    return results.forward_raw(_model, _image)


@st.cache_data(show_spinner=False, max_entries=16)
def stages(model_key: str, digest: str, _raw, score_threshold: float = 0.01,
           nms_threshold: float = 0.45, top_k: int = 200, level_score_threshold: float = 0.3):
    """`explorer.results.stages_from_raw`, cached by (model, image sha1, thresholds)."""
    return results.stages_from_raw(_raw, score_threshold=score_threshold, nms_threshold=nms_threshold,
                                   top_k=top_k, level_score_threshold=level_score_threshold)


def current_stages(ctx, score_threshold: float = 0.01, nms_threshold: float = 0.45, top_k: int = 200,
                   level_score_threshold: float = 0.3):
    """Every stage of the sidebar's model on the sidebar's image, at these thresholds
    (`level_score_threshold`: for the per-level detections of the Per-scale page)."""
    raw = raw_outputs(ctx.model_key, ctx.image.digest, ctx.loaded.model, ctx.image.image)
    return stages(ctx.model_key, ctx.image.digest, raw, float(score_threshold), float(nms_threshold), int(top_k),
                  float(level_score_threshold))


@st.cache_data(show_spinner=False, max_entries=8)
def default_boxes_of(cfg):
    """`explorer.results.default_boxes(cfg)`, cached by the (frozen, hashable) config."""
    return results.default_boxes(cfg)
