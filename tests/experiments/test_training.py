"""The one training path of the commands: where ``--init symmetric`` of a model with tied MLPs
is dropped (a plan's shared setting) or refused (one run)."""

import pytest

from hamixer.errors import ConfigError
from hamixer.experiments.training import settle_init
from hamixer.train.config import TrainConfig


def _cfg(model, **kwargs):
    return TrainConfig(model=model, model_kwargs={"embed_dim": 16, **kwargs})


@pytest.mark.parametrize("model", ["paramixer_n2_8", "vanillamixer_n2_8"])
@pytest.mark.parametrize("in_plan", [True, False])
def test_a_free_model_keeps_init_symmetric(model, in_plan):
    cfg = _cfg(model, init="symmetric")
    assert settle_init(cfg, in_plan) is cfg


@pytest.mark.parametrize("model", ["symmixer_n2_8", "asymmixer_n2_8"])
def test_a_tied_model_drops_a_shared_init_and_refuses_its_own(model):
    cfg = _cfg(model, init="symmetric")
    settled = settle_init(cfg, in_plan=True)
    assert settled.model_kwargs == {"embed_dim": 16}
    assert cfg.model_kwargs == {"embed_dim": 16, "init": "symmetric"}  # not changed in place
    with pytest.raises(ConfigError, match=f"{model} has none, so it would have no effect"):
        settle_init(cfg, in_plan=False)
    plain = _cfg(model)
    assert settle_init(plain, in_plan=False) is plain
