"""Tests for ssd/training/options.py: one declaration gives the parser, the checks, and
the command line back (the recipe a checkpoint records); --resume takes the run's
options from config.json."""
import dataclasses
import json

import pytest

from ssd.models import MODEL_NAMES
from ssd.training.options import (
    RESUME_OVERRIDABLE,
    TrainOptions,
    build_parser,
    flag,
    parse_args,
)

SHIPPED_RECORDED = ("--train-size 3000 --augment light --batch-size 32 --lr 0.002 --warmup-steps 50 "
                    "--out runs/compact256_shapes --eval-every 2 --threads 1 --log-every 10")


def test_every_field_is_a_flag_with_its_default_and_help():
    parser = build_parser()
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "recipe")}
    assert list(actions) == [f.name for f in dataclasses.fields(TrainOptions)]
    for f in dataclasses.fields(TrainOptions):
        a = actions[f.name]
        assert a.option_strings == [flag(f.name)] and a.help
        assert a.default == f.default and (a.choices is None) == (f.metadata["choices"] is None)
    assert tuple(actions["model"].choices) == MODEL_NAMES


def test_defaults_of_the_command_line_are_the_dataclass_defaults():
    assert parse_args(["--out", "r"]) == TrainOptions(out="r")


def test_to_argv_parses_back_and_writes_the_shipped_command():
    opts = parse_args(SHIPPED_RECORDED.split())
    assert " ".join(opts.to_argv()) == SHIPPED_RECORDED  # same flags, same order as recorded
    odd = TrainOptions(out="o", dataset="coco", coco_json="a b.json", skip_bad=True, lr=0.05, channels_last=0)
    assert parse_args(odd.to_argv()) == odd


@pytest.mark.parametrize("argv, words", [
    (["--epochs", "0"], "--epochs must be >= 1"),
    (["--batch-size", "-1"], "--batch-size must be >= 1"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--max-steps", "-3"], "--max-steps must be >= 0"),
    (["--clip-grad", "-1"], "--clip-grad must be >= 0"),
    (["--model", "yolo"], "invalid choice: 'yolo'"),
    (["--epochs", "two"], "invalid int value: 'two'"),
    (["--amp", "fp8"], "invalid choice: 'fp8'"),
])
def test_bad_option_is_a_usage_error_naming_it(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--out", "r", *argv])
    assert exc.value.code == 2 and words in capsys.readouterr().err


def test_validate_refuses_wrong_types_and_choices():
    with pytest.raises(ValueError, match="--epochs must be an integer, got 2.5"):
        TrainOptions(epochs=2.5).validate()
    with pytest.raises(ValueError, match="--epochs must be an integer, got True"):
        TrainOptions(epochs=True).validate()
    with pytest.raises(ValueError, match="--dataset must be one of"):
        TrainOptions(dataset="imagenet").validate()
    assert TrainOptions(lr=1).validate().lr == 1  # an int is a fine float


def test_out_is_required(capsys):
    with pytest.raises(SystemExit):
        parse_args([])
    assert "--out" in capsys.readouterr().err


def test_resume_takes_the_saved_options(tmp_path, capsys):
    run = tmp_path / "run"
    saved = TrainOptions(out=str(run), train_size=8, lr=0.01, epochs=2)
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"args": {k: v for k, v in saved.to_dict().items()
                                                          if k != "resume"}}))
    opts = parse_args(["--out", str(run), "--resume", "--epochs", "5", "--lr", "9", "--train-size", "99"])
    assert opts == dataclasses.replace(saved, epochs=5, resume=True)  # only RESUME_OVERRIDABLE changed
    assert "epochs" in RESUME_OVERRIDABLE and "lr" not in RESUME_OVERRIDABLE
    with pytest.raises(SystemExit):
        parse_args(["--out", str(tmp_path / "none"), "--resume"])
    assert "nothing to resume" in capsys.readouterr().err
    (run / "config.json").write_text("{broken")
    with pytest.raises(SystemExit):
        parse_args(["--out", str(run), "--resume"])
    assert "config.json" in capsys.readouterr().err


def test_recipes_are_valid_options_and_flags_override_them():
    from ssd.training.recipes import RECIPES

    assert {"ssd300_voc_paper", "compact256_shapes", "cpu_demo"} <= set(RECIPES)
    for name, values in RECIPES.items():
        TrainOptions(**values).validate()  # every key a field, every value valid
    paper = parse_args(["--recipe", "ssd300_voc_paper", "--out", "r", "--data-root", "VOC", "--epochs", "2"])
    assert (paper.optimizer, paper.lr, paper.weight_decay, paper.batch_size, paper.schedule, paper.augment) == (
        "sgd", 1e-3, 5e-4, 32, "step", "ssd")
    assert paper.epochs == 2 and paper.backbone_weights == "imagenet"  # the flag overrides the recipe


def test_shipped_recipe_rebuilds_the_recorded_command():
    opts = parse_args(["--recipe", "compact256_shapes", "--out", "runs/compact256_shapes"])
    assert " ".join(opts.to_argv()) == SHIPPED_RECORDED


def test_unknown_recipe_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--recipe", "yolo", "--out", "r"])
    assert "invalid choice: 'yolo'" in capsys.readouterr().err


def test_amp_is_opt_in_and_left_out_of_recorded_commands():
    assert TrainOptions(out="r").amp == "none"  # today's fp32 results by default
    opts = parse_args(["--out", "r", "--amp", "bf16"])
    assert opts.amp == "bf16" and opts.to_argv()[-2:] == ["--amp", "bf16"]
    assert "--amp" not in parse_args(SHIPPED_RECORDED.split()).to_argv()
    assert "amp" in RESUME_OVERRIDABLE  # a resumed run may switch precision (a GPU run resumed on a CPU)


def test_ablation_options_parse_round_trip_and_are_checked():
    argv = ["--out", "o", "--neg-pos-ratio", "inf", "--forced-match", "0", "--augment-steps",
            "photometric,flip", "--levels", "0,1,2"]
    opts = parse_args(argv)
    assert opts.neg_pos_ratio == float("inf") and opts.forced_match == 0 and opts.level_indices() == (0, 1, 2)
    assert parse_args(opts.to_argv()) == opts
    assert TrainOptions(out="o").to_argv() == ["--out", "o"]  # defaults stay off the recorded command
    for bad, match in ((dict(neg_pos_ratio=-1.0), "--neg-pos-ratio"), (dict(augment_steps="blur"), "--augment-steps"),
                       (dict(levels="0,2"), "--levels"), (dict(levels="7"), "--levels")):
        with pytest.raises(ValueError, match=match):
            TrainOptions(out="o", **bad).validate()
