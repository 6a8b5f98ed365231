"""Score a COCO results file (detections from any tool) against an evaluation's ground truth.

The ground truth is the evaluation's own, as `python -m ssd.evaluate --gt-out` writes it
(`ssd.evaluation.metrics.coco_gt_json`: image ids 1..N in dataset order, boxes in network-input
pixels). The file is checked with `ssd.evaluation.metrics.check_coco_results`, so an unknown image
id or category id is refused with a message naming the entry.
"""
from __future__ import annotations

import json

import torch

from explorer.evaluation.kept import KeptOutputs
from explorer.evaluation.spec import EvalInputError
from ssd.evaluation.evaluate import score
from ssd.evaluation.metrics import check_coco_results, coco_gt_json


def gt_json(kept: KeptOutputs, class_names, image_side: int) -> dict:
    """The evaluation's ground truth as a COCO instances dict (`--gt-out`'s format)."""

    return coco_gt_json([kept.gt(i) for i in range(kept.num_images)], class_names, (image_side, image_side))


def score_detections_file(name: str, data: bytes, kept: KeptOutputs, class_names, image_side: int) -> dict:
    """`ssd.evaluation.evaluate.score` of the detections in a COCO results JSON (`data`, named `name`).

    Returns the AP dict with "curves". Raises EvalInputError naming the file and the
    problem: not JSON, not a results list, an image or category id the evaluation lacks.
    """

    try:
        results = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise EvalInputError(f"{name}: not a JSON file ({e})") from e
    try:
        check_coco_results(results, gt_json(kept, class_names, image_side), source=name)
    except ValueError as e:
        raise EvalInputError(str(e)) from e
    per_image: list[list[dict]] = [[] for _ in range(kept.num_images)]
    for r in results:
        per_image[int(r["image_id"]) - 1].append(r)
    dets = []
    for rows in per_image:
        xywh = torch.tensor([r["bbox"] for r in rows], dtype=torch.float32).reshape(-1, 4)
        dets.append({"boxes_xyxy_px_in": torch.cat([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1),
                     "scores": torch.tensor([float(r["score"]) for r in rows], dtype=torch.float32),
                     "labels": torch.tensor([int(r["category_id"]) for r in rows], dtype=torch.long)})
    return score([kept.gt(i) for i in range(kept.num_images)], dets, class_names, curves=True)
