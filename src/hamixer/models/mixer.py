"""The backbone shared by the whole family: patch embedding → blocks → norm → pool → head."""

from __future__ import annotations

from typing import Any, cast

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, lecun_normal_
from torch import Tensor, nn

from ..errors import ConfigError
from .backbone import PatchBackbone
from .blocks import ParallelMixerBlock, _MixerBlockBase
from .config import BREAKING_INITS, MixerConfig
from .mlp import AsymmetricMLP
from .norm import make_norm
from .symmetric_init import tie_symmetric

__all__ = ["BREAKING_INITS", "HamMixer", "MixerConfig"]


class HamMixer(PatchBackbone):
    """An MLP-Mixer whose block and MLP types are swappable, built from a
    :class:`~hamixer.models.config.MixerConfig` (see there for every field).

    ``HamMixer(config)``, ``HamMixer(**fields)``, or both (the fields replace the config's);
    ``model.config`` is the configuration it was built from.
    """

    #: What the registry checks this builder's keyword arguments against.
    config_class = MixerConfig

    def __init__(self, config: MixerConfig | None = None, /, **fields: Any) -> None:
        config = MixerConfig.from_args(config, fields, "HamMixer")
        super().__init__()
        self._configure(config)
        block_cls = config.block_class()
        token_mlp_cls, mlp_cls = config.start_mlp_classes()
        embed_dim = config.embed_dim

        self.stem = PatchEmbed(img_size=config.img_size, patch_size=config.patch_size,
                               in_chans=config.in_chans, embed_dim=embed_dim,
                               norm_layer=nn.LayerNorm if config.stem_norm else None)
        seq_len = self.stem.num_patches
        self.seq_len = seq_len
        dpr = config.drop_path_rates()
        self.blocks = nn.Sequential(*[
            block_cls(embed_dim, seq_len, mlp_ratio=config.mlp_ratio, mlp_layer=mlp_cls,
                      token_mlp_layer=token_mlp_cls, norm=config.norm,
                      norm_affine=config.norm_affine, mlp_bias=config.mlp_bias,
                      act_layer=config.act_layer, drop=config.proj_drop_rate, drop_path=dpr[i])
            for i in range(config.num_blocks)
        ])
        self.norm = make_norm(config.final_norm or config.norm, seq_len, embed_dim,
                              "elementwise")
        self._add_head()
        self.init_weights(config.weight_init)
        if config.init == "symmetric":
            self.symmetrize_()
        if config.starts_from_reference():
            self._break_symmetry_()
        if not config.breaking_weight_decay and not self.no_weight_decay():
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
    def _break_symmetry_(self) -> None:
        """``breaking_init="zero"`` or ``"free"``: the network was built, initialised (and
        started symmetric) with SymMixer's or ParaMixer's MLPs from the same random state as
        that model; each MLP now becomes an :class:`AsymmetricMLP` computing the same
        function (W̃ = W2 − W1ᵀ), drawing nothing more, so that the weights and the random
        stream after them (data order, dropout) are that model's."""
        for module in self.blocks:
            blk = cast(_MixerBlockBase, module)
            blk.token_mlp = AsymmetricMLP.started_from(blk.token_mlp)
            blk.channel_mlp = AsymmetricMLP.started_from(blk.channel_mlp)

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
