"""The dynamics experiment of THEORY §4 (paper §6): a SymMixer block against an AsymMixer one.

Both blocks share the tied weights ``W``; the asymmetric one adds breaking matrices ``W̃``
(output matrix ``Wᵀ + W̃``). Along ``dx/dt = Tok(g) + Ch(g) − x`` the symmetric block's
energy must decrease; the asymmetric block's pseudo-energy (same formula, ``W̃`` ignored)
need not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..ham.dynamics import Trajectory, integrate
from ..io import save_figure, write_json
from ..models.blocks import ParallelMixerBlock
from ..models.energy import block_vector_field
from ..models.mlp import AsymmetricMLP, SymmetricMLP
from ..plots import subplots
from ..runs import DYNAMICS


@dataclass(frozen=True)
class DynamicsConfig:
    """Settings of ``hamixer dynamics`` (the defaults are the command's)."""

    out: str
    tokens: int = 3
    channels: int = 4
    starts: int = 4
    method: str = "dopri5"
    step_size: float = 0.02
    rtol: float = 1e-6
    atol: float = 1e-8
    t_max: float = 20.0
    points: int = 401
    weight_scale: float = 1.5
    asym_scale: float = 1.5
    eps: float = 1e-6
    landscape_eps: float = 0.5
    seed: int = 0

def make_block_pair(tokens: int, channels: int, weight_scale: float, asym_scale: float,
                    eps: float, seed: int) -> tuple[ParallelMixerBlock, ParallelMixerBlock]:
    """(symmetric, asymmetric) blocks with the same tied weights, no norm gain, no biases."""
    torch.manual_seed(seed)
    kw = dict(norm="joint", norm_affine="none", mlp_bias=False)
    sym = ParallelMixerBlock(channels, tokens, mlp_layer=SymmetricMLP, **kw)
    asym = ParallelMixerBlock(channels, tokens, mlp_layer=AsymmetricMLP, **kw)
    with torch.no_grad():
        for blk in (sym, asym):
            blk.norm.eps = eps
        for src, dst in ((sym.token_mlp, asym.token_mlp), (sym.channel_mlp, asym.channel_mlp)):
            src.weight.mul_(weight_scale)
            dst.weight.copy_(src.weight)
            nn.init.xavier_uniform_(dst.breaking)
            dst.breaking.mul_(asym_scale)
    return sym.double().eval(), asym.double().eval()


def _solve(block: ParallelMixerBlock, x0: torch.Tensor, args: DynamicsConfig,
           pseudo: bool) -> Trajectory:
    t = torch.linspace(0.0, args.t_max, args.points, dtype=torch.float64)
    return integrate(lambda x: block_vector_field(block, x), x0, t,
                     energy=lambda x: block.energy(x, pseudo=pseudo), method=args.method,
                     step_size=args.step_size, rtol=args.rtol, atol=args.atol)


def _summary(traj: Trajectory) -> dict:
    e = traj.energy.numpy()
    inc = float(np.diff(e, axis=0).max()) if len(e) > 1 else 0.0
    speed = (traj.x[-1] - traj.x[-2]).flatten(1).norm(dim=1) / float(traj.t[-1] - traj.t[-2])
    return dict(energy_start=float(e[0].mean()), energy_end=float(e[-1].mean()),
                max_increase=inc, monotone=inc <= 1e-9 * max(1.0, float(np.abs(e).max())),
                final_speed=speed.tolist())


def _trajectory_json(traj: Trajectory, block: ParallelMixerBlock) -> dict:
    with torch.no_grad():
        g = block.norm(traj.x.flatten(0, 1)).reshape(traj.x.shape)
    return dict(t=traj.t.tolist(), x=traj.x.tolist(), g=g.tolist(), energy=traj.energy.tolist())


def run_dynamics(args: DynamicsConfig) -> dict[str, dict]:
    """Integrate both blocks, write ``dynamics.json`` and three PNGs to ``args.out``."""
    out = Path(args.out)
    sym, asym = make_block_pair(args.tokens, args.channels, args.weight_scale, args.asym_scale,
                                args.eps, args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    x0 = torch.randn(args.starts, args.tokens, args.channels, generator=gen, dtype=torch.float64)
    runs = {"symmetric": (sym, _solve(sym, x0, args, pseudo=False)),
            "asymmetric": (asym, _solve(asym, x0, args, pseudo=True))}

    # The S·C = 2 landscape (S = 1, C = 2): energy on a grid with trajectories on top.
    lsym, lasym = make_block_pair(1, 2, args.weight_scale, args.asym_scale, args.landscape_eps,
                                  args.seed)
    lx0 = 2.5 * torch.randn(args.starts, 1, 2, generator=gen, dtype=torch.float64)
    land = {"symmetric": (lsym, _solve(lsym, lx0, args, pseudo=False)),
            "asymmetric": (lasym, _solve(lasym, lx0, args, pseudo=True))}

    summary = {k: _summary(tr) for k, (_, tr) in runs.items()}
    summary.update({f"landscape_{k}": _summary(tr) for k, (_, tr) in land.items()})
    config = {k: v for k, v in vars(args).items() if k not in ("func", "command", "out")}
    write_json(out / DYNAMICS, dict(
        config=config, summary=summary,
        runs={k: _trajectory_json(tr, b) for k, (b, tr) in runs.items()},
        landscape={k: _trajectory_json(tr, b) for k, (b, tr) in land.items()}))
    _plot_activations(runs, out / "activations.png", args)
    _plot_energy(runs, out / "energy.png", args)
    _plot_landscape(land, out / "landscape.png", args)
    return summary


def _plot_activations(runs: dict, path: Path, args: DynamicsConfig) -> None:
    fig, axes = subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, (label, (block, traj)) in zip(axes, runs.items(), strict=True):
        with torch.no_grad():
            g = block.norm(traj.x[:, 0]).reshape(len(traj.t), -1).numpy()
        for u in range(g.shape[1]):
            s, c = divmod(u, args.channels)
            ax.plot(traj.t.numpy(), g[:, u], lw=1.0, label=f"g[{s},{c}]")
        kind = "W2 = W1ᵀ" if label == "symmetric" else f"W2 = W1ᵀ + W̃ (×{args.asym_scale:g})"
        ax.set_title(f"{label} block ({kind}), start 1", fontsize=9)
        ax.set_xlabel("time t")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("activation g = LN(x)")
    if args.tokens * args.channels <= 16:
        axes[1].legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.suptitle(f"Activation trajectories of dx/dt = Tok(g) + Ch(g) − x, S={args.tokens}, "
                 f"C={args.channels}, solver {args.method}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_energy(runs: dict, path: Path, args: DynamicsConfig) -> None:
    fig, axes = subplots(1, 2, figsize=(11, 3.8))
    for ax, (label, (_, traj)) in zip(axes, runs.items(), strict=True):
        e = traj.energy.numpy()
        for j in range(e.shape[1]):
            ax.plot(traj.t.numpy(), e[:, j], lw=1.2, label=f"start {j + 1}")
        name = "energy E" if label == "symmetric" else "pseudo-energy (W̃ ignored)"
        ax.set_title(f"{label} block: {name}", fontsize=9)
        ax.set_xlabel("time t")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"Energy along the continuous dynamics, S={args.tokens}, C={args.channels}",
                 fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def _plot_landscape(land: dict, path: Path, args: DynamicsConfig) -> None:
    lim = max(3.0, math.ceil(max(float(tr.x.abs().max()) for _, tr in land.values())))
    grid = torch.linspace(-lim, lim, 161, dtype=torch.float64)
    xx, yy = torch.meshgrid(grid, grid, indexing="xy")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], -1).reshape(-1, 1, 2)
    fig, axes = subplots(1, 2, figsize=(11, 4.6))
    for ax, (label, (block, traj)) in zip(axes, land.items(), strict=True):
        with torch.no_grad():
            e = block.energy(pts, pseudo=label != "symmetric").reshape(xx.shape).numpy()
        cs = ax.contourf(xx.numpy(), yy.numpy(), e, levels=30, cmap="viridis")
        fig.colorbar(cs, ax=ax, label="energy" if label == "symmetric" else "pseudo-energy")
        x = traj.x.numpy()
        for j in range(x.shape[1]):
            ax.plot(x[:, j, 0, 0], x[:, j, 0, 1], color="white", lw=1.2)
            ax.plot(x[0, j, 0, 0], x[0, j, 0, 1], "o", color="white", ms=4)
            ax.plot(x[-1, j, 0, 0], x[-1, j, 0, 1], "x", color="red", ms=7, mew=2)
        ax.set_xlabel("x₁ (token 1, channel 1)")
        ax.set_ylabel("x₂ (token 1, channel 2)")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(f"{label} block (o start, × end)", fontsize=9)
    fig.suptitle(f"S·C = 2 landscape (LayerNorm ε = {args.landscape_eps:g}): E depends on "
                 "x₁ − x₂ only, since LN removes the mean", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
