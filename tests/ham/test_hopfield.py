"""Hopfield layers and binary dense memories: updates are −∂E/∂state, energy descends, the
softmax memory retrieves separated patterns in one step at large β."""

import math

import pytest
import torch

from hamixer.ham import (
    DenseAssociativeMemory,
    Hopfield,
    HopfieldLayer,
    HopfieldPooling,
    IdentityLagrangian,
    PolynomialLagrangian,
    RePULagrangian,
    SoftmaxLagrangian,
    association_energy,
    association_update,
)

MEMORY_LAGRANGIANS = [IdentityLagrangian(), PolynomialLagrangian(3), PolynomialLagrangian(4),
                      RePULagrangian(3), SoftmaxLagrangian(1.0), SoftmaxLagrangian(40.0)]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def signs(*shape, seed=0):
    return torch.randint(0, 2, shape, generator=gen(seed)).double() * 2 - 1


# ------------------------------------------------------------------ continuous layers
@pytest.mark.parametrize("lagrangian", [SoftmaxLagrangian(0.7), SoftmaxLagrangian(8.0),
                                        RePULagrangian(3), IdentityLagrangian()])
def test_update_is_minus_the_energy_gradient(lagrangian):
    keys = torch.randn(3, 9, 5, generator=gen(1), dtype=torch.float64)
    state = torch.randn(3, 4, 5, generator=gen(2), dtype=torch.float64, requires_grad=True)
    energy = association_energy(state, keys, lagrangian)
    assert energy.shape == (3, 4)
    (grad,) = torch.autograd.grad(energy.sum(), state)
    step = association_update(state, keys, lagrangian) - state
    torch.testing.assert_close(step, -grad)


def test_energy_is_the_closed_form_of_ramsauer():
    keys = torch.randn(2, 6, 4, generator=gen(3), dtype=torch.float64)
    state = torch.randn(2, 3, 4, generator=gen(4), dtype=torch.float64)
    beta = 2.5
    expected = 0.5 * state.square().sum(-1) - torch.logsumexp(
        beta * state @ keys.transpose(1, 2), -1) / beta
    energy = Hopfield(scaling=beta).energy((keys, state))
    torch.testing.assert_close(energy, expected)


@pytest.mark.parametrize("beta", [0.3, 2.0, 16.0])
def test_energy_never_rises_along_the_updates(beta):
    keys = torch.randn(4, 20, 8, generator=gen(5), dtype=torch.float64)
    state = torch.randn(4, 6, 8, generator=gen(6), dtype=torch.float64)
    lagrangian = SoftmaxLagrangian(beta)
    energies = [association_energy(state, keys, lagrangian)]
    for _ in range(30):
        state = association_update(state, keys, lagrangian)
        energies.append(association_energy(state, keys, lagrangian))
    rises = torch.stack(energies).diff(dim=0)
    assert rises.max() <= 1e-10
    assert rises.min() < -1e-3  # it did move


def test_one_step_retrieval_of_separated_patterns_at_large_beta():
    dim, count = 64, 50
    keys = torch.randn(1, count, dim, generator=gen(7), dtype=torch.float64)
    keys = keys / keys.norm(dim=-1, keepdim=True) * math.sqrt(dim)
    noisy = keys + 0.3 * torch.randn(keys.shape, generator=gen(8), dtype=torch.float64)
    layer = Hopfield(scaling=4.0, update_steps_max=1)
    out = layer((keys, noisy))
    torch.testing.assert_close(out, keys, atol=1e-8, rtol=0)
    _, _, _, steps = Hopfield(scaling=4.0, update_steps_max=None).update_steps((keys, noisy))
    assert steps == 2  # the first update lands on the pattern, the second confirms it
    # At small β the same probes end near the patterns' mean, a metastable mixture.
    mixed = Hopfield(scaling=1e-3, update_steps_max=1)((keys, noisy))
    assert (mixed - keys).norm(dim=-1).min() > 0.5 * math.sqrt(dim)


def test_attention_map_shape_and_rows():
    layer = Hopfield(input_size=6, hidden_size=4, num_heads=2, update_steps_max=3)
    x = torch.randn(2, 5, 6)
    attn = layer.get_association_matrix(x)
    assert attn.shape == (2, 2, 5, 5)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 2, 5))
    assert layer(x).shape == (2, 5, 6)
    assert layer.energy(x).shape == (2, 5)


def test_zero_update_steps_is_one_softmax_attention():
    keys, state, values = torch.randn(2, 7, 3), torch.randn(2, 4, 3), torch.randn(2, 7, 5)
    out = Hopfield(scaling=1.5)((keys, state, values))
    expected = torch.softmax(1.5 * state @ keys.transpose(1, 2), -1) @ values
    torch.testing.assert_close(out, expected)


def test_layer_and_pooling_shapes_and_gradients():
    layer = HopfieldLayer(input_size=6, quantity=10, lookup_weights_as_separated=True,
                          scaling=2.0, update_steps_max=2)
    x = torch.randn(3, 4, 6)
    out = layer(x)
    assert out.shape == (3, 4, 6) and layer.energy(x).shape == (3, 4)
    out.sum().backward()
    assert layer.lookup_weights.grad is not None and layer.target_weights.grad is not None
    pool = HopfieldPooling(input_size=6, quantity=2, hidden_size=8, num_heads=2, output_size=5)
    pooled = pool(torch.randn(3, 9, 6))
    assert pooled.shape == (3, 2 * 5)
    pooled.sum().backward()
    assert pool.pooling_weights.grad is not None


@pytest.mark.parametrize("kwargs", [dict(scaling=-1.0), dict(num_heads=2),
                                    dict(hidden_size=4),
                                    dict(scaling=1.0, lagrangian=RePULagrangian(3))])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        Hopfield(**kwargs)


# ------------------------------------------------------------------ binary dense memories
@pytest.mark.parametrize("lagrangian", MEMORY_LAGRANGIANS, ids=lambda lag: repr(lag))
def test_binary_field_is_the_energy_difference(lagrangian):
    memory = DenseAssociativeMemory(signs(7, 20, seed=1), lagrangian)
    state = signs(5, 20, seed=2)
    fields = memory.fields(state)
    for i in range(20):
        up, down = state.clone(), state.clone()
        up[:, i], down[:, i] = 1, -1
        torch.testing.assert_close(fields[:, i], -(memory.energy(up) - memory.energy(down)) / 2)
    ham = memory.as_ham()
    states = ham.equilibrium_hidden({"visible": state, "memory": state.new_zeros(())},
                                    "visible")
    torch.testing.assert_close(ham.energy(states), memory.energy(state))


def test_classical_field_is_hebbian_without_self_coupling():
    patterns = signs(9, 30, seed=3)
    weights = patterns.t() @ patterns
    weights.fill_diagonal_(0)
    state = signs(4, 30, seed=4)
    torch.testing.assert_close(DenseAssociativeMemory(patterns).fields(state), state @ weights)


def test_quadratic_field_is_the_gradient_of_the_multilinear_energy():
    # On ±1 states E = −½σᵀ(W − diag W)σ + const; its gradient is −(W − diag W)σ.
    patterns = signs(6, 12, seed=5)
    weights = patterns.t() @ patterns
    weights.fill_diagonal_(0)
    state = signs(3, 12, seed=6).requires_grad_(True)
    (grad,) = torch.autograd.grad((-0.5 * (state @ weights * state).sum()), state)
    torch.testing.assert_close(DenseAssociativeMemory(patterns).fields(state.detach()), -grad)


@pytest.mark.parametrize("lagrangian", MEMORY_LAGRANGIANS, ids=lambda lag: repr(lag))
def test_asynchronous_sweeps_never_raise_the_energy(lagrangian):
    memory = DenseAssociativeMemory(signs(25, 40, seed=7), lagrangian)
    state = signs(8, 40, seed=8)
    energies = [memory.energy(state)]
    g = gen(9)
    for _ in range(5):
        state = memory.sweep(state, g)
        energies.append(memory.energy(state))
    assert torch.stack(energies).diff(dim=0).max() <= 1e-9
    result = memory.update_steps(state, mode="async", generator=g)
    assert bool(result.converged.all())
    torch.testing.assert_close(memory.step(result.state), result.state)  # a fixed point


def test_stored_patterns_are_retrieved_below_capacity():
    patterns = signs(10, 400, seed=10)  # P/N = 0.025, far below 0.138
    flips = torch.rand(patterns.shape, generator=gen(11)) < 0.15
    result = DenseAssociativeMemory(patterns).update_steps(torch.where(flips, -patterns,
                                                                       patterns))
    assert torch.equal(result.state, patterns) and bool(result.converged.all())


def test_binary_memory_rejects_bad_patterns():
    with pytest.raises(ValueError):
        DenseAssociativeMemory(torch.randn(3, 4))
    with pytest.raises(ValueError):
        DenseAssociativeMemory(signs(3, 4), PolynomialLagrangian(2.5))
