"""The optimized paths compute the same functions as their plain references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hamixer.models import (
    AsymmetricMLP,
    FreeMLP,
    ParallelMixerBlock,
    SymmetricMLP,
    create_model,
)
from hamixer.models.blocks import SerialMixerBlock
from hamixer.models.norm import JointLayerNorm

MLPS = [FreeMLP, SymmetricMLP, AsymmetricMLP]


def _assert_same_grads(got, ref, params, atol=1e-4, rtol=1e-5):
    g = torch.randn_like(ref)
    got_grads = torch.autograd.grad(got, params, g)
    ref_grads = torch.autograd.grad(ref, params, g)
    for a, b in zip(got_grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=atol, rtol=rtol)


def _randomize(module: nn.Module) -> nn.Module:
    with torch.no_grad():  # zero biases and unit gains would hide mistakes
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return module


@pytest.mark.parametrize("name", ["mlpmixer_t4_28", "symmixer_t4_32", "paramixer_n2_8",
                                  "mlpmixer_s16_224"])
def test_patch_embedding_gemm_equals_timm_convolution(name):
    model = _randomize(create_model(name))
    x = torch.randn(2, *model.pretrained_cfg["input_size"], requires_grad=True)
    got = model.embed(x)
    ref = model.stem(x)  # timm's PatchEmbed: conv, flatten, transpose
    assert got.is_contiguous() and got.shape == ref.shape
    # Same products, summed in another order: equal to float32 rounding of |x|·|w| sums.
    assert torch.allclose(got, ref, atol=1e-4, rtol=1e-4)
    _assert_same_grads(got, ref, [x, model.stem.proj.weight, model.stem.proj.bias],
                       atol=1e-3, rtol=1e-4)


def test_patch_embedding_keeps_timm_input_checks():
    model = create_model("mlpmixer_t4_28")
    with pytest.raises(AssertionError, match="doesn't match model"):
        model.embed(torch.randn(1, 1, 32, 32))


@pytest.mark.parametrize("mlp_cls", MLPS)
@pytest.mark.parametrize("axis", [-1, -2])
@pytest.mark.parametrize("bias", [False, True])
def test_mlp_forward_and_residual_match_explicit_transposes(mlp_cls, axis, bias):
    n = 6
    mlp = _randomize(mlp_cls(n, 9, axis=axis, bias=bias))
    x = torch.randn(3, n, n, requires_grad=True)
    r = torch.randn(3, n, n, requires_grad=True)

    def reference(inp):
        t = inp if axis == -1 else inp.transpose(-1, -2)
        h = F.gelu(F.linear(t, mlp.w1, mlp.b1))
        out = F.linear(h, mlp.w2, mlp.b2)
        return out if axis == -1 else out.transpose(-1, -2)

    ref = r + reference(x)
    got = mlp.forward_residual(x, r)
    assert torch.allclose(mlp(x) + r, ref, atol=1e-5)
    assert torch.allclose(got, ref, atol=1e-5)
    params = [x, r, *mlp.parameters()]
    _assert_same_grads(got, ref, params)


@pytest.mark.parametrize("axis", [-1, -2])
def test_mlp_on_unbatched_and_4d_inputs(axis):
    mlp = _randomize(FreeMLP(5, 4, axis=axis, bias=True))
    x = torch.randn(2, 3, 5, 5)
    assert torch.allclose(mlp(x)[1], mlp(x[1]), atol=1e-5)
    assert torch.allclose(mlp(x[0, 2]), mlp(x[0])[2], atol=1e-5)
    assert torch.allclose(mlp.forward_residual(x, x), x + mlp(x), atol=1e-5)


def test_scalar_gain_joint_norm_is_layer_norm_times_gain_plus_shift():
    norm = _randomize(JointLayerNorm(7, 5, affine="scalar"))
    x = torch.randn(4, 7, 5, requires_grad=True)
    ref = norm.bias + norm.weight * F.layer_norm(x, (7, 5), eps=norm.eps)
    got = norm(x)
    assert torch.allclose(got, ref, atol=1e-5)
    _assert_same_grads(got, ref, [x, norm.weight, norm.bias])
    assert norm.weight.shape == ()  # still one scalar gain


@pytest.mark.parametrize("family", ["mlpmixer", "vanillamixer", "paramixer", "symmixer",
                                    "asymmixer"])
def test_block_forward_equals_plain_formula(family):
    model = _randomize(create_model(f"{family}_n2_8"))
    blk = model.blocks[1]
    x = torch.randn(3, model.seq_len, model.embed_dim, requires_grad=True)
    if isinstance(blk, ParallelMixerBlock):
        ref = x + blk.update(x)
    else:
        assert isinstance(blk, SerialMixerBlock)
        h = x + blk.token_mlp(blk.norm1(x))
        ref = h + blk.channel_mlp(blk.norm2(h))
    got = blk(x)
    assert torch.allclose(got, ref, atol=1e-5)
    params = [x, *blk.parameters()]
    _assert_same_grads(got, ref, params)


def test_drop_path_keeps_the_plain_path():
    model = create_model("paramixer_n2_8", drop_path_rate=0.5).train()
    x = torch.randn(8, model.seq_len, model.embed_dim)
    out = model.blocks[-1](x)
    # Stochastic depth drops whole samples: some rows are exactly the input.
    assert any(torch.equal(out[i], x[i]) for i in range(8))


def test_fused_paths_respect_hooks_and_custom_forwards():
    model = create_model("mlpmixer_n2_8").eval()
    blk = model.blocks[0]
    seen = []
    blk.token_mlp.register_forward_hook(lambda m, i, o: seen.append("token"))
    blk.channel_mlp.act.register_forward_hook(lambda m, i, o: seen.append("act"))
    x = torch.randn(2, model.seq_len, model.embed_dim)
    with torch.no_grad():
        blk(x)
    assert seen == ["token", "act"]  # both hooks ran, the fused skip connection or not

    class Doubled(FreeMLP):
        def forward(self, x):
            return 2 * super().forward(x)

    mlp = _randomize(Doubled(5, 7, axis=-1))
    x = torch.randn(3, 4, 5)
    assert torch.allclose(mlp.forward_residual(x, x), x + 2 * FreeMLP.forward(mlp, x), atol=1e-6)


@pytest.mark.parametrize("axis", [-1, -2])
def test_inference_gelu_in_place_equals_autograd_path(axis):
    mlp = _randomize(FreeMLP(6, 10, axis=axis, bias=True))
    assert isinstance(mlp.act, nn.GELU)  # the energy's check of the activation still holds
    x = torch.randn(3, 6, 6)
    with torch.no_grad():
        fast = mlp(x)
        h = mlp.hidden(x)
        a = mlp.act(h)
        assert torch.equal(a, F.gelu(mlp.hidden(x))) and a is h  # in place, same values
    x.requires_grad_(True)
    slow = mlp(x)
    assert slow.requires_grad and torch.allclose(fast, slow, atol=1e-6)
    h = mlp.hidden(x)
    a = mlp.act(h)
    assert a is not h and not torch.equal(a, h)  # training keeps h for the backward
