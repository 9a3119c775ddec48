"""timm's feature API on the family: ``forward_intermediates``, ``prune_intermediate_layers``,
``feature_info``, ``features_only=True`` and ``group_matcher``, checked against timm's own
``MlpMixer`` with the same weights."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models import build_model_with_cfg, group_parameters
from timm.models.mlp_mixer import MlpMixer

from hamixer import ConfigError
from hamixer.models import create_model, timm_mixer_state_dict_to_hamixer

# timm's Mixer and ours at a CPU size: 32 px, patch 4 (8 × 8 tokens), 4 blocks of width 32
SHAPE = dict(img_size=32, patch_size=4, num_blocks=4, embed_dim=32, num_classes=5)


def _timm_mixer(out_indices=None, **kwargs):
    """timm's MlpMixer at SHAPE, built as timm builds its ``mixer_*`` (its entrypoints fix
    the size): ``features_only`` gives its feature wrapper, default ``out_indices`` 3."""
    feature_cfg = dict(out_indices=3 if out_indices is None else out_indices,
                       feature_cls="getter")
    return build_model_with_cfg(MlpMixer, "mixer_s16_224", pretrained=False,
                                feature_cfg=feature_cfg, **SHAPE, **kwargs)


@pytest.fixture(scope="module")
def pair():
    """(timm's MlpMixer, our mlpmixer with its weights); weights moved off their init so
    that zero heads and tiny biases hide nothing."""
    torch.manual_seed(0)
    ref = _timm_mixer().eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = create_model("mlpmixer_s16_224", **SHAPE).eval()
    ours.load_state_dict(timm_mixer_state_dict_to_hamixer(ref.state_dict()), strict=True)
    return ref, ours


def _images(batch=2):
    return torch.randn(batch, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _assert_all_close(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [
    {},
    dict(indices=2),
    dict(indices=[0, -1], norm=True),
    dict(indices=(1, 2), output_fmt="NLC"),
    dict(indices=[1], stop_early=True),
    dict(indices=3, norm=True, output_fmt="NLC", stop_early=True),
])
def test_forward_intermediates_equal_timm(pair, kwargs):
    ref, ours = pair
    x = _images()
    with torch.no_grad():
        final_ref, inter_ref = ref.forward_intermediates(x, **kwargs)
        final, inter = ours.forward_intermediates(x, **kwargs)
        only = ours.forward_intermediates(x, intermediates_only=True, **kwargs)
    _assert_all_close(inter, inter_ref)
    _assert_all_close(only, inter_ref)
    torch.testing.assert_close(final, final_ref, rtol=1e-4, atol=1e-5)
    if kwargs.get("output_fmt", "NCHW") == "NCHW":
        assert inter[0].shape == (2, 32, 8, 8)
    if not kwargs.get("stop_early"):
        torch.testing.assert_close(final, ours.forward_features(x), rtol=0, atol=1e-6)


def test_feature_info_and_group_matcher_equal_timm(pair):
    ref, ours = pair
    assert ours.feature_info == ref.feature_info
    assert ours.group_matcher() == ref.group_matcher()
    renamed = {timm_mixer_state_dict_to_hamixer({k: None}).popitem()[0]: k
               for k, _ in ref.named_parameters()}
    theirs = group_parameters(ref, ref.group_matcher())
    mine = group_parameters(ours, ours.group_matcher())
    # the same groups of the same parameters (a block registers its modules in another order)
    assert {g: {renamed[n] for n in names} for g, names in mine.items()} == \
        {g: set(names) for g, names in theirs.items()}
    group = {n: g for g, names in mine.items() for n in names}
    # the final norm goes with the last block (without its entry: with the head)
    assert group["norm.weight"] == group["blocks.3.norm1.weight"] != group["head.weight"]


@pytest.mark.parametrize("indices, prune_norm", [(1, False), ([0, 2], True), ([-2], False)])
def test_prune_intermediate_layers_equals_timm(indices, prune_norm):
    torch.manual_seed(0)
    ref = _timm_mixer().eval()
    ours = create_model("mlpmixer_s16_224", **SHAPE).eval()
    ours.load_state_dict(timm_mixer_state_dict_to_hamixer(ref.state_dict()))
    assert ours.prune_intermediate_layers(indices, prune_norm=prune_norm) == \
        ref.prune_intermediate_layers(indices, prune_norm=prune_norm)
    assert len(ours.blocks) == len(ref.blocks)
    assert isinstance(ours.norm, torch.nn.Identity) == isinstance(ref.norm, torch.nn.Identity)
    assert ours.num_classes == 0 and isinstance(ours.head, torch.nn.Identity)
    x = _images()
    with torch.no_grad():
        _assert_all_close(ours.forward_intermediates(x, indices, intermediates_only=True),
                          ref.forward_intermediates(x, indices, intermediates_only=True))


@pytest.mark.parametrize("out_indices", [None, (0, 2), [-1], 2])
@pytest.mark.parametrize("factory", ["timm", "hamixer"])
def test_features_only_equals_timm(pair, factory, out_indices):
    ref, ours = pair
    given = {} if out_indices is None else dict(out_indices=out_indices)
    theirs = _timm_mixer(features_only=True, out_indices=out_indices).eval()
    make = timm.create_model if factory == "timm" else create_model
    mine = make("mlpmixer_s16_224", features_only=True, **given, **SHAPE).eval()
    assert type(mine) is type(theirs)
    for wrapper, full in ((theirs, ref.state_dict()),
                          (mine, timm_mixer_state_dict_to_hamixer(ref.state_dict()))):
        keep = wrapper.model.state_dict()
        wrapper.model.load_state_dict({k: v for k, v in full.items() if k in keep})
    assert mine.feature_info.channels() == theirs.feature_info.channels()
    assert mine.feature_info.reduction() == theirs.feature_info.reduction()
    assert mine.feature_info.module_name() == theirs.feature_info.module_name()
    assert len(mine.model.blocks) == len(theirs.model.blocks)
    with torch.no_grad():
        got, expected = mine(_images()), theirs(_images())
        _assert_all_close(got, expected)
        # and the maps are those of the unpruned model
        _assert_all_close(got, ours.forward_intermediates(
            _images(), mine.out_indices, intermediates_only=True))
    assert mine.model_name == "mlpmixer_s16_224"


def test_n_iter_intermediate_is_the_blocks_last_application():
    torch.manual_seed(0)
    model = create_model("symmixer_n2_8", n_iter=3).eval()
    outputs = []
    handle = model.blocks[1].register_forward_hook(lambda m, i, o: outputs.append(o))
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        (inter,) = model.forward_intermediates(x, [1], output_fmt="NLC",
                                               intermediates_only=True)
    handle.remove()
    assert len(outputs) == 3
    torch.testing.assert_close(inter, outputs[-1], rtol=0, atol=0)
    assert not torch.allclose(inter, outputs[0])


def test_imixer_features():
    model = create_model("imixer_n2_8", n_iter=2).eval()
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x, norm=True)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=1e-6)
        features = timm.create_model("imixer_n2_8", n_iter=2, features_only=True,
                                     out_indices=(0, 3)).eval()
        features.model.load_state_dict(
            {k: v for k, v in model.state_dict().items() if k in features.model.state_dict()})
        maps = features(x)
        raw = model.forward_intermediates(x, (0, 3), intermediates_only=True)
    assert [m.shape for m in inter] == [(2, 64, 4, 4)] * 4
    _assert_all_close(maps, raw)
    assert features.feature_info.channels() == [64, 64]


@pytest.mark.parametrize("call, match", [
    (lambda m: m.forward_intermediates(torch.randn(1, 1, 8, 8), output_fmt="NHWC"),
     "output_fmt"),
    (lambda m: m.forward_intermediates(torch.randn(1, 1, 8, 8), indices=[4]), "block index 4"),
    (lambda m: m.forward_intermediates(torch.randn(1, 1, 8, 8), indices=5), "last 5 blocks"),
    (lambda m: m.prune_intermediate_layers([-5]), "block index -5"),
])
def test_bad_indices_and_formats_are_config_errors(call, match):
    with pytest.raises(ConfigError, match=match):
        call(create_model("paramixer_n2_8"))


def test_feature_arguments_are_checked():
    with pytest.raises(ConfigError, match="needs features_only=True"):
        create_model("paramixer_n2_8", out_indices=(1,))
    with pytest.raises(ConfigError, match="out_indices"):
        create_model("paramixer_n2_8", features_only=True, out_indices="last")
    with pytest.raises(ConfigError, match="feature_cls"):
        create_model("paramixer_n2_8", features_only=True, feature_cls="hook")
    with pytest.raises(ConfigError, match="block index 7"):
        timm.create_model("paramixer_n2_8", features_only=True, out_indices=(7,))
