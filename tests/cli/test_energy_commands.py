"""``hamixer memory train`` and ``hamixer dynamics``: outputs, checkpoints, one-line errors."""

import json

import pytest
import torch

from hamixer.cli import main
from hamixer.data import default_data_dir
from hamixer.experiments.memory import load_memory

pytestmark = pytest.mark.integration  # runs the command line end to end


def test_memory_train_digits_writes_checkpoint_and_figures(tmp_path, capsys):
    out = tmp_path / "mem"
    rc = main(["memory", "train", "--dataset", "digits", "--epochs", "2", "--hidden", "32",
               "--out", str(out), "--no-progress", "--device", "cpu"])
    assert rc == 0
    for name in ("model.safetensors", "config.json", "receptive_fields.png",
                 "energy_descent.png", "denoising.png"):
        assert (out / name).stat().st_size > 0, name
    meta = json.loads((out / "config.json").read_text())
    assert meta["dataset"] == "digits" and meta["config"]["visible"] == 64
    assert len(meta["history"]) == 2 and meta["test_mse"] > 0
    # Energy from random starts must fall (the descent is on a Lyapunov function).
    assert all(b < a for a, b in zip(meta["descent"]["energy_first"],
                                     meta["descent"]["energy_last"], strict=True))
    model = load_memory(out)
    assert model.receptive_fields(1).shape == (32, 8, 8)
    assert "test MSE" in capsys.readouterr().out


def test_memory_training_reduces_the_denoising_error():
    from hamixer.data import load_digits_arrays
    from hamixer.experiments.memory import EnergyMemory, MemoryConfig, images_to_unit, train_memory

    torch.manual_seed(0)
    train = images_to_unit(load_digits_arrays(True).images)
    test = images_to_unit(load_digits_arrays(False).images)
    model = EnergyMemory(MemoryConfig(visible=64, hidden=(64, 64), image_shape=(8, 8)))
    before = train_memory(model, train, test, epochs=0, progress=False).test_mse
    after = train_memory(model, train, test, epochs=5, lr=3e-3, progress=False)
    assert after.test_mse < 0.9 * before
    assert after.test_mse < after.test_noisy_mse  # better than returning the noisy input


@pytest.mark.slow
@pytest.mark.skipif(default_data_dir("fashion-mnist") is None,
                    reason="Fashion-MNIST not found: set HAMIXER_DATA_DIR")
def test_memory_train_fashion_mnist_subset(tmp_path):
    out = tmp_path / "fm"
    rc = main(["memory", "train", "--dataset", "fashion-mnist", "--epochs", "1",
               "--train-size", "256", "--test-size", "256", "--hidden", "16", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    meta = json.loads((out / "config.json").read_text())
    assert meta["config"]["visible"] == 784 and meta["train_images"] == 256
    assert meta["test_images"] == 256


@pytest.mark.parametrize("argv,needle", [
    (["--epochs", "0"], "--epochs"),
    (["--dataset", "fashion-mnist", "--data-dir", "/nonexistent/dir"], "not found"),
    (["--dataset", "digits", "--data-dir", "/tmp"], "digits"),
    (["--device", "cuda:99" if torch.cuda.is_available() else "cuda"], "cuda"),
])
def test_memory_bad_input_is_one_line_error(tmp_path, capsys, argv, needle):
    rc = main(["memory", "train", "--out", str(tmp_path / "x"), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and needle in err
    assert not (tmp_path / "x" / "model.safetensors").exists()


def test_dynamics_writes_json_and_plots(tmp_path, capsys):
    out = tmp_path / "dyn"
    rc = main(["dynamics", "--tokens", "2", "--channels", "3", "--points", "41", "--t-max", "4",
               "--method", "rk4", "--step-size", "0.05", "--out", str(out)])
    assert rc == 0
    data = json.loads((out / "dynamics.json").read_text())
    sym = data["runs"]["symmetric"]
    assert len(sym["t"]) == 41 and len(sym["x"][0][0]) == 2 and len(sym["x"][0][0][0]) == 3
    assert data["summary"]["symmetric"]["monotone"]
    assert data["summary"]["landscape_symmetric"]["monotone"]
    for name in ("activations.png", "energy.png", "landscape.png"):
        assert (out / name).stat().st_size > 0
    assert "symmetric" in capsys.readouterr().out


def test_dynamics_bad_method_is_one_line_error(tmp_path, capsys):
    rc = main(["dynamics", "--method", "leapfrog", "--out", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "leapfrog" in err and "\n" not in err
