"""Finding two-layer MLPs and attention in any module; the symmetric start of any model."""

import functools

import pytest
import timm
import torch
from timm.layers import Attention, GatedMlp, GluMlp, Mlp, SwiGLU
from timm.models.mlp_mixer import SpatialGatingUnit
from torch import nn

from hamixer.models import create_model
from hamixer.models.find_layers import find_attention, find_layers, find_mlps
from hamixer.models.symmetric_init import tie_symmetric


def tiny_vit() -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", img_size=28, patch_size=4, in_chans=1,
                             num_classes=10, embed_dim=64, depth=2, num_heads=2)


class Blocks(nn.Module):
    """``blocks.i.<name>`` for each given layer, like a timm backbone."""

    def __init__(self, **layers: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.Sequential(*[nn.ModuleDict({name: layer})
                                      for name, layer in layers.items()])


def test_vit_layers_named_by_block_and_part():
    found = find_layers(tiny_vit())
    assert [(f.path, f.block, f.part) for f in found] == [
        ("blocks.0.attn", 0, "attn"), ("blocks.0.mlp", 0, "mlp"),
        ("blocks.1.attn", 1, "attn"), ("blocks.1.mlp", 1, "mlp")]
    attn = find_attention(tiny_vit())[0]
    assert (attn.num_heads, attn.head_dim) == (2, 32)
    q, k, v, o_t = attn.heads()
    assert q.shape == k.shape == v.shape == o_t.shape == (2, 32, 64)


def test_attention_heads_are_timm_layout():
    """W_Q^h x is what timm's forward computes as head h's query; W_O^h its output share."""
    torch.manual_seed(0)
    attn = Attention(12, num_heads=3, qkv_bias=False).eval()
    attn.fused_attn = False
    x = torch.randn(1, 5, 12)
    q, k, v, o_t = find_attention(Blocks(attn=attn))[0].heads()
    qkv = attn.qkv(x).reshape(1, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)  # timm's own split
    for h in range(3):
        assert torch.allclose(x[0] @ q[h].t(), qkv[0, 0, h], atol=1e-6)
        assert torch.allclose(x[0] @ k[h].t(), qkv[1, 0, h], atol=1e-6)
        assert torch.allclose(x[0] @ v[h].t(), qkv[2, 0, h], atol=1e-6)
    heads = torch.randn(5, 3, 4)  # per-head outputs, concatenated as timm does
    out = attn.proj(heads.reshape(5, 12)) - attn.proj.bias
    assert torch.allclose(out, sum(heads[:, h] @ o_t[h] for h in range(3)), atol=1e-6)


def test_separate_projections_are_found_and_tied():
    """EVA's attention with ``qkv_fused=False``: q_proj, k_proj, v_proj read as timm's
    forward reads them, and the symmetric start ties k_proj to q_proj."""
    from timm.models.eva import EvaAttention

    torch.manual_seed(0)
    attn = EvaAttention(12, num_heads=3, qkv_fused=False, scale_norm=False)
    (found,) = find_attention(Blocks(attn=attn))
    assert not found.fused and found.qkv_weight.shape == (36, 12)
    x = torch.randn(5, 12)
    q, k, v, _ = found.heads()
    for proj, w in ((attn.q_proj, q), (attn.k_proj, k), (attn.v_proj, v)):
        heads = (proj(x) - (0 if proj.bias is None else proj.bias)).reshape(5, 3, 4)
        for h in range(3):
            assert torch.allclose(x @ w[h].t(), heads[:, h], atol=1e-6)
    assert tie_symmetric(Blocks(attn=attn))["attention"] == ["blocks.0.attn"]
    assert torch.equal(attn.k_proj.weight, attn.q_proj.weight)
    q, k, _, _ = found.heads()
    assert torch.equal(q, k)


def test_grouped_query_attention_is_not_attention():
    from timm.layers import AttentionRope

    gqa = AttentionRope(16, num_heads=4, num_kv_heads=2, qkv_fused=False)
    assert find_attention(Blocks(attn=gqa)) == []
    mha = AttentionRope(16, num_heads=4, qkv_fused=False)
    assert [f.path for f in find_attention(Blocks(attn=mha))] == ["blocks.0.attn"]


@pytest.mark.parametrize("gate_last", [True, False])
def test_glu_mlp_measures_the_value_half(gate_last):
    mlp = GluMlp(8, 12, gate_last=gate_last)
    (found,) = find_mlps(Blocks(mlp=mlp))
    assert found.kind == "gated" and found.w1.shape == (6, 8) and found.w2.shape == (8, 6)
    x = torch.randn(3, 8)
    value, gate = mlp.fc1(x).chunk(2, dim=-1)
    if not gate_last:
        value, gate = gate, value
    # the value half enters fc2 linearly: fc2 reads value * act(gate)
    assert torch.allclose(x @ found.w1.t() + mlp.fc1.bias[found.value_rows], value)


def test_other_mlps_found():
    gate = functools.partial(SpatialGatingUnit, seq_len=5)
    model = Blocks(mlp=Mlp(8, 16), swiglu=SwiGLU(8, 10), gmlp=GatedMlp(8, 12, gate_layer=gate))
    found = {f.part: f for f in find_mlps(model)}
    assert found["mlp"].kind == "linear" and found["mlp"].w1.shape == (16, 8)
    assert found["swiglu"].kind == "gated"
    assert found["swiglu"].w1 is model.blocks[1]["swiglu"].fc1_x.weight
    # gMLP: the first half of fc1 is multiplied by the spatially mixed second half
    assert found["gmlp"].kind == "gated" and found["gmlp"].value_rows == slice(0, 6)


def test_hamixer_mlps_keep_their_names_and_effective_w2():
    model = create_model("asymmixer_n2_8")
    found = find_mlps(model)
    assert [(f.block, f.part) for f in found[:2]] == [(0, "token"), (0, "channel")]
    assert len(found) == 2 * len(model.blocks)
    mlp = model.blocks[0].token_mlp
    assert torch.equal(found[0].w2, mlp.weight.t() + mlp.breaking)
    assert not found[0].free  # W2 = Wᵀ + W̃: nothing to tie
    assert all(f.free for f in find_mlps(create_model("paramixer_n2_8")))


def test_nested_blocks_are_numbered_in_order_and_loose_layers_by_path():
    model = nn.Module()
    model.stages = nn.Sequential(Blocks(mlp=Mlp(4, 8), mlp2=Mlp(4, 8)), Blocks(mlp=Mlp(4, 8)))
    model.head = nn.Module()
    model.head.mlp = Mlp(4, 8)
    found = [(f.block, f.part) for f in find_mlps(model)]
    assert found == [(0, "mlp"), (1, "mlp2"), (2, "mlp"), (None, "head.mlp")]


def test_tie_symmetric_on_vit():
    torch.manual_seed(0)
    model = tiny_vit()
    tied = tie_symmetric(model)
    attention = ["blocks.0.attn", "blocks.1.attn"]
    assert tied == {"mlp": ["blocks.0.mlp", "blocks.1.mlp"], "attention": attention,
                    "value_output": attention}
    for layer in find_mlps(model):
        assert torch.equal(layer.w2, layer.w1.t())
    for layer in find_attention(model):
        assert_tied_heads(layer)
        n = layer.num_heads * layer.head_dim
        assert torch.equal(layer.module.qkv.bias[:n], layer.module.qkv.bias[n: 2 * n])
    model(torch.randn(2, 1, 28, 28))  # still a working model


def assert_tied_heads(layer) -> None:
    """Every head: W_O^h W_V^h = W_Q^hᵀ W_K^h ([D, D]) and W_Q^hᵀ W_K^h symmetric."""
    q, k, v, o_t = layer.heads()
    for h in range(layer.num_heads):
        qk = q[h].t() @ k[h]
        assert torch.allclose(o_t[h].t() @ v[h], qk, atol=1e-7)
        assert torch.allclose(qk, qk.t(), atol=1e-7)


def test_tie_symmetric_ties_value_and_output_and_keeps_their_biases():
    """The tied start of energy attention for separate projections too (EVA), with the value
    and output biases left as they were; a proj to another width gets the QK tie only."""
    from timm.models.eva import EvaAttention

    torch.manual_seed(0)
    attn = EvaAttention(12, num_heads=3, qkv_fused=False, scale_norm=False)
    assert attn.k_proj.bias is None  # EVA: query and value biases, no key bias
    with torch.no_grad():
        for name in ("q_proj", "v_proj", "proj"):
            getattr(attn, name).bias.normal_()
    biases = {name: getattr(attn, name).bias.clone() for name in ("q_proj", "v_proj", "proj")}
    model = Blocks(attn=attn)
    assert tie_symmetric(model)["value_output"] == ["blocks.0.attn"]
    (layer,) = find_attention(model)
    assert_tied_heads(layer)
    assert torch.equal(attn.v_proj.weight, attn.q_proj.weight)
    assert torch.equal(attn.proj.weight, attn.q_proj.weight.t())
    for name, bias in biases.items():
        assert torch.equal(getattr(attn, name).bias, bias)

    wide = Attention(12, num_heads=3)
    wide.proj = nn.Linear(12, 10)
    before = wide.proj.weight.clone()
    assert tie_symmetric(Blocks(attn=wide)) == {"mlp": [], "attention": ["blocks.0.attn"],
                                                "value_output": []}
    assert torch.equal(wide.proj.weight, before)


def test_tie_symmetric_ties_glu_value_half_and_leaves_tied_mixers():
    model = Blocks(mlp=GluMlp(8, 12))
    assert tie_symmetric(model)["mlp"] == ["blocks.0.mlp"]
    (found,) = find_mlps(model)
    assert torch.equal(found.w2, found.w1.t())
    sym = create_model("symmixer_n2_8")
    before = {k: v.clone() for k, v in sym.state_dict().items()}
    assert tie_symmetric(sym) == {"mlp": [], "attention": [], "value_output": []}
    assert all(torch.equal(v, sym.state_dict()[k]) for k, v in before.items())
