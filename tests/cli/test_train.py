"""``hamixer train``/``eval``/``compare`` end to end on a small subset of the built-in digits."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from hamixer.cli import main
from hamixer.train import TrainConfig, load_model, run_training

pytestmark = pytest.mark.integration  # runs the command line end to end

TINY = ["--model-kwargs", "num_blocks=1", "embed_dim=16",
        "--limit-train", "96", "--limit-test", "64", "--batch-size", "32", "--quiet",
        "--threads", "1"]
ROW_KEYS = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc", "test_top5", "lr",
            "seconds", "train_seconds", "images_per_s"}


def _rows(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "asymmixer", "--dataset", "digits", "--epochs", "2",
                 "--out", str(out), *TINY]) == 0
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "last.safetensors",
                 "last.state.safetensors", "last.json", "best.safetensors", "best.json"):
        assert (out / name).is_file(), name
    rows = _rows(out)
    assert [r["epoch"] for r in rows] == [1, 2] and ROW_KEYS <= set(rows[0])
    assert all(0 <= r["test_acc"] <= 100 and r["images_per_s"] > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == "asymmixer_n2_8" and summary["train_images"] == 96
    assert summary["peak_memory_mb"] > 0 and summary["train_images_per_s"] > 0
    assert summary["final_test_acc"] == rows[-1]["test_acc"]
    assert summary["best_test_acc"] == max(r["test_acc"] for r in rows)
    meta = json.loads((out / "last.json").read_text())
    assert meta["epoch"] == 2 and meta["model_kwargs"]["embed_dim"] == 16
    assert "scheduler" in meta and meta["optimizer"]["param_groups"]
    state = load_file(str(out / "last.state.safetensors"))
    assert "rng.torch" in state and any(k.endswith("exp_avg") for k in state)
    # the model comes back with its weights
    model, meta = load_model(out, prefer="last")
    weights = load_file(str(out / "last.safetensors"))
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    # eval reads the checkpoint and reproduces the last test accuracy
    assert main(["eval", "--checkpoint", str(out / "last.safetensors"), "--limit", "64",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["top1"] == pytest.approx(rows[-1]["test_acc"]) and res["top5"] >= res["top1"]
    assert res["weights"] == "model"
    # files from different saves, a non-checkpoint and a corrupt file: one-line errors
    meta["epoch"] = 1
    (out / "last.json").write_text(json.dumps(meta))
    assert main(["eval", "--checkpoint", str(out / "last.json")]) == 2
    assert "files of different saves" in capsys.readouterr().err
    (out / "other.json").write_text("{}")
    assert main(["eval", "--checkpoint", str(out / "other.json")]) == 2
    assert "not a hamixer checkpoint" in capsys.readouterr().err
    (out / "best.safetensors").write_bytes(b"\x00" * 10)
    assert main(["eval", "--checkpoint", str(out)]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch for best.safetensors" in err and err.count("\n") == 1
    # a second run into the same directory must not overwrite it
    assert main(["train", "--dataset", "digits", "--epochs", "2", "--out", str(out),
                 *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err


class _StopAfter:
    """A per-epoch hook that logs a value, then interrupts the run after ``epoch``."""

    def __init__(self, epoch):
        self.epoch = epoch

    def __call__(self, model, epoch):
        if epoch > self.epoch:
            raise KeyboardInterrupt
        return {"head_norm": model.head.weight.norm().item()}


def test_resume_continues_exactly(tmp_path):
    base = TrainConfig(model="paramixer_n2_8", dataset="digits", epochs=3, batch_size=32,
                       limit_train=96, limit_test=64, quiet=True, threads=1,
                       model_kwargs={"num_blocks": 1, "embed_dim": 16}, reprob=0.25,
                       crop_padding=1, mixup=0.8, cutmix=1.0, drop_path=0.1)
    full = run_training(TrainConfig(**{**base.to_dict(), "out": str(tmp_path / "full")}),
                        hooks=[_StopAfter(99)])
    cut = TrainConfig(**{**base.to_dict(), "out": str(tmp_path / "cut")})
    with pytest.raises(KeyboardInterrupt):
        run_training(cut, hooks=[_StopAfter(1)])
    assert [r["epoch"] for r in _rows(tmp_path / "cut")] == [1]
    cut.resume = True
    resumed = run_training(cut, hooks=[_StopAfter(99)])
    a, b = _rows(tmp_path / "full"), _rows(tmp_path / "cut")
    assert [r["epoch"] for r in b] == [1, 2, 3] and "head_norm" in b[0]
    for ra, rb in zip(a, b, strict=True):
        for k in ("train_loss", "test_loss", "test_acc", "lr", "head_norm"):
            assert ra[k] == rb[k], (ra["epoch"], k)
    wa = load_file(str(tmp_path / "full" / "last.safetensors"))
    wb = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert resumed["final_test_acc"] == full["final_test_acc"]
    # resuming with different settings is refused
    with pytest.raises(Exception, match="trained with batch_size=32"):
        run_training(TrainConfig(**{**cut.to_dict(), "batch_size": 16}))


def test_yaml_config_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: symmixer_n2_8\ndataset: digits\nepochs: 1\nlabel_smoothing: 0.0\n"
                   "randaugment_n: 1\nhflip: 0.5\n")
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--out", str(out), "--weight-decay", "0.01",
                 "--set", "reprob=0.5", *TINY]) == 0
    import yaml

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["model"] == "symmixer_n2_8" and saved["weight_decay"] == 0.01
    assert saved["reprob"] == 0.5 and saved["label_smoothing"] == 0.0
    assert saved["model_kwargs"] == {"num_blocks": 1, "embed_dim": 16}
    cfg.write_text("epochs: 1\nlabel_smothing: 0.1\n")
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "r2"), *TINY]) == 2
    assert "did you mean: label_smoothing" in capsys.readouterr().err
    assert main(["train", "--model-kwargs", "n_layers=2", "--out", str(tmp_path / "r3"),
                 "--epochs", "1", "--quiet"]) == 2
    assert "unknown argument 'n_layers'" in capsys.readouterr().err


def test_compare_writes_table_json_and_curves(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--dataset", "digits", "--models", "paramixer,symmixer",
                 "--seeds", "0,1", "--epochs", "2", "--out", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    table = (out / "results.md").read_text()
    assert "| paramixer_n2_8 |" in table and "| symmixer_n2_8 |" in table and " ± " in table
    assert "model arguments: num_blocks=1, embed_dim=16" in table  # TINY's overrides
    assert "| model | params |" in printed
    res = json.loads((out / "results.json").read_text())
    assert [m["model"] for m in res["models"]] == ["paramixer_n2_8", "symmixer_n2_8"]
    assert all(m["n"] == 2 for m in res["models"])
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    # same data order for every model: the first epoch's seed depends on the seed only
    p0 = _rows(out / "paramixer_n2_8" / "seed0")
    assert len(p0) == 2
    # a finished comparison is re-tabulated without training again
    mtime = (out / "paramixer_n2_8" / "seed0" / "last.json").stat().st_mtime
    assert main(["compare", "--dataset", "digits", "--models", "paramixer,symmixer",
                 "--seeds", "0,1", "--epochs", "2", "--out", str(out), *TINY]) == 0
    assert (out / "paramixer_n2_8" / "seed0" / "last.json").stat().st_mtime == mtime


def test_train_rgb_image_folder_with_paper_augmentations(tmp_path):
    """RGB images of mixed sizes, resized; RandAugment, erasing, mixup/cutmix, 2× upsampling."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 8), ("test", 4)):
        for cls in ("a", "b", "c"):
            d = tmp_path / "data" / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                size = (int(rng.integers(10, 40)), int(rng.integers(10, 40)))
                Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(
                    d / f"{i}.png")
    out = tmp_path / "run"
    assert main(["train", "--model", "vanillamixer", "--dataset", "imagefolder", "--data-dir",
                 str(tmp_path / "data"), "--epochs", "1", "--batch-size", "8", "--out",
                 str(out), "--model-kwargs", "num_blocks=1", "embed_dim=16", "img_size=32",
                 "--randaugment", "2", "--reprob", "0.25", "--mixup", "0.8", "--cutmix", "1.0",
                 "--hflip", "0.5", "--crop-padding", "2", "--drop-path", "0.1", "--amp",
                 "--quiet", "--threads", "1"]) == 0
    meta = json.loads((out / "last.json").read_text())
    assert meta["dataset"]["classes"] == ["a", "b", "c"] and meta["dataset"]["in_chans"] == 3
    assert meta["model_kwargs"]["num_classes"] == 3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["amp"] == "bfloat16" and summary["train_images"] == 24


def _ema_config(out, **overrides):
    return TrainConfig(**{**dict(
        model="paramixer_n2_8", dataset="digits", epochs=3, batch_size=32, limit_train=96,
        limit_test=64, quiet=True, threads=1, model_kwargs={"num_blocks": 1, "embed_dim": 16},
        base_lr=0.02, model_ema=True, model_ema_decay=0.9, model_ema_warmup=False,
        out=str(out)), **overrides})


def test_model_ema_is_evaluated_checkpointed_and_resumed(tmp_path, capsys):
    full = run_training(_ema_config(tmp_path / "full"), hooks=[_StopAfter(99)])
    rows = _rows(tmp_path / "full")
    assert all({"raw_test_acc", "raw_test_loss", "raw_test_top5"} <= set(r) for r in rows)
    assert full["model_ema"] == 0.9 and full["final_raw_test_acc"] == rows[-1]["raw_test_acc"]
    # the checkpoint's model is the average; the raw weights travel in the state file
    ema = load_file(str(tmp_path / "full" / "last.safetensors"))
    state = load_file(str(tmp_path / "full" / "last.state.safetensors"))
    raw = {k[len("train."):]: v for k, v in state.items() if k.startswith("train.")}
    assert set(raw) == set(ema) and not torch.equal(raw["head.weight"], ema["head.weight"])
    model, meta = load_model(tmp_path / "full", prefer="last")
    assert meta["weights"] == "ema"
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    assert main(["eval", "--checkpoint", str(tmp_path / "full"), "--limit", "64",
                 "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["weights"] == "ema"
    assert res["top1"] == pytest.approx(max(r["test_acc"] for r in rows))  # best: by the EMA
    assert main(["eval", "--checkpoint", str(tmp_path / "full"), "--limit", "64"]) == 0
    assert "EMA weights" in capsys.readouterr().out
    # killed after epoch 1 and resumed: the average and the raw weights continue exactly
    cut = _ema_config(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        run_training(cut, hooks=[_StopAfter(1)])
    cut.resume = True
    run_training(cut, hooks=[_StopAfter(99)])
    for ra, rb in zip(rows, _rows(tmp_path / "cut"), strict=True):
        for k in ("train_loss", "test_loss", "raw_test_loss", "head_norm"):
            assert ra[k] == rb[k], (ra["epoch"], k)
    for name in ("last.safetensors", "last.state.safetensors"):
        a = load_file(str(tmp_path / "full" / name))
        b = load_file(str(tmp_path / "cut" / name))
        assert all(torch.equal(a[k], b[k]) for k in a if not k.startswith("rng")), name
    # switching the EMA off (or on) for a resume is refused
    with pytest.raises(Exception, match="trained with model_ema=True"):
        run_training(_ema_config(tmp_path / "cut", model_ema=False, resume=True))


def test_model_ema_of_decay_zero_is_the_trained_model(tmp_path):
    """The average is updated after each optimiser step: with decay 0 it is the model itself."""
    summary = run_training(_ema_config(tmp_path / "run", epochs=1, model_ema_decay=0.0))
    ema = load_file(str(tmp_path / "run" / "last.safetensors"))
    state = load_file(str(tmp_path / "run" / "last.state.safetensors"))
    assert all(torch.equal(v, state["train." + k]) for k, v in ema.items())
    assert summary["final_test_acc"] == summary["final_raw_test_acc"]


def test_model_ema_flags(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--model-ema",
                 "--model-ema-decay", "1.0", "--out", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "model_ema_decay must be in [0, 1), got 1.0" in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--model-ema",
                 "--model-ema-decay", "0.5", "--out", str(tmp_path / "r"), *TINY]) == 0
    import yaml

    saved = yaml.safe_load((tmp_path / "r" / "config.yaml").read_text())
    assert saved["model_ema"] is True and saved["model_ema_decay"] == 0.5


def test_muon_run_resumes_exactly(tmp_path):
    """timm's Muon (hybrid: its AdamW fallback in separate parameter groups) checkpoints its
    momenta and group settings, and a resumed run matches the uninterrupted one."""
    base = TrainConfig(model="vanillamixer_n2_8", dataset="digits", epochs=2, batch_size=32,
                       limit_train=96, limit_test=64, quiet=True, threads=1, opt="muon",
                       model_kwargs={"num_blocks": 1, "embed_dim": 16})
    run_training(TrainConfig(**{**base.to_dict(), "out": str(tmp_path / "full")}),
                 hooks=[_StopAfter(99)])
    cut = TrainConfig(**{**base.to_dict(), "out": str(tmp_path / "cut")})
    with pytest.raises(KeyboardInterrupt):
        run_training(cut, hooks=[_StopAfter(1)])
    cut.resume = True
    run_training(cut, hooks=[_StopAfter(99)])
    a, b = _rows(tmp_path / "full"), _rows(tmp_path / "cut")
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    wa = load_file(str(tmp_path / "full" / "last.safetensors"))
    wb = load_file(str(tmp_path / "cut" / "last.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    meta = json.loads((tmp_path / "cut" / "last.json").read_text())
    assert meta["config"]["opt"] == "muon"


def test_finished_run_resumed_trains_nothing_and_shows_no_bar(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--epochs", "1", "--out", str(out), *[a for a in TINY if a != "--quiet"]]
    assert main(args) == 0
    assert "batch" in capsys.readouterr().err  # the progress bar while training
    mtime = (out / "last.json").stat().st_mtime
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "batch" not in captured.err  # no (full) progress bar for a finished run
    assert "nothing left to train" in captured.out + captured.err
    assert (out / "last.json").stat().st_mtime == mtime
