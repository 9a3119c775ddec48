"""The Transformer family of THEORY §8: SymFormer, ParaFormer and AsymFormer(λ).

One backbone, as the Mixers': patch embedding (+ learned position embedding: attention,
unlike a token MLP, does not know where a token sits) → blocks → norm → mean pool → head.
Every block is *parallel*: ``x ← x + Attn(g) + MLP(g)`` with ``g = norm(x)``, one norm for
both, the Transformer counterpart of ParaMixer's block (GPT-J / PaLM / ViT-22B).

* SymFormer (``attention="energy", mlp="symmetric"``): the Energy Transformer's block, the
  increment is exactly ``−∂(E_att + E_hn)/∂g`` (:func:`hamixer.models.former_energy`).
* ParaFormer (``attention="free", mlp="free"``): standard multi-head attention, free MLP.
* AsymFormer (``attention="asymmetric", mlp="asymmetric"``): SymFormer's maps plus breaking
  matrices penalised by ``λ·Σ‖breaking‖²`` in :meth:`HamFormer.aux_loss`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from timm.layers import DropPath, PatchEmbed, lecun_normal_, trunc_normal_
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import ATTENTION_TYPES, AsymmetricAttention, _AttentionBase
from .backbone import PatchBackbone
from .config import BREAKING_INITS, FormerConfig
from .former_energy import former_block_energy
from .mlp import MLP_TYPES, AsymmetricMLP, MixingMLP
from .norm import make_norm
from .symmetric_init import tie_symmetric

__all__ = ["BREAKING_INITS", "FormerConfig", "HamFormer", "ParallelFormerBlock"]


class ParallelFormerBlock(nn.Module):
    """``x + Attn(g) + MLP(g)``, ``g = norm(x)``: with energy attention and a tied MLP, one
    Euler step of the Energy Transformer's dynamics (THEORY §8)."""

    #: one norm feeds attention and MLP (what the energy needs)
    parallel = True

    attn: _AttentionBase
    mlp: MixingMLP

    def __init__(self, dim: int, seq_len: int, num_heads: int, mlp_ratio: float = 4.0,
                 attn_layer: type[_AttentionBase] = ATTENTION_TYPES["energy"],
                 mlp_layer: Callable[..., MixingMLP] = MLP_TYPES["symmetric"],
                 norm: str = "token",
                 norm_affine: str = "scalar", beta: float | None = None,
                 exclude_self: bool = False, act_layer: type[nn.Module] = nn.GELU,
                 drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.dim = dim
        self.seq_len = seq_len
        hidden = int(mlp_ratio * dim)
        if hidden < 1:
            raise ConfigError(f"mlp_ratio {mlp_ratio} gives an empty hidden layer for dim={dim}")
        self.norm = make_norm(norm, seq_len, dim, norm_affine)
        self.attn = attn_layer(dim, num_heads, beta=beta, exclude_self=exclude_self, drop=drop)
        self.mlp = mlp_layer(dim, hidden, axis=-1, bias=False, act_layer=act_layer, drop=drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def update(self, x: Tensor) -> Tensor:
        """The increment ``Attn(g) + MLP(g)`` without skip and drop-path."""
        g = self.norm(x)
        return self.attn(g) + self.mlp(g)

    def forward(self, x: Tensor) -> Tensor:
        if isinstance(self.drop_path, nn.Identity):
            g = self.norm(x)  # the MLP's output GEMM adds the rest of the sum
            return self.mlp.forward_residual(g, x + self.attn(g))
        return x + self.drop_path(self.update(x))

    def penalty(self) -> Tensor:
        """Squared norm of every breaking matrix (zero for SymFormer and ParaFormer)."""
        return self.attn.penalty() + self.mlp.penalty()

    def energy(self, x: Tensor, pseudo: bool = False) -> Tensor:
        """Energy (THEORY §8) of visible states ``x`` ``[B, N, D]`` → ``[B]``; see
        :func:`hamixer.models.former_energy.former_block_energy`."""
        return former_block_energy(self, x, pseudo=pseudo)


class HamFormer(PatchBackbone):
    """A Transformer of parallel blocks whose attention and MLP types are swappable, built
    from a :class:`~hamixer.models.config.FormerConfig` (see there for every field).

    ``HamFormer(config)``, ``HamFormer(**fields)``, or both (the fields replace the
    config's); ``model.config`` is the configuration it was built from.
    """

    #: What the registry checks this builder's keyword arguments against.
    config_class = FormerConfig

    def __init__(self, config: FormerConfig | None = None, /, **fields: Any) -> None:
        config = FormerConfig.from_args(config, fields, "HamFormer")
        super().__init__()
        self._configure(config)
        attn_cls, mlp_cls = config.start_layer_classes()
        embed_dim = config.embed_dim

        self.stem = PatchEmbed(img_size=config.img_size, patch_size=config.patch_size,
                               in_chans=config.in_chans, embed_dim=embed_dim)
        self.seq_len = self.stem.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, self.seq_len, embed_dim))
        dpr = config.drop_path_rates()
        self.blocks = nn.Sequential(*[
            ParallelFormerBlock(embed_dim, self.seq_len, config.num_heads, config.mlp_ratio,
                                attn_cls, mlp_cls, config.norm, config.norm_affine, config.beta,
                                config.exclude_self, drop=config.proj_drop_rate,
                                drop_path=dpr[i])
            for i in range(config.num_blocks)
        ])
        self.norm = make_norm(config.norm, self.seq_len, embed_dim, "elementwise")
        self._add_head()
        self.init_weights()
        if config.init == "symmetric":
            # before a zero or free start's conversion: the reference's tied start (as
            # AsymMixer takes ParaMixer's), where AsymFormer's own layers have nothing to tie
            self.symmetrize_()
        if config.starts_from_reference():
            self._break_symmetry_()

    # ----------------------------------------------------------------- initialisation
    @torch.no_grad()
    def init_weights(self) -> None:
        """Xavier-uniform matrices (as the Mixers' official init), LeCun-normal stem, zero
        head, position embedding ~ N(0, 0.02²) as timm's ViT."""
        trunc_normal_(self.pos_embed, std=0.02)
        lecun_normal_(self.stem.proj.weight)
        if self.stem.proj.bias is not None:  # the stem always has one
            nn.init.zeros_(self.stem.proj.bias)
        for blk in self._former_blocks():
            for param in (*blk.attn.parameters(), *blk.mlp.parameters()):
                nn.init.xavier_uniform_(param)  # every one a matrix: no biases here
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def symmetrize_(self) -> None:
        """The tied start of every free layer (finding 3 of THEORY §8): in each head
        ``W_K = W_Q``, ``W_V = W_K`` and ``W_O = W_Qᵀ`` (so ``W_O W_V = W_Qᵀ W_K``, the
        energy attention's value–output map), and ``W2 = W1ᵀ`` in every free MLP."""
        tie_symmetric(self)

    @torch.no_grad()
    def _break_symmetry_(self) -> None:
        """``breaking_init="zero"`` or ``"free"``: the network was built and initialised with
        SymFormer's or ParaFormer's layers from the same random state as that model; each
        attention and MLP now becomes its asymmetric counterpart computing the same function,
        drawing nothing more, so that the weights and the random stream after them (data
        order, dropout) are that model's."""
        for blk in self._former_blocks():
            blk.attn = AsymmetricAttention.started_from(blk.attn)
            blk.mlp = AsymmetricMLP.started_from(blk.mlp)

    def _former_blocks(self) -> list[ParallelFormerBlock]:
        return [cast(ParallelFormerBlock, blk) for blk in self.blocks]

    # ------------------------------------------------------------------- timm API
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        # the final norm belongs to the last group, as in timm's models (layer-wise decay)
        return dict(stem=r"^stem|^pos_embed",
                    blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def _breaking_names(self) -> set[str]:
        return {name for name, _ in self.named_parameters() if name.endswith("breaking")}

    def no_weight_decay(self) -> set[str]:
        """The position embedding (as timm's ViT), and every breaking matrix with
        ``breaking_weight_decay=False``."""
        skip = {"pos_embed"}
        return skip if self.breaking_weight_decay else skip | self._breaking_names()

    # -------------------------------------------------------------------- forward
    def embed(self, x: Tensor) -> Tensor:
        """Patches ``[B, in_chans, H, W] → [B, N, D]`` plus the position embedding."""
        return self.stem(x) + self.pos_embed

    # ----------------------------------------------------------------- the family
    @property
    def parallel(self) -> bool:
        return True

