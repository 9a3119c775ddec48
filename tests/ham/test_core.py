"""The generic HAM: energy parts, autograd gradients, batching, and Lyapunov dynamics."""

import pytest
import torch

from hamixer.ham import (
    HAM,
    DenseSynapse,
    LayerNormLagrangian,
    Neurons,
    ReLULagrangian,
    SoftmaxLagrangian,
    SphericalLagrangian,
    descend,
    integrate_ham,
)


def make_ham(seed=0, visible=(3, 4), hidden=(7, 5)):
    gen = torch.Generator().manual_seed(seed)
    nv = visible[0] * visible[1]

    def rnd(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    neurons = {
        "visible": Neurons(visible, LayerNormLagrangian((-2, -1), 1.3, rnd(*visible), 1e-4),
                           bias=rnd(*visible) * 0.1),
        "h1": Neurons((hidden[0],), ReLULagrangian(), bias=rnd(hidden[0]) * 0.1),
        "h2": Neurons((hidden[1],), SoftmaxLagrangian(beta=2.0)),
        "h3": Neurons((4,), SphericalLagrangian(-1, gain=0.7)),
    }
    synapses = {
        "v_h1": DenseSynapse("visible", "h1", rnd(hidden[0], nv) * 0.5),
        "v_h2": DenseSynapse("visible", "h2", rnd(hidden[1], nv) * 0.5),
        "h1_h3": DenseSynapse("h1", "h3", rnd(4, hidden[0]) * 0.5),  # a second level
    }
    return HAM(neurons, synapses).double()


def random_states(ham, batch, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {n: torch.randn(batch, *layer.shape, generator=gen, dtype=torch.float64)
            for n, layer in ham.neurons.items()}


def test_energy_tree_sums_to_energy_and_is_batched():
    ham = make_ham()
    states = random_states(ham, 5)
    tree = ham.energy_tree(states)
    assert set(tree["neurons"]) == {"visible", "h1", "h2", "h3"}
    assert set(tree["synapses"]) == {"v_h1", "v_h2", "h1_h3"}
    total = sum(tree["neurons"].values()) + sum(tree["synapses"].values())
    torch.testing.assert_close(total, ham.energy(states))
    for b in range(5):  # each sample's energy does not depend on the rest of the batch
        one = {n: s[b:b + 1] for n, s in states.items()}
        torch.testing.assert_close(ham.energy(one), ham.energy(states)[b:b + 1])


def test_grads_match_closed_form_for_dense_synapses():
    ham = make_ham()
    states = random_states(ham, 3)
    g = ham.activations(states)
    grads = ham.grads(states)
    w1, w2, w3 = (ham.synapses[k].weight for k in ("v_h1", "v_h2", "h1_h3"))
    vis = ham.neurons["visible"]
    expected_v = states["visible"] - vis.bias - (g["h1"] @ w1 + g["h2"] @ w2).reshape(3, 3, 4)
    torch.testing.assert_close(grads["visible"], expected_v)
    expected_h1 = (states["h1"] - ham.neurons["h1"].bias - g["visible"].flatten(1) @ w1.t()
                   - g["h3"] @ w3)
    torch.testing.assert_close(grads["h1"], expected_h1)
    torch.testing.assert_close(grads["h3"], states["h3"] - g["h1"] @ w3.t())


@pytest.mark.parametrize("method,step", [("euler", 0.02), ("rk4", 0.1), ("dopri5", None)])
def test_continuous_ham_dynamics_decrease_energy(method, step):
    """Convex Lagrangians + symmetric synapses: dE/dt = −Σ ġᵀ H ġ ≤ 0 for any τ_A > 0."""
    for seed in range(2):
        ham = make_ham(seed)
        states = random_states(ham, 4, seed=seed + 10)
        traj = integrate_ham(ham, states, torch.linspace(0, 2, 41), method=method,
                             step_size=step, rtol=1e-5, atol=1e-7,
                             tau={"visible": 1.0, "h1": 0.5, "h2": 0.3, "h3": 2.0})
        diffs = traj.energy[1:] - traj.energy[:-1]
        assert diffs.max() <= 1e-7, (method, seed, diffs.max())
        assert (traj.energy[-1] < traj.energy[0] - 1e-2).all()
        assert traj.states["h2"].shape == (41, 4, 5)


def test_adaptive_and_fixed_step_solvers_agree():
    ham = make_ham(4)
    states = random_states(ham, 2)
    t = torch.linspace(0, 0.5, 3)
    a = integrate_ham(ham, states, t, method="dopri5", rtol=1e-8, atol=1e-10)
    b = integrate_ham(ham, states, t, method="rk4", step_size=0.01)
    c = integrate_ham(ham, states, t, method="euler", step_size=0.1)
    for n in states:  # ReLU's kink limits rk4's order: agree to 1e-4, and better than Euler
        torch.testing.assert_close(a.states[n], b.states[n], rtol=1e-4, atol=1e-4)
    err = lambda tr: max((tr.states[n] - a.states[n]).abs().max().item() for n in states)  # noqa: E731
    assert err(b) < err(c)


def test_discrete_descent_decreases_energy_for_small_steps():
    ham = make_ham(2)
    final, traj = descend(ham, random_states(ham, 6), steps=100, step_size=0.02)
    assert (traj.energy[1:] - traj.energy[:-1]).max() <= 1e-7
    assert traj.states["visible"].shape == (101, 6, 3, 4)
    torch.testing.assert_close(traj.states["h1"][-1], final["h1"])


def test_descent_trains_through_create_graph():
    ham = make_ham()
    final, _ = descend(ham, random_states(ham, 2), steps=3, create_graph=True, record=False)
    final["visible"].square().sum().backward()
    assert ham.synapses["v_h1"].weight.grad.abs().sum() > 0


def test_bad_inputs_raise():
    ham = make_ham()
    with pytest.raises(ValueError, match="unknown layer"):
        HAM(dict(ham.neurons), {"x": DenseSynapse("visible", "nope", torch.zeros(2, 12))})
    with pytest.raises(ValueError, match="at least one layer"):
        HAM({}, {})
    states = random_states(ham, 2)
    states["h1"] = states["h1"][:, :3]
    with pytest.raises(ValueError, match="shape"):
        ham.energy(states)
    with pytest.raises(ValueError, match="unknown ODE method"):
        integrate_ham(ham, random_states(ham, 1), torch.linspace(0, 1, 3), method="leapfrog")
    with pytest.raises(ValueError, match="step_size"):
        integrate_ham(ham, random_states(ham, 1), torch.linspace(0, 1, 3), method="euler")
