"""explorer/workspace.py: one owner of what the user looks at, without Streamlit (issue 19)."""
import pytest

from explorer import workspace as wsm
from explorer.workspace import GTState, ImageRef, Thresholds, TunedProposal, Workspace
from ssd.config import ssd300_voc
from ssd.models import default_config

CAT = ImageRef(sample_id="cat_and_dog.png", digest="d-cat")
UPLOAD = ImageRef(upload_name="000001.jpg", digest="d-up")
CAT_ROWS = ({"label": "cat", "x1": 1.0, "y1": 2.0, "x2": 30.0, "y2": 40.0, "difficult": False, "crowd": False},
            {"label": "dog", "x1": 5.0, "y1": 6.0, "x2": 50.0, "y2": 60.0, "difficult": False, "crowd": False})
DOG_ROW = ({"label": "dog", "x1": 47.0, "y1": 239.0, "x2": 195.0, "y2": 371.0, "difficult": False, "crowd": False},)


def test_gt_follows_its_image_and_comes_back():
    """Issue 19 item 1: the upload's file rows never land on the sample; going back restores them."""
    ws = Workspace()
    assert ws.show_image(UPLOAD).rows == ()
    ws.set_gt(DOG_ROW, ("file 000001.xml",))
    assert ws.show_image(CAT, CAT_ROWS).rows == CAT_ROWS  # the sample's own, not the VOC dog
    assert ws.gt.source == ("image",)
    back = ws.show_image(UPLOAD)
    assert back.rows == DOG_ROW and back.source == ("file 000001.xml",)


def test_an_image_seen_first_starts_with_its_own_boxes_and_reset_restores_them():
    ws = Workspace()
    ws.show_image(CAT, CAT_ROWS)
    ws.set_gt(CAT_ROWS[:1], ("image", "typed"))
    ws.reset_gt()
    assert ws.gt.rows == CAT_ROWS and ws.gt.source == ("image",)


def test_gt_memory_is_bounded():
    ws = Workspace()
    for i in range(wsm.MAX_GT_IMAGES + 3):
        ws.show_image(ImageRef(upload_name=f"{i}.png", digest=f"d{i}"))
        ws.set_gt(DOG_ROW)
    assert ws.gt_of("d0") is None and ws.gt_of(f"d{wsm.MAX_GT_IMAGES + 2}").rows == DOG_ROW


def test_show_image_needs_a_digest_and_a_ref_is_one_kind():
    with pytest.raises(ValueError, match="digest"):
        Workspace().show_image(ImageRef(sample_id="x"))
    with pytest.raises(ValueError, match="exactly one"):
        ImageRef(sample_id="x", upload_name="y", digest="d")


def test_one_threshold_set_validated_and_rounded():
    ws = Workspace()
    t = ws.set_thresholds(score_thresh=0.33333333, detections_per_img="50")
    assert t == Thresholds(0.333, 0.45, 50) and ws.thresholds is t
    with pytest.raises(ValueError, match=r"score_thresh: 1.5 is outside \[0.01, 0.95\]"):
        ws.set_thresholds(score_thresh=1.5)
    with pytest.raises(ValueError, match="unknown threshold"):
        ws.set_thresholds(score_threshold=0.2)  # the old name is refused, with the new ones named
    with pytest.raises(ValueError, match="finite"):
        Thresholds(score_thresh=float("nan"))


def test_version_counts_only_real_changes():
    ws = Workspace()
    v = ws.version
    ws.set_thresholds(score_thresh=0.3)  # the same value
    ws.set_model(None)
    assert ws.version == v
    ws.set_thresholds(score_thresh=0.31)
    assert ws.version == v + 1


def test_tuned_boxes_replace_only_on_use_and_can_be_undone():
    ws = Workspace()
    ws.set_boxes(ssd300_voc(), "preset SSD300 (VOC, paper)")
    tuned = default_config("compact256")
    ws.propose(TunedProposal(tuned, "procedural scenes", {"bpr": 0.5}, {"bpr": 0.9}))
    assert ws.boxes.config == ssd300_voc()  # not replaced by tuning alone
    ws.use_tuned()
    assert ws.boxes.config == tuned and ws.boxes.origin == "tuned on procedural scenes" and ws.proposal is None
    ws.undo_boxes()
    assert ws.boxes.config == ssd300_voc() and ws.boxes.origin == "preset SSD300 (VOC, paper)"
    with pytest.raises(ValueError, match="nothing to go back"):
        ws.undo_boxes()
    with pytest.raises(ValueError, match="nothing was tuned"):
        ws.use_tuned()


def test_traced_object_belongs_to_its_image():
    ws = Workspace()
    ws.show_image(CAT, CAT_ROWS)
    ws.trace("gt:1")
    assert ws.traced_key() == "gt:1"
    ws.show_image(UPLOAD)
    assert ws.traced_key() is None
    ws.show_image(CAT, CAT_ROWS)
    assert ws.traced_key() == "gt:1"


def test_a_linked_token_is_never_written_to():
    """Issue 20 item 8: a session arriving by link makes its own token on its first change."""
    ws = Workspace()
    ws.adopt_token("A" * 32)
    made = iter(["B" * 32, "C" * 32])
    assert ws.token_to_write(lambda: next(made)) == "B" * 32
    assert ws.token_to_write(lambda: next(made)) == "B" * 32  # its own now: kept


def test_query_round_trip():
    ws = Workspace()
    ws.choose_sample(CAT.sample_id)
    ws.show_image(CAT, CAT_ROWS)
    ws.set_model("shipped:compact256")
    ws.set_thresholds(score_thresh=0.33, nms_thresh=0.5, detections_per_img=100)
    ws.set_matching(iou_thresh=0.6)
    cfg = default_config("compact256")
    ws.set_boxes(cfg, "edited")
    ws.pick_cell(1, 2, 3)
    ws.trace("det:17:2")
    q = wsm.to_query(ws, default_model="other", default_sample="other.png")
    assert q["score_thresh"] == "0.33" and q["sample"] == "cat_and_dog.png" and q["cell"] == "1,2,3"
    back = Workspace()
    assert wsm.apply_query(back, q, num_classes=cfg.num_classes) == []
    back.show_image(CAT, CAT_ROWS)
    wsm.claim_trace(back)
    assert back.thresholds == ws.thresholds and back.matching == ws.matching and back.model_id == ws.model_id
    assert back.cell == ws.cell and back.traced_key() == "det:17:2" and back.boxes.origin == "edited"
    assert back.sample_id == CAT.sample_id
    assert wsm.decode_boxes(q["boxes"], cfg.num_classes, cfg.name) == cfg


def test_defaults_leave_the_url_bare():
    ws = Workspace()
    ws.choose_sample(CAT.sample_id)
    ws.show_image(CAT, CAT_ROWS)
    assert wsm.to_query(ws, default_sample="cat_and_dog.png") == {}


def test_bad_link_values_are_skipped_with_a_note():
    ws = Workspace()
    notes = wsm.apply_query(ws, {"score_thresh": "7", "nms_thresh": "abc", "cell": "1,2", "boxes": "1:2",
                                 "detections_per_img": "20", "unknown": "x"})
    assert ws.thresholds == Thresholds(detections_per_img=20)
    assert len(notes) == 4 and any("score_thresh" in n and "outside" in n for n in notes)


def test_boxes_code_keeps_thirds_and_flags():
    cfg = ssd300_voc()
    text = wsm.encode_boxes(cfg)
    assert "0.333" in text and text.endswith("e1c1")
    assert wsm.decode_boxes(text, cfg.num_classes, cfg.name) == cfg
    with pytest.raises(ValueError, match="flags"):
        wsm.decode_boxes(text[:-4] + "x1c1")


def test_a_view_that_needs_nothing_kept_leaves_the_token_out_of_the_url():
    ws = Workspace()
    ws.choose_sample(CAT.sample_id)
    ws.show_image(CAT, CAT_ROWS)
    ws.token_to_write(lambda: "T" * 32)
    assert wsm.to_query(ws)["inputs"] == "T" * 32
    ws.token_in_use = False
    assert "inputs" not in wsm.to_query(ws)
    assert ws.token_to_write(lambda: "U" * 32) == "T" * 32 and wsm.to_query(ws)["inputs"] == "T" * 32
