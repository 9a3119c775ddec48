"""Weights in the official paramixer, official iMixer and timm layouts load into hamixer's
models and compute the same outputs; export gives what those networks load strictly."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F
from timm.models.mlp_mixer import MlpMixer
from torch import nn

from hamixer import ConfigError, create_model, load_external
from hamixer.models import fitting_kwargs, read_state_dict, save_external, to_external
from hamixer.models.convert import detect_layout
from models.official_reference import official_imixer, official_mixer

TINY = dict(embed_dim=8, num_blocks=2, num_classes=5)  # n2_8: 8×8 px, patch 2, S = 16
OFFICIAL = dict(final_norm="token", norm_affine="elementwise")
FAMILIES = ["vanillamixer", "paramixer", "symmixer", "asymmixer"]


@torch.no_grad()
def _randomize(model: nn.Module) -> nn.Module:
    """Weights far from any initialisation: gains around 1, everything else random (a zero
    head or unit gains would hide a mapping mistake); spectral vectors of unit length."""
    for name, p in [*model.named_parameters(), *model.named_buffers()]:
        if name.endswith(("weight_sigma",)):
            continue
        if "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.2 * torch.randn_like(p))
        elif name.endswith(("weight_u", "weight_v", ".u", ".v")):
            p.copy_(F.normalize(torch.randn_like(p), dim=0))
        else:
            p.copy_(0.4 * torch.randn_like(p))
    # as loaded weights: hamixer's spectral norms then use the stored u, v, not a fresh SVD
    model.load_state_dict(model.state_dict())
    return model.eval()


def _hamixer(family: str, **kwargs) -> nn.Module:
    return create_model(f"{family}_n2_8", **TINY, **kwargs).eval()


def _same_outputs(ref: nn.Module, ours: nn.Module) -> None:
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert expected.abs().max() > 1e-2  # a function that could have come out different
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------- official paramixer
#: block 0 of each official network, key by key (models/layers.py of the paramixer repo)
OFFICIAL_BLOCK_KEYS = {
    "vanillamixer": {"norm1.weight", "norm1.bias", "mlp_tokens.fc1.weight",
                     "mlp_tokens.fc2.weight", "norm2.weight", "norm2.bias",
                     "mlp_channels.fc1.weight", "mlp_channels.fc2.weight"},
    "paramixer": {"norm.weight", "norm.bias", "mlp_tokens.fc1.weight", "mlp_tokens.fc2.weight",
                  "mlp_channels.fc1.weight", "mlp_channels.fc2.weight"},
    "symmixer": {"norm.weight", "norm.bias", "mlp_tokens.fc2.weight", "mlp_channels.fc2.weight"},
    "asymmixer": {"norm.weight", "norm.bias", "mlp_tokens.fc1.weight", "mlp_tokens.fc2.weight",
                  "mlp_channels.fc1.weight", "mlp_channels.fc2.weight"},
}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("n_iter", [1, 2])
def test_official_paramixer_weights_load_and_compute_the_same(family, n_iter):
    ref = _randomize(official_mixer(family, n_iter=n_iter))
    state = ref.state_dict()
    assert {k[len("blocks.0."):] for k in state if k.startswith("blocks.0.")} == \
        OFFICIAL_BLOCK_KEYS[family]
    assert state["blocks.0.mlp_tokens." + ("fc2" if family == "symmixer" else "fc1")
                 + ".weight"].shape == (4, 16)  # [token hidden, S]
    assert state["norm.weight"].shape == (8,)  # the final norm is per token
    ours = _hamixer(family, n_iter=n_iter, **OFFICIAL)
    assert load_external(ours, state) == "paramixer"
    _same_outputs(ref, ours)
    back = to_external(ours, "paramixer")
    assert back.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(back[key], value, atol=0, rtol=0)


def test_vanilla_mixer_with_biases():
    ref = _randomize(official_mixer("vanillamixer", bias=True))
    ours = _hamixer("vanillamixer", mlp_bias=True, final_norm="token")
    load_external(ours, ref.state_dict(), layout="paramixer")
    _same_outputs(ref, ours)


@pytest.mark.parametrize("family", ["paramixer", "symmixer", "asymmixer"])
def test_scalar_gain_takes_uniform_official_gains_and_refuses_varying_ones(family):
    ref = _randomize(official_mixer(family))
    with torch.no_grad():
        for block in ref.blocks:
            block.norm.weight.fill_(0.7)
    ours = _hamixer(family, final_norm="token")  # the family's scalar gain
    load_external(ours, ref.state_dict())
    assert ours.blocks[0].norm.weight.shape == () and ours.blocks[0].norm.weight == 0.7
    _same_outputs(ref, ours)
    exported = to_external(ours, "paramixer")  # the scalar gain as the official [S, C] one
    fresh = official_mixer(family).eval()
    fresh.load_state_dict(exported, strict=True)
    _same_outputs(fresh, ours)
    with torch.no_grad():
        ref.blocks[1].norm.weight[3, 2] += 0.1
    with pytest.raises(ConfigError, match=r"blocks\.1\.norm\.weight.*norm_affine='elementwise'"):
        load_external(_hamixer(family, final_norm="token"), ref.state_dict())


def test_asymmixer_tied_and_breaking_matrices_land_where_the_official_code_keeps_them():
    ref = _randomize(official_mixer("asymmixer"))
    ours = _hamixer("asymmixer", **OFFICIAL)
    load_external(ours, ref.state_dict())
    mlp, theirs = ours.blocks[0].channel_mlp, ref.blocks[0].mlp_channels
    assert torch.equal(mlp.weight, theirs.fc1.weight)
    assert torch.equal(mlp.breaking, theirs.fc2.weight)
    assert torch.equal(mlp.w2, theirs.fc1.weight.T + theirs.fc2.weight)


def test_fitting_kwargs_build_the_model_an_official_file_needs(tmp_path):
    ref = _randomize(official_mixer("symmixer", num_classes=7))
    path = tmp_path / "official.pth"
    torch.save(ref.state_dict(), path)
    kwargs = fitting_kwargs(path)
    assert kwargs == {"num_classes": 7, "final_norm": "token", "mlp_bias": False,
                      "norm_affine": "elementwise"}
    ours = create_model("symmixer_n2_8", **{**TINY, **kwargs}).eval()
    load_external(ours, path)
    _same_outputs(ref, ours)


# --------------------------------------------------------------------------- official iMixer
def test_official_imixer_weights_load_and_compute_the_same():
    ref = _randomize(official_imixer(hidden_ratio=2.0))
    state = ref.state_dict()
    assert {k for k in state if k.startswith("blocks.0.mlp_tokens.fc_sn1.")} == {
        f"blocks.0.mlp_tokens.fc_sn1.{n}"
        for n in ("weight_orig", "bias", "weight_u", "weight_v", "weight_sigma")}
    for block in ref.blocks:  # converged power iterations, σ well above coeff: normalising
        for sn in (block.mlp_tokens.fc_sn1, block.mlp_tokens.fc_sn2):
            with torch.no_grad():
                sn.weight_orig.mul_(4)
                u, _, vh = torch.linalg.svd(sn.weight_orig)
                sn.weight_u.copy_(u[:, 0])
                sn.weight_v.copy_(vh[0])
    sn = ref.blocks[0].mlp_tokens.fc_sn1
    assert torch.dot(sn.weight_u, sn.weight_orig @ sn.weight_v) > 1.5
    ours = _hamixer("imixer", h_ratio=2.0)
    assert load_external(ours, state) == "imixer"
    _same_outputs(ref, ours)
    back = to_external(ours, "imixer")
    assert back.keys() == state.keys()
    fresh = official_imixer(hidden_ratio=2.0).eval()
    fresh.load_state_dict(back, strict=True)
    _same_outputs(fresh, ours)
    sigma = back["blocks.0.mlp_tokens.fc_sn1.weight_sigma"]
    torch.testing.assert_close(sigma, torch.dot(sn.weight_u, sn.weight_orig @ sn.weight_v)
                               .reshape(1))


# -------------------------------------------------------------------------------- timm
def test_timm_mixer_weights_load_and_compute_the_same():
    ref = _randomize(MlpMixer(num_classes=5, img_size=8, in_chans=1, patch_size=2,
                              num_blocks=2, embed_dim=8))
    ours = _hamixer("mlpmixer")
    assert load_external(ours, ref.state_dict()) == "timm"
    _same_outputs(ref, ours)
    fresh = MlpMixer(num_classes=5, img_size=8, in_chans=1, patch_size=2, num_blocks=2,
                     embed_dim=8).eval()
    fresh.load_state_dict(to_external(ours, "timm"), strict=True)
    _same_outputs(fresh, ours)


# ----------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("family,layout,kwargs", [
    ("mlpmixer", "timm", {}),
    ("imixer", "imixer", {}),
    ("vanillamixer", "paramixer", {"final_norm": "token"}),
    ("symmixer", "paramixer", {"final_norm": "token", "n_iter": 2}),
    ("asymmixer", "paramixer", {"final_norm": "token", "norm_affine": "elementwise"}),
    ("asymmixer", "hamixer", {"n_iter": 3}),
])
def test_export_then_import_gives_the_same_weights(family, layout, kwargs):
    ours = _randomize(_hamixer(family, **kwargs))
    again = _hamixer(family, **kwargs)
    assert load_external(again, to_external(ours, layout)) == layout
    for key, value in ours.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, atol=0, rtol=0)
    _same_outputs(ours, again)


def test_symmixer_export_stores_the_tied_matrix_once():
    ours = _randomize(_hamixer("symmixer", final_norm="token"))
    state = to_external(ours, "paramixer")
    assert [k for k in state if k.startswith("blocks.0.mlp_tokens.")] == \
        ["blocks.0.mlp_tokens.fc2.weight"]
    assert torch.equal(state["blocks.0.mlp_tokens.fc2.weight"], ours.blocks[0].token_mlp.weight)


# ------------------------------------------------------------------------- what is refused
def test_layouts_are_detected_from_keys():
    assert detect_layout(official_mixer("vanillamixer").state_dict()) == "paramixer"
    assert detect_layout(official_mixer("symmixer").state_dict()) == "paramixer"
    assert detect_layout(official_imixer().state_dict()) == "imixer"
    assert detect_layout(MlpMixer(img_size=8, patch_size=2, embed_dim=8,
                                  num_blocks=1).state_dict()) == "timm"
    assert detect_layout(_hamixer("symmixer").state_dict()) == "hamixer"
    with pytest.raises(ConfigError, match="fits no known layout"):
        detect_layout({"conv.weight": torch.zeros(2, 2)})


@pytest.mark.parametrize("family,state_of,match", [
    # timm's serial per-token Mixer has no counterpart in a parallel tied model
    ("symmixer", lambda: MlpMixer(num_classes=5, img_size=8, in_chans=1, patch_size=2,
                                  num_blocks=2, embed_dim=8).state_dict(),
     "cannot load symmixer_n2_8 in the timm layout: block 0: a ParallelMixerBlock"),
    # a SymMixer file in a ParaMixer: the tie has no fc1
    ("paramixer", lambda: official_mixer("symmixer").state_dict(),
     r"missing blocks\.0\.mlp_tokens\.fc1\.weight"),
    # the right family, another width
    ("paramixer", lambda: official_mixer("paramixer", dim=16).state_dict(),
     "shapes differ: stem.proj.weight"),
])
def test_weights_of_another_model_are_one_line_errors(family, state_of, match):
    with pytest.raises(ConfigError, match=match) as err:
        load_external(_hamixer(family, **OFFICIAL), state_of())
    assert "\n" not in str(err.value)


def test_what_the_official_network_cannot_express_is_refused():
    with pytest.raises(ConfigError, match="final_norm='token'"):
        load_external(_hamixer("symmixer"), official_mixer("symmixer").state_dict())
    with pytest.raises(ConfigError, match="final_norm='token'"):
        to_external(_hamixer("paramixer"), "paramixer")
    with pytest.raises(ConfigError, match="mlp_bias=False"):
        to_external(_hamixer("symmixer", final_norm="token", mlp_bias=True), "paramixer")
    with pytest.raises(ConfigError, match="n_iter=2"):
        to_external(_hamixer("mlpmixer", n_iter=2), "timm")
    with pytest.raises(ConfigError, match="stem_norm=True"):
        to_external(_hamixer("mlpmixer", stem_norm=True), "timm")
    with pytest.raises(ConfigError, match="other than GELU"):
        to_external(_hamixer("mlpmixer", act_layer=nn.SiLU), "timm")
    with pytest.raises(ConfigError, match="unknown layout 'flax'"):
        to_external(_hamixer("mlpmixer"), "flax")


def test_a_timm_model_loads_its_own_state_dict_strictly():
    model = MlpMixer(num_classes=5, img_size=8, in_chans=1, patch_size=2, num_blocks=2,
                     embed_dim=8)
    ref = _randomize(MlpMixer(num_classes=5, img_size=8, in_chans=1, patch_size=2,
                              num_blocks=2, embed_dim=8))
    assert load_external(model, ref.state_dict()) == "hamixer"
    _same_outputs(ref, model.eval())
    with pytest.raises(ConfigError, match="weights do not fit MlpMixer"):
        load_external(model, {"head.weight": torch.zeros(5, 8)})


# ---------------------------------------------------------------------------------- files
def test_files_of_every_format_and_wrapping(tmp_path):
    ref = _randomize(official_mixer("paramixer"))
    state = ref.state_dict()
    # a timm training checkpoint: args as argparse.Namespace, the EMA weights preferred
    ema = {k: v + 1 for k, v in state.items()}
    wrapped = {"epoch": 3, "arch": "paramixer_s16_224", "args": argparse.Namespace(lr=1e-3),
               "state_dict": state, "state_dict_ema": ema, "optimizer": {"state": {}}}
    torch.save(wrapped, tmp_path / "model_best.pth.tar")
    got = read_state_dict(tmp_path / "model_best.pth.tar")
    assert all(torch.equal(got[k], ema[k]) for k in state)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "ddp.pt")
    assert read_state_dict(tmp_path / "ddp.pt").keys() == state.keys()
    ours = _hamixer("paramixer", **OFFICIAL)
    save_external(ours, tmp_path / "ours.safetensors", "paramixer")
    assert read_state_dict(tmp_path / "ours.safetensors").keys() == state.keys()
    save_external(ours, tmp_path / "ours.bin", "paramixer")
    load_external(_hamixer("paramixer", **OFFICIAL), tmp_path / "ours.bin")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ddp.pt", "model_best.pth.tar", "ours.bin", "ours.safetensors"]  # no temporaries


class _Unlisted:
    """A class torch.load(weights_only=True) must refuse to build."""


@pytest.mark.parametrize("content,name,match", [
    (None, "absent.pth", "no such checkpoint file"),
    (b"", "weights.npz", "unknown checkpoint format"),
    (b"not a checkpoint", "broken.pth", "not a readable PyTorch checkpoint"),
    (b"not a checkpoint", "broken.safetensors", "not a readable safetensors file"),
    ("pickle", "unsafe.pth", r"refused by torch\.load\(weights_only=True\)"),
    ({"epoch": 3}, "meta.pth", "not a state dict"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, content, name, match):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "pickle":
        torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": _Unlisted()}, path)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(ConfigError, match=match) as err:
        read_state_dict(path)
    assert "\n" not in str(err.value)
