"""The start of a run rebuilt from its seed, for the update measures of a resumed run."""

import pytest
import torch

from hamixer.errors import HamixerError
from hamixer.experiments.weight_updates import rebuild_initial_model


def test_rebuilding_a_start_leaves_the_random_generators_alone():
    """A resumed run's hook rebuilds its start by seeding; what the run draws next is kept."""
    import random

    import numpy as np

    meta = {"path": "run/last.json", "model": "symmixer_n2_8", "model_kwargs": {},
            "config": {"seed": 3}}
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    first = rebuild_initial_model(meta)
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert (np.random.get_state()[1] == states[2]).all()
    torch.manual_seed(123)  # the rebuild depends on the seed alone, not on the state before
    second = rebuild_initial_model(meta)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(HamixerError, match="does not record its run's seed"):
        rebuild_initial_model({**meta, "config": {}})
