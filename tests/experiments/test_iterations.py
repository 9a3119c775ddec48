"""The energy of the features a repeated block iterates (``n_iter``)."""

import json

import pytest
import torch

from hamixer.cli import main
from hamixer.errors import ConfigError
from hamixer.experiments.iterations import descent_summary, iterated_energies
from hamixer.models import create_model


def test_energies_follow_each_application():
    model = create_model("symmixer_n2_8", num_blocks=2, n_iter=3).double().eval()
    images = torch.randn(5, 1, 8, 8, dtype=torch.float64)
    per_block = iterated_energies(model, images)
    assert [len(e) for e in per_block] == [4, 4]
    x = model.embed(images)
    first = model.blocks[0]
    assert per_block[0][0] == pytest.approx(first.energy(x).mean().item())
    after_two = first(first(x))
    assert per_block[0][2] == pytest.approx(first.energy(after_two).mean().item())
    summary = descent_summary(per_block)
    assert summary["applications"] == 6 and 0 <= summary["lowered"] <= 6


def test_free_blocks_have_no_energy():
    with pytest.raises(ConfigError):
        iterated_energies(create_model("paramixer_n2_8"), torch.randn(2, 1, 8, 8))


@pytest.mark.integration
def test_energy_command_on_a_trained_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "symmixer", "--dataset", "digits", "--epochs", "1",
                 "--model-kwargs", "num_blocks=2", "embed_dim=16", "n_iter=2",
                 "--limit-train", "64", "--limit-test", "32", "--quiet", "--threads", "1",
                 "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["energy", str(out), "--images", "16", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["n_iter"] == 2 and res["images"] == 16 and len(res["energies"]) == 2
    assert res["applications"] == 4
