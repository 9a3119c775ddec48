"""The backbone shared by the whole family: patch embedding → blocks → norm → pool → head."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from timm.layers import PatchEmbed, lecun_normal_
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from .blocks import ParallelMixerBlock
from .config import BREAKING_INITS, MixerConfig
from .features import Indices, feature_indices
from .mlp import AsymmetricMLP
from .norm import make_norm
from .symmetric_init import tie_symmetric

__all__ = ["BREAKING_INITS", "HamMixer", "MixerConfig"]

class HamMixer(nn.Module):
    """An MLP-Mixer whose block and MLP types are swappable, built from a
    :class:`~hamixer.models.config.MixerConfig` (see there for every field).

    ``HamMixer(config)``, ``HamMixer(**fields)``, or both (the fields replace the config's);
    ``model.config`` is the configuration it was built from.
    """

    #: What the registry checks this builder's keyword arguments against.
    config_class = MixerConfig

    def __init__(self, config: MixerConfig | None = None, /, **fields: Any) -> None:
        if config is not None and not isinstance(config, MixerConfig):
            raise TypeError(f"HamMixer takes a MixerConfig and keyword arguments, got "
                            f"{type(config).__name__}")
        if config is None:
            config = MixerConfig(**fields)
        elif fields:
            config = config.replace(**fields)
        super().__init__()
        self.config = config
        block_cls = config.block_class()
        token_mlp_cls, mlp_cls = config.start_mlp_classes()
        embed_dim, num_blocks = config.embed_dim, config.num_blocks

        self.num_classes = config.num_classes
        self.global_pool = config.global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.n_iter = config.n_iter
        self.asym_lambda = float(config.asym_lambda)
        self.breaking_weight_decay = bool(config.breaking_weight_decay)
        self.grad_checkpointing = False

        self.stem = PatchEmbed(img_size=config.img_size, patch_size=config.patch_size,
                               in_chans=config.in_chans, embed_dim=embed_dim,
                               norm_layer=nn.LayerNorm if config.stem_norm else None)
        seq_len = self.stem.num_patches
        self.seq_len = seq_len
        # on the CPU even under a meta default device (`hamixer models` builds no weights)
        dpr = torch.linspace(0, config.drop_path_rate, num_blocks, device="cpu").tolist()
        self.blocks = nn.Sequential(*[
            block_cls(embed_dim, seq_len, mlp_ratio=config.mlp_ratio, mlp_layer=mlp_cls,
                      token_mlp_layer=token_mlp_cls, norm=config.norm,
                      norm_affine=config.norm_affine, mlp_bias=config.mlp_bias,
                      act_layer=config.act_layer, drop=config.proj_drop_rate, drop_path=dpr[i])
            for i in range(num_blocks)
        ])
        # timm's description of what forward_intermediates returns, one entry per block
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=embed_dim,
                                  reduction=self.stem.feat_ratio()) for i in range(num_blocks)]
        self.norm = make_norm(config.final_norm or config.norm, seq_len, embed_dim,
                              "elementwise")
        self.head_drop = nn.Dropout(config.drop_rate)
        self.head = (nn.Linear(embed_dim, config.num_classes) if config.num_classes > 0
                     else nn.Identity())
        self.init_weights(config.weight_init)
        if config.init == "symmetric":
            self.symmetrize_()
        if config.breaking_init != "xavier":
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
        for blk in self.blocks:
            blk.token_mlp = AsymmetricMLP.started_from(blk.token_mlp)
            blk.channel_mlp = AsymmetricMLP.started_from(blk.channel_mlp)

    # ------------------------------------------------------------------- timm API
    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        # the final norm belongs to the last group, as in timm's Mixers (layer-wise decay)
        return dict(stem=r"^stem", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", (99999,))])

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            if global_pool not in ("avg", ""):
                raise ConfigError(f"global_pool must be 'avg' or '', got {global_pool!r}")
            self.global_pool = global_pool
        device = next(self.parameters()).device
        self.head = (nn.Linear(self.embed_dim, num_classes, device=device)
                     if num_classes > 0 else nn.Identity())

    def no_weight_decay(self) -> set[str]:
        """Parameters the optimizer must not decay: every W̃ with
        ``breaking_weight_decay=False``, else none."""
        if self.breaking_weight_decay:
            return set()
        return {name for name, _ in self.named_parameters() if name.endswith(".breaking")}

    # -------------------------------------------------------------------- forward
    def iterate_block(self, blk: nn.Module, x: Tensor) -> Tensor:
        """``blk`` applied ``n_iter`` times with its one set of weights."""
        for _ in range(self.n_iter):
            if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return x

    def forward_blocks(self, x: Tensor) -> Tensor:
        for blk in self.blocks:
            x = self.iterate_block(blk, x)
        return x

    def forward_intermediates(
        self,
        x: Tensor,
        indices: Indices | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[Tensor] | tuple[Tensor, list[Tensor]]:
        """The outputs of the blocks at ``indices``, with timm's signature and meaning.

        An intermediate is a block's output after its last (``n_iter``-th) application.

        Args:
            x: images ``[B, in_chans, H, W]``.
            indices: the last n blocks (an int), the blocks at these positions (negative
                from the end), or every block (``None``).
            norm: pass each intermediate through the final norm.
            stop_early: run no block after the last one asked for.
            output_fmt: ``"NCHW"`` (``[B, C, H/p, W/p]`` feature maps) or ``"NLC"``
                (``[B, S, C]`` tokens).
            intermediates_only: return the intermediates alone.

        Returns:
            The intermediates in block order, or ``(final features, intermediates)``, the final
            features being the final norm of the last block run.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ConfigError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take, last = feature_indices(len(self.blocks), indices)
        batch, _, height, width = x.shape
        x = self.embed(x)
        blocks = self.blocks[:last + 1] if stop_early else self.blocks
        intermediates = []
        for i, blk in enumerate(blocks):
            x = self.iterate_block(blk, x)
            if i in take:
                intermediates.append(self.norm(x) if norm else x)
        if output_fmt == "NCHW":
            h, w = self.stem.dynamic_feat_size((height, width))
            intermediates = [y.reshape(batch, h, w, -1).permute(0, 3, 1, 2).contiguous()
                             for y in intermediates]
        if intermediates_only:
            return intermediates
        return self.norm(x), intermediates

    def prune_intermediate_layers(self, indices: Indices = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> list[int]:
        """Drop the blocks after the last of ``indices`` (and the final norm, the head);
        return the absolute block positions ``indices`` stands for."""
        take, last = feature_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0, "")
        return take

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

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.embed(x)
        x = self.forward_blocks(x)
        return self.norm(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        if self.global_pool == "avg":
            x = x.mean(dim=1)
        x = self.head_drop(x)
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    # ----------------------------------------------------------------- the family
    def aux_loss(self) -> Tensor:
        """λ·Σ_blocks(‖W̃_tok‖² + ‖W̃_ch‖²); a zero tensor for models without W̃."""
        total = self.head.weight.new_zeros(()) if isinstance(self.head, nn.Linear) else \
            next(self.parameters()).new_zeros(())
        if self.asym_lambda == 0.0:
            return total
        for blk in self.blocks:
            total = total + blk.penalty()
        return self.asym_lambda * total

    @property
    def parallel(self) -> bool:
        return all(isinstance(b, ParallelMixerBlock) for b in self.blocks)
