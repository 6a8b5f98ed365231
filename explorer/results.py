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
