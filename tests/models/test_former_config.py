"""The Transformers' typed configuration: HamFormer, the registry and the argument checks
share :class:`FormerConfig`, whose shared part (:class:`PatchConfig`) is the Mixers' too, and
AsymFormer's zero and free starts are their reference's function without a second model."""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch

from hamixer import ConfigError
from hamixer.models import FormerConfig, HamFormer, MixerConfig, PatchConfig, create_model
from hamixer.models.registry import MODEL_CONFIGS, builder_args, builder_hints, model_args
from models.test_config_family import assert_builds_agree

SMALL = dict(num_blocks=2)


@pytest.mark.parametrize("changes, message", [
    (dict(num_heads=3), "embed_dim 64 does not split into 3 heads"),
    (dict(num_heads=0), "does not split into 0 heads"),
    (dict(beta=0.0), "beta must be > 0"),
    (dict(attention="tied"), "attention must be one of"),
    (dict(mlp="gated"), "mlp must be one of"),
    (dict(mlp_ratio=0.01), "gives an empty hidden layer"),
    (dict(breaking_init="zero"), "needs asymmetric attention and MLPs"),
    (dict(breaking_weight_decay=False), "needs breaking matrices"),
    (dict(n_iter=0), "n_iter must be >= 1"),
    (dict(num_blocks=0), "num_blocks must be >= 1"),
    (dict(drop_path_rate=1.0), r"drop_path_rate must be in \[0, 1\)"),
    (dict(img_size=9), "img_size 9 is not a multiple of patch_size 2"),
    (dict(breaking_init="half"), "breaking_init must be one of"),
])
def test_bad_values_are_refused_by_the_config_and_before_any_build(changes, message):
    args = {**MODEL_CONFIGS["symformer_n2_8"], **changes}
    with pytest.raises(ConfigError, match=message):
        FormerConfig(**args)
    with pytest.raises(ConfigError, match=message):
        model_args("symformer_n2_8", **changes)  # the registry, before anything is built
    with pytest.raises(ConfigError, match=message):
        timm.create_model("symformer_n2_8", **changes)


def test_a_bad_keyword_is_one_line_naming_it():
    for make in (lambda: timm.create_model("symformer_m4_28", n_heads=4),
                 lambda: create_model("symformer_m4_28", n_heads=4),
                 lambda: HamFormer(n_heads=4)):
        with pytest.raises(ConfigError, match="unknown argument 'n_heads'") as err:
            make()
        assert "\n" not in str(err.value) and "num_heads" in str(err.value)
    with pytest.raises(ConfigError, match="model argument 'num_heads'"):
        timm.create_model("symformer_m4_28", num_heads="four")
    with pytest.raises(TypeError):
        HamFormer(MixerConfig())


@pytest.mark.parametrize("name, kwargs", [
    ("symformer_n2_8", {}),
    ("paraformer_n2_8", dict(init="symmetric", n_iter=2)),
    ("asymformer_n2_8", dict(breaking_init="free", breaking_weight_decay=False)),
    ("asymformer_n2_8", dict(breaking_init="zero", proj_drop_rate=0.1)),
])
def test_config_keywords_and_registry_build_the_same_model(name, kwargs):
    assert_builds_agree(HamFormer, FormerConfig, name, kwargs)


def test_registry_checks_the_transformers_against_their_config():
    assert builder_args(HamFormer) == FormerConfig.field_names()
    hints = builder_hints(HamFormer)
    assert hints["num_heads"] is int and hints["exclude_self"] is bool
    for family in ("symformer", "paraformer", "asymformer"):
        assert FormerConfig(**MODEL_CONFIGS[f"{family}_m4_28"]).num_heads == 3
    assert model_args("paraformer_n2_8", num_heads=4)["num_heads"] == 4


def test_the_shared_fields_are_declared_and_checked_once():
    shared = set(PatchConfig.field_names())
    assert shared <= set(MixerConfig.field_names()) & set(FormerConfig.field_names())
    assert {"num_heads", "attention", "beta"}.isdisjoint(MixerConfig.field_names())
    for config in (MixerConfig, FormerConfig):
        with pytest.raises(ConfigError, match="asym_lambda must be >= 0, got -1"):
            config(asym_lambda=-1)
    config = FormerConfig(embed_dim=32, num_heads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.num_heads = 4
    assert config.replace(num_heads=4).num_heads == 4 and config.num_heads == 2


def _counting_builds(monkeypatch) -> list[int]:
    calls: list[int] = []
    original = HamFormer.__init__

    def counted(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(HamFormer, "__init__", counted)
    return calls


@pytest.mark.parametrize("init, reference", [("zero", "symformer_n2_8"),
                                             ("free", "paraformer_n2_8")])
def test_zero_and_free_starts_are_the_reference_without_a_second_model(init, reference,
                                                                       monkeypatch):
    kwargs = dict(SMALL, proj_drop_rate=0.25, drop_path_rate=0.2)
    torch.manual_seed(11)
    ref = create_model(reference, **kwargs)
    ref_after = torch.rand(3)
    calls = _counting_builds(monkeypatch)
    torch.manual_seed(11)
    asym = create_model("asymformer_n2_8", breaking_init=init, **kwargs)
    assert len(calls) == 1  # no twin built inside the constructor
    assert torch.equal(torch.rand(3), ref_after)  # the random stream goes on as the reference's
    theirs = ref.state_dict()
    for key, value in asym.state_dict().items():
        if ".attn." not in key and ".mlp." not in key:  # stem, position, norms, head
            assert torch.equal(value, theirs[key]), key
    for mine, ref_blk in zip(asym.blocks, ref.blocks, strict=True):
        assert torch.equal(mine.attn.query_weight, ref_blk.attn.query_weight)
        assert torch.equal(mine.attn.key_weight, ref_blk.attn.key_weight)
        assert torch.equal(mine.mlp.w1, ref_blk.mlp.w1)
        if init == "zero":
            assert mine.penalty() == 0
    x = torch.randn(4, 1, 8, 8)
    for train in (False, True):  # dropout and drop path follow the reference's too
        asym.train(train)
        ref.train(train)
        torch.manual_seed(5)
        out = asym.forward_features(x)
        torch.manual_seed(5)
        # the breaking matrices are differences formed in float32: equal up to rounding
        torch.testing.assert_close(out, ref.forward_features(x), rtol=0, atol=1e-5)
