"""explorer/evaluation/kept.py: the kept network outputs give the same detections as the
full outputs for every threshold the tuner offers; files round-trip; junk is refused."""
import pytest
import torch

from explorer.evaluation.kept import KEPT_FLOOR, KeptCollector, kept_from_file, kept_to_bytes
from ssd.data.procedural import ProceduralDataset
from ssd.data.transforms import eval_transform
from ssd.evaluation.evaluate import forward_batch
from ssd.postprocess import PostprocessConfig, postprocess
from ssd.training import checkpoint
from tests.eval_helpers import SHIPPED


@pytest.fixture(scope="module")
def outputs():
    model, _ = checkpoint.load(SHIPPED)
    ds = ProceduralDataset(4, seed=1000, size=256, transform=eval_transform(256))
    x = torch.stack([ds[i][0] for i in range(4)])
    gts = [{"boxes_xyxy_px_in": ds[i][1]["boxes"] * 256, "labels": ds[i][1]["labels"]} for i in range(4)]
    scores, boxes = forward_batch(model, x)
    col = KeptCollector()
    col.add_batch(scores[:3], boxes[:3], gts[:3])  # two batches, as collect calls it
    col.add_batch(scores[3:], boxes[3:], gts[3:])
    return scores, boxes, gts, col.result()


@pytest.mark.parametrize("score,iou,detections_per_img,cand", [(KEPT_FLOOR, 0.45, 200, 400), (0.3, 0.45, 200, 400),
                                                  (0.05, 0.7, 10, 50), (0.9, 0.2, 1, 1)])
def test_dense_equals_full_outputs(outputs, score, iou, detections_per_img, cand):
    scores, boxes, _, kept = outputs
    cfg = PostprocessConfig(score_thresh=score, nms_thresh=iou, detections_per_img=detections_per_img, topk_candidates=cand)
    for i in range(4):
        full = postprocess(scores[i], boxes[i], cfg).detections()
        s, b = kept.dense_image(i)
        from_kept = postprocess(s, b, cfg).detections()
        for k in full:
            assert torch.equal(full[k], from_kept[k]), (i, k)


def test_kept_rows_are_few_and_gts_round_trip(outputs):
    scores, _, gts, kept = outputs
    assert kept.num_images == 4 and kept.num_defaults == scores.shape[1]
    assert len(kept.default_index) < 0.1 * 4 * scores.shape[1]  # sparse: a few % of the default boxes
    for i in range(4):
        assert torch.equal(kept.gt(i)["labels"], gts[i]["labels"])
        assert torch.allclose(kept.gt(i)["boxes_xyxy_px_in"], gts[i]["boxes_xyxy_px_in"])


def test_file_round_trip_and_truncated_file(outputs, tmp_path):
    kept = outputs[3]
    data = kept_to_bytes(kept)
    (tmp_path / "raw.pt").write_bytes(data)
    back = kept_from_file(tmp_path / "raw.pt")
    assert torch.equal(back.scores, kept.scores) and torch.equal(back.row_offsets, kept.row_offsets)
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cut.pt: not readable"):
        kept_from_file(tmp_path / "cut.pt")
