"""Bad input: one line on stderr, exit status 2, nothing written; numbers written as YAML 1.1
reads them (``1e-3``) are numbers."""

import string

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hamixer.cli import main
from hamixer.cli.flags import RECIPE_FLAGS
from hamixer.errors import ConfigError, HamixerError
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
    # given after the grid's own --lambdas, so this one is the one read
    ("--lambdas", "1,-1", "--lambdas must be distinct numbers >= 0, got '1,-1'"),
    ("--lambdas", "1,nan", "--lambdas must be distinct numbers >= 0, got '1,nan'"),
    ("--lambdas", "1,1e-2,0.01", "--lambdas must be distinct numbers >= 0"),
    ("--lambdas", "1,x", "--lambdas must be comma-separated numbers >= 0, got '1,x'"),
    ("--mid-seeds", "1,1", "--mid-seeds must be distinct integers, got '1,1'"),
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


# ------------------------------------------------ data that does not fit, files that are not
def _write_idx(root, train_size=8, test_size=8, top_label=9, n=16):
    """An MNIST-style IDX set: ``n`` images a split, labels cycling 0..``top_label``."""
    root.mkdir(parents=True, exist_ok=True)
    for prefix, size in (("train", train_size), ("t10k", test_size)):
        for kind, arr in (("images-idx3", np.zeros((n, size, size), np.uint8)),
                          ("labels-idx1", np.arange(n, dtype=np.uint8) % (top_label + 1))):
            head = bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big")
                                                         for d in arr.shape)
            (root / f"{prefix}-{kind}-ubyte").write_bytes(head + arr.tobytes())
    return root


def _write_folder(root, classes, empty=()):
    from PIL import Image

    for split in ("train", "test"):
        for name in classes:
            (root / split / name).mkdir(parents=True, exist_ok=True)
            if split == "train" and name in empty:
                continue
            for k in range(2):
                Image.new("L", (8, 8), 40 * k).save(root / split / name / f"{k}.png")
    return root


@pytest.mark.parametrize("extra, message", [
    (["--num-classes", "5"], "digits has labels up to 9 (10 classes) but the model's head "
                             "has 5 outputs (num_classes=5)"),
    (["--model-kwargs", "num_classes=3"], "head has 3 outputs (num_classes=3)"),
])
def test_labels_beyond_the_head_write_nothing(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), *TINY, *extra], out)
    assert message in err


def test_idx_labels_beyond_the_datasets_classes(tmp_path, capsys):
    data = _write_idx(tmp_path / "idx", top_label=12)
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), *TINY, "--dataset", "mnist",
                                    "--data-dir", str(data), "--model", "paramixer_n2_8"], out)
    assert "train split: labels go from 0 to 12, but the dataset has 10 classes" in err


@pytest.mark.parametrize("command", ["sweep", "compare"])
def test_a_plan_whose_data_does_not_fit_leaves_no_run_folders(tmp_path, capsys, command):
    out = tmp_path / "plan"
    args = [command, "--out", str(out), "--jobs", "2", *TINY, "--num-classes", "4"]
    args += ["--lambdas", "0"] if command == "sweep" else ["--models", "paramixer,symmixer"]
    err = _one_line_exit_2(capsys, args, out)
    assert "head has 4 outputs" in err


def test_train_and_test_images_of_two_sizes(tmp_path, capsys):
    data = _write_idx(tmp_path / "idx", train_size=12, test_size=8)
    out = tmp_path / "run"
    args = ["train", "--out", str(out), *TINY, "--dataset", "mnist", "--data-dir", str(data),
            "--model", "paramixer_n2_8"]
    err = _one_line_exit_2(capsys, args, out)
    assert "the train images are 12×12 but the test images 8×8; pass --img-size N" in err
    assert main([*args, "--img-size", "8"]) == 0  # an explicit resize is what was asked


@pytest.mark.parametrize("classes, empty, message", [
    (["only"], (), "train split: 1 class (only); a classifier needs at least 2"),
    (["a", "b", "c"], ("b",), "train split: no images in the class folder 'b'"),
])
def test_image_folders_a_classifier_cannot_learn(tmp_path, capsys, classes, empty, message):
    data = _write_folder(tmp_path / "folder", classes, empty)
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), *TINY, "--dataset",
                                    "imagefolder", "--data-dir", str(data), "--img-size", "8"],
                           out)
    assert message in err


@pytest.mark.parametrize("flags, message", [
    (["--seed", str(2**64)], f"seed must be in [0, {2**63 - 1}], got {2**64}"),
    (["--threads", "0"], "threads must be >= 1, got 0"),
    (["--img-size", "0"], "img_size must be >= 1, got 0"),
    (["--limit-test", "0"], "limit_test must be >= 1, got 0"),
    (["--limit-train", "0"], "limit_train must be >= 1, got 0"),
    (["--lr", "inf"], "lr must be a finite number, got inf"),
    (["--set", "hflip=nan"], "hflip must be a finite number, got nan"),
    (["--warmup-epochs", "50"], "warmup_epochs 50 is longer than the run (1 epoch)"),
    (["--model-kwargs", "num_blocks=0"], "num_blocks must be >= 1, got 0"),
    (["--model-kwargs", "patch_size=0"], "patch_size must be >= 1, got 0"),
    (["--model-kwargs", "asym_lambda=.inf"], "'asym_lambda' of paramixer_n2_8 must be finite"),
    (["--data-dir", "/tmp"], "digits are built in (scikit-learn): --data-dir /tmp would not be "
                             "read"),
])
def test_numbers_out_of_range_write_nothing(tmp_path, capsys, flags, message):
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), *TINY, *flags], out)
    assert message in err


def test_a_timm_constructors_refusal_is_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    argv = ["train", "--out", str(out), "--model", "vit_tiny_patch16_224", "--model-kwargs",
            "img_size=8", "patch_size=4", "embed_dim=64", "num_heads=5", *TINY[3:]]
    err = _one_line_exit_2(capsys, argv, out)
    assert "timm's vit_tiny_patch16_224 refused the arguments" in err
    assert "embed_dim=64, num_heads=5: AssertionError: dim should be divisible" in err
    monkeypatch.setenv("HAMIXER_DEBUG", "1")  # the cause stays visible for a bug report
    with pytest.raises(ConfigError) as info:
        main(argv)
    assert isinstance(info.value.__cause__, AssertionError)


@pytest.mark.parametrize("content, message", [
    (bytes(range(256)), "not a YAML file (binary data)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(64), "not a YAML file (a PNG image)"),
    (b"epochs: 1\nbatch_size: 32\nepochs: 2\n", "'epochs' is set twice (lines 1 and 3)"),
    (b"", "no settings in it (an empty file would replace the dataset's recipe"),
    (b"model_kwargs: {n_iter: 1, n_iter: 2}\n", "'n_iter' is set twice (lines 1 and 1)"),
])
def test_config_files_that_are_not_settings(tmp_path, capsys, content, message):
    cfg = tmp_path / "c.yaml"
    cfg.write_bytes(content)
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--config", str(cfg), "--out", str(out), *TINY],
                           out)
    assert message in err and "c.yaml" in err


def _pickle(path):
    import pickle

    path.write_bytes(pickle.dumps({"state_dict": {}}))


def _torch_zip(path):
    import torch

    torch.save({"w": torch.zeros(2)}, path)


def _png(path):
    from PIL import Image

    Image.new("RGB", (4, 4)).save(path, format="PNG")


@pytest.mark.parametrize("command", ["eval", "symmetry"])
@pytest.mark.parametrize("name, write, message", [
    ("picture.png", _png, "is not a hamixer checkpoint but a PNG image"),
    ("weights.json", _png, "is not a hamixer checkpoint but a PNG image"),
    ("model.pth", _pickle, "is not a hamixer checkpoint but a Python pickle (never unpickled"),
    ("model.pt", _torch_zip, "is not a hamixer checkpoint but a zip archive"),
    ("missing.safetensors", None, "checkpoint not found: "),
])
def test_a_checkpoint_is_told_by_its_content(tmp_path, capsys, command, name, write, message):
    path = tmp_path / name
    if write is not None:
        write(path)
    argv = ["eval", "--checkpoint", str(path)] if command == "eval" else ["symmetry", str(path)]
    err = _one_line_exit_2(capsys, argv, tmp_path / "nothing")
    assert message in err and str(path) in err


def test_bare_safetensors_say_what_they_lack(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    err = _one_line_exit_2(capsys, ["eval", "--checkpoint", str(path)], tmp_path / "nothing")
    assert "weights without w.json beside them" in err and "--initial-checkpoint" in err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One finished tiny run on digits, for the commands that read a run (copy it to change
    it)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--model", "paramixer", "--out", str(out), *TINY]) == 0
    return out


@pytest.mark.parametrize("limit", ["0", "-5"])
def test_eval_limit_below_one(trained, capsys, limit):
    err = _one_line_exit_2(capsys, ["eval", "--checkpoint", str(trained), "--limit", limit],
                           trained / "nothing")
    assert f"--limit must be >= 1, got {limit}" in err


def test_eval_on_another_dataset_says_so(trained, tmp_path, capsys):
    folder = _write_folder(tmp_path / "folder", [str(k) for k in range(10)])
    assert main(["eval", "--checkpoint", str(trained), "--dataset", "imagefolder",
                 "--data-dir", str(folder)]) == 0
    err = capsys.readouterr().err
    assert err == ("warning: the model was trained on digits, not imagefolder: the accuracy "
                   "compares digits's class numbers with imagefolder's labels\n")


def _copy(run, tmp_path, *drop):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(run, copy)
    for name in drop:
        (copy / name).unlink()
    return copy


def _snapshot(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


@pytest.mark.parametrize("resume", ["flag", "path"])
def test_resume_refuses_a_folder_without_its_last_checkpoint(trained, tmp_path, capsys, resume):
    run = _copy(trained, tmp_path, "last.json", "last.safetensors", "last.state.safetensors")
    before = _snapshot(run)
    argv = (["--out", str(run), "--resume"] if resume == "flag"
            else ["--resume", str(run / "best.safetensors")])
    assert main(["train", "--model", "paramixer", *argv, *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no checkpoint there (no last.json in" in err, err
    assert "resuming would start the run over" in err
    assert _snapshot(run) == before
    # without --resume, nothing is overwritten either
    assert main(["train", "--model", "paramixer", "--out", str(run), *TINY]) == 2
    assert "without the checkpoint where its training stopped (last.json)" in \
        capsys.readouterr().err
    assert _snapshot(run) == before


def test_resume_of_a_mistyped_folder_starts_nothing(tmp_path, capsys):
    out = tmp_path / "typo"
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), "--resume", *TINY], out)
    assert f"--resume: no checkpoint there ({out} does not exist)" in err


def test_resume_without_the_metrics_refuses_to_lose_the_history(trained, tmp_path, capsys):
    run = _copy(trained, tmp_path, "metrics.jsonl")
    before = _snapshot(run)
    assert main(["train", "--model", "paramixer", "--out", str(run), "--resume", *TINY]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the checkpoint is after epoch 1 but metrics.jsonl holds " \
        "0 of those epochs" in err, err
    assert _snapshot(run) == before


def test_a_changed_setting_says_what_to_pass(trained, capsys):
    assert main(["train", "--model", "paramixer", "--out", str(trained), "--resume", *TINY,
                 "--lr", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "was trained with lr=None, not 0.001; leave lr unset (the run's lr, " in err


def test_a_run_failing_before_its_first_save_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    # the first update is finite, the second loss is not: no checkpoint was written
    err = _one_line_exit_2(capsys, ["train", "--out", str(out), *TINY, "--batch-size", "16",
                                    "--lr", "1e30", "--set", "warmup_epochs=0",
                                    "clip_grad=null"], out)
    assert "loss became nan at epoch 1 step 2" in err and "none was written" in err


@pytest.mark.parametrize("command", [
    ["memory", "train", "--epochs", "1", "--hidden", "8", "--no-progress", "--device", "cpu"],
    ["dynamics", "--points", "5", "--t-max", "1", "--method", "rk4", "--tokens", "2",
     "--channels", "2"],
])
def test_memory_and_dynamics_refuse_a_folder_holding_another_run(trained, tmp_path, capsys,
                                                                 command):
    before = _snapshot(trained)
    assert main([*command, "--out", str(trained)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{trained} already holds a training run (last.json" in err
    assert _snapshot(trained) == before
    memory = tmp_path / "memory"
    memory.mkdir()
    (memory / "config.json").write_text('{"kind": "energy_memory"}')
    assert main([*command, "--out", str(memory)]) == 2
    assert "already holds a memory run (config.json)" in capsys.readouterr().err
    assert [p.name for p in memory.iterdir()] == ["config.json"]


def test_messages_name_what_the_user_can_act_on(trained, tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["report", str(trained), "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert f"--out {folder} is a folder; give the report's file" in err
    assert list(tmp_path.iterdir()) == [folder] and not any(folder.iterdir())
    assert main(["energy", str(trained)]) == 2
    assert "pass --pseudo for the pseudo-energy" in capsys.readouterr().err
    assert main(["symmetry", "--model", "bogus"]) == 2
    assert "unknown model 'bogus'" in capsys.readouterr().err


def test_a_crashed_worker_is_a_crash_not_a_user_error(tmp_path, monkeypatch):
    """A worker's traceback (exit 1) fails the plan with exit status 1; a worker's user
    error (exit 2) stays exit 2."""
    import subprocess
    import sys

    from hamixer.experiments import jobs
    from hamixer.train.config import TrainConfig as Config

    def fake_start(self, slot, index):  # a worker that exits with the code its label says
        job = self.jobs[index]
        out = tmp_path / job.label
        out.mkdir(exist_ok=True)
        code = int(job.label[-1])
        with open(out / "job.log", "w") as log:
            proc = subprocess.Popen([sys.executable, "-c", "import sys; print('RuntimeError: "
                                     f"boom'); sys.exit({code})"], stdout=log)
        self.running[slot] = (index, proc, self._bar(slot, index))

    monkeypatch.setattr(jobs._Pool, "_start", fake_start)
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.05)
    plan = [jobs.Job(f"job{k}", Config(out=str(tmp_path / f"job{k}"), epochs=1))
            for k in (1, 2)]
    with pytest.raises(jobs.WorkerCrashed) as info:
        jobs._Pool(plan, 2, print, progress=False).run()
    assert info.value.exit_code == 1 and "1 of 2 runs crashed (a bug" in str(info.value)
    assert "job1 (exit 1; see" in str(info.value) and "RuntimeError: boom" in str(info.value)
    with pytest.raises(HamixerError) as info:
        jobs._Pool(plan[1:], 2, print, progress=False).run()
    assert not isinstance(info.value, jobs.WorkerCrashed)


def _flag_values(kind):
    """Numbers of a flag's type as a user could type them: huge, negative, NaN, inf."""
    ints = st.one_of(st.integers(-10, 10), st.integers(), st.sampled_from([2**63, 2**64]))
    floats = st.one_of(st.floats(), st.floats(-2, 2), st.sampled_from([1e308, -0.0]))
    return ints if kind is int else st.one_of(floats, ints)


_NUMERIC_FLAGS = [(flag, field, kind) for flag, field, kind, _ in RECIPE_FLAGS
                  if kind in (int, float)] + [("--epochs", "epochs", int),
                                              ("--batch-size", "batch_size", int),
                                              ("--seed", "seed", int)]


@settings(max_examples=300, deadline=None)
@given(data=st.data(), flag=st.sampled_from(_NUMERIC_FLAGS))
def test_fuzz_numeric_flags_are_in_range_or_refused(data, flag):
    """Any number for any numeric flag of ``train``: a config whose every setting is in its
    range (``RANGES``), or a ConfigError; never another exception."""
    import math

    from hamixer.cli.flags import config_from_args
    from hamixer.cli.main import build_parser
    from hamixer.train.config import RANGES

    name, field, kind = flag
    value = data.draw(_flag_values(kind))
    args = build_parser().parse_args(["train", "--out", "unused", f"{name}={value}"])
    try:
        cfg = config_from_args(args)
    except ConfigError:
        return
    got = getattr(cfg, field)
    assert got is None or math.isfinite(got)
    low, high, _, _ = RANGES.get(field, (None, None, True, True))
    assert got is None or ((low is None or got >= low) and (high is None or got <= high))


def test_ctrl_c_while_the_command_line_starts_is_one_line(monkeypatch, capsys):
    import importlib

    cli_main = importlib.import_module("hamixer.cli.main")  # the module (the package's main is
                                                           # its function)

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_main, "build_parser", interrupted)
    monkeypatch.delenv("HAMIXER_DEBUG", raising=False)
    assert cli_main.main(["train", "--help"]) == 130
    assert capsys.readouterr().err == "hamixer: stopped (interrupted)\n"
    monkeypatch.setenv("HAMIXER_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        cli_main.main(["train"])


# ------------------------------------------------------------------ a recipe's warm-up
def _config(argv):
    from hamixer.cli.flags import config_from_args
    from hamixer.cli.main import build_parser

    return config_from_args(build_parser().parse_args(argv))


def test_a_shipped_recipes_warmup_longer_than_the_run_keeps_its_share(tmp_path, capsys):
    """digits.yaml warms up for 2 of its 20 epochs; a 1-epoch run warms up for a tenth of an
    epoch, with one warning line, instead of rising for the whole run."""
    out = tmp_path / "run"
    loud = [a for a in TINY if a != "--quiet"]
    assert main(["train", "--out", str(out), *loud]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: digits.yaml warms up for 2 epochs (of its 20), longer than "
                          "this run's 1 epoch: warming up for 0.1 epochs instead, the recipe's "
                          "share (10%); --warmup-epochs N sets it\n")
    assert err.count("warning") == 1
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["warmup_epochs"] == 0.1
    # --quiet: nothing said, the same warm-up (recorded in config.yaml)
    assert main(["train", "--out", str(tmp_path / "quiet"), *TINY]) == 0
    assert capsys.readouterr().err == ""
    assert yaml.safe_load((tmp_path / "quiet" / "config.yaml").read_text())["warmup_epochs"] \
        == 0.1
    # named with --config, a shipped recipe is still the recipe: the paper's 20 of 300
    cfg = _config(["train", "--config", "cifar10-paper", "--epochs", "15"])
    assert cfg.warmup_epochs == pytest.approx(1.0)
    assert "cifar10-paper.yaml warms up for 20 epochs (of its 300)" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["--dataset", "digits", "--epochs", "2"],  # ends as the run does: left as it is
    ["--dataset", "digits", "--epochs", "20"],  # make run's
    ["--dataset", "fashion-mnist", "--epochs", "1"],  # its recipe's warm-up is 1 epoch
    ["--dataset", "digits", "--epochs", "1", "--warmup-epochs", "0.5"],  # the user's own
])
def test_a_warmup_that_fits_is_left_as_it_is(capsys, argv):
    from hamixer.train.config import CONFIG_DIR

    cfg = _config(["train", *argv])
    if "--warmup-epochs" in argv:
        assert cfg.warmup_epochs == 0.5
    else:
        assert cfg.warmup_epochs == load_yaml(CONFIG_DIR / f"{cfg.dataset}.yaml")["warmup_epochs"]
    assert capsys.readouterr().err == ""


def test_the_users_own_recipe_with_a_warmup_longer_than_the_run_is_refused(tmp_path, capsys):
    recipe = tmp_path / "mine.yaml"
    recipe.write_text("epochs: 20\nwarmup_epochs: 2\n")
    out = tmp_path / "run"
    err = _one_line_exit_2(capsys, ["train", "--config", str(recipe), "--out", str(out),
                                    *TINY], out)
    assert "warmup_epochs 2 is longer than the run (1 epoch)" in err
