"""The backbone shared by the whole family: patch embedding → blocks → norm → pool → head."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, lecun_normal_
from torch import Tensor, nn

from ..errors import ConfigError
from .backbone import PatchBackbone
from .blocks import BLOCK_TYPES, ParallelMixerBlock, _MixerBlockBase
from .mlp import MLP_TYPES, AsymmetricMLP, MixingMLP
from .norm import make_norm
from .symmetric_init import tie_symmetric

#: Where AsymMixer's breaking matrix starts (``HamMixer(breaking_init=...)``).
BREAKING_INITS = ("xavier", "zero", "free")


def _resolve(kind: str | type, table: dict[str, type], what: str) -> type:
    if isinstance(kind, str):
        if kind not in table:
            raise ConfigError(f"{what} must be one of {tuple(table)}, got {kind!r}")
        return table[kind]
    return kind


#: The least value of each size argument of :class:`HamMixer`.
_LEAST = {"num_blocks": 1, "embed_dim": 1, "patch_size": 1, "img_size": 1, "in_chans": 1,
          "num_classes": 0}


def _check_args(a: dict[str, Any]) -> None:
    """Refuse impossible constructor arguments of :class:`HamMixer` (``a``: all of them)."""
    for key, least in _LEAST.items():
        if a[key] < least:
            raise ConfigError(f"{key} must be >= {least}, got {a[key]}")
    for key in ("drop_rate", "proj_drop_rate", "drop_path_rate"):
        if not 0 <= a[key] < 1:
            raise ConfigError(f"{key} must be in [0, 1), got {a[key]}")
    ratios = a["mlp_ratio"] if isinstance(a["mlp_ratio"], Sequence) else [a["mlp_ratio"]]
    if not all(r > 0 for r in ratios):
        raise ConfigError(f"mlp_ratio must be > 0, got {a['mlp_ratio']}")
    checks = [
        (a["n_iter"] >= 1, f"n_iter must be >= 1, got {a['n_iter']}"),
        (a["asym_lambda"] >= 0, f"asym_lambda must be >= 0, got {a['asym_lambda']}"),
        (a["global_pool"] in ("avg", ""),
         f"global_pool must be 'avg' or '', got {a['global_pool']!r}"),
        (a["img_size"] % a["patch_size"] == 0,
         f"img_size {a['img_size']} is not a multiple of patch_size {a['patch_size']}"),
        (a["weight_init"] in ("official", "timm"),
         f"weight_init must be 'official' or 'timm', got {a['weight_init']!r}"),
        (a["init"] in ("default", "symmetric"),
         f"init must be 'default' or 'symmetric', got {a['init']!r}"),
        (a["breaking_init"] in BREAKING_INITS,
         f"breaking_init must be one of {BREAKING_INITS}, got {a['breaking_init']!r}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)


class HamMixer(PatchBackbone):
    """An MLP-Mixer whose block and MLP types are swappable.

    The same class builds timm's MLP-Mixer (``block="serial", norm="token", mlp="free",
    mlp_bias=True``), the paper's vanilla Mixer (serial, joint norm, no biases), ParaMixer
    (parallel, free), SymMixer (parallel, symmetric) and AsymMixer (parallel, asymmetric).

    Args:
        num_classes: classifier outputs (0 for no head).
        img_size: input resolution (square).
        in_chans: input channels.
        patch_size: side of the square patches; ``S = (img_size / patch_size)²`` tokens.
        num_blocks: number of blocks (each with its own weights).
        embed_dim: channels C.
        mlp_ratio: (token hidden, channel hidden) as multiples of C.
        block: ``"serial"``, ``"parallel"`` or a block class.
        mlp: ``"free"``, ``"symmetric"``, ``"asymmetric"`` or an MLP class.
        token_mlp: a different MLP type for token mixing (default: ``mlp``).
        norm: ``"token"`` (per token over C) or ``"joint"`` (over S×C) in the blocks.
        norm_affine: gain of the block norms: ``"elementwise"``, ``"scalar"`` or ``"none"``.
        final_norm: kind of the norm before pooling (defaults to ``norm``, always
            elementwise-affine).
        mlp_bias: biases in the MLPs.
        n_iter: applications of each block with shared weights (the recurrent dynamics).
        asym_lambda: λ of ``aux_loss`` for MLPs with a breaking matrix.
        drop_rate: dropout before the head.
        proj_drop_rate: dropout inside the MLPs.
        drop_path_rate: stochastic depth, linearly increasing over blocks.
        global_pool: ``"avg"`` or ``""`` (no pooling).
        stem_norm: LayerNorm inside the patch embedding.
        weight_init: ``"official"`` (Xavier-uniform linears, zero head, zero biases) or
            ``"timm"`` (timm's Mixer init: biases of MLPs ~ N(0, 1e-6)).
        init: ``"default"`` or ``"symmetric"`` (start free MLPs at W2 = W1ᵀ exactly).
        breaking_init: where AsymMixer's breaking matrix W̃ starts (THEORY §3):
            ``"xavier"`` (the official code: an independent Xavier matrix), ``"zero"``
            (W̃ = 0: the model is SymMixer's at the same seed, weight for weight) or
            ``"free"`` (W̃ = W2₀ − W1₀ᵀ from the free ParaMixer's initial weights at the same
            seed: the model computes ParaMixer's initial function exactly).
        breaking_weight_decay: whether the optimizer's weight decay shrinks W̃ (``False``
            lists every W̃ in ``no_weight_decay()``, timm's way of exempting parameters).
            The official code decays W̃ like every matrix; shrinking W̃ pulls
            W2 = W1ᵀ + W̃ toward W1ᵀ, a symmetric pull that acts even at λ = 0.
    """

    def __init__(
        self,
        num_classes: int = 1000,
        img_size: int = 224,
        in_chans: int = 3,
        patch_size: int = 16,
        num_blocks: int = 8,
        embed_dim: int = 512,
        mlp_ratio: float | Sequence[float] = (0.5, 4.0),
        block: str | type[_MixerBlockBase] = "parallel",
        mlp: str | type[MixingMLP] = "free",
        token_mlp: str | type[MixingMLP] | None = None,
        norm: str = "joint",
        norm_affine: str = "elementwise",
        final_norm: str | None = None,
        mlp_bias: bool = False,
        n_iter: int = 1,
        asym_lambda: float = 1e-4,
        act_layer: type[nn.Module] = nn.GELU,
        drop_rate: float = 0.0,
        proj_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        global_pool: str = "avg",
        stem_norm: bool = False,
        weight_init: str = "official",
        init: str = "default",
        breaking_init: str = "xavier",
        breaking_weight_decay: bool = True,
    ) -> None:
        # The constructor's arguments, to build the same network with other MLPs (the twin
        # that a "zero" or "free" breaking_init copies its start from).
        twin_args = {k: v for k, v in locals().items() if k not in ("self", "__class__")}
        twin_rng = torch.random.get_rng_state()
        super().__init__()
        _check_args(twin_args)
        block_cls = _resolve(block, BLOCK_TYPES, "block")
        mlp_cls = _resolve(mlp, MLP_TYPES, "mlp")
        token_mlp_cls = _resolve(token_mlp, MLP_TYPES, "token_mlp") if token_mlp else mlp_cls

        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.n_iter = n_iter
        self.asym_lambda = float(asym_lambda)
        self.breaking_weight_decay = bool(breaking_weight_decay)
        self.grad_checkpointing = False

        self.stem = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                               embed_dim=embed_dim, norm_layer=nn.LayerNorm if stem_norm else None)
        seq_len = self.stem.num_patches
        self.seq_len = seq_len
        # on the CPU even under a meta default device (`hamixer models` builds no weights)
        dpr = torch.linspace(0, drop_path_rate, num_blocks, device="cpu").tolist()
        self.blocks = nn.Sequential(*[
            block_cls(embed_dim, seq_len, mlp_ratio=mlp_ratio, mlp_layer=mlp_cls,
                      token_mlp_layer=token_mlp_cls, norm=norm,
                      norm_affine=norm_affine, mlp_bias=mlp_bias, act_layer=act_layer,
                      drop=proj_drop_rate, drop_path=dpr[i])
            for i in range(num_blocks)
        ])
        # timm's description of what forward_intermediates returns, one entry per block
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim,
                                  reduction=self.stem.feat_ratio()) for i in range(num_blocks)]
        self.norm = make_norm(final_norm or norm, seq_len, embed_dim, "elementwise")
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self.init_weights(weight_init)
        if init == "symmetric":
            self.symmetrize_()
        if breaking_init != "xavier":
            self._start_from_twin(breaking_init, twin_args, twin_rng)
        if not breaking_weight_decay and not self.no_weight_decay():
            raise ConfigError("breaking_weight_decay=False needs a breaking matrix W̃ "
                              "(AsymMixer's asymmetric MLPs)")

    # ----------------------------------------------------------------- initialisation
    @torch.no_grad()
    def init_weights(self, mode: str = "official") -> None:
        """Xavier-uniform linears, LeCun-normal stem, zero head (official code and timm)."""
        for name, module in self.named_modules():
            if isinstance(module, nn.Linear):
                if name.startswith("head"):
                    nn.init.zeros_(module.weight)
                    nn.init.zeros_(module.bias)
                    continue
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    if mode == "timm" and "mlp" in name:
                        nn.init.normal_(module.bias, std=1e-6)
                    else:
                        nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Conv2d):
                lecun_normal_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        # Tied and breaking matrices are plain Parameters, initialised like linears.
        for name, param in self.named_parameters():
            if name.endswith(("mlp.weight", "mlp.breaking")):
                nn.init.xavier_uniform_(param)

    def symmetrize_(self) -> None:
        """Set W2 = W1ᵀ exactly in every free MLP (spontaneous symmetry-breaking start)."""
        tie_symmetric(self)

    @torch.no_grad()
    def _start_from_twin(self, breaking_init: str, args: dict[str, Any],
                         rng: Tensor) -> None:
        """Copy the initial weights of the SymMixer ("zero") or ParaMixer ("free") built
        from the same arguments and the same random state, and leave the random state
        where that model leaves it, so that data order and dropout follow it too."""
        kinds = {type(m) for m in self.modules() if isinstance(m, MixingMLP)}
        if kinds != {AsymmetricMLP}:
            raise ConfigError(f"breaking_init={breaking_init!r} needs asymmetric MLPs "
                             "(AsymMixer) in every block")
        twin_mlp = "symmetric" if breaking_init == "zero" else "free"
        torch.random.set_rng_state(rng)
        twin = HamMixer(**{**args, "mlp": twin_mlp, "token_mlp": None,
                           "breaking_init": "xavier", "breaking_weight_decay": True})
        mlps = {name: m for name, m in self.named_modules() if isinstance(m, AsymmetricMLP)}
        for name, mlp in mlps.items():
            mlp.start_from_(twin.get_submodule(name))
        theirs = twin.state_dict()
        for key, value in self.state_dict().items():
            if key.rpartition(".")[0] not in mlps:  # stem, norms, head: the twin's as they are
                value.copy_(theirs[key])

    # ------------------------------------------------------------------- timm API
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        # the final norm belongs to the last group, as in timm's Mixers (layer-wise decay)
        return dict(stem=r"^stem", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    def no_weight_decay(self) -> set[str]:
        """Parameters the optimizer must not decay: every W̃ with
        ``breaking_weight_decay=False``, else none."""
        if self.breaking_weight_decay:
            return set()
        return {name for name, _ in self.named_parameters() if name.endswith(".breaking")}

    def embed(self, x: Tensor) -> Tensor:
        """Patch embedding ``[B, in_chans, H, W] → [B, S, C]``, contiguous.

        The same function as ``self.stem`` (a stride-``p`` convolution, then flatten and
        transpose), computed as one GEMM on the unfolded patches. The convolution's output,
        transposed to ``[B, S, C]``, is a non-contiguous view; every residual add keeps that
        layout, so every norm and linear of every block would copy it again.
        """
        stem = self.stem
        p_h, p_w = stem.patch_size
        if (x.dim() != 4 or tuple(x.shape[-2:]) != tuple(stem.img_size) or not stem.flatten
                or getattr(stem, "dynamic_img_pad", False)):
            return self.stem(x).contiguous()  # the checks and errors of timm's PatchEmbed
        b, c, h, w = x.shape
        patches = (x.reshape(b, c, h // p_h, p_h, w // p_w, p_w)
                   .permute(0, 2, 4, 1, 3, 5)
                   .reshape(b, (h // p_h) * (w // p_w), c * p_h * p_w))
        weight = stem.proj.weight
        x = F.linear(patches, weight.reshape(weight.shape[0], -1), stem.proj.bias)
        return stem.norm(x)

    @property
    def parallel(self) -> bool:
        return all(isinstance(b, ParallelMixerBlock) for b in self.blocks)
