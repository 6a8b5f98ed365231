"""Tests for ssd/matching.py: hand-checked cases, the shared-best-box rule, and equality
with torchvision's SSDMatcher wherever no two GTs share a best default box."""
import math

import pytest
import torch
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou

from ssd.config import ssd300_voc
from ssd.matching import Match, match, match_batch, pad_boxes
from ssd.priors import default_boxes




@pytest.fixture(scope="module")
def ssd300_xyxy():
    return default_boxes(ssd300_voc()).xyxy


def random_gt(g, seed, min_wh=0.03, max_wh=0.6):
    gen = torch.Generator().manual_seed(seed)
    c = torch.rand(g, 2, generator=gen) * 0.9 + 0.05
    wh = torch.rand(g, 2, generator=gen) * (max_wh - min_wh) + min_wh
    return torch.cat([c - wh / 2, c + wh / 2], dim=1).clamp(0, 1)


def shares_best_box(gt_xyxy, default_xyxy):
    best = box_iou(gt_xyxy, default_xyxy).argmax(dim=1)
    return best.unique().numel() != best.numel()


# ---------------------------------------------------------------- hand-checked cases
def test_single_gt_hand_checked():
    # D0 equals the GT (IoU 1), D1 covers half of it (IoU 0.5), D2 is far away.
    defaults = torch.tensor([[0.0, 0.0, 0.2, 0.2], [0.0, 0.0, 0.2, 0.1], [0.6, 0.6, 0.8, 0.8]])
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2]])
    m = match(defaults, gt, iou_threshold=0.5)
    assert isinstance(m, Match)
    assert m.gt_index.tolist() == [0, 0, -1]  # IoU 0.5 >= 0.5 matches, as torchvision
    assert torch.allclose(m.iou, torch.tensor([1.0, 0.5, 0.0]))
    assert m.forced.tolist() == [False, False, False]
    assert m.num_pos == 2 and m.positive.tolist() == [True, True, False]
    # a stricter threshold drops D1
    assert match(defaults, gt, iou_threshold=0.6).gt_index.tolist() == [0, -1, -1]


def test_best_box_below_threshold_is_forced():
    # The GT overlaps D0 with IoU 0.25 only: step 1 still matches it, and says so.
    defaults = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.5, 0.5, 1.0, 1.0]])
    gt = torch.tensor([[0.0, 0.0, 0.2, 0.2]])  # area 0.04 inside D0 (area 0.16)
    m = match(defaults, gt)
    assert m.gt_index.tolist() == [0, -1]
    assert m.iou[0].item() == pytest.approx(0.25)
    assert m.forced.tolist() == [True, False]


def test_forced_overrides_a_better_gt():
    # D1 has IoU 0.8 with GT0 but is GT1's best box; GT0's best is D0 (IoU 1).
    # Step 1 gives D1 to GT1 (forced, since step 2 alone would give it GT0).
    defaults = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.8]])
    gt = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.2, 1.0, 0.8]])
    iou = box_iou(gt, defaults)
    assert torch.allclose(iou, torch.tensor([[1.0, 0.8], [0.6, 0.75]]), atol=1e-6)
    m = match(defaults, gt)
    assert m.gt_index.tolist() == [0, 1]
    assert m.forced.tolist() == [False, True]
    assert m.iou.tolist() == pytest.approx([1.0, 0.8], abs=1e-6)  # best IoU over GTs, whatever the match
    assert torch.equal(m.gt_index, SSDMatcher(0.5)(iou))


def test_empty_gt_is_all_background(ssd300_xyxy):
    m = match(ssd300_xyxy, torch.zeros((0, 4)))
    assert m.gt_index.shape == (8732,) and m.gt_index.dtype == torch.long
    assert (m.gt_index == -1).all() and (m.iou == 0).all() and not m.forced.any()


def test_gt_overlapping_no_default_gets_no_match():
    defaults = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.2, 0.2, 0.3, 0.3]])
    m = match(defaults, torch.tensor([[0.5, 0.5, 0.9, 0.9]]))
    assert m.gt_index.tolist() == [-1, -1] and not m.forced.any()


# ---------------------------------------------------------------- shared best box (tie rule)
def _tie_case():
    # D0 is the best box of both GTs: GT0 = D0 (IoU 1), GT1 a bit taller (IoU 1/1.2).
    # D1 is GT1's next best (IoU 0.4, below threshold); D2 is far away.
    defaults = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 0.1, 0.3], [0.8, 0.8, 0.9, 0.9]])
    gt = torch.tensor([[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 0.1, 0.12]])
    return defaults, gt


def test_shared_best_box_keeps_both_gts():
    defaults, gt = _tie_case()
    assert shares_best_box(gt, defaults)
    m = match(defaults, gt)
    # GT0 (best IoU 1.0) resolves first and keeps D0; GT1 takes its best free box D1.
    assert m.gt_index.tolist() == [0, 1, -1]
    assert m.forced.tolist() == [False, True, False]
    assert m.iou[1].item() == pytest.approx(0.4, abs=1e-6)
    # torchvision's SSDMatcher: the later GT overwrites D0, GT0 is left with no box at all.
    tv = SSDMatcher(0.5)(box_iou(gt, defaults))
    assert tv.tolist() == [1, -1, -1] and 0 not in tv.tolist()


def test_shared_best_box_resolved_by_iou_not_by_index():
    defaults, gt = _tie_case()
    m = match(defaults, gt.flip(0))  # now the IoU-1 GT has index 1
    assert m.gt_index.tolist() == [1, 0, -1]
    assert m.forced.tolist() == [False, True, False]


def test_every_gt_keeps_a_match_with_many_gts(ssd300_xyxy):
    # Many small GTs stacked on the same spot all want the same default box.
    base = torch.tensor([0.40, 0.40, 0.47, 0.47])
    gt = torch.stack([base + torch.tensor([0.0, 0.0, 0.001 * k, 0.001 * k]) for k in range(6)])
    assert shares_best_box(gt, ssd300_xyxy)
    m = match(ssd300_xyxy, gt)
    assert set(m.gt_index[m.gt_index >= 0].tolist()) == set(range(6))
    tv = SSDMatcher(0.5)(box_iou(gt, ssd300_xyxy))
    assert set(tv[tv >= 0].tolist()) != set(range(6))  # torchvision drops some of them


# ---------------------------------------------------------------- equality with torchvision
@pytest.mark.parametrize("num_gt", [1, 3, 6, 20, 50])
def test_equals_torchvision_ssd_matcher(ssd300_xyxy, num_gt):
    compared = 0
    max_wh = 0.6 if num_gt < 20 else 0.25  # crowds of big boxes nearly always share a best box
    for seed in range(12):
        gt = random_gt(num_gt, seed=1000 * num_gt + seed, max_wh=max_wh)
        if shares_best_box(gt, ssd300_xyxy):
            continue  # the tie case is where we deliberately differ (tests above)
        for thr in (0.5, 0.3):
            m = match(ssd300_xyxy, gt, iou_threshold=thr)
            tv = SSDMatcher(thr)(box_iou(gt, ssd300_xyxy))
            assert torch.equal(m.gt_index, tv), (num_gt, seed, thr)
            assert torch.allclose(m.iou, box_iou(gt, ssd300_xyxy).max(0).values)
            assert (m.gt_index[m.forced] >= 0).all()
            # forced boxes are exactly the step-1 boxes that step 2 would not have matched
            assert m.forced.sum() <= num_gt
        compared += 1
        if compared == 3:
            break
    assert compared == 3


def test_equals_torchvision_on_random_defaults():
    for seed in range(5):
        defaults = random_gt(300, seed=seed, min_wh=0.01, max_wh=0.4)
        gt = random_gt(8, seed=100 + seed)
        if shares_best_box(gt, defaults):
            continue
        m = match(defaults, gt)
        assert torch.equal(m.gt_index, SSDMatcher(0.5)(box_iou(gt, defaults)))


def test_pixel_frame_gives_the_same_match(ssd300_xyxy):
    gt = random_gt(4, seed=7)
    a, b = match(ssd300_xyxy, gt), match(ssd300_xyxy * 300, gt * 300)
    assert torch.equal(a.gt_index, b.gt_index) and torch.equal(a.forced, b.forced)


# ---------------------------------------------------------------- batched helpers
def test_match_batch_iou_is_box_iou_per_image_bit_for_bit(ssd300_xyxy):
    gts = [random_gt(5, seed=0), random_gt(2, seed=1), torch.zeros((0, 4))]
    padded, valid = pad_boxes(gts)  # (3, 5, 4)
    iou = match_batch(ssd300_xyxy, padded, valid).iou  # (B, A): each default box's IoU with its best GT
    for b, gt in enumerate(gts):
        best = box_iou(gt, ssd300_xyxy).max(0).values if len(gt) else torch.zeros(8732)
        assert torch.equal(iou[b], best)  # torchvision's own numbers, bit for bit; 0: no GT


def test_match_batch_equals_per_image_match(ssd300_xyxy):
    defaults, tie_gt = _tie_case()
    per_image = [random_gt(3, seed=1), torch.zeros((0, 4)), random_gt(6, seed=2), random_gt(1, seed=3)]
    # add an image with a shared best box so the tie path runs inside a batch
    shift = torch.tensor([0.4, 0.4, 0.4, 0.4])
    per_image.append(torch.stack([shift + torch.tensor([0, 0, 0.07, 0.07]), shift + torch.tensor([0, 0, 0.071, 0.072])]))
    assert shares_best_box(per_image[-1], ssd300_xyxy)
    padded, valid = pad_boxes(per_image)
    assert padded.shape == (5, 6, 4) and valid.sum(1).tolist() == [3, 0, 6, 1, 2]
    bm = match_batch(ssd300_xyxy, padded, valid)
    assert bm.gt_index.shape == (5, 8732) and len(bm.to_list()) == 5
    for b, gt in enumerate(per_image):
        m = match(ssd300_xyxy, gt)
        assert torch.equal(bm.gt_index[b], m.gt_index), b
        assert torch.equal(bm.forced[b], m.forced), b
        assert torch.allclose(bm.iou[b], m.iou, atol=1e-6), b


def test_pad_boxes_all_empty():
    padded, valid = pad_boxes([torch.zeros((0, 4)), torch.zeros((0, 4))])
    assert padded.shape == (2, 0, 4) and valid.shape == (2, 0)
    with pytest.raises(ValueError, match="at least one image"):
        pad_boxes([])


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize("thr", [0.0, -0.1, 1.5, math.nan, math.inf])
def test_bad_threshold(thr):
    with pytest.raises(ValueError, match="iou_threshold"):
        match(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, 0.5, 0.5]]), iou_threshold=thr)


def test_threshold_one_is_allowed():
    m = match(torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]), torch.tensor([[0.0, 0.0, 1.0, 1.0]]), 1.0)
    assert m.gt_index.tolist() == [0, -1]


@pytest.mark.parametrize(
    "defaults, gt, msg",
    [
        (torch.zeros((5, 3)), torch.zeros((0, 4)), "default_xyxy must have shape"),
        (torch.zeros(4), torch.zeros((0, 4)), "default_xyxy must have shape"),
        ([[0, 0, 1, 1]], torch.zeros((0, 4)), "default_xyxy must have shape"),
        (torch.zeros((0, 4)), torch.zeros((0, 4)), "default_xyxy is empty"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.zeros((2, 5)), r"gt_xyxy must have shape \(N, 4\)"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.zeros(4), r"gt_xyxy must have shape \(N, 4\)"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0, 0, 1, 1]]), "float"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.0, 0.0, math.nan, 1.0]]), "non-finite"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.5, 0.0, 0.4, 1.0]]), r"gt_xyxy\[0\].*empty"),
        (torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([[0.1, 0.1, 0.2, 0.2], [0.0, 0.5, 1.0, 0.5]]), r"gt_xyxy\[1\]"),
    ],
)
def test_bad_boxes(defaults, gt, msg):
    with pytest.raises(ValueError, match=msg):
        match(defaults, gt)


def test_match_batch_without_forced_best_is_the_threshold_alone():
    default_xyxy = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    gt = torch.tensor([[[0.0, 0.0, 0.45, 0.45], [0.6, 0.0, 0.7, 0.1]]])  # GT 1 overlaps nothing >= 0.5
    valid = torch.ones(1, 2, dtype=torch.bool)
    with_forced = match_batch(default_xyxy, gt, valid)
    plain = match_batch(default_xyxy, gt, valid, force_best=False)
    assert plain.gt_index.tolist() == [[0, -1, -1]] and not bool(plain.forced.any())
    assert torch.equal(plain.iou, with_forced.iou)
