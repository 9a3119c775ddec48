"""Bad input: one line on stderr, exit status 2, nothing written; numbers written as YAML 1.1
reads them (``1e-3``) are numbers."""

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamixer.cli import main
from hamixer.errors import ConfigError
from hamixer.train.config import FIELD_NAMES, TrainConfig, load_yaml, merge, parse_kv

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16", "--limit-train", "64",
        "--limit-test", "32", "--batch-size", "32", "--quiet", "--threads", "1",
        "--dataset", "digits", "--epochs", "1"]


def _one_line_exit_2(capsys, argv, out):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    return err


@pytest.mark.parametrize("text, field, value", [
    ("lr: 1e-3", "lr", 1e-3), ("base_lr: 1e-3", "base_lr", 1e-3),
    ("weight_decay: 5e-2", "weight_decay", 0.05), ("min_lr: 1e-6", "min_lr", 1e-6),
    ("clip_grad: null", "clip_grad", None), ("epochs: 3", "epochs", 3),
])
def test_yaml_numbers_as_users_write_them(tmp_path, text, field, value):
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    cfg = merge(TrainConfig(), load_yaml(path), str(path)).validate()
    assert getattr(cfg, field) == value
    assert value is None or type(getattr(cfg, field)) is type(value)


@pytest.mark.parametrize("setting, message", [
    ("lr: abc", "lr must be a number"), ("epochs: 2.5", "epochs must be an integer"),
    ("epochs: null", "epochs must be set"), ("amp: yes please", "amp must be true or false"),
    ("opt: 3", "opt must be a string"), ("model_kwargs: 3", "model_kwargs must be a mapping"),
    ("threads: true", "threads must be an integer"), ("img_size: 1.5", "img_size must be"),
])
def test_every_field_type_is_checked(tmp_path, capsys, setting, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(setting + "\n")
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--config", str(cfg), "--out", str(out), *TINY],
                           out)
    assert message in err and "c.yaml" in err


def test_validate_checks_types_of_a_config_built_in_python():
    with pytest.raises(ConfigError, match="lr must be a number"):
        TrainConfig(lr="fast").validate()
    assert TrainConfig(lr="2e-3").validate().lr == 2e-3


@pytest.mark.parametrize("command", ["train", "compare", "sweep"])
@pytest.mark.parametrize("kwarg, message", [
    ("n_iter=2.5", "'n_iter' of"), ("n_iter=abc", "must be an integer, got 'abc'"),
    ("embed_dim=abc", "'embed_dim'"), ("n_iter=0", "n_iter must be >= 1"),
    ("mlp_ratio=x", "a number or a list of numbers"), ("block=diagonal", "block must be one of"),
])
def test_bad_model_kwargs_write_nothing(tmp_path, capsys, command, kwarg, message):
    out = tmp_path / "run"
    model = ["--model", "paramixer"] if command == "train" else []
    args = [a for a in TINY if a not in ("num_blocks=1", "embed_dim=16")]
    args[args.index("--model-kwargs") + 1:args.index("--model-kwargs") + 1] = [kwarg]
    if command == "sweep":
        args += ["--lambdas", "0"]
    err = _one_line_exit_2(capsys, [command, *model, "--out", str(out), *args], out)
    assert message in err


@pytest.mark.parametrize("flag, value, message", [
    ("--mid-breaking-inits", "zeros", "--mid-breaking-inits: unknown 'zeros'; did you mean: zero?"),
    ("--breaking-inits", "xavier,xavier", "--breaking-inits must be distinct"),
    ("--breaking-inits", ",", "--breaking-inits names nothing (valid: xavier, zero, free)"),
])
def test_bad_sweep_plan_writes_nothing(tmp_path, capsys, flag, value, message):
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["sweep", "--lambdas", "1,0.1,0", flag, value, "--out",
                                    str(out), *TINY], out)
    assert message in err


def test_digits_convert_to_the_models_channels(tmp_path, capsys):
    out = tmp_path / "rgb"
    assert main(["train", "--model", "paramixer", "--out", str(out), *TINY[:2],
                 "in_chans=3", *TINY[2:]]) == 0
    from hamixer.train import load_model

    model, _ = load_model(out)
    assert model.stem.proj.in_channels == 3


def test_unknown_flag_gets_the_commands_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--out", "x", "--bogus"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: hamixer train") and "unrecognized arguments: --bogus" in err


def test_debug_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("HAMIXER_DEBUG", "1")
    with pytest.raises(ConfigError, match="'n_iter'"):
        main(["train", "--model", "paramixer", "--out", str(tmp_path / "r"),
              "--model-kwargs", "n_iter=2.5", "--dataset", "digits", "--quiet"])


_VALUES = st.one_of(st.text(string.printable, max_size=12), st.integers(), st.floats(),
                    st.booleans(), st.none(), st.lists(st.integers(), max_size=3))


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(FIELD_NAMES), value=_VALUES)
def test_fuzz_settings_are_applied_or_refused_cleanly(key, value):
    """Any value for any field: a valid config, or a ConfigError; never another exception."""
    try:
        merge(TrainConfig(), {key: value}, "fuzz").validate()
    except ConfigError:
        pass


@settings(max_examples=300, deadline=None)
@given(text=st.text(string.printable, max_size=30))
def test_fuzz_set_parser(text):
    """``--set`` items of any text parse or are refused with a ConfigError."""
    try:
        parsed = parse_kv([text])
        merge(TrainConfig(), parsed, "--set").validate()
    except ConfigError:
        pass


def test_timm_flags_and_run_files(tmp_path, capsys):
    """timm's names (--output, -b, --smoothing, --aa, --in-chans, --num-classes, --resume PATH)
    and run files (summary.csv, args.yaml) beside ours, and train's own curves.png."""
    import csv

    import yaml

    out = tmp_path / "run"
    args = ["train", "--model", "paramixer", "--output", str(out), "-b", "32",
            "--smoothing", "0.2", "--aa", "rand-m9-mstd0.5-inc1", "--in-chans", "1",
            "--num-classes", "10", "--model-kwargs", "num_blocks=1", "embed_dim=16",
            "--limit-train", "64", "--limit-test", "32", "--quiet", "--threads", "1",
            "--dataset", "digits", "--epochs", "1"]
    assert main(args) == 0
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    assert (cfg["batch_size"], cfg["label_smoothing"]) == (32, 0.2)
    assert (cfg["randaugment_n"], cfg["randaugment_m"], cfg["randaugment_mstd"]) == (2, 9, 0.5)
    assert cfg["model_kwargs"]["in_chans"] == 1 and cfg["model_kwargs"]["num_classes"] == 10
    rows = list(csv.DictReader((out / "summary.csv").open()))
    assert list(rows[0]) == ["epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "lr"]
    assert len(rows) == 1 and rows[0]["epoch"] == "1"
    assert yaml.safe_load((out / "args.yaml").read_text())["label_smoothing"] == 0.2
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / ".lock").exists()
    # timm's --resume PATH: the run of that checkpoint (finished: nothing left to train)
    mtime = (out / "last.json").stat().st_mtime
    assert main([*args[:3], "--resume", str(out / "last.safetensors"), *args[5:]]) == 0
    assert (out / "last.json").stat().st_mtime == mtime
    assert main([*args[:3], "--resume", str(tmp_path / "elsewhere"), *args[5:]]) == 2
    assert "no checkpoint there" in capsys.readouterr().err


def test_eval_shows_top5_only_with_more_than_five_classes(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "paramixer", "--out", str(out), *TINY]) == 0
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--dataset", "digits"]) == 0
    assert "top-5" in capsys.readouterr().out  # ten classes
