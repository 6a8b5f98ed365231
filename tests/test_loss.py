"""Tests for ssd/loss.py: equality with torchvision's SSD.compute_loss, hard negative
mining counts, the N = 0 case, a hand-checked tiny case, and input validation."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssd import SSD
from torchvision.ops import box_iou

from ssd.boxes import cxcywh_to_xyxy
from ssd.config import ssd300_coco, ssd300_voc
from ssd.loss import MultiboxLoss, multibox_loss, negative_rank
from ssd.matching import match




@pytest.fixture(scope="module")
def tv_ssd():
    # torchvision's own SSD class with the settings of ssd300_vgg16 (iou_thresh 0.5, 3:1
    # mining, BoxCoder(10, 10, 5, 5)); only compute_loss and proposal_matcher are used, so
    # an identity backbone/head spares building VGG16 (seconds on this machine).
    anchors = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]])
    return SSD(nn.Identity(), anchors, (300, 300), num_classes=21, head=nn.Identity())


@pytest.fixture(scope="module")
def priors():
    from ssd.priors import default_boxes

    return {"voc": default_boxes(ssd300_voc()).cxcywh, "coco": default_boxes(ssd300_coco()).cxcywh}


def random_targets(batch, num_classes, seed, max_gt=6, allow_empty=False):
    gen = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch):
        g = int(torch.randint(0 if allow_empty else 1, max_gt + 1, (1,), generator=gen))
        c = torch.rand(g, 2, generator=gen) * 0.8 + 0.1
        wh = torch.rand(g, 2, generator=gen) * 0.5 + 0.04
        boxes = torch.cat([c - wh / 2, c + wh / 2], dim=1).clamp(0, 1)
        targets.append({"boxes": boxes, "labels": torch.randint(1, num_classes, (g,), generator=gen)})
    return targets


def no_ties(targets, default_xyxy):
    """No matcher ties: no two GTs share a best default box, no GT has two equally good
    best boxes (symmetric default boxes often do; pixel vs normalised rounding then
    picks different ones) and no IoU sits on the threshold."""
    for t in targets:
        if t["boxes"].shape[0]:
            iou = box_iou(t["boxes"], default_xyxy)
            top2 = iou.topk(2, dim=1).values
            best = iou.argmax(1)
            if best.unique().numel() != best.numel() or (top2[:, 0] - top2[:, 1] < 1e-5).any():
                return False
            if ((iou - 0.5).abs() < 1e-5).any():
                return False
    return True


def torchvision_loss(model, targets, cls_logits, box_deltas, default_cxcywh):
    """torchvision's loss path in pixels: per-image proposal_matcher(box_iou) + compute_loss."""
    anchors_px = cxcywh_to_xyxy(default_cxcywh) * 300
    targets_px = [{"boxes": t["boxes"] * 300, "labels": t["labels"]} for t in targets]
    matched_idxs = [model.proposal_matcher(box_iou(t["boxes"], anchors_px)) for t in targets_px]
    head_outputs = {"cls_logits": cls_logits, "bbox_regression": box_deltas}
    losses = model.compute_loss(targets_px, head_outputs, [anchors_px] * len(targets), matched_idxs)
    return losses, matched_idxs


# ---------------------------------------------------------------- torchvision equality
@pytest.mark.parametrize("fast_ce", [False, True])
@pytest.mark.parametrize("prior_set, seed", [("voc", 0), ("voc", 1), ("coco", 2), ("coco", 3)])
def test_equals_torchvision_compute_loss(tv_ssd, priors, prior_set, seed, fast_ce):
    default_cxcywh = priors[prior_set]
    A, C, B = default_cxcywh.shape[0], 21, 4
    default_xyxy = cxcywh_to_xyxy(default_cxcywh)
    targets = []
    s = 1000 * seed
    while len(targets) < B:  # one image at a time; skip images with matcher ties
        s += 1
        t = random_targets(1, C, seed=s)
        if no_ties(t, default_xyxy):
            targets += t
    gen = torch.Generator().manual_seed(seed)
    cls_logits = torch.randn(B, A, C, generator=gen) * 2
    box_deltas = torch.randn(B, A, 4, generator=gen)

    out = multibox_loss(cls_logits, box_deltas, default_cxcywh, targets, fast_cross_entropy=fast_ce)
    tv, tv_matched = torchvision_loss(tv_ssd, targets, cls_logits, box_deltas, default_cxcywh)

    assert isinstance(out, MultiboxLoss)
    assert out.total.item() == pytest.approx((tv["classification"] + tv["bbox_regression"]).item(), abs=1e-4)
    assert out.conf.item() == pytest.approx(tv["classification"].item(), abs=1e-4)
    assert out.loc.item() == pytest.approx(tv["bbox_regression"].item(), abs=1e-4)
    for b in range(B):
        assert torch.equal(out.matches[b].gt_index, tv_matched[b]), b
    assert out.matched_idxs is out.matches
    assert out.num_pos == sum(int((m >= 0).sum()) for m in tv_matched)
    assert out.positive.shape == out.hard_negative.shape == out.conf_loss_per_box.shape == (B, A)
    assert not (out.positive & out.hard_negative).any()
    assert not out.conf_loss_per_box.requires_grad


def test_gradients_only_on_positives_and_mined_negatives(priors):
    default_cxcywh = priors["voc"]
    A, C, B = default_cxcywh.shape[0], 21, 2
    targets = random_targets(B, C, seed=5)
    cls_logits = torch.randn(B, A, C, requires_grad=True)
    box_deltas = torch.randn(B, A, 4, requires_grad=True)
    out = multibox_loss(cls_logits, box_deltas, default_cxcywh, targets)
    out.total.backward()
    cls_rows = cls_logits.grad.abs().sum(-1) > 0  # (B, A)
    box_rows = box_deltas.grad.abs().sum(-1) > 0
    assert torch.equal(cls_rows, out.positive | out.hard_negative)
    assert torch.equal(box_rows & ~out.positive, torch.zeros_like(box_rows))
    assert box_rows.sum() > 0


# ---------------------------------------------------------------- hard negative mining
def test_three_to_one_per_image(priors):
    default_cxcywh = priors["voc"]
    A, C, B = default_cxcywh.shape[0], 21, 5
    targets = random_targets(B, C, seed=11, allow_empty=True)
    targets[2] = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    cls_logits = torch.randn(B, A, C)
    out = multibox_loss(cls_logits, torch.zeros(B, A, 4), default_cxcywh, targets)
    pos = out.positive.sum(1)
    assert pos[2] == 0 and out.hard_negative[2].sum() == 0
    assert torch.equal(out.hard_negative.sum(1), torch.minimum(3 * pos, A - pos))
    # the mined ones are the highest-loss negatives of their image
    for b in range(B):
        neg = ~out.positive[b]
        if out.hard_negative[b].any():
            mined_min = out.conf_loss_per_box[b][out.hard_negative[b]].min()
            rest_max = out.conf_loss_per_box[b][neg & ~out.hard_negative[b]].max()
            assert mined_min >= rest_max
    # negative_rank agrees with the mined set
    rank = negative_rank(out.conf_loss_per_box, out.positive)
    assert (rank[out.positive] == -1).all()
    assert torch.equal(out.hard_negative, (rank >= 0) & (rank < out.hard_negative.sum(1, keepdim=True)))
    # other ratios
    out1 = multibox_loss(cls_logits, torch.zeros(B, A, 4), default_cxcywh, targets, neg_pos_ratio=1)
    assert torch.equal(out1.hard_negative.sum(1), pos)


def test_fewer_negatives_than_three_per_positive():
    # 4 default boxes, 2 positives -> only 2 negatives available, both mined.
    default_cxcywh = torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.9, 0.9, 0.2, 0.2], [0.5, 0.5, 0.2, 0.2], [0.5, 0.1, 0.2, 0.2]])
    targets = [{"boxes": cxcywh_to_xyxy(default_cxcywh[:2]), "labels": torch.tensor([1, 2])}]
    out = multibox_loss(torch.zeros(1, 4, 3), torch.zeros(1, 4, 4), default_cxcywh, targets)
    assert out.positive.tolist() == [[True, True, False, False]]
    assert out.hard_negative.tolist() == [[False, False, True, True]]


# ---------------------------------------------------------------- hand-checked tiny case
def test_tiny_case_by_hand():
    # 3 default boxes; one GT equal to default 0, label 1; C = 2.
    default_cxcywh = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.75, 0.25, 0.5, 0.5]])
    targets = [{"boxes": torch.tensor([[0.0, 0.0, 0.5, 0.5]]), "labels": torch.tensor([1])}]
    cls_logits = torch.tensor([[[0.0, 2.0], [1.0, 0.0], [0.0, 3.0]]])
    box_deltas = torch.tensor([[[0.5, 0.0, 2.0, 0.0], [9.0, 9.0, 9.0, 9.0], [9.0, 9.0, 9.0, 9.0]]])
    out = multibox_loss(cls_logits, box_deltas, default_cxcywh, targets)
    assert out.num_pos == 1
    assert out.positive.tolist() == [[True, False, False]]
    assert out.cls_targets.tolist() == [[1, 0, 0]]
    # 3 * 1 negatives wanted, 2 available: both mined.
    assert out.hard_negative.tolist() == [[False, True, True]]
    ce = lambda logits, k: math.log(sum(math.exp(v) for v in logits)) - logits[k]  # noqa: E731
    conf = ce([0.0, 2.0], 1) + ce([1.0, 0.0], 0) + ce([0.0, 3.0], 0)
    # target deltas are 0 (GT == default); Smooth L1: 0.5*0.5^2 + (2 - 0.5) = 1.625
    loc = 0.5 * 0.25 + 1.5
    assert out.conf.item() == pytest.approx(conf, rel=1e-6)
    assert out.loc.item() == pytest.approx(loc, rel=1e-6)
    assert out.total.item() == pytest.approx(conf + loc, rel=1e-6)
    assert out.conf_loss_per_box[0].tolist() == pytest.approx(
        [ce([0.0, 2.0], 1), ce([1.0, 0.0], 0), ce([0.0, 3.0], 0)], rel=1e-6
    )
    # alpha weights the localisation term only
    out2 = multibox_loss(cls_logits, box_deltas, default_cxcywh, targets, alpha=2.0)
    assert out2.total.item() == pytest.approx(conf + 2 * loc, rel=1e-6)


def test_loc_target_uses_box_coding():
    # GT shifted from the default: target t_x = (0.3 - 0.25) / (0.1 * 0.5) = 1.0, others 0.
    default_cxcywh = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.8, 0.8, 0.1, 0.1]])
    targets = [{"boxes": torch.tensor([[0.05, 0.0, 0.55, 0.5]]), "labels": torch.tensor([1])}]
    deltas = torch.zeros(1, 2, 4)
    deltas[0, 0, 0] = 1.0  # exact prediction -> zero loc loss
    out = multibox_loss(torch.zeros(1, 2, 2), deltas, default_cxcywh, targets)
    assert out.positive.tolist() == [[True, False]]
    assert out.loc.item() == pytest.approx(0.0, abs=1e-6)
    out = multibox_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 4), default_cxcywh, targets)
    assert out.loc.item() == pytest.approx(0.5, rel=1e-5)  # Smooth L1 of a 1.0 error


# ---------------------------------------------------------------- N = 0
def test_no_ground_truth_gives_attached_zero(priors):
    default_cxcywh = priors["voc"]
    A, C, B = default_cxcywh.shape[0], 21, 3
    empty = {"boxes": torch.zeros((0, 4)), "labels": torch.zeros((0,), dtype=torch.long)}
    cls_logits = torch.randn(B, A, C, requires_grad=True)
    box_deltas = torch.randn(B, A, 4, requires_grad=True)
    out = multibox_loss(cls_logits, box_deltas, default_cxcywh, [empty] * B)
    assert out.num_pos == 0 and not out.positive.any() and not out.hard_negative.any()
    assert out.total.item() == 0.0 and out.conf.item() == 0.0 and out.loc.item() == 0.0
    assert out.total.requires_grad
    out.total.backward()
    assert cls_logits.grad is not None and box_deltas.grad is not None
    assert torch.isfinite(cls_logits.grad).all() and (cls_logits.grad == 0).all()
    assert (box_deltas.grad == 0).all()
    assert all((m.gt_index == -1).all() for m in out.matches)


# ---------------------------------------------------------------- shared best box in the loss
def test_shared_best_box_keeps_both_gts_in_the_loss(priors):
    default_cxcywh = priors["voc"]
    default_xyxy = cxcywh_to_xyxy(default_cxcywh)
    base = torch.tensor([0.40, 0.40, 0.47, 0.47])
    gt = torch.stack([base, base + torch.tensor([0.0, 0.0, 0.001, 0.002])])
    targets = [{"boxes": gt, "labels": torch.tensor([3, 4])}]
    out = multibox_loss(torch.zeros(1, 8732, 21), torch.zeros(1, 8732, 4), default_cxcywh, targets)
    m = match(default_xyxy, gt)
    assert torch.equal(out.matches[0].gt_index, m.gt_index)
    assert set(out.cls_targets[0][out.positive[0]].tolist()) == {3, 4}


# ---------------------------------------------------------------- validation
def _ok(B=2, A=3, C=4):
    default_cxcywh = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])[:A]
    t = {"boxes": torch.tensor([[0.0, 0.0, 0.5, 0.5]]), "labels": torch.tensor([1])}
    return torch.zeros(B, A, C), torch.zeros(B, A, 4), default_cxcywh, [dict(t) for _ in range(B)]


def test_valid_inputs_pass():
    assert multibox_loss(*_ok()).num_pos == 2


def _target(boxes, labels):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels)}


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda a: {**a, "cls_logits": torch.zeros(2, 3)}, r"cls_logits must have shape \(B, A, C\)"),
        (lambda a: {**a, "cls_logits": torch.zeros(2, 3, 1)}, "C >= 2"),
        (lambda a: {**a, "box_deltas": torch.zeros(2, 3, 5)}, "box_deltas must have shape"),
        (lambda a: {**a, "box_deltas": torch.zeros(1, 3, 4)}, "box_deltas must have shape"),
        (lambda a: {**a, "default_cxcywh": torch.zeros(4, 4)}, "default_cxcywh must have shape"),
        (lambda a: {**a, "targets": a["targets"][:1]}, "targets must be a list of B=2"),
        (lambda a: {**a, "targets": {"boxes": 1}}, "targets must be a list"),
        (lambda a: {**a, "targets": [a["targets"][0], {"boxes": torch.zeros(0, 4)}]}, r"targets\[1\] must be a dict"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0, 1, 1, 0]], [1])]}, r"targets\[1\]\['boxes'\]"),
        (lambda a: {**a, "targets": [a["targets"][0], {"boxes": torch.zeros(1, 4, dtype=torch.long), "labels": torch.tensor([1])}]}, "must be float"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0, 1, 1]], [1, 2])]}, r"targets\[1\]\['labels'\] must have shape"),
        (lambda a: {**a, "targets": [a["targets"][0], {"boxes": torch.tensor([[0.0, 0, 1, 1]]), "labels": torch.tensor([1.0])}]}, "integer"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0, 0.5, 0.5]], [0])]}, r"targets\[1\] box 0: label 0 out of range"),
        (lambda a: {**a, "targets": [_target([[0, 0, 0.5, 0.5], [0, 0, 0.2, 0.2]], [1, 4]), a["targets"][1]]}, r"targets\[0\] box 1: label 4 out of range.*1\.\.3"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0.5, 0, 0.5, 0.5]], [1])]}, r"targets\[1\] box 0: empty box"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0.6, 0.5, 0.5]], [1])]}, r"targets\[1\] box 0: empty box"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0, math.nan, 0.5]], [1])]}, r"targets\[1\] box 0: non-finite"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[0, 0, math.inf, 0.5]], [1])]}, r"targets\[1\] box 0: non-finite"),
        (lambda a: {**a, "targets": [a["targets"][0], _target([[10, 10, 150, 120]], [1])]}, r"targets\[1\] box 0.*not pixels"),
        (lambda a: {**a, "iou_threshold": 0.0}, "iou_threshold"),
        (lambda a: {**a, "neg_pos_ratio": -1}, "neg_pos_ratio"),
        (lambda a: {**a, "alpha": math.nan}, "alpha"),
        (lambda a: {**a, "variances": (0.1,)}, "variances"),
    ],
)
def test_bad_input(change, msg):
    cls_logits, box_deltas, default_cxcywh, targets = _ok()
    args = dict(cls_logits=cls_logits, box_deltas=box_deltas, default_cxcywh=default_cxcywh, targets=targets)
    with pytest.raises(ValueError, match=msg):
        multibox_loss(**change(args))


def test_cross_entropy_matches_functional(priors):
    # conf_loss_per_box is plain softmax cross-entropy against cls_targets.
    default_cxcywh = priors["coco"]
    A, C = default_cxcywh.shape[0], 91
    targets = random_targets(2, C, seed=21)
    cls_logits = torch.randn(2, A, C)
    out = multibox_loss(cls_logits, torch.zeros(2, A, 4), default_cxcywh, targets)
    ref = F.cross_entropy(cls_logits.reshape(-1, C), out.cls_targets.reshape(-1), reduction="none").reshape(2, A)
    assert torch.allclose(out.conf_loss_per_box, ref)


def test_fast_cross_entropy_equals_the_row_layout(priors):
    """The (B, C, A) softmax (training with --amp) against the default (B*A, C) rows: the
    same mined negatives, the same losses and gradients to float32 rounding."""
    default_cxcywh = priors["voc"]
    B, A, C = 4, default_cxcywh.shape[0], 21
    targets = random_targets(B, C, seed=7)
    gen = torch.Generator().manual_seed(7)
    logits0, deltas0 = torch.randn(B, A, C, generator=gen) * 3, torch.randn(B, A, 4, generator=gen)
    results, grads = [], []
    for fast in (False, True):
        logits, deltas = logits0.clone().requires_grad_(), deltas0.clone().requires_grad_()
        out = multibox_loss(logits, deltas, default_cxcywh, targets, fast_cross_entropy=fast)
        out.total.backward()
        results.append(out)
        grads.append(logits.grad)
    slow, fast = results
    assert torch.equal(slow.positive, fast.positive) and torch.equal(slow.hard_negative, fast.hard_negative)
    assert torch.allclose(slow.conf_loss_per_box, fast.conf_loss_per_box, rtol=1e-6, atol=1e-6)
    assert fast.total.item() == pytest.approx(slow.total.item(), rel=1e-6)
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-9)


# ---------------------------------------------------------------- ablation options
def _one_image_batch():
    torch.manual_seed(0)
    cfg = ssd300_voc()
    from ssd.priors import default_boxes
    priors = default_boxes(cfg).cxcywh[:400]
    logits, deltas = torch.randn(1, 400, 21), torch.randn(1, 400, 4)
    targets = [{"boxes": torch.tensor([[0.1, 0.1, 0.3, 0.35]]), "labels": torch.tensor([3])}]
    return logits, deltas, priors, targets


def test_all_negatives_counts_every_negative_and_differs_from_mining():
    logits, deltas, priors, targets = _one_image_batch()
    mined = multibox_loss(logits, deltas, priors, targets)
    every = multibox_loss(logits, deltas, priors, targets, neg_pos_ratio=math.inf)
    assert torch.equal(every.hard_negative, ~every.positive)
    n = max(1, every.num_pos)
    ce = F.cross_entropy(logits[0], every.cls_targets[0], reduction="sum") / n
    assert torch.allclose(every.conf, ce) and every.conf > mined.conf
    one = multibox_loss(logits, deltas, priors, targets, neg_pos_ratio=1.0)
    assert int(one.hard_negative.sum()) == one.num_pos  # 1:1
    with pytest.raises(ValueError, match="neg_pos_ratio"):
        multibox_loss(logits, deltas, priors, targets, neg_pos_ratio=math.nan)


def test_no_forced_match_keeps_only_threshold_positives():
    logits, deltas, priors, targets = _one_image_batch()
    # A box so thin that no default box reaches IoU 0.5: only the forced match makes it positive.
    targets = [{"boxes": torch.tensor([[0.1, 0.1, 0.104, 0.5]]), "labels": torch.tensor([3])}]
    forced = multibox_loss(logits, deltas, priors, targets)
    plain = multibox_loss(logits, deltas, priors, targets, force_best=False)
    assert forced.num_pos == 1 and bool(forced.matches[0].forced.any())
    assert plain.num_pos == 0 and not bool(plain.matches[0].forced.any())
