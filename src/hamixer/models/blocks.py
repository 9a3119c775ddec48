"""Mixer blocks: the serial block of the MLP-Mixer and the parallel block of THEORY §2.

Both take and return ``[B, S, C]``. ``token_mlp`` mixes along tokens (axis -2) and
``channel_mlp`` along channels (axis -1); the MLP type decides whether the weights are
free, tied or tied plus a breaking matrix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from timm.layers import DropPath
from torch import Tensor, nn

from ..errors import ConfigError
from .energy import block_energy
from .mlp import FreeMLP, MixingMLP
from .norm import make_norm


def hidden_sizes(dim: int, mlp_ratio: float | Sequence[float]) -> tuple[int, int]:
    """(token hidden, channel hidden) = (int(r_tok·C), int(r_ch·C)), as timm."""
    if isinstance(mlp_ratio, (int, float)):
        mlp_ratio = (mlp_ratio, mlp_ratio)
    if len(mlp_ratio) != 2:
        raise ConfigError(f"mlp_ratio must be a number or (tokens, channels), got {mlp_ratio!r}")
    tok, ch = (int(r * dim) for r in mlp_ratio)
    if tok < 1 or ch < 1:
        raise ConfigError(f"mlp_ratio {tuple(mlp_ratio)} gives an empty hidden layer for dim={dim}")
    return tok, ch


class _MixerBlockBase(nn.Module):
    #: whether one norm feeds both MLPs (a parallel block); serial blocks have no energy
    parallel = False

    token_mlp: MixingMLP
    channel_mlp: MixingMLP

    def __init__(
        self,
        dim: int,
        seq_len: int,
        mlp_ratio: float | Sequence[float] = (0.5, 4.0),
        mlp_layer: Callable[..., MixingMLP] = FreeMLP,
        token_mlp_layer: Callable[..., MixingMLP] | None = None,
        norm: str = "token",
        norm_affine: str = "elementwise",
        mlp_bias: bool = True,
        act_layer: type[nn.Module] = nn.GELU,
        drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.dim = dim
        self.seq_len = seq_len
        tokens_dim, channels_dim = hidden_sizes(dim, mlp_ratio)
        self.token_mlp = (token_mlp_layer or mlp_layer)(seq_len, tokens_dim, axis=-2, bias=mlp_bias,
                                   act_layer=act_layer, drop=drop)
        self.channel_mlp = mlp_layer(dim, channels_dim, axis=-1, bias=mlp_bias,
                                     act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def penalty(self) -> Tensor:
        """‖W̃_tok‖² + ‖W̃_ch‖² (zero unless the MLPs carry a breaking matrix)."""
        return self.token_mlp.penalty() + self.channel_mlp.penalty()


class SerialMixerBlock(_MixerBlockBase):
    """``x += Tok(norm1(x)); x += Ch(norm2(x))`` — the MLP-Mixer block (timm's MixerBlock)."""

    def __init__(self, dim: int, seq_len: int, norm: str = "token",
                 norm_affine: str = "elementwise", **kwargs) -> None:
        super().__init__(dim, seq_len, norm=norm, norm_affine=norm_affine, **kwargs)
        self.norm1 = make_norm(norm, seq_len, dim, norm_affine)
        self.norm2 = make_norm(norm, seq_len, dim, norm_affine)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.drop_path, nn.Identity):  # skip additions inside the GEMMs
            x = self.token_mlp.forward_residual(self.norm1(x), x)
            return self.channel_mlp.forward_residual(self.norm2(x), x)
        x = x + self.drop_path(self.token_mlp(self.norm1(x)))
        return x + self.drop_path(self.channel_mlp(self.norm2(x)))


class ParallelMixerBlock(_MixerBlockBase):
    """``x + Tok(g) + Ch(g)`` with ``g = norm(x)``: one Euler step of the Hopfield network.

    With symmetric MLPs and a joint norm of scalar (or no) gain, the increment is exactly
    ``-∂E/∂g`` of the energy of THEORY §2.
    """

    #: one norm feeds both MLPs: what the energy of :mod:`hamixer.models.energy` needs
    parallel = True

    def __init__(self, dim: int, seq_len: int, norm: str = "joint",
                 norm_affine: str = "elementwise", **kwargs) -> None:
        super().__init__(dim, seq_len, norm=norm, norm_affine=norm_affine, **kwargs)
        self.norm = make_norm(norm, seq_len, dim, norm_affine)

    def update(self, x: Tensor) -> Tensor:
        """The increment ``Tok(g) + Ch(g)`` without skip and drop-path."""
        g = self.norm(x)
        return self.token_mlp(g) + self.channel_mlp(g)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.drop_path, nn.Identity):
            # x + Tok(g) + Ch(g) with both additions inside the output GEMMs.
            g = self.norm(x)
            return self.channel_mlp.forward_residual(g, self.token_mlp.forward_residual(g, x))
        return x + self.drop_path(self.update(x))

    def energy(self, x: Tensor, pseudo: bool = False) -> Tensor:
        """Energy (THEORY §2) of visible states ``x`` [B, S, C] → [B]; see
        :func:`hamixer.models.energy.block_energy` for when it is exact and what ``pseudo``
        means."""
        return block_energy(self, x, pseudo=pseudo)


BLOCK_TYPES: dict[str, type[_MixerBlockBase]] = {
    "serial": SerialMixerBlock,
    "parallel": ParallelMixerBlock,
}
