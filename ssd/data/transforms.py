"""SSD data augmentation (Sec. 2.2 "Data augmentation", Sec. 3.6) with torchvision v2.

The paper trains on randomly sampled patches (min IoU with the objects in
{0.1, 0.3, 0.5, 0.7, 0.9}, a free patch, or the whole image), a "zoom out" expansion
up to 16x area onto a mean-coloured canvas (Sec. 3.6: +2-3% mAP on small objects),
horizontal flips and photometric distortions. torchvision's v2 transforms implement
exactly these on `tv_tensors.BoundingBoxes`; this module chains them as the torchvision
detection reference does and converts to this library's item format.

The steps are torchvision's own classes, subclassed only so that they can report what
they drew (`record`): `IoUCropSampler` re-states `RandomIoUCrop.make_params` draw for
draw (same torch RNG calls in the same order, so the same crop for the same seed; a test
checks it against torchvision) and lists every crop it tried, accepted or rejected and
why (`CropAttempt`). Training uses these same classes with recording off, and
`trace_augmentation` runs a transform step by step with recording on: same draws, same
output, plus every intermediate image.

A transform is called as `t(image_pil, boxes_xyxy_px (G, 4), labels (G,))` and returns
(image (3, S, S) float32 in [0, 1], {"boxes": (G', 4) xyxy normalised, "labels": (G',)}),
G' <= G after boxes cropped away or left degenerate are dropped.
Randomness comes from torch's global generator: `torch.manual_seed` makes it repeatable.

Letters: G = GT boxes in, G' = boxes kept, S = output side, H x W = image or canvas.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import get_bounding_boxes, query_size

from torchvision.ops import box_iou

IMAGE_MEAN = (0.485, 0.456, 0.406)  # zoom-out canvas colour (the paper fills with the mean)

AUGMENTATIONS = ("ssd", "light", "none")
AUGMENT_STEPS = ("photometric", "zoom_out", "iou_crop", "flip")  # the switchable steps, in the paper's order


@dataclass(frozen=True)
class AugmentSteps:
    """Which steps of the SSD recipe run, in the paper's order."""

    photometric: bool = True  # RandomPhotometricDistort: brightness, contrast, saturation, hue, channel order
    zoom_out: bool = True  # RandomZoomOut(p=0.5): paste on a mean-coloured canvas (Sec. 3.6)
    iou_crop: bool = True  # the minimum-IoU random crop (IoUCropSampler)
    flip: bool = True  # RandomHorizontalFlip(p=0.5)
    zoom_out_max: float = 4.0  # largest canvas side / image side (4 = the paper's 16x area)

    def __post_init__(self):
        if not (isinstance(self.zoom_out_max, (int, float)) and 1.0 <= self.zoom_out_max <= 16.0):
            raise ValueError(f"AugmentSteps.zoom_out_max must be a number in [1, 16], got {self.zoom_out_max!r}")


def parse_augment_steps(text: str, zoom_out_max: float = 4.0) -> AugmentSteps:
    """`AugmentSteps` from a comma list of `AUGMENT_STEPS` names ("photometric,iou_crop,flip"):
    the named steps on, the others off; "none" = every step off. ValueError names the
    flag and the unknown step."""
    names = [n.strip() for n in str(text).split(",") if n.strip()]
    if names == ["none"]:
        names = []
    unknown = [n for n in names if n not in AUGMENT_STEPS]
    if unknown or not str(text).strip():
        raise ValueError(f"--augment-steps: unknown step(s) {unknown or [text]}; use a comma list of "
                         f"{', '.join(AUGMENT_STEPS)}, or none")
    return AugmentSteps(**{n: n in names for n in AUGMENT_STEPS}, zoom_out_max=zoom_out_max)


# ---------------------------------------------------------------- the crop's rules
CROP_OUTCOMES = {  # outcome -> (accepted, plain-words reason)
    "whole image": (True, "sampled option 1.0: keep the whole image"),
    "accepted": (True, "a box with its centre inside overlaps the crop at least the sampled minimum IoU"),
    "aspect ratio": (False, "crop width / height outside [0.5, 2]"),
    "empty": (False, "the crop has zero width or height"),
    "no centre inside": (False, "no box has its centre inside the crop"),
    "IoU below minimum": (False, "every box with its centre inside overlaps the crop less than the sampled minimum"),
}


@dataclass(frozen=True)
class CropAttempt:
    """One crop the IoU crop sampler tried, in the frame of its input image (canvas px)."""

    round: int  # which option draw (0, 1, ...): after `trials` failed trials a new minimum IoU is drawn
    trial: int  # trial within the round, 0..trials-1; -1 for the "whole image" option
    min_iou: float  # the sampled minimum IoU (1.0 = keep the whole image, 0.0 = any crop with a centre inside)
    crop_xyxy: tuple[int, int, int, int] | None  # (left, top, right, bottom) px; None: no position drawn
    outcome: str  # a key of CROP_OUTCOMES
    size_wh: tuple[int, int] | None = None  # (w, h) px of the drawn size; None for "whole image"
    best_iou: float | None = None  # best IoU of a box centred inside; None when not reached
    centre_inside: tuple[bool, ...] = ()  # (G,) per input box, centre strictly inside; () when not reached

    @property
    def accepted(self) -> bool:
        return CROP_OUTCOMES[self.outcome][0]

    @property
    def reason(self) -> str:
        return CROP_OUTCOMES[self.outcome][1]


def judge_crop(boxes_xyxy: Tensor, crop_xyxy: tuple[int, int, int, int], min_iou: float):
    """The paper's patch rules, as torchvision's RandomIoUCrop applies them.

    A box counts only when its centre lies strictly inside the crop (the others are
    dropped from the sample); the crop is accepted when one of those boxes overlaps it
    with IoU >= `min_iou`.

    Args:
        boxes_xyxy: (G, 4) boxes, px of the image being cropped.
        crop_xyxy: (left, top, right, bottom) px.
        min_iou: the sampled minimum IoU.
    Returns:
        (outcome: "accepted" | "no centre inside" | "IoU below minimum",
         centre_inside: (G,) bool, best_iou: float or None when no centre is inside).
    """
    left, top, right, bottom = crop_xyxy
    cx = 0.5 * (boxes_xyxy[..., 0] + boxes_xyxy[..., 2])
    cy = 0.5 * (boxes_xyxy[..., 1] + boxes_xyxy[..., 3])
    inside = (left < cx) & (cx < right) & (top < cy) & (cy < bottom)  # (G,)
    if not inside.any():
        return "no centre inside", inside, None
    crop = torch.tensor([[left, top, right, bottom]], dtype=boxes_xyxy.dtype, device=boxes_xyxy.device)
    best = box_iou(boxes_xyxy[inside], crop).max()  # (G_in, 1) -> ()
    # Compared as a tensor against the float, exactly as torchvision does.
    return ("IoU below minimum" if best < min_iou else "accepted"), inside, float(best)


class _KeepsParams:
    """Mixin for a torchvision v2 transform: when `record` is a list, each call that fires
    appends the params it drew. It draws nothing itself, so training's draws are unchanged."""

    record: list | None = None

    def make_params(self, flat_inputs):
        params = super().make_params(flat_inputs)
        if self.record is not None:
            self.record.append(params)
        return params


class PhotometricDistort(_KeepsParams, v2.RandomPhotometricDistort):
    """torchvision's RandomPhotometricDistort that can report its params."""


class ZoomOut(_KeepsParams, v2.RandomZoomOut):
    """torchvision's RandomZoomOut that can report its padding (left, top, right, bottom)."""


class HorizontalFlip(_KeepsParams, v2.RandomHorizontalFlip):
    """torchvision's RandomHorizontalFlip that can report that it fired."""


class IoUCropSampler(v2.RandomIoUCrop):
    """torchvision's RandomIoUCrop with its sampler re-stated so it can list its attempts.

    `make_params` makes the same torch RNG calls in the same order as torchvision's
    (randint for the option, rand(2) for the size, rand(2) for the position only when the
    aspect ratio passes), so for the same RNG state it returns the same crop. The rules
    (`judge_crop`): a crop is kept when some box whose centre lies strictly
    inside it overlaps it with IoU >= the sampled minimum; boxes whose centre is outside
    are zeroed here and dropped by the later SanitizeBoundingBoxes.
    When `record` is a list, every attempt is appended to it as a `CropAttempt`.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.record: list[CropAttempt] | None = None

    def make_params(self, flat_inputs) -> dict:
        orig_h, orig_w = query_size(flat_inputs)
        bboxes = get_bounding_boxes(flat_inputs)
        boxes_xyxy = v2.functional.convert_bounding_box_format(
            bboxes.as_subclass(Tensor), bboxes.format, tv_tensors.BoundingBoxFormat.XYXY
        )
        return self.sample_crop(boxes_xyxy, (orig_h, orig_w), self.record)

    def sample_crop(self, boxes_xyxy: Tensor, image_hw: tuple[int, int], record: list | None = None) -> dict:
        """Draw a crop of an (H, W) image holding `boxes_xyxy` (G, 4) px.

        Returns {} (keep the whole image) or dict(top, left, height, width,
        is_within_crop_area (G,) bool), torchvision's params. Appends every attempt to
        `record` when it is a list. Like torchvision, it loops until a crop is accepted
        (the whole-image option, 1.0, always is).
        """
        orig_h, orig_w = image_hw
        round_ = 0
        while True:
            idx = int(torch.randint(low=0, high=len(self.options), size=(1,)))
            min_iou = self.options[idx]
            if min_iou >= 1.0:  # torchvision: a value >= 1 encodes "leave the image as is"
                if record is not None:
                    record.append(CropAttempt(round_, -1, float(min_iou), (0, 0, orig_w, orig_h), "whole image"))
                return {}
            for trial in range(self.trials):
                params = self._trial(boxes_xyxy, orig_w, orig_h, float(min_iou), (round_, trial), record)
                if params:
                    return params
            round_ += 1

    def _trial(self, boxes_xyxy, orig_w, orig_h, min_iou, where, record) -> dict:
        """One trial of `sample_crop`: torchvision's loop body, line for line."""
        r = self.min_scale + (self.max_scale - self.min_scale) * torch.rand(2)
        new_w = int(orig_w * r[0])
        new_h = int(orig_h * r[1])
        # torchvision divides by new_h unguarded; a 0-high crop fails the ratio test here instead.
        aspect_ratio = new_w / new_h if new_h > 0 else float("inf")
        if not (self.min_aspect_ratio <= aspect_ratio <= self.max_aspect_ratio):
            if record is not None:
                record.append(CropAttempt(*where, min_iou, None, "aspect ratio", size_wh=(new_w, new_h)))
            return {}
        r = torch.rand(2)
        left = int((orig_w - new_w) * r[0])
        top = int((orig_h - new_h) * r[1])
        crop = (left, top, left + new_w, top + new_h)
        if left == crop[2] or top == crop[3]:
            outcome, inside, best_iou = "empty", None, None
        else:
            outcome, inside, best_iou = judge_crop(boxes_xyxy, crop, min_iou)
        if record is not None:
            record.append(CropAttempt(*where, min_iou, crop, outcome, size_wh=(new_w, new_h), best_iou=best_iou,
                                      centre_inside=tuple(inside.tolist()) if inside is not None else ()))
        if outcome != "accepted":
            return {}
        return dict(top=top, left=left, height=new_h, width=new_w, is_within_crop_area=inside)


class DetectionTransform:
    """Wraps a v2 pipeline so it takes (PIL, boxes px, labels) and returns normalised targets."""

    def __init__(self, pipeline: v2.Compose, size: int):
        self.pipeline = pipeline
        self.size = int(size)

    def __call__(self, image: Image.Image, boxes_xyxy_px: Tensor, labels: Tensor):
        img, target = self.pipeline(*to_pipeline_input(image, boxes_xyxy_px, labels))
        return from_pipeline_output(img, target)

    def __repr__(self) -> str:
        return f"DetectionTransform(size={self.size}, pipeline={self.pipeline})"


def to_pipeline_input(image: Image.Image, boxes_xyxy_px: Tensor, labels: Tensor) -> tuple:
    """(PIL, (G, 4) px, (G,)) -> (tv Image (3, H, W) uint8, {"boxes": BoundingBoxes, "labels"})."""
    w, h = image.size
    img = tv_tensors.Image(v2.functional.pil_to_tensor(image.convert("RGB")))  # (3, H, W) uint8
    boxes = tv_tensors.BoundingBoxes(boxes_xyxy_px.reshape(-1, 4).float(), format="XYXY", canvas_size=(h, w))
    return img, {"boxes": boxes, "labels": labels.reshape(-1).long()}


def from_pipeline_output(img: Tensor, target: dict) -> tuple[Tensor, dict]:
    """The pipeline's (image (3, S, S), px targets) -> (plain tensor, normalised targets)."""
    out_h, out_w = img.shape[-2:]
    scale = torch.tensor([out_w, out_h, out_w, out_h], dtype=torch.float32)
    boxes_norm = (target["boxes"].as_subclass(Tensor).float() / scale).clamp(0.0, 1.0)
    return img.as_subclass(Tensor), {"boxes": boxes_norm.reshape(-1, 4), "labels": target["labels"]}


def ssd_transform(size: int, steps: AugmentSteps = AugmentSteps()) -> DetectionTransform:
    """The SSD training augmentation with the chosen `steps`, then resize to S x S.

    All steps on is `train_transform(size, "ssd")`; only the flip is "light".
    """
    fill = {tv_tensors.Image: [int(round(255 * m)) for m in IMAGE_MEAN], "others": 0}
    ops: list[v2.Transform] = []
    if steps.photometric:
        ops.append(PhotometricDistort(p=0.5))
    if steps.zoom_out:
        ops.append(ZoomOut(fill=fill, side_range=(1.0, float(steps.zoom_out_max)), p=0.5))
    if steps.iou_crop:
        ops.append(IoUCropSampler())
    if steps.flip:
        ops.append(HorizontalFlip(p=0.5))
    ops += [
        # Bilinear without antialiasing, as torchvision's SSD transform and ssd.inference resize.
        v2.Resize((size, size), antialias=False),
        v2.ClampBoundingBoxes(),
        v2.SanitizeBoundingBoxes(min_size=1.0),  # drops boxes cropped to nothing (x2 <= x1)
        v2.ToDtype(torch.float32, scale=True),
    ]
    return DetectionTransform(v2.Compose(ops), size)


def train_transform(size: int, augment: str = "ssd", zoom_out_max: float = 4.0,
                    steps: AugmentSteps | None = None) -> DetectionTransform:
    """Training transform.

    Args:
        size: output side S.
        augment: "ssd" = the paper's full recipe (photometric distort, zoom out with
            prob. 0.5 up to `zoom_out_max` x the side, IoU crop, flip); "light" = flip only
            (cheap; for data that already spans all object scales and colours, as the
            procedural scenes do); "none" = resize only.
        steps: the steps to run, one by one (`parse_augment_steps`, `--augment-steps`);
            given, it replaces `augment`'s preset.
    """
    if steps is not None:
        return ssd_transform(size, steps)
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if augment == "none":
        return eval_transform(size)
    if augment == "light":
        return ssd_transform(size, AugmentSteps(photometric=False, zoom_out=False, iou_crop=False))
    return ssd_transform(size, AugmentSteps(zoom_out_max=zoom_out_max))


def eval_transform(size: int) -> DetectionTransform:
    """Evaluation transform: resize to S x S (SSD warps, no letterbox) and scale to [0, 1]."""
    pipeline = v2.Compose(
        [
            v2.Resize((size, size), antialias=False),
            v2.ClampBoundingBoxes(),
            v2.ToDtype(torch.float32, scale=True),
        ]
    )
    return DetectionTransform(pipeline, size)


# ---------------------------------------------------------------- step-by-step trace
STAGE_NAMES = {PhotometricDistort: "photometric distort", ZoomOut: "zoom out", IoUCropSampler: "IoU crop",
               HorizontalFlip: "flip", v2.Resize: "resize"}


@dataclass
class AugmentStage:
    """The image and boxes after one step of the pipeline."""

    name: str  # "input" or a STAGE_NAMES value
    image: Tensor  # (3, H, W) uint8 after this step
    boxes_xyxy_px: Tensor  # (G, 4) float, this step's pixels; every input box, one cut away by the crop is all 0
    fired: bool  # False when the step's coin said no (the image passed unchanged)
    params: dict  # what the step drew ({} when it did not fire or draws nothing)


@dataclass
class AugmentTrace:
    """One augmented sample, step by step, and what training gets from it."""

    stages: list[AugmentStage]  # "input", then one per step in STAGE_NAMES order
    crop_attempts: list[CropAttempt]  # every crop tried (empty when the crop step is off)
    image: Tensor  # (3, S, S) float32 in [0, 1]: the transform's output, bit for bit
    target: dict  # {"boxes": (G', 4) xyxy normalised, "labels": (G',)}: the transform's output
    gt_index: Tensor  # (G',) long: the input row of each kept box

    def stage(self, name: str) -> AugmentStage | None:
        return next((s for s in self.stages if s.name == name), None)


def _what_fired(op) -> tuple[bool, dict]:
    """(fired, params) of a step that just ran on one item, from its `record`."""
    drawn = getattr(op, "record", None)
    if drawn is None:  # a step that always runs (resize)
        return True, {}
    if isinstance(op, IoUCropSampler):
        return drawn[-1].outcome != "whole image", {}
    if not drawn:  # a RandomApply step whose coin said no
        return False, {}
    params = dict(drawn[-1])
    if isinstance(op, PhotometricDistort):
        if params["channel_permutation"] is not None:
            params["channel_permutation"] = params["channel_permutation"].tolist()
        keys = ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor", "channel_permutation")
        return any(params[k] is not None for k in keys), params
    return True, params


def trace_augmentation(transform: DetectionTransform, image: Image.Image, boxes_xyxy_px: Tensor,
                       labels: Tensor) -> AugmentTrace:
    """Run `transform` on one item step by step, recording each step and every crop tried.

    Same torch RNG draws, in the same order, as `transform(image, boxes_xyxy_px, labels)`:
    with the same seed both give the same image and targets (tested). `transform` itself
    is not modified (a copy records). Boxes carry their input row number through the
    pipeline in place of the labels (no step draws from labels) to say which survived.
    """
    ops = copy.deepcopy(list(transform.pipeline.transforms))
    for op in ops:
        if isinstance(op, (_KeepsParams, IoUCropSampler)):
            op.record = []
    labels = labels.reshape(-1).long()
    img, target = to_pipeline_input(image, boxes_xyxy_px, torch.arange(labels.shape[0]))
    stages = [AugmentStage("input", img.as_subclass(Tensor), target["boxes"].as_subclass(Tensor).clone(), True, {})]
    for op in ops:
        img, target = op(img, target)
        name = STAGE_NAMES.get(type(op))
        if name is None:
            continue
        fired, params = _what_fired(op)
        stages.append(AugmentStage(name, img.as_subclass(Tensor), target["boxes"].as_subclass(Tensor).clone(),
                                   fired, params))
    out_image, out_target = from_pipeline_output(img, target)
    gt_index = out_target["labels"]
    out_target = {"boxes": out_target["boxes"], "labels": labels[gt_index]}
    crop = next((op for op in ops if isinstance(op, IoUCropSampler)), None)
    return AugmentTrace(stages, list(crop.record) if crop is not None else [], out_image, out_target, gt_index)
