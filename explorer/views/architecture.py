"""The model as a table (Sec. 2.1, Fig. 2): per source layer, its feature map, its
channels, its default boxes and its predictor filters.

Numbers come from the model object itself (its predictor convs and its config), so
the table is right for any `SSDNet`, trained or not.
"""
from __future__ import annotations

# One line per column: what the number means (shown under the table).
COLUMN_EXPLANATIONS = {
    "source_layer": "the network layer whose output feature map this level predicts from",
    "feature_map": "H x W cells of that map; each cell is a location that predicts boxes",
    "channels": "depth of the feature map, the input channels of the 3x3 predictor convs",
    "boxes_per_location": "K default boxes per cell: one per aspect ratio, plus the extra ratio-1 box s'_k",
    "boxes": "H x W x K default boxes on this level",
    "class_filters": "3x3 conv filters predicting class scores: K x C (C classes incl. background)",
    "box_filters": "3x3 conv filters predicting box offsets: K x 4 (dx, dy, dw, dh)",
    "predictor_filters": "all predictor filters of the level: K x (C + 4), Sec. 2.1",
    "outputs": "numbers predicted on this level: H x W x K x (C + 4)",
    "scale_px": "s_k x input side: the size of the level's ratio-1 default box",
}


def architecture_rows(model) -> list[dict]:
    """One row per level of `model` (an `SSDNet`) plus a "total" row.

    Reads `model.cfg` (feature maps, boxes per location, classes), `model.level_names`
    and `model.level_channels` (input channels of each level's class predictor).
    """
    cfg = model.cfg
    c = cfg.num_classes
    rows = []
    k_per_level = cfg.boxes_per_location()
    for level, (f, k) in enumerate(zip(cfg.feature_maps, k_per_level)):
        boxes = f * f * k
        rows.append(
            {
                "level": level,
                "source_layer": model.level_names[level],
                "feature_map": f"{f}x{f}",
                "channels": int(model.level_channels[level]),
                "boxes_per_location": k,
                "boxes": boxes,
                "class_filters": k * c,
                "box_filters": k * 4,
                "predictor_filters": f"{k} x ({c} + 4) = {k * (c + 4)}",
                "outputs": boxes * (c + 4),
                "scale_px": round(cfg.scales[level] * cfg.image_size, 1),
            }
        )
    rows.append(
        {
            # Text, not None: a table shows None as a "None" cell.
            "level": "total",
            "source_layer": f"{cfg.num_levels} levels",
            "feature_map": "",
            "channels": "",
            "boxes_per_location": "",
            "boxes": sum(r["boxes"] for r in rows),
            "class_filters": sum(r["class_filters"] for r in rows),
            "box_filters": sum(r["box_filters"] for r in rows),
            "predictor_filters": str(sum(r["class_filters"] + r["box_filters"] for r in rows)),
            "outputs": sum(r["outputs"] for r in rows),
            "scale_px": "",
        }
    )
    return rows


def total_boxes(model) -> int:
    """Total default boxes A of the model (8732 for SSD300)."""
    cfg = model.cfg
    return sum(f * f * k for f, k in zip(cfg.feature_maps, cfg.boxes_per_location()))


def summary_lines(model) -> list[str]:
    """A few plain sentences about the model: input size, classes, parameters."""
    cfg = model.cfg
    n_params = sum(p.numel() for p in model.parameters())
    n_head = sum(p.numel() for p in model.head.parameters())
    return [
        f"Input: {cfg.image_size} x {cfg.image_size} pixels, RGB in [0, 1], normalised inside the model.",
        f"Classes: C = {cfg.num_classes} (including background at index 0).",
        f"Levels: {cfg.num_levels} feature maps, {total_boxes(model)} default boxes in all.",
        f"Parameters: {n_params / 1e6:.2f} M, of which {n_head / 1e6:.3f} M in the predictor head.",
    ]
