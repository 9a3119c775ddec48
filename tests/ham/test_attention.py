"""Energy attention (THEORY §8): the closed-form update is −∂E_att/∂g, the energy is batched,
and a HAM built from it descends."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hamixer.ham import (
    HAM,
    AttentionSynapse,
    ChannelSynapse,
    GELULagrangian,
    LayerNormLagrangian,
    Neurons,
    descend,
)


def make_synapse(d=6, heads=2, head_dim=3, beta=None, exclude_self=False, seed=0):
    gen = torch.Generator().manual_seed(seed)
    wq = torch.randn(heads * head_dim, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    wk = torch.randn(heads * head_dim, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    return AttentionSynapse("visible", wq, wk, heads, beta=beta, exclude_self=exclude_self)


def autograd_update(syn, g):
    g = g.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(syn.energy(g).sum(), g)
    return -grad


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 3), tokens=st.integers(2, 7), d=st.integers(1, 6),
       heads=st.integers(1, 3), head_dim=st.integers(1, 4), beta=st.floats(0.05, 4.0),
       exclude_self=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_update_is_the_negative_energy_gradient(batch, tokens, d, heads, head_dim, beta,
                                                exclude_self, seed):
    syn = make_synapse(d, heads, head_dim, beta, exclude_self, seed)
    g = torch.randn(batch, tokens, d, dtype=torch.float64,
                    generator=torch.Generator().manual_seed(seed + 1))
    torch.testing.assert_close(syn.update(g), autograd_update(syn, g), rtol=1e-10, atol=1e-10)


def test_the_query_term_is_attention_with_the_tied_value_output_map():
    """−∂E/∂g minus the key term is softmax attention with values W_K g and output W_Qᵀ."""
    syn = make_synapse(d=5, heads=2, head_dim=4)
    g = torch.randn(3, 6, 5, dtype=torch.float64)
    p = syn.attention(g)                                     # [B, H, N, N]
    wq = syn.query_weight.view(2, 4, 5)
    wk = syn.key_weight.view(2, 4, 5)
    query_term = sum(p[:, h] @ g @ (wq[h].t() @ wk[h]).t() for h in range(2))
    key_term = sum(p[:, h].transpose(-2, -1) @ g @ (wk[h].t() @ wq[h]).t() for h in range(2))
    torch.testing.assert_close(syn.update(g), query_term + key_term)


def test_attention_map_rows_sum_to_one_and_exclude_self_zeroes_the_diagonal():
    g = torch.randn(2, 5, 6, dtype=torch.float64)
    for exclude in (False, True):
        p = make_synapse(exclude_self=exclude).attention(g)
        torch.testing.assert_close(p.sum(-1), torch.ones(2, 2, 5, dtype=torch.float64))
        diag = p.diagonal(dim1=-2, dim2=-1)
        assert (diag == 0).all() if exclude else (diag > 0).all()


def test_energy_is_per_sample_and_default_beta_is_one_over_sqrt_head_dim():
    syn = make_synapse(heads=2, head_dim=4)
    assert syn.beta == pytest.approx(0.5)
    g = torch.randn(4, 5, 6, dtype=torch.float64)
    e = syn.energy(g)
    assert e.shape == (4,)
    for b in range(4):
        torch.testing.assert_close(syn.energy(g[b:b + 1]), e[b:b + 1])


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="heads"):
        AttentionSynapse("v", torch.randn(6, 4), torch.randn(6, 4), num_heads=4)
    with pytest.raises(ValueError, match="one shape"):
        AttentionSynapse("v", torch.randn(6, 4), torch.randn(4, 4), num_heads=2)
    with pytest.raises(ValueError, match="beta"):
        AttentionSynapse("v", torch.randn(6, 4), torch.randn(6, 4), num_heads=2, beta=-1.0)


def energy_transformer_ham(tokens=5, d=6, hidden=8, seed=0):
    """One ET block as a HAM: per-token LayerNorm visible layer, energy attention, and the
    Hopfield MLP as a channel synapse to a GELU hidden layer."""
    gen = torch.Generator().manual_seed(seed)
    shift = torch.randn(tokens, d, generator=gen, dtype=torch.float64) * 0.1
    xi = torch.randn(hidden, d, generator=gen, dtype=torch.float64) / math.sqrt(d)
    neurons = {
        "visible": Neurons((tokens, d), LayerNormLagrangian(-1, 0.9, shift, 1e-5)),
        "memories": Neurons((tokens, hidden), GELULagrangian()),
    }
    synapses = {"attention": make_synapse(d=d, heads=2, head_dim=3, seed=seed),
                "hopfield": ChannelSynapse("visible", "memories", xi)}
    return HAM(neurons, synapses).double()


def test_a_ham_with_energy_attention_has_its_gradient_and_descends():
    ham = energy_transformer_ham()
    x = torch.randn(3, 5, 6, dtype=torch.float64)
    states = ham.equilibrium_hidden(ham.init_states(3, visible=x), "visible")
    tree = ham.energy_tree(states)
    assert set(tree["synapses"]) == {"attention", "hopfield"}
    g = ham.neurons["visible"].activation(x)
    torch.testing.assert_close(tree["synapses"]["attention"],
                               ham.synapses["attention"].energy(g))
    # ∂E/∂g of the visible layer: x minus the attention update (the MLP part is the hidden
    # layer's synapse, taken by autograd)
    grads = ham.grads(states)
    xi = ham.synapses["hopfield"].weight
    hidden_part = -(ham.neurons["memories"].activation(states["memories"]) @ xi)
    expected = x - ham.synapses["attention"].update(g) + hidden_part
    torch.testing.assert_close(grads["visible"], expected)
    _, traj = descend(ham, states, steps=60, step_size=0.05)
    assert (traj.energy[1:] <= traj.energy[:-1] + 1e-12).all()
    assert (traj.energy[-1] < traj.energy[0]).all()
