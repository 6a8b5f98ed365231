"""Evaluation: `evaluate` (`python -m ssd.evaluate`: collect detections, score them),
`coco_ap` (COCO-style AP), `metrics` (PR curves, COCO JSON) and `error_types/` (TIDE-style
error analysis and the cause of each miss)."""
