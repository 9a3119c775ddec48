"""The Transformer family of THEORY §8: SymFormer's block is −∂E/∂g and descends, AsymFormer's
λ limits are SymFormer and ParaFormer, the tied start, and the family through timm."""

import pytest
import timm
import torch

from hamixer.errors import ConfigError
from hamixer.ham import integrate
from hamixer.models import (
    AsymmetricAttention,
    EnergyAttention,
    FreeAttention,
    ParallelFormerBlock,
    create_model,
)
from hamixer.models.energy import mlp_energy
from hamixer.models.former_energy import (
    attention_energy,
    former_block_as_ham,
    former_block_energy,
)
from hamixer.models.mlp import AsymmetricMLP, FreeMLP, SymmetricMLP


def make_block(attn=EnergyAttention, mlp=SymmetricMLP, tokens=4, dim=6, heads=2, affine="scalar",
               norm="token", exclude_self=False, seed=0, scale=0.6):
    torch.manual_seed(seed)
    block = ParallelFormerBlock(dim, tokens, heads, mlp_ratio=1.5, attn_layer=attn,
                                mlp_layer=mlp, norm=norm, norm_affine=affine,
                                exclude_self=exclude_self).double().eval()
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name == "norm.weight":
                p.fill_(0.5 + torch.rand(()).item())
            else:
                p.normal_(0.0, scale)
    return block


CONFIGS = [dict(), dict(exclude_self=True), dict(affine="none"), dict(norm="joint"),
           dict(tokens=1, dim=4, heads=4), dict(tokens=7, dim=3, heads=1)]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_symformer_increment_is_minus_grad_of_its_energy(cfg):
    block = make_block(**cfg)
    x = 2 * torch.randn(5, block.seq_len, block.dim, dtype=torch.float64)
    g = block.norm(x).detach().requires_grad_(True)
    e_int = attention_energy(block.attn, g) + mlp_energy(block.mlp, g)
    (grad,) = torch.autograd.grad(e_int.sum(), g)
    torch.testing.assert_close(block(x) - x, -grad, rtol=1e-10, atol=1e-12)
    # dE/dx = J_gᵀ (x − F(g)) through the whole energy, Legendre term included
    xr = x.clone().requires_grad_(True)
    (de_dx,) = torch.autograd.grad(block.energy(xr).sum(), xr)
    xg = x.clone().requires_grad_(True)
    (jvp,) = torch.autograd.grad(block.norm(xg), xg, grad_outputs=x - block.update(x).detach())
    torch.testing.assert_close(de_dx, jvp, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_the_flow_never_raises_symformers_energy(seed):
    block = make_block(seed=seed, scale=1.0, **CONFIGS[seed % 3])
    x0 = 3 * torch.randn(6, block.seq_len, block.dim, dtype=torch.float64)
    with torch.no_grad():  # dx/dt = block(x) − x − x = −∂E/∂g
        traj = integrate(lambda x: block(x) - 2 * x, x0, torch.linspace(0, 3, 151),
                         energy=block.energy, method="euler", step_size=0.02)
    diffs = traj.energy[1:] - traj.energy[:-1]
    assert diffs.max() <= 1e-9, diffs.max()
    assert (traj.energy[-1] < traj.energy[0] - 1e-3).any()


def test_symformer_block_as_a_ham_has_the_same_energy_and_update():
    block = make_block()
    ham = former_block_as_ham(block)
    x = torch.randn(3, block.seq_len, block.dim, dtype=torch.float64)
    states = ham.equilibrium_hidden(ham.init_states(3, visible=x), "visible")
    torch.testing.assert_close(ham.energy(states), block.energy(x), rtol=1e-10, atol=1e-10)
    grads = ham.grads(states)
    torch.testing.assert_close(-grads["visible"], block(x) - 2 * x)
    assert grads["memories"].abs().max() < 1e-12
    assert set(ham.energy_tree(states)["synapses"]) == {"attention", "hopfield"}


def test_zero_breaking_is_symformer_and_pseudo_energy_is_the_energy():
    sym = make_block(seed=3)
    asym = make_block(AsymmetricAttention, AsymmetricMLP, seed=4)
    asym.attn.start_from_(sym.attn)
    asym.mlp.start_from_(sym.mlp)
    asym.norm.load_state_dict(sym.norm.state_dict())
    assert asym.penalty() == 0
    x = torch.randn(4, sym.seq_len, sym.dim, dtype=torch.float64)
    torch.testing.assert_close(asym(x), sym(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(asym.energy(x, pseudo=True), sym.energy(x))


def test_free_breaking_computes_any_paraformer_attention():
    para = make_block(FreeAttention, FreeMLP, seed=5)
    asym = make_block(AsymmetricAttention, AsymmetricMLP, seed=6)
    asym.attn.start_from_(para.attn)
    asym.mlp.start_from_(para.mlp)
    asym.norm.load_state_dict(para.norm.state_dict())
    x = torch.randn(4, para.seq_len, para.dim, dtype=torch.float64)
    torch.testing.assert_close(asym(x), para(x), rtol=1e-10, atol=1e-12)
    assert asym.attn.key_out_weight.abs().max() < 1e-15  # the key term is cancelled


def test_free_attention_is_the_explicit_softmax_attention():
    block = make_block(FreeAttention, FreeMLP)
    attn = block.attn
    g = torch.randn(3, block.seq_len, block.dim, dtype=torch.float64)
    p = attn.attention(g)
    v = (g @ attn.value_weight.t()).view(3, block.seq_len, 2, 3).transpose(1, 2)
    expected = (p @ v).transpose(1, 2).reshape(3, block.seq_len, 6) @ attn.out_weight.t()
    torch.testing.assert_close(attn(g), expected)


def _small(name, seed, **kwargs):
    torch.manual_seed(seed)
    model = create_model(name, num_blocks=2, **kwargs).double().eval()
    return model, torch.rand(3)


@pytest.mark.parametrize("init, reference, start", [
    ("zero", "symformer_n2_8", "default"), ("free", "paraformer_n2_8", "default"),
    # init="symmetric" ties the reference's free layers: ParaFormer's tied start (SymFormer
    # has nothing to tie), as AsymMixer takes ParaMixer's
    ("zero", "symformer_n2_8", "symmetric"), ("free", "paraformer_n2_8", "symmetric")])
def test_breaking_init_starts_at_the_reference_at_the_same_seed(init, reference, start):
    asym, after_asym = _small("asymformer_n2_8", 7, breaking_init=init, init=start)
    ref, after_ref = _small(reference, 7, init=start)
    x = torch.randn(3, 1, 8, 8, dtype=torch.float64)
    # W̃ = W2 − W1ᵀ is formed in float32: equal up to its rounding
    torch.testing.assert_close(asym.forward_features(x), ref.forward_features(x),
                               rtol=0, atol=1e-6)
    assert torch.equal(after_asym, after_ref)  # the random stream goes on as the reference's
    if init == "zero":
        assert asym.aux_loss() == 0


def test_xavier_breaking_is_penalised_by_lambda():
    model, _ = _small("asymformer_n2_8", 0, asym_lambda=0.5)
    total = sum(b.attn.penalty() + b.mlp.penalty() for b in model.blocks)
    assert total > 0
    torch.testing.assert_close(model.aux_loss(), 0.5 * total)
    for name in ("symformer_n2_8", "paraformer_n2_8"):
        assert _small(name, 0)[0].aux_loss() == 0


def test_symmetric_start_ties_every_head_and_the_mlp():
    model, _ = _small("paraformer_n2_8", 1, init="symmetric")
    for blk in model.blocks:
        attn, h, y = blk.attn, blk.attn.num_heads, blk.attn.head_dim
        wq, wk = attn.query_weight.view(h, y, -1), attn.key_weight.view(h, y, -1)
        wv = attn.value_weight.view(h, y, -1)
        wo = attn.out_weight.view(-1, h, y).permute(1, 0, 2)  # per head [D, Y]
        for i in range(h):
            qk = wq[i].t() @ wk[i]
            torch.testing.assert_close(qk, qk.t())
            torch.testing.assert_close(wo[i] @ wv[i], qk)
        torch.testing.assert_close(blk.mlp.w2, blk.mlp.w1.t())


def test_n_iter_repeats_each_block():
    model, _ = _small("symformer_n2_8", 0, n_iter=3)
    calls = []
    for blk in model.blocks:
        blk.register_forward_hook(lambda *_: calls.append(1))
    model(torch.randn(2, 1, 8, 8, dtype=torch.float64))
    assert len(calls) == 3 * len(model.blocks)


def test_the_family_is_registered_in_timm_with_matched_sizes():
    import hamixer  # noqa: F401  (registers the names)

    model = timm.create_model("symformer_n2_8", num_classes=3)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    params = {n: sum(p.numel() for p in create_model(n).parameters())
              for n in ("paraformer_m4_28", "vit_m4_28", "paramixer_m4_28", "symformer_m4_28")}
    # ParaFormer has the ViT's and ParaMixer's parameters (within 10 %); SymFormer, tied,
    # about half
    assert abs(params["paraformer_m4_28"] / params["vit_m4_28"] - 1) < 0.1
    assert abs(params["paraformer_m4_28"] / params["paramixer_m4_28"] - 1) < 0.1
    assert 0.4 < params["symformer_m4_28"] / params["paraformer_m4_28"] < 0.6


def test_energies_of_models_without_one_are_clear_errors():
    para = make_block(FreeAttention, FreeMLP)
    x = torch.randn(2, para.seq_len, para.dim, dtype=torch.float64)
    with pytest.raises(ConfigError, match="energy attention"):
        former_block_energy(para, x)
    assert former_block_energy(para, x, pseudo=True).shape == (2,)
    with pytest.raises(ConfigError, match="elementwise gain"):
        make_block(affine="elementwise").energy(x)
    with pytest.raises(ConfigError, match="heads"):
        create_model("symformer_n2_8", num_heads=3)
    with pytest.raises(ConfigError, match="breaking_init"):
        create_model("symformer_n2_8", breaking_init="zero")


def test_symmetry_measures_see_each_form_of_the_attention():
    from hamixer.experiments.symmetry import flat_symmetry

    sym = flat_symmetry(_small("symformer_n2_8", 0)[0])
    for key in ("vo_qk_cosine", "key_qk_cosine", "key_term_ratio", "qk_symmetry_score"):
        assert f"sym/mean.attn.{key}" in sym
    assert sym["sym/mean.attn.vo_qk_cosine"] == pytest.approx(1.0)
    assert sym["sym/mean.attn.key_qk_cosine"] == pytest.approx(1.0)
    assert sym["sym/mean.attn.key_term_ratio"] == pytest.approx(1.0)
    assert sym["sym/mean.mlp.cosine"] == pytest.approx(1.0)
    free = flat_symmetry(_small("asymformer_n2_8", 0, breaking_init="free")[0])
    assert free["sym/mean.attn.key_term_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert free["sym/mean.attn.key_out_breaking_ratio"] == pytest.approx(1.0)
    assert free["sym/mean.attn.value_breaking_ratio"] > 0.5
    tied = flat_symmetry(_small("paraformer_n2_8", 0, init="symmetric")[0])
    assert tied["sym/mean.attn.vo_qk_cosine"] == pytest.approx(1.0)
    assert tied["sym/mean.attn.qk_symmetry_score"] == pytest.approx(1.0)
    assert "sym/mean.attn.key_term_ratio" not in tied  # ParaFormer has no key term


def test_the_iterated_energy_of_each_symformer_application():
    from hamixer.measures.iterated_energy import descent_summary, iterated_energies

    model, _ = _small("symformer_n2_8", 0, n_iter=3)
    per_block = iterated_energies(model, torch.randn(4, 1, 8, 8, dtype=torch.float64))
    assert [len(e) for e in per_block] == [4, 4]  # the input, then each application
    assert descent_summary(per_block)["applications"] == 6
    para, _ = _small("paraformer_n2_8", 0)
    with pytest.raises(ConfigError, match="energy attention"):
        iterated_energies(para, torch.randn(2, 1, 8, 8, dtype=torch.float64))
    assert len(iterated_energies(para, torch.randn(2, 1, 8, 8, dtype=torch.float64),
                                 pseudo=True)) == 2


def test_timm_feature_api_of_the_transformers():
    torch.manual_seed(0)
    model = create_model("symformer_n2_8").double().eval()  # 4 blocks of 64, 16 tokens
    x = torch.randn(2, 1, 8, 8, dtype=torch.float64)
    final, maps = model.forward_intermediates(x, indices=[0, -1])
    assert [m.shape for m in maps] == [(2, 64, 4, 4)] * 2
    torch.testing.assert_close(final, model.forward_features(x))
    tokens = model.forward_intermediates(x, indices=1, output_fmt="NLC", intermediates_only=True)
    torch.testing.assert_close(tokens[0], model.forward_blocks(model.embed(x)))
    features = timm.create_model("asymformer_n2_8", features_only=True, out_indices=(1, 3))
    assert [f.shape for f in features(torch.randn(2, 1, 8, 8))] == [(2, 64, 4, 4)] * 2
    assert model.group_matcher()["blocks"][-1] == (r"^norm", (99999,))
