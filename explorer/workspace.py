"""The workspace: what the user is looking at, one owner for every page (no streamlit import).

One `Workspace` per browser session holds:
- the image (`ImageRef`: a built-in sample's id, or an upload's name and digest);
- the ground truth *of each image*, keyed by the image's digest: a new image starts with
  its own boxes (the sample's, or none for an upload), and going back to an image
  restores the boxes it had (`show_image`, `gt`, `set_gt`);
- the model (its id in `explorer.inputs.models`);
- the default-box configuration and where it came from (`BoxConfigState`: the model's
  own, a preset, edited, tuned on which data), with a tuned proposal that replaces it
  only on `use_tuned` and a way back (`undo_boxes`);
- ONE post-processing configuration (`Thresholds`, torchvision's names `score_thresh`,
  `nms_thresh`, `detections_per_img`) that Per-scale, NMS, Trace and Evaluation's "use
  these thresholds" all read and write, and the matching settings (`MatchSettings`);
- the picked level and cell (`CellPick`), and the traced object (a `trace_links.target_key`
  of one image).

The view in the URL: `to_query` writes the workspace as query parameters and
`apply_query` reads them back (a shared link, a reload); see `QUERY_KEYS` and
docs/explorer.md. The image's bytes and GT table are not in the URL: they are kept on
the server under a token (`explorer.inputs.session_store`); a session never writes to
a token it did not make (`token_to_write`), so a link opened elsewhere is a snapshot:
the opener's first change makes its own copy under a new token.

Every setter validates and raises ValueError naming the field and the allowed range;
`version` counts changes (a page can tell whether anything moved).
"""
from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from explorer.views import live_data
from ssd.config import SSDConfig
from ssd.postprocess import DEFAULTS, DISPLAY_SCORE_THRESH

# ---------------------------------------------------------------- the parts
# Ranges the controls offer (and a link may carry; values outside are refused): the live
# figures' and the pages' sliders' own, declared once in explorer.views.live_data.
SCORE_RANGE = live_data.SCORE_THRESH_RANGE[:2]
NMS_RANGE = live_data.NMS_THRESH_RANGE[:2]
DETECTIONS_RANGE = live_data.DETECTIONS_PER_IMG_RANGE[:2]
MATCH_IOU_RANGE = live_data.MATCH_IOU_RANGE[:2]
NEG_POS_RANGE = live_data.NEG_POS_RANGE[:2]
ROUND = 3  # decimals a threshold keeps (what a slider step and a link can say)
MAX_GT_IMAGES = 16  # images whose GT tables one workspace remembers (least recently shown out)


def _in_range(name: str, value, lo, hi, cast):
    try:
        v = cast(value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{name}: {value!r} is not a finite number")
        v = round(v, ROUND)
    if not lo <= v <= hi:
        raise ValueError(f"{name}: {v:g} is outside [{lo:g}, {hi:g}]")
    return v


@dataclass(frozen=True)
class Thresholds:
    """The post-processing every page uses (torchvision `SSD`'s attribute names)."""

    score_thresh: float = DISPLAY_SCORE_THRESH  # a candidate needs this class score (the library's 0.01 is for mAP)
    nms_thresh: float = DEFAULTS.nms_thresh  # per-class NMS removes a box overlapping a kept one above this IoU
    detections_per_img: int = DEFAULTS.detections_per_img  # the final list keeps the best this many (Sec. 3.7)

    def __post_init__(self) -> None:
        object.__setattr__(self, "score_thresh", _in_range("score_thresh", self.score_thresh, *SCORE_RANGE, float))
        object.__setattr__(self, "nms_thresh", _in_range("nms_thresh", self.nms_thresh, *NMS_RANGE, float))
        object.__setattr__(self, "detections_per_img", _in_range("detections_per_img", self.detections_per_img,
                                                                 *DETECTIONS_RANGE, int))

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MatchSettings:
    """The Matching page's training-time settings (Sec. 2.2)."""

    iou_thresh: float = 0.5  # a default box is a positive at this IoU with a GT
    neg_pos_ratio: float = 3.0  # hard negatives kept per positive

    def __post_init__(self) -> None:
        object.__setattr__(self, "iou_thresh", _in_range("match iou_thresh", self.iou_thresh, *MATCH_IOU_RANGE,
                                                         float))
        object.__setattr__(self, "neg_pos_ratio", _in_range("neg_pos_ratio", self.neg_pos_ratio, *NEG_POS_RANGE,
                                                            float))


@dataclass(frozen=True)
class ImageRef:
    """The image in view: a sample (`sample_id`) or an upload (`upload_name`); `digest`
    is the sha1 of its encoded bytes ("" for a sample not yet loaded)."""

    sample_id: str | None = None
    upload_name: str | None = None
    digest: str = ""

    def __post_init__(self) -> None:
        if (self.sample_id is None) == (self.upload_name is None):
            raise ValueError("ImageRef: give exactly one of sample_id and upload_name")

    @property
    def is_upload(self) -> bool:
        return self.upload_name is not None


@dataclass(frozen=True)
class GTState:
    """One image's ground-truth table: rows as `session_store.plain_rows` (label, x1..y2 in
    original pixels, difficult, crowd), where they came from, the difficult rule."""

    rows: tuple[dict, ...] = ()
    source: tuple[str, ...] = ()  # words of session_store.GT_SOURCES ("file a.xml", "typed", ...)
    keep_difficult: bool = False


@dataclass(frozen=True)
class BoxConfigState:
    """The default boxes the Default boxes and Dataset pages show. `config` None: the
    model's own. `origin`: "model", "preset <name>", "edited", "tuned on <data>"."""

    config: SSDConfig | None = None
    origin: str = "model"


@dataclass(frozen=True)
class TunedProposal:
    """A tuner result waiting for the user's "use it": the configuration, what it was tuned
    on, and the before/after figures against the configuration it started from."""

    config: SSDConfig
    data: str
    before: dict
    after: dict
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class CellPick:
    level: int
    row: int
    col: int

    def __post_init__(self) -> None:
        for name in ("level", "row", "col"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"cell {name} must be >= 0, got {getattr(self, name)}")
            object.__setattr__(self, name, int(getattr(self, name)))


# ---------------------------------------------------------------- the workspace
@dataclass
class Workspace:
    """What one browser session looks at (module docstring). Mutate through the methods."""

    image: ImageRef | None = None
    source: str = "sample"  # the image picker's choice: "sample" or "upload"
    sample_id: str | None = None  # the sample picked (None: the default sample)
    model_id: str | None = None  # None: the app's default model
    thresholds: Thresholds = field(default_factory=Thresholds)
    matching: MatchSettings = field(default_factory=MatchSettings)
    boxes: BoxConfigState = field(default_factory=BoxConfigState)
    boxes_before: BoxConfigState | None = None  # what `use_tuned` replaced: `undo_boxes` brings it back
    proposal: TunedProposal | None = None
    cell: CellPick | None = None
    traced: tuple[str, str] | None = None  # (image digest, trace_links.target_key)
    token: str | None = None  # the server-side store's key for the image and GT
    token_owned: bool = False  # False: the token came with a link; never write to it
    token_in_use: bool = True  # False: the view needs nothing kept (a sample with its own boxes): no token in the URL
    version: int = 0
    _gt: OrderedDict = field(default_factory=OrderedDict)  # digest -> GTState (LRU, MAX_GT_IMAGES)
    _own: dict = field(default_factory=dict)  # digest -> the image's own GTState

    def _changed(self) -> None:
        self.version += 1

    # -- image and its ground truth
    def choose_sample(self, sample_id: str | None) -> None:
        """Show sample `sample_id` (None: the default) on the next run of the picker."""
        if (self.source, self.sample_id) != ("sample", sample_id):
            self.source, self.sample_id = "sample", sample_id
            self._changed()

    def choose_upload(self) -> None:
        """Show the user's upload (the last one, when there is one) on the next run."""
        if self.source != "upload":
            self.source = "upload"
            self._changed()

    def show_image(self, ref: ImageRef, own_rows: tuple[dict, ...] = ()) -> GTState:
        """Show `ref` (its digest known). Its GT: what it had when last shown, else its own
        rows (a sample's annotation; none for an upload). Returns that GT."""
        if not ref.digest:
            raise ValueError("show_image: the image's digest is needed (load it first)")
        own = GTState(tuple(own_rows), ("image",) if own_rows else ())
        self._own[ref.digest] = own
        if ref != self.image:
            self.image = ref
            self._changed()
        if ref.digest not in self._gt:
            self._gt[ref.digest] = own
        self._gt.move_to_end(ref.digest)
        while len(self._gt) > MAX_GT_IMAGES:
            gone, _ = self._gt.popitem(last=False)
            self._own.pop(gone, None)
        return self._gt[ref.digest]

    @property
    def gt(self) -> GTState:
        """The shown image's GT (empty before any image)."""
        if self.image is None:
            return GTState()
        return self._gt.get(self.image.digest, GTState())

    def gt_of(self, digest: str) -> GTState | None:
        """The GT remembered for another image, or None."""
        return self._gt.get(digest)

    def set_gt(self, rows=None, source=None, keep_difficult=None) -> None:
        """Replace parts of the shown image's GT (rows, source words, the difficult rule)."""
        if self.image is None:
            raise ValueError("set_gt: no image is shown")
        old = self.gt
        new = GTState(old.rows if rows is None else tuple(rows), old.source if source is None else tuple(source),
                      old.keep_difficult if keep_difficult is None else bool(keep_difficult))
        if new != old:
            self._gt[self.image.digest] = new
            self._changed()

    def restore_gt(self, digest: str, gt: GTState) -> None:
        """Put a kept GT (a reload, a link) in place for image `digest` before it is shown."""
        self._gt[digest] = gt
        self._gt.move_to_end(digest)

    def reset_gt(self) -> None:
        """The shown image's own boxes again (a refused or removed annotation file)."""
        if self.image is not None:
            own = self._own.get(self.image.digest, GTState())
            self.set_gt(own.rows, own.source)

    def own_gt(self) -> GTState:
        return GTState() if self.image is None else self._own.get(self.image.digest, GTState())

    # -- model, thresholds, matching
    def set_model(self, model_id: str | None) -> None:
        if model_id != self.model_id:
            self.model_id = model_id
            self._changed()

    def set_thresholds(self, **changes) -> Thresholds:
        """Change some of score_thresh, nms_thresh, detections_per_img (validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(Thresholds)}
        if unknown:
            raise ValueError(f"unknown threshold(s) {sorted(unknown)}: use score_thresh, nms_thresh, "
                             "detections_per_img")
        new = dataclasses.replace(self.thresholds, **changes)
        if new != self.thresholds:
            self.thresholds = new
            self._changed()
        return new

    def set_matching(self, **changes) -> MatchSettings:
        new = dataclasses.replace(self.matching, **changes)
        if new != self.matching:
            self.matching = new
            self._changed()
        return new

    # -- default boxes
    def set_boxes(self, config: SSDConfig | None, origin: str) -> None:
        """The Default boxes page's configuration (None: the model's own) and its origin."""
        new = BoxConfigState(config, "model" if config is None else origin)
        if new != self.boxes:
            self.boxes = new
            self._changed()

    def propose(self, proposal: TunedProposal) -> None:
        """A tuner result: shown beside the current configuration, not used yet."""
        self.proposal = proposal
        self._changed()

    def use_tuned(self) -> None:
        """The proposal becomes the Default boxes configuration; the old one is kept for `undo_boxes`."""
        if self.proposal is None:
            raise ValueError("use_tuned: nothing was tuned")
        self.boxes_before = self.boxes
        self.boxes = BoxConfigState(self.proposal.config, f"tuned on {self.proposal.data}")
        self.proposal = None
        self._changed()

    def undo_boxes(self) -> None:
        """Back to the configuration `use_tuned` replaced."""
        if self.boxes_before is None:
            raise ValueError("undo_boxes: nothing to go back to")
        self.boxes, self.boxes_before = self.boxes_before, None
        self._changed()

    # -- picks
    def pick_cell(self, level: int, row: int, col: int) -> None:
        new = CellPick(level, row, col)
        if new != self.cell:
            self.cell = new
            self._changed()

    def trace(self, target_key: str | None) -> None:
        """Trace `target_key` (a `trace_links.target_key`) on the shown image; None: nothing."""
        new = None if target_key is None else (self.image.digest if self.image else "", str(target_key))
        if new != self.traced:
            self.traced = new
            self._changed()

    def traced_key(self) -> str | None:
        """The traced object's key when it was picked on the shown image, else None."""
        if self.traced is None or self.image is None or self.traced[0] != self.image.digest:
            return None
        return self.traced[1]

    # -- the server-side copy of the image and GT
    def adopt_token(self, token: str | None) -> None:
        """A token that came with a link or a reload: read from it, never write to it."""
        self.token, self.token_owned, self.token_in_use = token, False, True

    def token_to_write(self, new_token: Callable[[], str]) -> str:
        """The token this session may write its image and GT under: its own, made now
        (`new_token()`) when it has none or holds one that came with a link."""
        if self.token is None or not self.token_owned:
            self.token, self.token_owned = new_token(), True
        self.token_in_use = True
        return self.token


# ---------------------------------------------------------------- the URL
# Query parameter names (torchvision's words for the thresholds).
QUERY_KEYS = ("sample", "inputs", "model", "score_thresh", "nms_thresh", "detections_per_img", "match_iou",
              "neg_pos", "boxes", "boxes_from", "cell", "trace")


def _num(v: float) -> str:
    return f"{round(float(v), ROUND):g}"


def _nums(values) -> str:
    return ",".join(_num(v) for v in values)


def encode_boxes(cfg: SSDConfig) -> str:
    """A default-box configuration in one query value:
    `S:maps:steps:scales:ratio sets (levels by ';'):flags` where flags are e1/e0 (extra box)
    and c1/c0 (clip); numbers to 3 decimals, e.g. `256:32,16,8:8,16,32:0.1,0.3,0.6,0.9:1,2,0.5;1;1:e1c1`."""
    ratios = ";".join(_nums(rs) for rs in cfg.aspect_ratios)
    return (f"{cfg.image_size}:{','.join(str(f) for f in cfg.feature_maps)}:{_nums(cfg.steps)}:"
            f"{_nums(cfg.scales)}:{ratios}:e{int(cfg.extra_box)}c{int(cfg.clip)}")


def decode_boxes(text: str, num_classes: int = 21, name: str = "custom") -> SSDConfig:
    """`encode_boxes` backwards; ValueError saying which part is wrong."""
    parts = str(text).split(":")
    if len(parts) != 6:
        raise ValueError("boxes: expected 6 parts split by ':' (size:maps:steps:scales:ratios:flags)")
    try:
        size, maps = int(parts[0]), tuple(int(f) for f in parts[1].split(","))
        steps, scales = tuple(float(s) for s in parts[2].split(",")), tuple(float(s) for s in parts[3].split(","))
        ratios = tuple(tuple(float(r) for r in rs.split(",")) for rs in parts[4].split(";"))
    except ValueError:
        raise ValueError("boxes: a number in the configuration does not read") from None
    # 1/3 written as 0.333: put the exact fractions back.
    ratios = tuple(tuple(1 / 3 if abs(r - 1 / 3) < 1e-3 else r for r in rs) for rs in ratios)
    flags = parts[5]
    if flags not in ("e1c1", "e1c0", "e0c1", "e0c0"):
        raise ValueError("boxes: flags must be e1c1, e1c0, e0c1 or e0c0")
    return SSDConfig(image_size=size, feature_maps=maps, steps=steps, scales=scales, aspect_ratios=ratios,
                     extra_box=flags[1] == "1", clip=flags[3] == "1", num_classes=num_classes, name=name)


def to_query(ws: Workspace, default_model: str | None = None, default_sample: str | None = None) -> dict[str, str]:
    """The workspace as query parameters; values equal to the defaults are left out, so
    the URL of an untouched app stays bare. The image: `inputs=<token>` when the server
    keeps it (an upload, or a sample with edited GT), else `sample=<id>`."""
    q: dict[str, str] = {}
    if ws.source == "sample" and ws.sample_id is not None and ws.sample_id != default_sample:
        q["sample"] = ws.sample_id
    if ws.token is not None and ws.token_in_use:
        q["inputs"] = ws.token
    if ws.model_id is not None and ws.model_id != default_model:
        q["model"] = ws.model_id
    t, d = ws.thresholds, Thresholds()
    for name in ("score_thresh", "nms_thresh", "detections_per_img"):
        if getattr(t, name) != getattr(d, name):
            q[name] = _num(getattr(t, name))
    if ws.matching.iou_thresh != MatchSettings().iou_thresh:
        q["match_iou"] = _num(ws.matching.iou_thresh)
    if ws.matching.neg_pos_ratio != MatchSettings().neg_pos_ratio:
        q["neg_pos"] = _num(ws.matching.neg_pos_ratio)
    if ws.boxes.config is not None:
        q["boxes"], q["boxes_from"] = encode_boxes(ws.boxes.config), ws.boxes.origin
    if ws.cell is not None:
        q["cell"] = f"{ws.cell.level},{ws.cell.row},{ws.cell.col}"
    if ws.traced_key() is not None:
        q["trace"] = ws.traced_key()
    return q


def _parse_cell(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    if len(parts) != 3:
        raise ValueError("expected level,row,col")
    return tuple(int(v) for v in parts)


def apply_query(ws: Workspace, params: Mapping[str, str], num_classes: int = 21) -> list[str]:
    """Read a link's query parameters into `ws` (the session's first run). Bad values are
    skipped, each with a note saying which and why. `sample` picks the sample; `inputs`
    (the server-kept upload and GT) is left to the caller, who owns the store. Returns the notes."""
    notes: list[str] = []

    def attempt(what: str, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (ValueError, TypeError) as e:
            notes.append(f"link parameter {what} ignored: {e}")

    p = {k: str(v) for k, v in params.items() if k in QUERY_KEYS and v is not None}
    if p.get("sample"):
        ws.choose_sample(p["sample"])
    if p.get("model"):
        ws.set_model(p["model"])
    for name in ("score_thresh", "nms_thresh", "detections_per_img"):
        if name in p:
            attempt(name, lambda name=name: ws.set_thresholds(**{name: p[name]}))
    if "match_iou" in p:
        attempt("match_iou", lambda: ws.set_matching(iou_thresh=p["match_iou"]))
    if "neg_pos" in p:
        attempt("neg_pos", lambda: ws.set_matching(neg_pos_ratio=p["neg_pos"]))
    if "boxes" in p:
        attempt("boxes", lambda: ws.set_boxes(decode_boxes(p["boxes"], num_classes), p.get("boxes_from") or "edited"))
    if "cell" in p:
        attempt("cell", lambda: ws.pick_cell(*_parse_cell(p["cell"])))
    if "trace" in p:
        ws.traced = ("", p["trace"])  # its image is known once the image loads: `claim_trace`
    return notes


def claim_trace(ws: Workspace) -> None:
    """A traced object that came with a link belongs to the first image shown."""
    if ws.traced is not None and ws.traced[0] == "" and ws.image is not None:
        ws.traced = (ws.image.digest, ws.traced[1])
