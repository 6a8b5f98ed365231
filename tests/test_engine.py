"""Tests for ssd/training/engine.py: the learning-rate schedules, the resumable sampler, one
training step (equal to the loss computed by hand; no update on a non-finite loss),
`train_one_epoch`'s ends, and the training state a checkpoint keeps."""
import pytest
import torch

from ssd import models
from ssd.data import procedural
from ssd.data.transforms import train_transform
from ssd.loss import multibox_loss
from ssd.priors import default_boxes
from ssd.training.engine import (
    LossWindow,
    Progress,
    ResumableSampler,
    Trainer,
    autocast_dtype,
    build_loader,
    build_optimizer,
    build_scheduler,
    lr_lambda,
    restore_training_state,
    save_training_state,
)

CPU = torch.device("cpu")


def test_lr_schedules():
    f = lr_lambda("cosine", total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    s = lr_lambda("step", total_steps=90, warmup_steps=0)
    assert (s(0), s(59), s(60), s(80)) == pytest.approx((1.0, 1.0, 0.1, 0.01))
    assert lr_lambda("constant", 10, 0)(7) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_lambda("linear", 10, 0)


def test_optimizer_choices():
    p = [torch.nn.Parameter(torch.zeros(2))]
    sgd = build_optimizer("sgd", p, 0.1, 5e-4)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9  # Sec. 3
    assert isinstance(build_optimizer("adamw", p, 0.1, 0.0), torch.optim.AdamW)
    with pytest.raises(ValueError, match="--optimizer must be one of"):
        build_optimizer("lion", p, 0.1, 0.0)
    sched = build_scheduler(sgd, "cosine", total_steps=10, warmup_steps=5)
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.1 * 1 / 5)  # warmup's first step
    sgd.step()
    sched.step()
    assert sgd.param_groups[0]["lr"] == pytest.approx(0.1 * 2 / 5)


def test_resumable_sampler_skips_and_shards():
    ds = list(range(10))
    a = ResumableSampler(ds, 1, 0, seed=3)
    a.set_epoch(2)
    full = list(a)
    a.set_epoch(2, skip=4)
    assert list(a) == full[4:] and len(a) == 6
    r0, r1 = ResumableSampler(ds, 2, 0, 3), ResumableSampler(ds, 2, 1, 3)
    r0.set_epoch(0), r1.set_epoch(0)
    assert sorted(list(r0) + list(r1)) == list(range(10))


def _trainer(lr=1e-3, seed=0, amp="none"):
    torch.manual_seed(seed)
    model = models.build("compact256", num_classes=len(procedural.CLASSES))
    model.class_names = list(procedural.CLASSES)
    opt = build_optimizer("adamw", model.parameters(), lr, 5e-4)
    return Trainer(net=model, model=model, priors_cxcywh=default_boxes(model.cfg).cxcywh, optimizer=opt,
                   scheduler=build_scheduler(opt, "constant", 10, 0), device=CPU,
                   memory_format=torch.contiguous_format, clip_grad=10.0, world=1, amp=amp)


@pytest.fixture(scope="module")
def data():
    ds = procedural.ProceduralDataset(8, 0, 256, train_transform(256, "none"), cache=True)
    sampler = ResumableSampler(ds, 1, 0, seed=0)
    sampler.set_epoch(0)
    images, targets = next(iter(build_loader(ds, sampler, 4, 0, CPU)))
    return ds, sampler, images, targets


def test_step_is_the_eq1_loss_then_one_update(data):
    _, _, images, targets = data
    t = _trainer()
    with torch.no_grad():
        out = t.model(images)
        ref = multibox_loss(out.cls_logits_flat(), out.bbox_regression_flat(), t.priors_cxcywh, targets)
    before = [p.detach().clone() for p in t.model.parameters()]
    res = t.step(images, targets, stop_asked=False)
    assert torch.allclose(res.losses, torch.stack([ref.total, ref.conf, ref.loc]), rtol=1e-5)
    assert not res.non_finite and not res.stop and res.local_total is None
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.scheduler.last_epoch == 1
    assert t.step(images, targets, stop_asked=True).stop  # the stop request travels with the step


def test_non_finite_loss_makes_no_update(data):
    _, _, images, targets = data
    t = _trainer()
    before = [p.detach().clone() for p in t.model.parameters()]
    res = t.step(torch.full_like(images, float("nan")), targets, stop_asked=False)
    assert res.non_finite and res.local_total != res.local_total  # NaN
    assert all(torch.equal(a, b) for a, b in zip(before, t.model.parameters()))
    assert t.scheduler.last_epoch == 0


def test_train_one_epoch_ends(data):
    ds, sampler, _, _ = data
    seen = []
    t, progress = _trainer(), Progress()
    loader = build_loader(ds, sampler, 4, 0, CPU)
    end = t.train_one_epoch(loader, progress, 100, lambda: False, lambda r, n: seen.append((progress.step, n)))
    assert (end.reason, progress.step, seen) == ("epoch", 2, [(1, 4), (2, 4)])
    end = t.train_one_epoch(loader, progress, 3, lambda: False, lambda r, n: None)
    assert (end.reason, progress.step) == ("done", 3)
    end = t.train_one_epoch(loader, progress, 100, lambda: True, lambda r, n: None)
    assert (end.reason, progress.step) == ("stopped", 4)  # the step in flight finishes first


def test_training_state_round_trip(data, tmp_path):
    _, _, images, targets = data
    a = _trainer(seed=0)
    a.step(images, targets, False)
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    save_training_state(tmp_path / "last.pt", a.model, a.model.class_names, {"seed": 0}, a.optimizer,
                        a.scheduler, Progress(step=7, best_map=0.25, train_seconds=5.0), epoch=2)
    b = _trainer(seed=1)  # other weights
    torch.manual_seed(999)
    progress = restore_training_state(tmp_path / "last.pt", b.model, b.optimizer, b.scheduler)
    assert (progress.step, progress.best_map) == (7, 0.25) and progress.train_seconds >= 5.0
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert b.scheduler.last_epoch == 1 and b.optimizer.state_dict()["state"].keys() == a.optimizer.state_dict()[
        "state"].keys()
    # Both take the same next step.
    ra, rb = a.step(images, targets, False), b.step(images, targets, False)
    assert torch.equal(ra.losses, rb.losses)


def test_loss_window_means():
    w = LossWindow()
    w.add(torch.tensor([3.0, 2.0, 1.0]), 4)
    w.add(torch.tensor([1.0, 1.0, 0.0]), 4)
    assert w.mean() == [2.0, 1.5, 0.5] and w.images == 8 and w.images_per_s() > 0
    w.reset()
    assert w.steps == 0 and w.mean() == [0.0, 0.0, 0.0]


# ---------------------------------------------------------------- speed (issue 12)
def _reference_steps(images, targets, n):
    """The step as it was before --amp and the GradScaler: forward, Eq. 1 loss,
    backward, clip, AdamW, written out by hand; returns the losses of `n` steps."""
    torch.manual_seed(0)
    model = models.build("compact256", num_classes=len(procedural.CLASSES))
    opt = build_optimizer("adamw", model.parameters(), 1e-3, 5e-4)
    priors = default_boxes(model.cfg).cxcywh
    losses = []
    for _ in range(n):
        out = model(images)
        loss = multibox_loss(out.cls_logits_flat(), out.bbox_regression_flat(), priors, targets)
        opt.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        losses.append(torch.stack([loss.total, loss.conf, loss.loc]).detach())
    return torch.stack(losses)


def test_default_fp32_step_is_bit_identical_to_the_former_step(data):
    _, _, images, targets = data
    t = _trainer()
    assert t.amp_dtype is None and not t.scaler.is_enabled()
    ours = torch.stack([t.step(images, targets, False).losses for _ in range(3)])
    assert torch.equal(ours, _reference_steps(images, targets, 3))  # every bit, 3 steps


def test_amp_modes():
    assert autocast_dtype("none", CPU) is None
    assert autocast_dtype("bf16", CPU) == torch.bfloat16
    assert autocast_dtype("fp16", torch.device("cuda")) == torch.float16  # chosen without touching a GPU
    with pytest.raises(ValueError, match="--amp fp16 needs a CUDA GPU.*use --amp bf16 on the CPU"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(ValueError, match="--amp must be one of"):
        autocast_dtype("fp8", CPU)
    with pytest.raises(ValueError, match="--amp fp16 needs a CUDA GPU"):
        _trainer(amp="fp16")


def test_bf16_step_runs_the_network_in_bfloat16_and_the_loss_in_fp32(data):
    _, _, images, targets = data
    t, ref = _trainer(amp="bf16"), _trainer()
    seen = []
    t.model.head.classification_head.module_list[0].register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    loss = t.forward_loss(images, targets)
    assert seen == [torch.bfloat16] and loss.total.dtype == torch.float32
    res, res_ref = t.step(images, targets, False), ref.step(images, targets, False)
    assert not res.non_finite and not t.scaler.is_enabled()
    # bfloat16 keeps 8 bits of mantissa: the same loss to about 1%, not bit for bit.
    assert torch.allclose(res.losses, res_ref.losses, rtol=0.03)
    assert not torch.equal(res.losses, res_ref.losses)


def test_workers_persist_across_epochs_and_give_the_same_batches(data):
    ds, _, _, _ = data
    s0, s1 = ResumableSampler(ds, 1, 0, seed=0), ResumableSampler(ds, 1, 0, seed=0)
    serial, workers = build_loader(ds, s0, 4, 0, CPU), build_loader(ds, s1, 4, 1, CPU)
    assert workers.persistent_workers and not serial.persistent_workers
    for epoch in range(2):
        s0.set_epoch(epoch), s1.set_epoch(epoch, skip=4 * epoch)
        a, b = list(serial)[epoch:], list(workers)  # epoch 1 resumes after one batch
        assert len(a) == len(b) == 2 - epoch
        for (ia, ta), (ib, tb) in zip(a, b):  # augment "none": no random draws, equal batches
            assert torch.equal(ia, ib) and all(torch.equal(x["boxes"], y["boxes"]) for x, y in zip(ta, tb))
    first = workers._iterator._workers[0].pid
    list(workers)
    assert workers._iterator._workers[0].pid == first  # the same worker process: its caches live on
