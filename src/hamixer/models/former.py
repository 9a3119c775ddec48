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

from typing import Any

import torch
from timm.layers import DropPath, PatchEmbed, lecun_normal_, trunc_normal_
from torch import Tensor, nn

from ..errors import ConfigError
from .attention import ATTENTION_TYPES, AsymmetricAttention
from .backbone import PatchBackbone
from .former_energy import former_block_energy
from .mlp import MLP_TYPES, AsymmetricMLP, MixingMLP
from .norm import make_norm
from .symmetric_init import tie_symmetric

#: Where AsymFormer's breaking matrices start (as AsymMixer's, THEORY §3 and §8).
BREAKING_INITS = ("xavier", "zero", "free")

#: The tied model a "zero" start copies and the free one a "free" start copies.
_TWINS = {"zero": dict(attention="energy", mlp="symmetric"),
          "free": dict(attention="free", mlp="free")}


class ParallelFormerBlock(nn.Module):
    """``x + Attn(g) + MLP(g)``, ``g = norm(x)``: with energy attention and a tied MLP, one
    Euler step of the Energy Transformer's dynamics (THEORY §8)."""

    #: one norm feeds attention and MLP (what the energy needs)
    parallel = True

    def __init__(self, dim: int, seq_len: int, num_heads: int, mlp_ratio: float = 4.0,
                 attn_layer: type[nn.Module] = ATTENTION_TYPES["energy"],
                 mlp_layer: type[MixingMLP] = MLP_TYPES["symmetric"], norm: str = "token",
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


def _resolve(kind: str, table: dict[str, type], what: str) -> type:
    if kind not in table:
        raise ConfigError(f"{what} must be one of {tuple(table)}, got {kind!r}")
    return table[kind]


class HamFormer(PatchBackbone):
    """A Transformer of parallel blocks whose attention and MLP types are swappable.

    Args:
        num_classes: classifier outputs (0 for no head).
        img_size: input resolution (square).
        in_chans: input channels.
        patch_size: side of the square patches; ``N = (img_size / patch_size)²`` tokens.
        num_blocks: number of blocks (each with its own weights).
        embed_dim: channels D.
        num_heads: attention heads H (head dimension ``D / H``).
        mlp_ratio: hidden units of the MLP as a multiple of D.
        attention: ``"energy"`` (SymFormer), ``"free"`` (ParaFormer) or ``"asymmetric"``.
        mlp: ``"symmetric"``, ``"free"`` or ``"asymmetric"``.
        norm: ``"token"`` (per token over D) or ``"joint"`` (over N×D) in the blocks.
        norm_affine: gain of the block norms: ``"scalar"`` (the exact energy's),
            ``"elementwise"`` or ``"none"``.
        beta: attention's inverse temperature (default ``1/√(D/H)``).
        exclude_self: drop a token's score with itself from attention (ET's choice).
        n_iter: applications of each block with shared weights (the recurrent dynamics).
        asym_lambda: λ of ``aux_loss`` for layers with breaking matrices.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout on the attention and MLP outputs.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        global_pool: ``"avg"`` or ``""`` (no pooling).
        init: ``"default"`` or ``"symmetric"``: free attention and MLPs start tied
            (``W_K = W_Q``, ``W_V^h = W_K^h``, ``W_O^h = W_Q^hᵀ``, ``W2 = W1ᵀ``; finding 3).
        breaking_init: where AsymFormer's breaking matrices start: ``"xavier"`` (independent
            matrices, as AsymMixer's official start), ``"zero"`` (SymFormer's model at the
            same seed, weight for weight) or ``"free"`` (ParaFormer's initial function at the
            same seed: ``Ṽ = W_V − W_K``, ``Õ = W_O − W_Qᵀ``, ``K̃ = −W_Kᵀ``, ``W̃ = W2 − W1ᵀ``).
        breaking_weight_decay: whether the optimizer's weight decay shrinks the breaking
            matrices (``False`` lists them in ``no_weight_decay()``).
    """

    def __init__(
        self,
        num_classes: int = 1000,
        img_size: int = 224,
        in_chans: int = 3,
        patch_size: int = 16,
        num_blocks: int = 8,
        embed_dim: int = 512,
        num_heads: int = 8,
        mlp_ratio: float = 4.0,
        attention: str = "energy",
        mlp: str = "symmetric",
        norm: str = "token",
        norm_affine: str = "scalar",
        beta: float | None = None,
        exclude_self: bool = False,
        n_iter: int = 1,
        asym_lambda: float = 1e-4,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        init: str = "default",
        breaking_init: str = "xavier",
        breaking_weight_decay: bool = True,
    ) -> None:
        rng_at_start = torch.random.get_rng_state()  # what a twin start rewinds to
        super().__init__()
        _check_args(n_iter=n_iter, asym_lambda=asym_lambda, global_pool=global_pool,
                    img_size=img_size, patch_size=patch_size, init=init,
                    breaking_init=breaking_init, embed_dim=embed_dim, num_heads=num_heads,
                    beta=beta)
        attn_cls = _resolve(attention, ATTENTION_TYPES, "attention")
        mlp_cls = _resolve(mlp, MLP_TYPES, "mlp")
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.n_iter = n_iter
        self.asym_lambda = float(asym_lambda)
        self.breaking_weight_decay = bool(breaking_weight_decay)
        self.grad_checkpointing = False

        self.stem = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                               embed_dim=embed_dim)
        self.seq_len = self.stem.num_patches
        self.pos_embed = nn.Parameter(torch.zeros(1, self.seq_len, embed_dim))
        dpr = torch.linspace(0, drop_path_rate, num_blocks, device="cpu").tolist()
        self.blocks = nn.Sequential(*[
            ParallelFormerBlock(embed_dim, self.seq_len, num_heads, mlp_ratio, attn_cls, mlp_cls,
                                norm, norm_affine, beta, exclude_self, drop=proj_drop_rate,
                                drop_path=dpr[i])
            for i in range(num_blocks)
        ])
        # timm's description of what forward_intermediates returns, one entry per block
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim,
                                  reduction=self.stem.feat_ratio()) for i in range(num_blocks)]
        self.norm = make_norm(norm, self.seq_len, embed_dim, "elementwise")
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights()
        if init == "symmetric":
            self.symmetrize_()
        if breaking_init != "xavier":
            twin_args = dict(num_classes=num_classes, img_size=img_size, in_chans=in_chans,
                             patch_size=patch_size, num_blocks=num_blocks, embed_dim=embed_dim,
                             num_heads=num_heads, mlp_ratio=mlp_ratio, norm=norm,
                             norm_affine=norm_affine, beta=beta, exclude_self=exclude_self,
                             n_iter=n_iter, drop_rate=drop_rate, proj_drop_rate=proj_drop_rate,
                             drop_path_rate=drop_path_rate, global_pool=global_pool)
            self._start_from_twin(breaking_init, twin_args, rng_at_start)
        if not breaking_weight_decay and not self._breaking_names():
            raise ConfigError("breaking_weight_decay=False needs breaking matrices "
                              "(AsymFormer's asymmetric attention or MLPs)")

    # ----------------------------------------------------------------- initialisation
    @torch.no_grad()
    def init_weights(self) -> None:
        """Xavier-uniform matrices (as the Mixers' official init), LeCun-normal stem, zero
        head, position embedding ~ N(0, 0.02²) as timm's ViT."""
        trunc_normal_(self.pos_embed, std=0.02)
        lecun_normal_(self.stem.proj.weight)
        nn.init.zeros_(self.stem.proj.bias)
        for blk in self.blocks:
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
    def _start_from_twin(self, breaking_init: str, twin_args: dict[str, Any],
                         rng: Tensor) -> None:
        """Copy the initial weights of the SymFormer ("zero") or ParaFormer ("free") built
        from the same arguments and the same random state; the random state is left where
        that model leaves it, so that data order and dropout follow it too."""
        for blk in self.blocks:
            if not (isinstance(blk.attn, AsymmetricAttention)
                    and isinstance(blk.mlp, AsymmetricMLP)):
                raise ConfigError(f"breaking_init={breaking_init!r} needs asymmetric attention "
                                  "and MLPs (AsymFormer) in every block")
        torch.random.set_rng_state(rng)  # this model was drawn from it: the twin is too
        twin = HamFormer(**twin_args, **_TWINS[breaking_init])
        for mine, theirs in zip(self.blocks, twin.blocks, strict=True):
            mine.attn.start_from_(theirs.attn)
            mine.mlp.start_from_(theirs.mlp)
            mine.norm.load_state_dict(theirs.norm.state_dict())
        for part in ("stem", "norm", "head"):
            getattr(self, part).load_state_dict(getattr(twin, part).state_dict())
        self.pos_embed.copy_(twin.pos_embed)

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


def _check_args(**a: Any) -> None:
    """Refuse impossible constructor arguments of :class:`HamFormer`."""
    checks = [
        (a["n_iter"] >= 1, f"n_iter must be >= 1, got {a['n_iter']}"),
        (a["asym_lambda"] >= 0, f"asym_lambda must be >= 0, got {a['asym_lambda']}"),
        (a["global_pool"] in ("avg", ""),
         f"global_pool must be 'avg' or '', got {a['global_pool']!r}"),
        (a["img_size"] % a["patch_size"] == 0,
         f"img_size {a['img_size']} is not a multiple of patch_size {a['patch_size']}"),
        (a["num_heads"] >= 1 and a["embed_dim"] % a["num_heads"] == 0,
         f"embed_dim {a['embed_dim']} does not split into {a['num_heads']} heads"),
        (a["beta"] is None or a["beta"] > 0, f"beta must be > 0, got {a['beta']}"),
        (a["init"] in ("default", "symmetric"),
         f"init must be 'default' or 'symmetric', got {a['init']!r}"),
        (a["breaking_init"] in BREAKING_INITS,
         f"breaking_init must be one of {BREAKING_INITS}, got {a['breaking_init']!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
