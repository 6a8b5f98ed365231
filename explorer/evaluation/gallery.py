"""The worst images of an evaluation, per TIDE error type and per cause of a miss.

An image's badness for a kind is its count of that kind (`result["per_image"]`, written
by `explorer.evaluation.runner.per_image_errors`); ties go to the image with more errors
of any kind. Thumbnails draw the ground truth and the image's final detections (from the
kept network outputs, re-post-processed at the evaluation's thresholds).
"""
from __future__ import annotations

from PIL import Image, ImageDraw

from explorer.evaluation.kept import KeptOutputs
from explorer.inputs.samples import load_sample
from ssd.images import load_image
from ssd.postprocess import DISPLAY_SCORE_THRESH, PostprocessConfig, postprocess

GT_RGB, TP_RGB, ERR_RGB = (0, 200, 255), (40, 200, 40), (230, 40, 40)


def gallery_kinds(result: dict) -> list[str]:
    """The kinds a gallery can show: TIDE error types, then "miss: <cause>"."""
    if not result.get("per_image"):
        return []
    kinds = result.get("error_types") or list(result["per_image"][0]["errors"])
    causes = result.get("causes") or list(result["per_image"][0]["causes"])
    return list(kinds) + [f"miss: {c}" for c in causes]


def _count(row: dict, kind: str) -> int:
    if kind.startswith("miss: "):
        return int(row["causes"].get(kind[len("miss: "):], 0))
    return int(row["errors"].get(kind, 0))


def worst_images(result: dict, kind: str, n: int = 8) -> list[dict]:
    """The `n` images with the most `kind` (a `gallery_kinds` entry), worst first, only
    images with at least one: [{"image", "source", "count", "total_errors", "num_gt"}]."""
    if kind not in gallery_kinds(result):
        raise ValueError(f"unknown gallery kind {kind!r}; known: {gallery_kinds(result)}")
    rows = []
    for i, row in enumerate(result["per_image"]):
        c = _count(row, kind)
        if c > 0:
            rows.append({"image": i, "source": result["sources"][i], "count": c,
                         "total_errors": sum(row["errors"].values()), "num_gt": row["num_gt"]})
    rows.sort(key=lambda r: (-r["count"], -r["total_errors"], r["image"]))
    return rows[:n]


def is_scene_id(source: str) -> bool:
    """Whether the explorer's sidebar can open `source` as a sample ("procedural:scene_<n>")."""
    return source.startswith("procedural:scene_") and source.split("_", 1)[1].isdigit()


def load_source_image(source: str) -> Image.Image:
    """The evaluated image: a generated scene id or an image file path (RGB)."""
    if is_scene_id(source):
        return load_sample(source).image

    # a dataset image: as stored (no EXIF turn, no upscaling), the frame of its boxes and detections
    return load_image(source, min_side=1, apply_exif=False)


def image_detections(kept: KeptOutputs, i: int, thresholds: dict, min_score: float = DISPLAY_SCORE_THRESH) -> dict:
    """Image i's final detections at the evaluation's `thresholds` (PostprocessConfig
    fields), those scoring >= min_score: {"boxes_xyxy_px_in", "scores", "labels"}."""

    scores, boxes = kept.dense_image(i)
    det = postprocess(scores, boxes, PostprocessConfig(**thresholds)).detections()
    keep = det["scores"] >= min_score
    return {k: v[keep] for k, v in det.items()}


def thumbnail(kept: KeptOutputs, result: dict, i: int, side: int = 224,
              min_score: float = DISPLAY_SCORE_THRESH) -> Image.Image:
    """Image i with its GT (cyan) and detections >= min_score (green: same class as an
    overlapping GT at IoU >= 0.5, red otherwise), `side` pixels on its longer side."""
    from torchvision.ops import box_iou

    img = load_source_image(result["sources"][i]).convert("RGB")
    s = float(result["image_size"])
    sx, sy = img.width / s, img.height / s  # network-input px -> original px (SSD warps to S x S)
    gt, det = kept.gt(i), image_detections(kept, i, result["thresholds"], min_score)
    iou = box_iou(det["boxes_xyxy_px_in"], gt["boxes_xyxy_px_in"]) if len(gt["labels"]) else None
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(img.size) / 160))
    names = result["class_names"]
    for b in gt["boxes_xyxy_px_in"].tolist():
        draw.rectangle([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], outline=GT_RGB, width=width)
    for n, (b, lab, sc) in enumerate(zip(det["boxes_xyxy_px_in"].tolist(), det["labels"].tolist(),
                                         det["scores"].tolist())):
        good = iou is not None and bool(((iou[n] >= 0.5) & (gt["labels"] == lab)).any())
        colour = TP_RGB if good else ERR_RGB
        draw.rectangle([b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy], outline=colour, width=width)
        draw.text((b[0] * sx + 2, b[1] * sy + 1), f"{names[lab]} {sc:.2f}", fill=colour)
    img.thumbnail((side, side))
    return img
