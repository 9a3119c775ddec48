"""AsymMixer's ``breaking_init`` (where W̃ starts) and ``breaking_weight_decay``."""

import pytest
import torch

from hamixer.errors import ConfigError
from hamixer.models import create_model

SMALL = dict(num_blocks=2, embed_dim=16)


def _built(name, seed, **kwargs):
    torch.manual_seed(seed)
    model = create_model(name, **SMALL, **kwargs).double().eval()
    return model, torch.rand(3)  # the random state the construction leaves


def _mlps(model):
    return [m for b in model.blocks for m in (b.token_mlp, b.channel_mlp)]


@pytest.mark.parametrize("init, reference", [("zero", "symmixer_n2_8"),
                                             ("free", "paramixer_n2_8")])
def test_start_equals_reference_at_same_seed(init, reference):
    asym, after_asym = _built("asymmixer_n2_8", 5, breaking_init=init)
    ref, after_ref = _built(reference, 5)
    x = torch.randn(4, 1, 8, 8, dtype=torch.float64)
    # the head starts at zero, so compare the features (and the matrices themselves)
    torch.testing.assert_close(asym.forward_features(x), ref.forward_features(x),
                               rtol=0, atol=1e-6)
    for a, r in zip(_mlps(asym), _mlps(ref), strict=True):
        torch.testing.assert_close(a.w1, r.w1, rtol=0, atol=0)
        torch.testing.assert_close(a.w2, r.w2, rtol=0, atol=1e-6)
    # and the random stream goes on as the reference's does (same data order, dropout)
    assert torch.equal(after_asym, after_ref)


def test_zero_start_has_no_breaking_matrix_and_xavier_has_one():
    zero, _ = _built("asymmixer_n2_8", 0, breaking_init="zero")
    assert all(m.breaking.abs().max() == 0 for m in _mlps(zero))
    xavier, _ = _built("asymmixer_n2_8", 0)
    ratios = [(m.breaking.norm() / m.weight.norm()).item() for m in _mlps(xavier)]
    assert all(0.5 < r < 2 for r in ratios)  # independent matrices of the same scale


def test_free_start_differs_from_xavier_and_is_recorded():
    free, _ = _built("asymmixer_n2_8", 0, breaking_init="free")
    xavier, _ = _built("asymmixer_n2_8", 0)
    assert not torch.equal(_mlps(free)[0].breaking, _mlps(xavier)[0].breaking)
    assert free.model_args["breaking_init"] == "free"


def test_bad_breaking_init():
    with pytest.raises(ConfigError, match="breaking_init must be one of"):
        create_model("asymmixer_n2_8", breaking_init="ones")
    with pytest.raises(ConfigError, match="needs asymmetric MLPs"):
        create_model("paramixer_n2_8", breaking_init="zero")


@pytest.mark.parametrize("decay", [True, False])
@pytest.mark.parametrize("start", ["xavier", "free"])
def test_breaking_weight_decay_sets_the_optimizer_groups(decay, start):
    """timm's ``no_weight_decay()`` exempts every W̃ (only W̃) from AdamW's decay."""
    from hamixer.train.config import TrainConfig
    from hamixer.train.setup import make_optimizer_and_scheduler

    model = create_model("asymmixer_n2_8", **SMALL, breaking_weight_decay=decay,
                         breaking_init=start)
    optimizer, _ = make_optimizer_and_scheduler(TrainConfig(weight_decay=0.05), model, 10)
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for g in optimizer.param_groups if g["weight_decay"] > 0
               for p in g["params"]}
    breaking = {n for n in names.values() if n.endswith(".breaking")}
    assert len(breaking) == 2 * SMALL["num_blocks"]
    assert (breaking & decayed) == (breaking if decay else set())
    assert "blocks.0.token_mlp.weight" in decayed  # W1 is decayed either way


def test_breaking_weight_decay_needs_a_breaking_matrix():
    with pytest.raises(ConfigError, match="breaking_weight_decay=False needs a breaking"):
        create_model("paramixer_n2_8", breaking_weight_decay=False)
