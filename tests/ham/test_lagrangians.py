"""Each activation is the autograd gradient of its Lagrangian, for many random shapes."""

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hamixer.ham.lagrangians import (
    GELULagrangian,
    IdentityLagrangian,
    LayerNormLagrangian,
    ReLULagrangian,
    RePULagrangian,
    SoftmaxLagrangian,
    SphericalLagrangian,
    gelu_lagrangian,
)

shapes = st.lists(st.integers(1, 5), min_size=1, max_size=4)


def _autograd(lag, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(lag.density(x).sum(), x)
    return grad


def _make(kind: str, shape: list[int], seed: int):
    gen = torch.Generator().manual_seed(seed)
    nd = len(shape)
    axes = tuple(range(-min(nd, 2), 0))
    gain = 0.5 + torch.rand((), generator=gen, dtype=torch.float64).item()
    shift = torch.randn(*[shape[a] for a in axes], generator=gen, dtype=torch.float64)
    return {
        "identity": lambda: IdentityLagrangian(),
        "relu": lambda: ReLULagrangian(),
        "repu3": lambda: RePULagrangian(3),
        "repu2.5": lambda: RePULagrangian(2.5),
        "softmax": lambda: SoftmaxLagrangian(beta=0.5 + 3 * gain, axis=-1),
        "gelu": lambda: GELULagrangian(),
        "layernorm": lambda: LayerNormLagrangian(axes, gain, shift, eps=1e-5),
        "spherical": lambda: SphericalLagrangian(axes, gain, shift, eps=1e-5),
    }[kind]()


KINDS = ["identity", "relu", "repu3", "repu2.5", "softmax", "gelu", "layernorm", "spherical"]


@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=15, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(0.1, 5.0))
def test_activation_is_gradient_of_lagrangian(kind, shape, seed, scale):
    lag = _make(kind, shape, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = scale * torch.randn(2, *shape, generator=gen, dtype=torch.float64)
    torch.testing.assert_close(lag.activation(x), _autograd(lag, x), rtol=1e-9, atol=1e-9)


def test_activations_are_the_named_functions():
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    torch.testing.assert_close(GELULagrangian().activation(x), F.gelu(x))
    torch.testing.assert_close(ReLULagrangian().activation(x), F.relu(x))
    torch.testing.assert_close(RePULagrangian(3).activation(x), F.relu(x) ** 2)
    torch.testing.assert_close(SoftmaxLagrangian(2.0).activation(x), torch.softmax(2 * x, -1))
    ln = LayerNormLagrangian((-2, -1), eps=1e-6)
    torch.testing.assert_close(ln.activation(x), F.layer_norm(x, (4, 5), eps=1e-6))
    sph = SphericalLagrangian(-1, gain=2.0, eps=0.0 + 1e-12)
    torch.testing.assert_close(sph.activation(x), 2 * F.normalize(x, dim=-1))


def test_gelu_lagrangian_derivative_is_exact_gelu_not_tanh():
    x = torch.linspace(-6, 6, 241, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(gelu_lagrangian(x).sum(), x)
    torch.testing.assert_close(grad, F.gelu(x.detach()), rtol=1e-12, atol=1e-12)
    assert (grad - F.gelu(x.detach(), approximate="tanh")).abs().max() > 1e-5
    assert gelu_lagrangian(torch.zeros((), dtype=torch.float64)) == 0


def test_layernorm_lagrangian_factor_is_n_not_sqrt_n():
    """THEORY's original γ·√N·√(var+ε) has gradient LN(x)/√N; ours gives LN(x) exactly."""
    n = 9
    x = torch.randn(4, n, dtype=torch.float64, requires_grad=True)
    sigma = torch.sqrt(x.var(-1, unbiased=False) + 1e-5)
    (g_theory,) = torch.autograd.grad((math.sqrt(n) * sigma).sum(), x)
    ln = F.layer_norm(x.detach(), (n,), eps=1e-5)
    torch.testing.assert_close(g_theory * math.sqrt(n), ln)
    torch.testing.assert_close(_autograd(LayerNormLagrangian(-1, eps=1e-5), x.detach()), ln)


def test_layernorm_legendre_term_is_minus_n_gamma_eps_over_sigma():
    x = torch.randn(5, 3, 4, dtype=torch.float64)
    lag = LayerNormLagrangian((-2, -1), gain=1.7, shift=torch.randn(3, 4, dtype=torch.float64),
                              eps=1e-3)
    legendre = (x * lag.activation(x)).sum((-2, -1)) - lag.value(x, 2)
    sigma = torch.sqrt(x.var((-2, -1), unbiased=False) + 1e-3)
    torch.testing.assert_close(legendre, -12 * 1.7 * 1e-3 / sigma)


def test_lagrangians_are_convex_along_random_lines():
    """L(midpoint) ≤ mean of the ends (not for GELU: Φ is not convex, see its docstring)."""
    gen = torch.Generator().manual_seed(3)
    for lag in [IdentityLagrangian(), ReLULagrangian(), RePULagrangian(3), SoftmaxLagrangian(2.0),
                LayerNormLagrangian(-1), SphericalLagrangian(-1)]:
        a, b = (torch.randn(200, 6, generator=gen, dtype=torch.float64) for _ in range(2))
        mid = lag.value((a + b) / 2, 1)
        assert (mid <= (lag.value(a, 1) + lag.value(b, 1)) / 2 + 1e-12).all(), lag


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="one number"):
        LayerNormLagrangian(-1, gain=torch.ones(3))
    with pytest.raises(ValueError):
        RePULagrangian(1.5)
    with pytest.raises(ValueError):
        SoftmaxLagrangian(beta=0)
    with pytest.raises(ValueError):
        LayerNormLagrangian(axes=(0,))
