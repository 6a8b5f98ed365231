"""Datasets for SSD: procedural scenes (offline), Pascal VOC and COCO readers, and the
SSD training augmentation. Every dataset yields (image (3, S, S) float in [0, 1],
{"boxes": (G, 4) xyxy normalised, "labels": (G,) int64 in 1..C-1})."""
from ssd.data.procedural import CLASSES, NUM_CLASSES, ProceduralDataset, cat_and_dog_scene, make_scene

__all__ = ["CLASSES", "NUM_CLASSES", "ProceduralDataset", "cat_and_dog_scene", "make_scene"]
