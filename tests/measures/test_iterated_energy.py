"""The energy of the features a repeated block iterates (hamixer.measures.iterated_energy)."""

import pytest
import torch

from hamixer.errors import ConfigError
from hamixer.measures.iterated_energy import descent_summary, iterated_energies
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


@pytest.mark.parametrize("name", ["paramixer_n2_8", "vanillamixer_n2_8"])
def test_free_blocks_have_no_energy(name):
    # the vanilla Mixer's serial block has no energy method: the same one-line error
    with pytest.raises(ConfigError, match="no energy|only tied"):
        iterated_energies(create_model(name), torch.randn(2, 1, 8, 8))
