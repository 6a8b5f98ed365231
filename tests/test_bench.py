"""Smoke test of the benchmark script (timings themselves are never asserted)."""
import json

import pytest
import torch

from benchmarks.bench import format_table, main, realistic_targets




def test_bench_runs_and_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["--only", "loss,priors", "--repeats", "1", "--warmup", "0", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "loss forward" in text and "default boxes SSD300" in text
    rows = json.loads(out.read_text())["rows"]
    assert [r["name"].split(" (")[0] for r in rows] == ["loss forward", "loss forward+backward", "default boxes SSD300"]
    for r in rows:
        assert r["ours_ms"] > 0 and r["torchvision_ms"] > 0
        assert r["ratio"] == pytest.approx(r["ours_ms"] / r["torchvision_ms"])
    # the benchmark checks it times the same computation as torchvision
    ours, theirs = (float(x) for x in rows[0]["note"].replace("loss ours ", "").split(" vs torchvision "))
    assert ours == pytest.approx(theirs, abs=1e-3)
    assert "equal: True" in rows[2]["note"]


def test_realistic_targets():
    targets = realistic_targets(8, 21, seed=0)
    assert len(targets) == 8
    for t in targets:
        assert 1 <= t["boxes"].shape[0] <= 6
        assert ((t["labels"] >= 1) & (t["labels"] < 21)).all()
        assert (t["boxes"][:, 2:] > t["boxes"][:, :2]).all()
    assert "ratio" in format_table([{"name": "x", "ours_ms": 1.0, "torchvision_ms": 2.0, "ratio": 0.5}])


@pytest.mark.parametrize(
    "argv", [["--only", "nms"], ["--only", ""], ["--repeats", "0"], ["--device", "tpu"], ["--warmup", "-1"], ["--threads", "0"]]
)
def test_bad_arguments_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err
