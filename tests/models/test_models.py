"""The model family: shapes, ties, parameter counts, penalty, iterations, timm parity."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import hamixer
from hamixer import ConfigError
from hamixer.models import (
    FAMILIES,
    SIZES,
    AsymmetricMLP,
    FreeMLP,
    ParallelMixerBlock,
    SymmetricMLP,
    create_model,
    list_models,
    timm_mixer_state_dict_to_hamixer,
)
from hamixer.models.registry import MODEL_CONFIGS

SMALL = [n for n in list_models() if n in MODEL_CONFIGS and not n.endswith("_224")]
LARGE = [n for n in list_models() if n in MODEL_CONFIGS and n.endswith("_224")]
BASE_FAMILIES = ["mlpmixer", "vanillamixer", "paramixer", "symmixer", "asymmixer"]


def _input(model: nn.Module, batch: int) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


@pytest.mark.parametrize("name", SMALL)
def test_small_models_forward_backward(name):
    model = timm.create_model(name, num_classes=7)
    x = _input(model, 3)
    out = model(x)
    assert out.shape == (3, 7)
    feats = model.forward_features(x)
    assert feats.shape == (3, model.seq_len, model.num_features)
    assert model.forward_head(feats, pre_logits=True).shape == (3, model.num_features)
    (out.sum() + model.aux_loss()).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


@pytest.mark.slow  # 224 px models: up to minutes each on 2 cores
@pytest.mark.parametrize("name", LARGE)
def test_paper_size_models_forward_backward(name):
    model = timm.create_model(name)
    model.set_grad_checkpointing(True)  # keeps the L models inside a CI machine's memory
    x = _input(model, 1)
    out = model(x)
    assert out.shape == (1, 1000)
    out.sum().backward()
    assert model.stem.proj.weight.grad is not None


def test_every_family_at_every_size_is_registered():
    for family in BASE_FAMILIES:
        for size in SIZES:
            assert f"{family}_{size}" in timm.list_models(f"{family}_*")
    assert set(FAMILIES) >= set(BASE_FAMILIES)


def test_no_pretrained_config_points_anywhere():
    for name in list_models():
        cfg = timm.models.get_pretrained_cfg(name)
        assert not cfg.url and not cfg.hf_hub_id, name
    with pytest.raises(ConfigError, match="no pretrained weights"):
        create_model("mlpmixer_s16_224", pretrained=True)


# ---------------------------------------------------------------------------- the tie
def test_symmetric_mlp_has_one_weight_and_both_uses_send_gradient():
    mlp = SymmetricMLP(6, 4, axis=-1)
    assert [n for n, _ in mlp.named_parameters()] == ["weight"]
    x = torch.randn(5, 3, 6)
    mlp(x).pow(2).sum().backward()
    tied_grad = mlp.weight.grad.clone()
    # Untie by hand: the tied gradient is the sum of the gradients of the two uses.
    w1 = mlp.weight.detach().clone().requires_grad_()
    w2 = mlp.weight.detach().clone().requires_grad_()
    out = torch.nn.functional.gelu(x @ w1.t()) @ w2
    out.pow(2).sum().backward()
    assert torch.allclose(tied_grad, w1.grad + w2.grad, atol=1e-6)
    assert w1.grad.abs().sum() > 0 and w2.grad.abs().sum() > 0


def test_symmixer_has_exactly_one_matrix_per_mlp():
    model = create_model("symmixer_t4_28")
    for blk in model.blocks:
        for mlp in (blk.token_mlp, blk.channel_mlp):
            assert isinstance(mlp, SymmetricMLP)
            assert [n for n, _ in mlp.named_parameters()] == ["weight"]
            assert mlp.w2.data_ptr() == mlp.w1.data_ptr()  # a view, not a copy


@pytest.mark.parametrize("axis", [-1, -2])
def test_token_and_channel_mixing_match_explicit_transposes(axis):
    mlp = FreeMLP(5, 7, axis=axis, bias=True)
    nn.init.normal_(mlp.fc1.bias)
    nn.init.normal_(mlp.fc2.bias)
    x = torch.randn(2, 5, 5)
    ref_in = x if axis == -1 else x.transpose(1, 2)
    ref = mlp.fc2(torch.nn.functional.gelu(mlp.fc1(ref_in)))
    ref = ref if axis == -1 else ref.transpose(1, 2)
    assert torch.allclose(mlp(x), ref, atol=1e-6)


# -------------------------------------------------------------------- parameter counts
def _closed_form_params(name: str) -> int:
    a = MODEL_CONFIGS[name]
    c, p, k = a["embed_dim"], a["patch_size"], a.get("in_chans", 3)
    s = (a["img_size"] // p) ** 2
    rt, rc = a.get("mlp_ratio", (0.5, 4.0))
    ht, hc = int(rt * c), int(rc * c)
    ncls = a.get("num_classes", 1000)
    bias = a["mlp_bias"]
    per_mlp = {
        "free": lambda d, h: 2 * d * h + bias * (h + d),
        "symmetric": lambda d, h: d * h + bias * (h + d),
        "asymmetric": lambda d, h: 2 * d * h + bias * (h + d),
    }[a["mlp"]]
    if a["norm"] == "token":
        norm = 2 * c
    else:
        norm = {"elementwise": 2 * s * c, "scalar": 1 + s * c, "none": 0}[a["norm_affine"]]
    n_norms = 2 if a["block"] == "serial" else 1
    block = per_mlp(s, ht) + per_mlp(c, hc) + n_norms * norm
    final_norm = 2 * c if a["norm"] == "token" else 2 * s * c
    return (k * p * p * c + c) + a["num_blocks"] * block + final_norm + (c * ncls + ncls)


@pytest.mark.parametrize("family", BASE_FAMILIES)
@pytest.mark.parametrize("size", ["s16_224", "b32_224", "t4_28", "m4_28", "t4_32", "n2_8"])
def test_parameter_counts_match_closed_form(family, size):
    name = f"{family}_{size}"
    model = create_model(name)
    assert sum(p.numel() for p in model.parameters()) == _closed_form_params(name)


def test_timm_mixer_and_mlpmixer_agree_on_parameter_count():
    ours = sum(p.numel() for p in create_model("mlpmixer_b16_224").parameters())
    theirs = sum(p.numel() for p in timm.create_model("mixer_b16_224").parameters())
    assert ours == theirs


def test_symmixer_holds_half_the_mlp_parameters_of_paramixer():
    def mlp_params(m):
        return sum(p.numel() for n, p in m.named_parameters() if "mlp" in n)

    assert 2 * mlp_params(create_model("symmixer_s16_224")) == mlp_params(
        create_model("paramixer_s16_224"))


# ------------------------------------------------------------------------- λ penalty
def test_asymmixer_penalty_value():
    lam = 0.37
    model = create_model("asymmixer_t4_28", asym_lambda=lam)
    expected = sum(
        blk.token_mlp.breaking.pow(2).sum() + blk.channel_mlp.breaking.pow(2).sum()
        for blk in model.blocks
    )
    assert torch.allclose(model.aux_loss(), lam * expected)
    assert model.aux_loss().item() > 0
    model.aux_loss().backward()
    blk = model.blocks[0]
    assert torch.allclose(blk.token_mlp.breaking.grad, 2 * lam * blk.token_mlp.breaking)
    assert blk.token_mlp.weight.grad is None  # the penalty touches only W̃


@pytest.mark.parametrize("name", ["mlpmixer_t4_28", "paramixer_t4_28", "symmixer_t4_28"])
def test_aux_loss_is_zero_tensor_without_breaking_matrix(name):
    loss = create_model(name).aux_loss()
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0 and loss.item() == 0.0


def test_asymmetric_output_matrix_is_tie_plus_breaking():
    mlp = AsymmetricMLP(4, 3)
    assert torch.equal(mlp.w2, mlp.weight.t() + mlp.breaking)
    assert mlp.breaking.abs().sum() > 0  # Xavier start, not zero


# ---------------------------------------------------------------------------- n_iter
def test_n_iter_shares_weights_and_repeats_blocks():
    one = create_model("symmixer_t4_28", n_iter=1)
    three = create_model("symmixer_t4_28", n_iter=3)
    three.load_state_dict(one.state_dict())  # same parameters, same names
    assert sum(p.numel() for p in one.parameters()) == sum(p.numel() for p in three.parameters())
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        h = one.stem(x)
        for blk in one.blocks:
            for _ in range(3):
                h = blk(h)
        assert torch.allclose(three.forward_features(x), one.norm(h), atol=1e-5)
        assert not torch.allclose(three.forward_features(x), one.forward_features(x))


def _count_calls(modules: list[nn.Module]) -> tuple[list[int], list]:
    counts = [0] * len(modules)

    def hook(i):
        def count(*_):
            counts[i] += 1
        return count

    return counts, [m.register_forward_hook(hook(i)) for i, m in enumerate(modules)]


@pytest.mark.parametrize("name", ["imixer_n2_8", "symmixer_n2_8"])
@pytest.mark.parametrize("n_iter", [1, 3])
def test_n_iter_counts_block_applications_in_every_family(name, n_iter):
    """``n_iter`` repeats every block (iMixer's fixed-point count is its own argument)."""
    model = create_model(name, n_iter=n_iter).eval()
    token_mlps = [blk.token_mlp for blk in model.blocks]
    counts, handles = _count_calls(list(model.blocks))
    mlp_counts, mlp_handles = _count_calls(token_mlps)
    inner = [getattr(m, "f", None) for m in token_mlps]
    f_counts, f_handles = _count_calls([m for m in inner if m is not None])
    with torch.no_grad():
        model(_input(model, 2))
    for h in (*handles, *mlp_handles, *f_handles):
        h.remove()
    assert model.n_iter == n_iter
    assert counts == [n_iter] * len(model.blocks)
    assert mlp_counts == [n_iter] * len(model.blocks)
    if name.startswith("imixer"):  # F applied fixed_point_iters (4) times per block call
        assert all(m.fixed_point_iters == 4 for m in token_mlps)
        assert f_counts == [4 * n_iter] * len(model.blocks)


# ------------------------------------------------------------------- timm parity
@pytest.mark.parametrize("timm_name", ["mixer_s16_224", "mixer_s32_224"])
def test_mlpmixer_reproduces_timm_mixer(timm_name):
    ref = timm.create_model(timm_name, num_classes=13).eval()
    with torch.no_grad():  # zero-initialised head and tiny biases would hide mistakes
        for p in ref.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = create_model("mlp" + timm_name, num_classes=13).eval()
    ours.load_state_dict(timm_mixer_state_dict_to_hamixer(ref.state_dict()), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref(x)
        got = ours(x)
        assert torch.allclose(ours.forward_features(x), ref.forward_features(x), atol=1e-4)
    assert expected.abs().max() > 1e-2
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------- timm API
def test_timm_api_surface():
    model = timm.create_model("paramixer_t4_28", num_classes=5, drop_path_rate=0.1)
    assert isinstance(model.blocks[0], ParallelMixerBlock)
    assert hasattr(model.blocks[0], "norm")
    assert model.get_classifier().out_features == 5
    model.reset_classifier(0)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, model.num_features)
    assert model.pretrained_cfg["input_size"] == (1, 28, 28)
    dp = [blk.drop_path for blk in model.blocks]
    assert isinstance(dp[0], nn.Identity) and dp[-1].drop_prob == pytest.approx(0.1)


def test_kwargs_reach_the_model():
    model = timm.create_model("symmixer_t4_32", n_iter=2, in_chans=1, img_size=16,
                              mlp_ratio=(1.0, 2.0), asym_lambda=0.5)
    assert model.n_iter == 2 and model.seq_len == 16 and model.asym_lambda == 0.5
    assert model.blocks[0].channel_mlp.hidden_features == 256
    assert model(torch.randn(1, 1, 16, 16)).shape == (1, 10)


def test_unknown_name_and_kwarg_suggest_the_closest():
    with pytest.raises(ConfigError, match="symmixer_s16_224"):
        hamixer.create_model("symixer_s16_224")
    with pytest.raises(ConfigError, match="n_iter"):
        hamixer.create_model("symmixer_t4_28", n_iters=2)
    with pytest.raises(ConfigError, match="n_iter"):
        timm.create_model("symmixer_t4_28", n_itr=2)
    with pytest.raises(ConfigError, match="patch_size"):
        hamixer.create_model("symmixer_t4_28", patch_size=5)


def test_symmetric_init_starts_free_mlps_tied():
    model = create_model("paramixer_t4_28", init="symmetric")
    for blk in model.blocks:
        for mlp in (blk.token_mlp, blk.channel_mlp):
            assert torch.equal(mlp.w2, mlp.w1.t())


def test_builds_same_model_fills_in_the_defaults():
    from hamixer.models.registry import builds_same_model

    assert builds_same_model("symmixer_m4_28", {}, {"n_iter": 1})
    assert builds_same_model("symmixer_m4_28", {"mlp_ratio": [0.5, 2.0]}, {})
    assert not builds_same_model("symmixer_m4_28", {}, {"n_iter": 2})
    assert not builds_same_model("symmixer_m4_28", {}, {"no_such_argument": 1})
    assert builds_same_model("vit_m4_28", {}, {"depth": 6})
    assert not builds_same_model("vit_m4_28", {}, {"depth": 4})
