"""The library calls the pages need, in one place: pages import `explorer`, never `ssd`.

Re-exports, not wrappers: the functions are `ssd`'s own, so what a page shows is what
the library (and its tests) compute.
"""
from ssd.inference import forward_raw, stages_from_raw  # noqa: F401
from ssd.priors import default_boxes  # noqa: F401
from ssd.models import build as build_model  # noqa: F401
from ssd.boxes import px_to_norm  # noqa: F401  (pixels of an image (H, W) -> fractions, the one helper)
from ssd.config import ssd300_voc  # noqa: F401
from ssd.postprocess import DISPLAY_SCORE_THRESH, DEFAULTS as POSTPROCESS_DEFAULTS  # noqa: F401  (thresholds, declared once)
from ssd.training.recipes import RECIPES  # noqa: F401  (the Training page's recipe list)
from ssd.training.options import DATASETS, MODEL_NAMES as MODELS, TrainOptions  # noqa: F401

TRAIN_DEFAULTS = TrainOptions()  # `ssd.train`'s defaults, declared once there: the Training page's widgets start here


def forward_raw_bounded(model, image):
    """`forward_raw` on the image's working copy (`explorer.inputs.samples.work_image`:
    at most `WORK_MAX_SIDE` px a side), with the boxes in the pixels of `image` itself:
    the network sees the same 300/512 px input either way, but a 40 MP photo never
    becomes full-size float tensors. `image_hw` is the full image's (H, W); `image` is
    dropped from the result (the pages draw the image they hold)."""
    import dataclasses

    from explorer.inputs.samples import work_image
    from ssd.inference import _to_original_px  # the library's one input-px -> image-px rule

    small = work_image(image)
    raw = forward_raw(model, small)
    if small is image:
        return dataclasses.replace(raw, image=None)
    image_hw = (image.height, image.width)
    return dataclasses.replace(raw, image=None, image_hw=image_hw,
                               boxes_xyxy_px=_to_original_px(raw.boxes_px_in, image_hw, model.cfg.image_size))
