"""Any timm model through hamixer: checked arguments, input defaults, presets, rebuilding."""

from __future__ import annotations

import pytest
import timm
import torch

import hamixer  # noqa: F401 - registers the presets in timm
from hamixer import ConfigError
from hamixer.models import create_model, list_models
from hamixer.models.registry import has_free_mlps, input_defaults, model_args, model_source
from hamixer.models.timm_models import PRESETS

VIT_28 = dict(img_size=28, patch_size=4, in_chans=1, num_classes=10, embed_dim=32, depth=2,
              num_heads=2)


def test_a_timm_name_builds_the_timm_model_with_checked_arguments():
    model = create_model("vit_tiny_patch16_224", **VIT_28)
    assert type(model).__name__ == "VisionTransformer" and len(model.blocks) == 2
    assert model(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    assert model.model_name == "vit_tiny_patch16_224" and model.model_args == VIT_28
    # the pipeline normalises with one value per channel at the size the model was built for
    assert model.pretrained_cfg["input_size"] == (1, 28, 28)
    assert len(model.pretrained_cfg["mean"]) == len(model.pretrained_cfg["std"]) == 1
    assert model_source("vit_tiny_patch16_224") == "timm"
    assert model_source("paramixer_m4_28") == "hamixer"
    assert has_free_mlps("vit_tiny_patch16_224")


@pytest.mark.parametrize("kwargs, message", [
    (dict(depht=2), "unknown argument 'depht' for model 'vit_tiny_patch16_224' "
                    "(VisionTransformer); did you mean: depth?"),
    (dict(depth="abc"), "model argument 'depth' of vit_tiny_patch16_224 must be an integer, "
                        "got 'abc'"),
    (dict(depth=2.5), "must be an integer, got 2.5"),
    (dict(mlp_ratio="x"), "'mlp_ratio' of vit_tiny_patch16_224 must be a number"),
    (dict(qkv_bias=1), "must be true or false, got 1"),
    (dict(init="tied"), "init must be 'default' or 'symmetric', got 'tied'"),
])
def test_bad_timm_arguments_are_one_line_errors(kwargs, message):
    with pytest.raises(ConfigError, match=None) as err:
        create_model("vit_tiny_patch16_224", **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_an_unknown_name_suggests_names_from_both_registries():
    with pytest.raises(ConfigError, match="did you mean: .*vit_tiny_patch16_224"):
        create_model("vit_tiny_patch16_22")
    with pytest.raises(ConfigError, match="did you mean: .*paramixer_m4_28"):
        model_args("paramixer_m4_2")


def test_input_defaults_of_either_source():
    assert input_defaults("vit_tiny_patch16_224") == dict(img_size=224, in_chans=3,
                                                          num_classes=1000)
    assert input_defaults("vit_tiny_patch16_224", img_size=28)["img_size"] == 28
    assert input_defaults("paramixer_m4_28") == dict(img_size=28, in_chans=1, num_classes=10)
    assert input_defaults("vit_m4_28") == dict(img_size=28, in_chans=1, num_classes=10)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_listed_built_by_timm_and_match_their_mixer(name):
    assert name in list_models("vit_*")
    model = timm.create_model(name)  # registered in timm by `import hamixer`
    assert type(model).__name__ == "VisionTransformer" and model.model_name == name
    c, h, w = model.pretrained_cfg["input_size"]
    assert model(torch.randn(2, c, h, w)).shape == (2, 10)
    mixer = create_model(name.replace("vit_", "paramixer_"))
    assert mixer.pretrained_cfg["input_size"] == (c, h, w)
    params = sum(p.numel() for p in model.parameters())
    mixer_params = sum(p.numel() for p in mixer.parameters())
    assert 0.5 < params / mixer_params < 1.5  # "about the cost of the Mixer of that size"
