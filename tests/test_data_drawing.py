"""Tests for ssd/data/drawing.py: class drawings differ by shape, not colour."""
import random

import numpy as np
import pytest
from PIL import Image

from ssd.data.drawing import draw_object


def _mask(name, colour=(200, 60, 60)):
    img = Image.new("RGB", (128, 128), (0, 0, 0))
    draw_object(img, name, (14, 14, 114, 114), colour, random.Random(0))
    return np.asarray(img).sum(-1) > 0


def test_cat_and_dog_shapes_differ_with_the_same_colour():
    cat, dog = _mask("cat"), _mask("dog")
    iou = (cat & dog).sum() / (cat | dog).sum()
    assert iou < 0.8
    # Cat: pointed ears reach the top corners' columns at the top; dog: ears hang down the sides.
    assert cat[14:20, 30:40].any() and not dog[14:20, 14:20].any()
    assert dog[60:80, 14:20].any() and not cat[60:80, 14:18].any()


def test_draw_object_unknown_class():
    with pytest.raises(ValueError, match="unknown object class"):
        draw_object(Image.new("RGB", (10, 10)), "unicorn", (0, 0, 5, 5), (1, 2, 3), None)
