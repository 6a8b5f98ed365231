"""Tests for ssd/training/train.py: run-directory files, status, SIGTERM -> cancelled -> resume
(losses equal to an uninterrupted run), non-finite loss -> failed, any error -> failed
with its reason (a JPEG that does not decode, in a real subprocess), DDP with 2 CPU
processes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssd.training import checkpoint
from ssd.training.options import parse_args
from ssd.training.runlog import read_metrics
from ssd.training.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "procedural", "--train-size", "8", "--val-size", "4", "--batch-size", "4",
        "--log-every", "1", "--threads", "1", "--warmup-steps", "2"]
STATUS_KEYS = {"state", "progress", "message", "pid", "epoch", "step", "total_steps", "best_map", "device",
               "started_at", "updated_at"}


@pytest.fixture
def restore_signals():
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


def _status(run):
    return json.loads((run / "status.json").read_text())


def test_short_run_writes_every_file(tmp_path, restore_signals):
    run = tmp_path / "run"
    assert main([*TINY, "--out", str(run), "--epochs", "2", "--device", "cpu"]) == 0
    for f in ("config.json", "metrics.jsonl", "train.log", "status.json", "checkpoints/last.pt",
              "checkpoints/best.pt"):
        assert (run / f).is_file(), f
    st = _status(run)
    assert set(st) == STATUS_KEYS
    assert st["state"] == "finished" and st["progress"] == 1.0 and st["step"] == st["total_steps"] == 4
    assert st["pid"] == os.getpid() and st["device"] == "cpu" and st["epoch"] == 2
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["args"]["train_size"] == 8 and cfg["args"]["seed"] == 0 and cfg["steps_per_epoch"] == 2
    assert cfg["model_config"]["name"] == "compact256" and cfg["class_names"][:3] == ["background", "cat", "dog"]
    recs = read_metrics(run / "metrics.jsonl")
    train = [r for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for k in ("epoch", "step", "loss", "conf", "loc", "lr", "images_per_s", "time"):
        assert k in train[0]
    assert [r["epoch"] for r in evals] == [1, 2] and all(0 <= r["map"] <= 1 and "ap50" in r for r in evals)
    model, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert meta["step"] == 4 and meta["epoch"] == 2 and "optimizer" in meta and "scheduler" in meta
    assert meta["recipe"]["seed"] == 0 and "python -m ssd.train" in meta["recipe"]["command"]
    assert "--train-size 8" in meta["recipe"]["command"]
    assert model.class_names[1] == "cat"
    _, best = checkpoint.load(run / "checkpoints" / "best.pt")
    assert best["best_map"] == st["best_map"] == max(r["map"] for r in evals)
    # --resume takes the run's args from config.json; the command line may change the epochs only.
    resumed = parse_args(["--out", str(run), "--resume", "--epochs", "5", "--lr", "9", "--train-size", "99"])
    assert resumed.epochs == 5 and resumed.lr == 1e-3 and resumed.train_size == 8 and resumed.resume


def test_non_finite_loss_fails_with_advice(tmp_path, restore_signals):
    run = tmp_path / "run"
    rc = main([*TINY, "--out", str(run), "--epochs", "20", "--lr", "1e9", "--optimizer", "sgd",
               "--clip-grad", "0", "--warmup-steps", "0", "--device", "cpu"])
    assert rc == 1
    st = _status(run)
    assert st["state"] == "failed"
    assert "non-finite" in st["message"] and "at step" in st["message"] and "lower --lr" in st["message"]
    assert st["step"] < st["total_steps"]


def test_bad_dataset_fails_cleanly(tmp_path, restore_signals):
    run = tmp_path / "run"
    assert main(["--dataset", "voc", "--data-root", str(tmp_path / "missing"), "--out", str(run)]) == 1
    st = _status(run)
    assert st["state"] == "failed" and "VOC root folder not found" in st["message"]


def test_resume_without_run_dir_errors(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "nothing"), "--resume"])
    assert "nothing to resume" in capsys.readouterr().err


def _losses(run):
    return [r["loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]


def _launch(args, log):
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "ssd.train", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_sigterm_cancels_then_resume_finishes(tmp_path):
    run = tmp_path / "run"
    args = [*TINY, "--out", str(run), "--epochs", "100", "--max-steps", "8", "--device", "cpu"]
    with open(tmp_path / "log1.txt", "w") as log:
        proc = _launch(args, log)
        deadline = time.time() + 90
        while time.time() < deadline:
            recs = [r for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"]
            if recs and recs[-1]["step"] >= 2:
                break
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    st = _status(run)
    assert st["state"] == "cancelled" and "SIGTERM" in st["message"]
    stopped = st["step"]
    assert 2 <= stopped < 8
    _, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert meta["step"] == stopped
    # Resume: the args come from config.json; the run ends at step 8.
    with open(tmp_path / "log2.txt", "w") as log:
        proc = _launch(["--out", str(run), "--resume"], log)
        assert proc.wait(timeout=120) == 0, (tmp_path / "log2.txt").read_text()
    st = _status(run)
    assert st["state"] == "finished" and st["step"] == 8
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl") if r.get("kind") == "train"]
    assert steps == list(range(1, 9))  # continued right after the cancelled step, none repeated
    _, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert meta["step"] == 8 and meta["scheduler"]["last_epoch"] == 8
    assert "resuming at step" in (run / "train.log").read_text()
    # The same 8 steps without interruption: the resumed run trained exactly as it would have
    # (weights, optimizer, schedule, sampler position and augmentation RNG all restored).
    straight = tmp_path / "straight"
    assert main([*TINY, "--out", str(straight), "--epochs", "100", "--max-steps", "8", "--device", "cpu"]) == 0
    assert _losses(run) == _losses(straight)


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "ssd.train",
           *TINY, "--out", str(run), "--epochs", "1", "--max-steps", "2", "--device", "cpu"]
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    st = _status(run)
    assert st["state"] == "finished" and st["step"] == 1  # 8 images / (2 processes x 4) = 1 step per epoch
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["world_size"] == 2 and cfg["steps_per_epoch"] == 1
    train = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert train[-1]["step"] == 1
    model, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert meta["recipe"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in model.state_dict())


def test_voc_and_coco_exports_train_through_the_real_readers(tmp_path, restore_signals):
    from ssd.data.procedural import write_coco, write_voc

    voc = write_voc(tmp_path / "voc", 10, seed=3, size=128)  # 8 train / 2 val
    bad = voc / "Annotations" / "0003_000009.xml"
    bad.write_text(bad.read_text().replace("<name>", "<name>unicorn", 1))  # one bad sample
    run = tmp_path / "voc_run"
    common = ["--batch-size", "4", "--max-steps", "1", "--threads", "1", "--device", "cpu", "--log-every", "1"]
    assert main(["--dataset", "voc", "--data-root", str(voc), "--skip-bad", "--out", str(run), *common]) == 0
    assert _status(run)["state"] == "finished"
    assert "skipped 1 bad sample(s)" in (run / "train.log").read_text()
    assert json.loads((run / "config.json").read_text())["class_names"][1] == "cat"  # --classes auto -> shapes
    # without --skip-bad the same folder fails, naming the file
    run2 = tmp_path / "voc_strict"
    assert main(["--dataset", "voc", "--data-root", str(voc), "--out", str(run2), *common]) == 1
    assert "0003_000009.xml" in _status(run2)["message"] and "unicorn" in _status(run2)["message"]
    write_coco(tmp_path / "coco" / "a.json", tmp_path / "coco" / "img", 10, seed=4, size=128)
    run3 = tmp_path / "coco_run"
    assert main(["--dataset", "coco", "--coco-json", str(tmp_path / "coco" / "a.json"), "--coco-images",
                 str(tmp_path / "coco" / "img"), "--out", str(run3), *common]) == 0
    cfg = json.loads((run3 / "config.json").read_text())
    assert cfg["steps_per_epoch"] == 2  # 10 images, 2 held out for validation, batches of 4


def test_image_that_fails_to_decode_ends_the_run_failed_naming_it(tmp_path, voc_with_truncated_jpeg):
    """Issue 9.7: a real `python -m ssd.train` subprocess, no --skip-bad; it used to die
    with a traceback and leave status.json at "running"."""
    voc = voc_with_truncated_jpeg
    run = tmp_path / "run"
    res = subprocess.run([sys.executable, "-m", "ssd.train", "--dataset", "voc", "--data-root", str(voc),
                          "--classes", "voc", "--batch-size", "4", "--max-steps", "2", "--threads", "1",
                          "--device", "cpu", "--out", str(run)],
                         cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 1, res.stderr[-3000:]
    st = _status(run)
    assert st["state"] == "failed"
    assert str(voc / "JPEGImages" / "000001.jpg") in st["message"] and "unreadable image" in st["message"]
    assert f"failed: dataset error: {voc / 'JPEGImages' / '000001.jpg'}" in (run / "train.log").read_text()
    assert "Traceback" not in res.stderr  # a dataset error is the user's to fix: its message, no traceback


def test_too_few_images_for_a_batch_ends_failed(tmp_path, restore_signals):
    run = tmp_path / "run"
    assert main([*TINY, "--batch-size", "16", "--out", str(run), "--device", "cpu"]) == 1
    st = _status(run)
    assert st["state"] == "failed" and "fewer than --batch-size 16" in st["message"]


def test_unexpected_error_ends_failed_with_its_type(tmp_path, restore_signals, capsys):
    run = tmp_path / "run"
    (run / "checkpoints" / "last.pt").mkdir(parents=True)  # a folder where last.pt must go
    assert main([*TINY, "--out", str(run), "--epochs", "1", "--device", "cpu"]) == 1
    st = _status(run)
    assert st["state"] == "failed" and st["message"].startswith(("IsADirectoryError", "OSError"))
    assert "last.pt" in st["message"]
    assert "failed: " + st["message"] in (run / "train.log").read_text()
    assert "Traceback" in capsys.readouterr().err  # unexpected: the traceback is kept for the report


def test_unusable_device_ends_failed(tmp_path, restore_signals):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: --device cuda is usable")
    run = tmp_path / "run"
    assert main([*TINY, "--out", str(run), "--device", "cuda"]) == 2
    st = _status(run)
    assert st["state"] == "failed" and "no CUDA GPU" in st["message"]


def test_amp_fp16_on_the_cpu_ends_failed_naming_the_fix(tmp_path, restore_signals):
    run = tmp_path / "run"
    assert main([*TINY, "--out", str(run), "--device", "cpu", "--amp", "fp16"]) == 2
    st = _status(run)
    assert st["state"] == "failed" and "--amp fp16 needs a CUDA GPU" in st["message"]
    assert "--amp bf16" in st["message"] and not (run / "checkpoints" / "last.pt").exists()


def test_bf16_run_with_a_loader_worker_finishes_and_records_its_flags(tmp_path, restore_signals):
    run = tmp_path / "run"
    assert main([*TINY, "--out", str(run), "--epochs", "2", "--device", "cpu", "--amp", "bf16",
                 "--num-workers", "1"]) == 0
    assert _status(run)["state"] == "finished"
    losses = [r["loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert len(losses) == 4 and all(0 < v < 100 for v in losses)
    _, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert "--num-workers 1" in meta["recipe"]["command"] and "--amp bf16" in meta["recipe"]["command"]
    assert "--amp bf16" in (run / "train.log").read_text().splitlines()[0]


# ---------------------------------------------------------------- ImageNet backbone (issue 12)
def _vgg16_features_file(path):
    """A local VGG-16 file in torchvision's format ("features.*" keys), seeded weights."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(3)
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"]).state_dict().items()}, path)
    return path


@pytest.mark.parametrize("kind", ["truncated", "other architecture"])
def test_bad_backbone_weights_fail_before_training(tmp_path, restore_signals, kind):
    bad = tmp_path / "bad.pth"
    if kind == "truncated":
        bad.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    else:
        torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, bad)  # e.g. a ResNet's
    run = tmp_path / "run"
    rc = main(["--model", "ssd300_vgg16", "--backbone-weights", str(bad), "--train-size", "2", "--val-size", "1",
               "--batch-size", "1", "--out", str(run), "--device", "cpu"])
    assert rc == 1
    st = _status(run)
    assert st["state"] == "failed" and "bad.pth" in st["message"] and st["step"] == 0
    assert ("not a readable PyTorch file" if kind == "truncated" else "not a torchvision VGG-16") in st["message"]
    assert sorted(p.name for p in run.iterdir()) == ["status.json", "train.log"]  # nothing else written


def test_resumed_backbone_run_freezes_without_reading_the_weights(restore_signals):
    from ssd.training.train import _build_model
    from ssd.training.options import TrainOptions

    opts = TrainOptions(out="x", model="ssd300_vgg16", backbone_weights="imagenet", resume=True)
    model = _build_model(opts, ["background", "a", "b"], torch.device("cpu"))  # no download: last.pt holds the weights
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == {
        "backbone.features.0.weight", "backbone.features.0.bias", "backbone.features.2.weight",
        "backbone.features.2.bias"}


@pytest.mark.slow
def test_ssd300_trains_from_a_local_imagenet_style_backbone(tmp_path, restore_signals):
    path = _vgg16_features_file(tmp_path / "vgg16.pth")
    run = tmp_path / "run"
    assert main(["--model", "ssd300_vgg16", "--backbone-weights", str(path), "--train-size", "2",
                 "--val-size", "1", "--batch-size", "1", "--max-steps", "2", "--augment", "none",
                 "--out", str(run), "--device", "cpu", "--threads", "1", "--log-every", "1"]) == 0
    assert _status(run)["state"] == "finished"
    _, meta = checkpoint.load(run / "checkpoints" / "last.pt")
    assert f"--backbone-weights {path}" in meta["recipe"]["command"]
    state, file = checkpoint.read(run / "checkpoints" / "last.pt")["state_dict"], torch.load(path, weights_only=True)
    assert torch.equal(state["backbone.features.0.weight"], file["features.0.weight"])  # frozen stage: unchanged
    assert not torch.equal(state["backbone.features.5.weight"], file["features.5.weight"])  # trained


# ---------------------------------------------------------------- fine-tuning (issue 12)
def test_fine_tune_from_a_checkpoint_keeping_shared_classes(tmp_path, restore_signals):
    from ssd.data.procedural import write_voc

    src = tmp_path / "src"
    assert main([*TINY, "--out", str(src), "--epochs", "1", "--device", "cpu"]) == 0  # 7 classes
    voc = write_voc(tmp_path / "voc", 20, seed=3, size=128)
    run = tmp_path / "ft"
    assert main(["--dataset", "voc", "--data-root", str(voc), "--classes", "dog,cat,fish,bird,car", "--skip-bad",
                 "--init", str(src / "checkpoints" / "best.pt"), "--init-keep-classes", "--batch-size", "4",
                 "--max-steps", "1", "--threads", "1", "--device", "cpu", "--out", str(run)]) == 0
    log = (run / "train.log").read_text()
    assert "init: backbone and box predictors from weights file" in log and "7 classes -> 6" in log
    assert "rows kept for ['dog', 'cat', 'fish', 'bird', 'car']" in log
    assert _status(run)["state"] == "finished"


@pytest.mark.parametrize("argv, words", [
    (["--init", "MISSING"], "does not exist"),
    (["--init", "OTHER"], "missing key"),
])
def test_bad_init_fails_before_training(tmp_path, restore_signals, argv, words):
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3)}, other)
    argv = [a.replace("MISSING", str(tmp_path / "none.pt")).replace("OTHER", str(other)) for a in argv]
    run = tmp_path / "run"
    assert main([*TINY, *argv, "--out", str(run), "--device", "cpu"]) == 1
    st = _status(run)
    assert st["state"] == "failed" and words in st["message"] and st["step"] == 0
    assert sorted(p.name for p in run.iterdir()) == ["status.json", "train.log"]


def test_init_and_backbone_weights_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--init", "coco", "--backbone-weights", "imagenet", "--out", str(tmp_path / "r")])
    assert "exclude each other" in capsys.readouterr().err
