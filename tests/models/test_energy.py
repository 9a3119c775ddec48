"""The energy of a parallel Mixer block (THEORY §2): update = −∂E/∂g, Lyapunov descent,
symmetry breaking, and equality with the same network built as a generic HAM."""

import pytest
import torch
from torch import nn

from hamixer.errors import ConfigError
from hamixer.ham import integrate
from hamixer.models import (
    AsymmetricMLP,
    FreeMLP,
    ParallelMixerBlock,
    SerialMixerBlock,
    SymmetricMLP,
    create_model,
)
from hamixer.models.energy import (
    block_as_ham,
    block_energy,
    block_vector_field,
    interaction_energy,
    legendre_energy,
)


def make_block(seq_len=3, dim=4, mlp=SymmetricMLP, affine="scalar", norm="joint", bias=True,
               seed=0, scale=0.7, ratio=(1.0, 2.0)):
    torch.manual_seed(seed)
    block = ParallelMixerBlock(dim, seq_len, mlp_ratio=ratio, mlp_layer=mlp, norm=norm,
                               norm_affine=affine, mlp_bias=bias).double().eval()
    with torch.no_grad():
        for name, p in block.named_parameters():
            if name == "norm.weight":
                p.fill_(0.5 + torch.rand(()).item())
            else:
                p.normal_(0.0, scale)
    return block


CONFIGS = [
    dict(),
    dict(bias=False),
    dict(affine="none"),
    dict(norm="token", affine="none"),
    dict(seq_len=5, dim=2, ratio=(0.5, 4.0)),
    dict(seq_len=1, dim=2),
]


def check_energy_identity(block, device="cpu"):
    """The block's increment is −∂E_int/∂g, and dE/dx = J_gᵀ (x − F(g)), in float64."""
    x = 2 * torch.randn(6, block.seq_len, block.dim, dtype=torch.float64, device=device)
    g = block.norm(x).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(interaction_energy(block, g).sum(), g)
    torch.testing.assert_close(block(x) - x, -grad, rtol=1e-10, atol=1e-12)
    # Through the energy of x itself: dE/dx = J_gᵀ (x − F(g)) with the symmetric J_g.
    xr = x.clone().requires_grad_(True)
    (de_dx,) = torch.autograd.grad(block.energy(xr).sum(), xr)
    xg = x.clone().requires_grad_(True)
    (jvp,) = torch.autograd.grad(block.norm(xg), xg, grad_outputs=x - block.update(x).detach())
    torch.testing.assert_close(de_dx, jvp, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_block_increment_is_minus_grad_of_interaction_energy(cfg):
    check_energy_identity(make_block(**cfg))


def test_legendre_term_vanishes_up_to_eps():
    block = make_block()
    x = torch.randn(4, 3, 4, dtype=torch.float64)
    assert legendre_energy(block, x).abs().max() < 1e-4


@pytest.mark.parametrize("seed", range(8))
def test_energy_never_increases_along_small_euler_steps(seed):
    sizes = [(2, 3), (3, 4), (4, 2), (1, 3), (5, 5), (3, 6)]
    s, c = sizes[seed % len(sizes)]
    cfg = CONFIGS[seed % 4]
    block = make_block(seq_len=s, dim=c, seed=seed, scale=1.0,
                       **{k: v for k, v in cfg.items() if k not in ("seq_len", "dim")})
    x0 = 3 * torch.randn(8, s, c, dtype=torch.float64)
    with torch.no_grad():
        traj = integrate(lambda x: block_vector_field(block, x), x0,
                         torch.linspace(0, 4, 201), energy=block.energy, method="euler",
                         step_size=0.02)
    diffs = traj.energy[1:] - traj.energy[:-1]
    assert diffs.max() <= 1e-9, diffs.max()
    assert (traj.energy[-1] < traj.energy[0] - 1e-3).any()  # it actually moves


def _max_increase(block, seed):
    gen = torch.Generator().manual_seed(seed)
    x0 = 3 * torch.randn(16, block.seq_len, block.dim, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        traj = integrate(lambda x: block_vector_field(block, x), x0, torch.linspace(0, 4, 201),
                         energy=lambda x: block.energy(x, pseudo=True), method="euler",
                         step_size=0.02)
    return (traj.energy[1:] - traj.energy[:-1]).max().item()


def test_asymmetric_weights_can_increase_the_pseudo_energy():
    found = None
    for seed in range(20):
        block = make_block(mlp=AsymmetricMLP, seed=seed, scale=1.0)
        if _max_increase(block, seed) > 1e-3:
            found = seed
            break
    assert found is not None, "no pseudo-energy increase found for asymmetric weights"
    # Control: the same block with the breaking matrices zeroed descends.
    block = make_block(mlp=AsymmetricMLP, seed=found, scale=1.0)
    with torch.no_grad():
        block.token_mlp.breaking.zero_()
        block.channel_mlp.breaking.zero_()
    assert _max_increase(block, found) <= 1e-9


@pytest.mark.parametrize("cfg", CONFIGS[:4])
def test_block_as_generic_ham_has_same_energy_and_update(cfg):
    block = make_block(**cfg)
    ham = block_as_ham(block)
    x = torch.randn(5, block.seq_len, block.dim, dtype=torch.float64)
    states = ham.equilibrium_hidden(ham.init_states(5, visible=x), "visible")
    torch.testing.assert_close(ham.energy(states), block.energy(x), rtol=1e-10, atol=1e-10)
    grads = ham.grads(states)
    torch.testing.assert_close(-grads["visible"], block_vector_field(block, x))
    # Hidden layers sit at their fixed points: no force on them.
    assert grads["token"].abs().max() < 1e-12 and grads["channel"].abs().max() < 1e-12
    # Away from the hidden fixed points the HAM energy is higher (GELU Legendre term).
    tree = ham.energy_tree(states)
    assert set(tree["synapses"]) == {"token_mixing", "channel_mixing"}


def test_pseudo_energy_equals_energy_for_tied_weights():
    block = make_block()
    x = torch.randn(3, 3, 4, dtype=torch.float64)
    torch.testing.assert_close(block.energy(x, pseudo=True), block.energy(x))


def test_gradients_reach_block_parameters():
    block = make_block()
    block.energy(torch.randn(2, 3, 4, dtype=torch.float64)).sum().backward()
    assert block.token_mlp.weight.grad.abs().sum() > 0 and block.norm.weight.grad is not None


def test_models_symmixer_blocks_have_an_energy():
    model = create_model("symmixer_n2_8").double().eval()
    x = torch.randn(2, model.seq_len, model.embed_dim, dtype=torch.float64)
    for blk in model.blocks:
        assert blk.energy(x).shape == (2,)
    para = create_model("paramixer_n2_8")
    with pytest.raises(ConfigError, match="pseudo=True"):
        para.blocks[0].energy(x.float())
    assert para.blocks[0].energy(x.float(), pseudo=True).shape == (2,)


def test_configurations_without_energy_are_clear_errors():
    x = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(ConfigError, match="elementwise gain"):
        make_block(affine="elementwise").energy(x)
    assert make_block(affine="elementwise").energy(x, pseudo=True).shape == (2,)
    with pytest.raises(ConfigError, match="elementwise gain"):
        make_block(norm="token", affine="elementwise").energy(x)
    with pytest.raises(ConfigError, match="FreeMLP"):
        make_block(mlp=FreeMLP).energy(x)
    with pytest.raises(ConfigError, match="AsymmetricMLP"):
        make_block(mlp=AsymmetricMLP).energy(x)
    tanh = ParallelMixerBlock(4, 3, mlp_layer=SymmetricMLP, norm_affine="scalar",
                              act_layer=lambda: nn.GELU(approximate="tanh"))
    with pytest.raises(ConfigError, match="erf GELU"):
        tanh.energy(x.float())
    serial = SerialMixerBlock(4, 3, norm="joint", norm_affine="none", mlp_layer=SymmetricMLP)
    assert not hasattr(serial, "energy")
    with pytest.raises(ConfigError, match="parallel"):
        block_energy(serial, x.float())
    with pytest.raises(ConfigError, match="expected visible"):
        make_block().energy(torch.randn(2, 4, 3, dtype=torch.float64))
