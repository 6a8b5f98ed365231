"""Default boxes for your data: `coverage` (how well the default boxes cover a dataset's
boxes, `python -m ssd.coverage`), `coverage_summary` (its summary numbers) and
`tune_boxes` (`python -m ssd.tune_boxes`: fit scales and aspect ratios to the boxes)."""
