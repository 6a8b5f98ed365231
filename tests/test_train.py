"""Tests for ssd/train.py (+ ssd/engine.py, ssd/runlog.py): run-directory files, status,
SIGTERM -> cancelled -> resume, non-finite loss -> failed, DDP with 2 CPU processes."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from ssd import checkpoint
from ssd.engine import ResumableSampler, lr_lambda
from ssd.runlog import RunDir, read_metrics, write_json_atomic
from ssd.train import main, parse_args

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


def test_lr_schedules():
    f = lr_lambda("cosine", total_steps=110, warmup_steps=10)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    s = lr_lambda("step", total_steps=90, warmup_steps=0)
    assert (s(0), s(59), s(60), s(80)) == pytest.approx((1.0, 1.0, 0.1, 0.01))
    assert lr_lambda("constant", 10, 0)(7) == 1.0
    with pytest.raises(ValueError, match="schedule"):
        lr_lambda("linear", 10, 0)


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


def test_run_dir_status_is_atomic_and_checked(tmp_path):
    rd = RunDir(tmp_path / "r", total_steps=10, device="cpu")
    rd.set_status(state="running", step=5)
    assert _status(tmp_path / "r")["progress"] == 0.5
    with pytest.raises(ValueError, match="state"):
        rd.set_status(state="exploded")
    with pytest.raises(KeyError):
        rd.set_status(colour="red")
    write_json_atomic(tmp_path / "x.json", {"a": 1})
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


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
