"""ssd.nms.nms_trace: same kept boxes and order as torchvision's batched_nms, plus a
correct who-suppressed-whom trace."""
from __future__ import annotations

import pytest
import torch
from torchvision.ops import batched_nms, box_iou

from ssd.nms import greedy_nms_trace, nms_trace


def _random_case(n, num_classes, seed, quantise=None, grid=False):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * 200
    wh = torch.rand(n, 2, generator=g) * 60 + 2
    if grid:  # few distinct positions -> many identical boxes
        xy = (xy / 50).floor() * 50
        wh = (wh / 30).floor() * 30 + 10
    boxes = torch.cat([xy, xy + wh], dim=1)
    scores = torch.rand(n, generator=g)
    if quantise:
        scores = (scores * quantise).floor() / quantise  # exact ties
    labels = torch.randint(0, num_classes, (n,), generator=g)
    return boxes, scores, labels


def _check_trace(boxes, scores, labels, thr, tr):
    n = boxes.shape[0]
    kept = torch.zeros(n, dtype=torch.bool)
    kept[tr.keep] = True
    assert torch.equal(kept, tr.kept)
    assert (tr.suppressed_by[kept] == -1).all()
    removed = torch.where(~kept)[0]
    assert (tr.suppressed_by[removed] >= 0).all()
    by = tr.suppressed_by[removed]
    # The suppressor is kept, of the same class, ranked before (score >= ), overlapping > thr.
    assert kept[by].all()
    assert torch.equal(labels[by], labels[removed])
    assert (scores[by] >= scores[removed]).all()
    iou = box_iou(boxes, boxes)
    torch.testing.assert_close(tr.suppress_iou[removed], iou[by, removed], atol=1e-5, rtol=0)
    assert (tr.suppress_iou[removed] > thr - 1e-6).all()
    # Greedy: it is the FIRST kept box (in keep order) of its class that overlaps it > thr.
    pos = torch.empty(n, dtype=torch.long)
    pos[tr.keep] = torch.arange(len(tr.keep))
    for j in removed.tolist()[:200]:
        cands = tr.keep[(labels[tr.keep] == labels[j]) & (iou[tr.keep, j] > thr)]
        assert pos[tr.suppressed_by[j]] == pos[cands].min()


@pytest.mark.parametrize(
    "n,num_classes,seed,quantise,grid",
    [
        (50, 1, 0, None, False),
        (300, 3, 1, 10, False),  # exact score ties, coordinate-trick path (numel <= 4000)
        (300, 20, 2, 4, True),  # identical boxes + ties
        (1500, 80, 3, None, False),  # many classes, torchvision's per-class ("vanilla") path
        (1500, 5, 4, 20, True),  # vanilla path with ties and identical boxes
    ],
)
@pytest.mark.parametrize("thr", [0.3, 0.5])
def test_matches_batched_nms(n, num_classes, seed, quantise, grid, thr):
    boxes, scores, labels = _random_case(n, num_classes, seed, quantise, grid)
    expected = batched_nms(boxes, scores, labels, thr)
    greedy = greedy_nms_trace(boxes, scores, labels, thr)  # our own NMS: same kept boxes
    assert torch.equal(greedy.keep, expected)
    _check_trace(boxes, scores, labels, thr, greedy)
    fast = nms_trace(boxes, scores, labels, thr)
    assert torch.equal(fast.keep, expected)
    _check_trace(boxes, scores, labels, thr, fast)
    # Both say the same thing about who removed whom.
    assert torch.equal(fast.suppressed_by, greedy.suppressed_by)
    torch.testing.assert_close(fast.suppress_iou, greedy.suppress_iou)


@pytest.mark.parametrize("fn", [nms_trace, greedy_nms_trace])
def test_hand_checked(fn):
    boxes = torch.tensor(
        [
            [0.0, 0.0, 10.0, 10.0],  # 0: best of class 1
            [1.0, 0.0, 11.0, 10.0],  # 1: IoU(0,1) = 90/110 = 0.818 -> removed by 0
            [20.0, 20.0, 30.0, 30.0],  # 2: far away -> kept
            [0.0, 0.0, 10.0, 10.0],  # 3: class 2, same box as 0 -> kept (other class)
            [5.0, 0.0, 15.0, 10.0],  # 4: IoU(0,4) = 50/150 = 1/3 <= 0.5; IoU(1,4)=60/140 -> kept
        ]
    )
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6, 0.5])
    labels = torch.tensor([1, 1, 1, 2, 1])
    tr = fn(boxes, scores, labels, 0.5)
    assert tr.keep.tolist() == [0, 2, 3, 4]
    assert tr.suppressed_by.tolist() == [-1, 0, -1, -1, -1]
    assert tr.suppress_iou[1].item() == pytest.approx(90 / 110)
    tr = fn(boxes, scores, labels, 0.3)  # now box 4 goes too (1/3 > 0.3), by box 0
    assert tr.keep.tolist() == [0, 2, 3]
    assert tr.suppressed_by.tolist() == [-1, 0, -1, -1, 0]
    assert tr.suppress_iou[4].item() == pytest.approx(1 / 3)


@pytest.mark.parametrize("fn", [nms_trace, greedy_nms_trace])
def test_chain_is_greedy_not_transitive(fn):
    # a removes b, b would remove c, but b is gone, so c stays.
    boxes = torch.tensor([[0.0, 0, 10, 10], [4.0, 0, 14, 10], [8.0, 0, 18, 10]])
    tr = fn(boxes, torch.tensor([0.9, 0.8, 0.7]), torch.zeros(3, dtype=torch.long), 0.3)
    assert tr.keep.tolist() == [0, 2]
    assert tr.suppressed_by.tolist() == [-1, 0, -1]


@pytest.mark.parametrize("fn", [nms_trace, greedy_nms_trace])
def test_empty_and_bad_input(fn):
    tr = fn(torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long), 0.5)
    assert tr.keep.numel() == 0 and len(tr) == 0
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        fn(torch.zeros(3, 5), torch.zeros(3), torch.zeros(3), 0.5)
    with pytest.raises(ValueError, match="must both be"):
        fn(torch.zeros(3, 4), torch.zeros(2), torch.zeros(3), 0.5)


def test_trace_is_lazy_and_movable():
    boxes, scores, labels = _random_case(200, 3, 7)
    tr = nms_trace(boxes, scores, labels, 0.4)
    moved = tr.to("cpu")  # before the trace is computed
    ref = greedy_nms_trace(boxes, scores, labels, 0.4)
    assert torch.equal(moved.suppressed_by, ref.suppressed_by)
    assert torch.equal(tr.suppressed_by, ref.suppressed_by)
    assert torch.equal(tr.to("cpu").suppressed_by, ref.suppressed_by)  # after
    from ssd.nms import NMSTrace

    with pytest.raises(ValueError, match="inputs"):
        NMSTrace(tr.keep, tr.kept, 0.4)
