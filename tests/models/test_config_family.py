"""The family's one typed configuration: HamMixer, the registry and the argument checks share
:class:`MixerConfig`, and the registry keeps serving builders with their own arguments."""

from __future__ import annotations

import dataclasses

import pytest
import timm
import torch
from torch import nn

from hamixer import ConfigError
from hamixer.models import HamMixer, MixerConfig, create_model, register_family, registry
from hamixer.models.registry import MODEL_CONFIGS, builder_args, builder_hints, model_args


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name, kwargs", [
    ("mlpmixer_n2_8", {}),
    ("symmixer_n2_8", dict(n_iter=2)),
    ("asymmixer_n2_8", dict(breaking_init="free", breaking_weight_decay=False)),
    ("asymmixer_n2_8", dict(breaking_init="zero")),
    ("paramixer_n2_8", dict(init="symmetric")),
])
def test_config_keywords_and_registry_build_the_same_weights(name, kwargs):
    assert_builds_agree(HamMixer, MixerConfig, name, kwargs)


def assert_builds_agree(model_cls, config_cls, name, kwargs):
    """``name`` with ``kwargs`` from a config, from keywords, from both, by the registry and
    by timm: the same weights, random stream after construction and config."""
    args = model_args(name, **kwargs)
    built = []
    for make in (lambda: model_cls(config_cls(**args)), lambda: model_cls(**args),
                 lambda: model_cls(config_cls(), **args), lambda: create_model(name, **kwargs),
                 lambda: timm.create_model(name, **kwargs)):
        torch.manual_seed(3)
        model = make()
        built.append((_weights(model), torch.rand(2), model.config))
    for weights, after, config in built[1:]:
        assert _same(weights, built[0][0])
        assert torch.equal(after, built[0][1])  # the same random stream after construction
        assert config == built[0][2] == config_cls(**args)


def test_breaking_start_builds_no_second_model(monkeypatch):
    calls = []
    original = HamMixer.__init__

    def counted(self, *args, **kwargs):
        calls.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(HamMixer, "__init__", counted)
    create_model("asymmixer_n2_8", breaking_init="free")
    assert len(calls) == 1


def test_registry_checks_arguments_against_the_config():
    assert builder_args(HamMixer) == MixerConfig.field_names()
    assert builder_hints(HamMixer)["n_iter"] is int
    assert set(MixerConfig.field_names()) >= set(MODEL_CONFIGS["asymmixer_t4_28"])
    # values are refused by the registry before anything is built, with the config's message
    with pytest.raises(ConfigError, match="n_iter must be >= 1"):
        model_args("symmixer_n2_8", n_iter=0)
    with pytest.raises(ConfigError, match="needs asymmetric MLPs"):
        model_args("paramixer_n2_8", breaking_init="zero")
    with pytest.raises(ConfigError, match="model argument 'n_iter'"):
        model_args("imixer_n2_8", n_iter=1.5)
    with pytest.raises(ConfigError, match="img_size 9 is not a multiple"):
        model_args("imixer_n2_8", img_size=9)


def test_config_is_typed_and_frozen():
    config = MixerConfig(embed_dim=32, num_blocks=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.n_iter = 2
    assert config.replace(n_iter=2).n_iter == 2 and config.n_iter == 1
    with pytest.raises(ConfigError, match="mlp must be one of"):
        config.replace(mlp="tied")
    with pytest.raises(TypeError):
        HamMixer(object())


class _Toy(nn.Module):
    """A model of another family with its own constructor arguments (as a Transformer
    family registers itself): the registry checks and builds it by its own signature."""

    def __init__(self, num_classes: int = 1000, img_size: int = 224, in_chans: int = 3,
                 patch_size: int = 16, num_blocks: int = 8, embed_dim: int = 512,
                 mlp_ratio: float | tuple[float, float] = 4.0, heads: int = 2,
                 block: str = "attention") -> None:
        super().__init__()
        self.heads, self.block = heads, block
        self.head = nn.Linear(in_chans * img_size * img_size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x.flatten(1))


@pytest.fixture
def toy_family():
    names = register_family("toyformer", dict(block="attention", heads=2), builder=_Toy)
    yield names
    for name in names:  # timm keeps the names; the registry forgets them
        for table in (MODEL_CONFIGS, registry.BUILDERS, registry.default_cfgs):
            table.pop(name, None)
    registry.FAMILIES.pop("toyformer", None)


def test_a_family_with_its_own_builder_keeps_working(toy_family):
    assert "toyformer_n2_8" in toy_family
    assert "heads" in builder_args(_Toy) and "n_iter" not in builder_args(_Toy)
    assert builder_hints(_Toy)["heads"] is int
    assert model_args("toyformer_n2_8", heads=4)["heads"] == 4
    with pytest.raises(ConfigError, match="unknown argument 'n_iter'"):
        model_args("toyformer_n2_8", n_iter=2)
    with pytest.raises(ConfigError, match="model argument 'heads'"):
        model_args("toyformer_n2_8", heads="four")
    for model in (create_model("toyformer_n2_8", heads=3),
                  timm.create_model("toyformer_n2_8", heads=3)):
        assert isinstance(model, _Toy) and model.heads == 3 and model.block == "attention"
        assert model(torch.randn(2, 1, 8, 8)).shape == (2, 10)


def test_a_family_that_makes_no_valid_config_is_refused():
    with pytest.raises(ConfigError, match="n_iter must be >= 1"):
        register_family("brokenmixer", dict(n_iter=0))
    assert "brokenmixer" not in registry.FAMILIES and "brokenmixer_n2_8" not in MODEL_CONFIGS
