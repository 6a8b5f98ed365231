"""The live Matching page's per-box data (`pages/live/matching*.js`): what the page needs,
once per model, image and ground truth, to compute every number and table of the page
(`explorer.views.matching.matching_view` and `loss_view`) for any IoU threshold and
neg:pos ratio without asking Python.

A default box a can become a positive of two GTs only: its best GT (matching step 2,
the argmax of its IoU column, as `ssd.matching` takes it) and, through step 1, a GT whose
best box it is. Step 1 does not depend on the threshold, so the pairs of the second kind
are known in advance (`forced_pairs`: the boxes that step 1 gives a GT other than their
best one). So the positives' losses against their matched GT are (A,) arrays plus that
short list, and the negatives' loss is the background loss (`background_conf_loss`).

Letters: A = default boxes, G = ground-truth boxes, C = classes (0 = background).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_iou

from explorer.views.live_data import background_conf_loss, f32_b64
from ssd.boxes import encode
from ssd.matching import match
from ssd.priors import DefaultBoxes

# The fields of `matching_box_data` that stay the same for one model, image and GT (sent once).
HELD_FIELDS = ("gt_norm", "conf_loss", "p_background", "p_top_class", "top_class", "pos_conf_loss",
               "pos_loc_loss", "forced_pairs")


def _pair_losses(logits: Tensor, deltas: Tensor, default_cxcywh: Tensor, gt_norm: Tensor, labels: Tensor,
                 variances) -> tuple[Tensor, Tensor]:
    """Each box's terms of the loss as a positive of the paired GT: softmax cross-entropy
    against its label (`ssd.loss`'s per-box L_conf) and Smooth L1 (beta 1) of its offsets
    against the encoded GT, summed over the 4 offsets (its L_loc).
    (N, C), (N, 4), (N, 4) cxcywh, (N, 4) xyxy, (N,) -> (N,), (N,)."""
    conf = F.cross_entropy(logits, labels, reduction="none")
    target = encode(gt_norm, default_cxcywh, variances)  # (N, 4)
    loc = F.smooth_l1_loss(deltas, target.to(deltas.dtype), reduction="none", beta=1.0).sum(dim=1)
    return conf, loc


def matching_box_data(cls_logits: Tensor, bbox_regression: Tensor, db: DefaultBoxes, gt_norm: Tensor,
                      gt_labels: Tensor, variances=(0.1, 0.2)) -> dict:
    """The per-box arrays of the live Matching page (JSON-safe; float arrays as `f32_b64`).

    Args:
        cls_logits: (A, C) the model's class logits on the image; bbox_regression: (A, 4).
        db: the model's default boxes; gt_norm: (G, 4) xyxy normalised (G >= 1); gt_labels: (G,).
    Returns:
        conf_loss (A,): background loss (the mining key); p_background, p_top_class (A,) and
        top_class (A,) int: softmax of background, of the most likely object class and that
        class (the negatives' table); pos_conf_loss, pos_loc_loss (A,): the box's L_conf and
        L_loc as a positive of its best GT; forced_pairs: [[a, g, conf, loc], ...] for the
        boxes step 1 gives a GT g other than their best.
    """
    logits = cls_logits.reshape(-1, cls_logits.shape[-1]).float()  # (A, C)
    deltas = bbox_regression.reshape(-1, 4).float()  # (A, 4)
    gt = gt_norm.reshape(-1, 4).float()
    labels = gt_labels.reshape(-1).long()
    with torch.no_grad():
        best_gt = box_iou(gt, db.xyxy).max(dim=0).indices  # (G, A) -> (A,): step 2's GT
        pos_conf, pos_loc = _pair_losses(logits, deltas, db.cxcywh, gt[best_gt], labels[best_gt], variances)
        # Step 1's boxes whose GT is not their best: forced at every threshold (1.0 included).
        m = match(db.xyxy, gt, 1.0)
        other = (m.forced & (m.gt_index != best_gt)).nonzero().flatten()  # (F,)
        g_other = m.gt_index[other]
        f_conf, f_loc = _pair_losses(logits[other], deltas[other], db.cxcywh[other], gt[g_other],
                                     labels[g_other], variances)
        probs = logits.softmax(-1)  # (A, C)
        top = probs[:, 1:].argmax(dim=1) + 1 if probs.shape[1] > 1 else torch.zeros(len(probs), dtype=torch.long)
    return {"conf_loss": f32_b64(background_conf_loss(logits, db.cxcywh)), "p_background": f32_b64(probs[:, 0]),
            "p_top_class": f32_b64(probs.gather(1, top[:, None])[:, 0]), "top_class": top.tolist(),
            "pos_conf_loss": f32_b64(pos_conf), "pos_loc_loss": f32_b64(pos_loc),
            "forced_pairs": [[int(a), int(g), float(c), float(lo)]
                             for a, g, c, lo in zip(other.tolist(), g_other.tolist(), f_conf.tolist(), f_loc.tolist())]}
