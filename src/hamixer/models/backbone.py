"""What every model of the family shares after its patch embedding: blocks applied
``n_iter`` times, the final norm, mean pooling, the head, λ's penalty, and timm's API
(``forward_features``/``forward_head``, ``forward_intermediates``, classifier reset, gradient
checkpointing).

A subclass takes its configuration (a :class:`~hamixer.models.config.PatchConfig`) with
:meth:`PatchBackbone._configure`, builds ``stem``, ``blocks`` and ``norm``, then the head with
:meth:`PatchBackbone._add_head`, and defines :meth:`embed` (images → tokens ``[B, S, C]``).
"""

from __future__ import annotations

import abc
from typing import Protocol, cast

import torch
from timm.layers import PatchEmbed
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..errors import ConfigError
from .config import PatchConfig
from .features import Indices, feature_indices


class _Penalised(Protocol):
    def penalty(self) -> Tensor: ...


class PatchBackbone(nn.Module, abc.ABC):
    """Patch embedding → blocks → norm → pool → head (the Mixers', the Transformers')."""

    config: PatchConfig
    stem: PatchEmbed
    blocks: nn.Sequential
    norm: nn.Module
    head_drop: nn.Module
    head: nn.Module
    embed_dim: int
    n_iter: int
    asym_lambda: float
    global_pool: str
    num_classes: int
    grad_checkpointing: bool

    def _configure(self, config: PatchConfig) -> None:
        """Keep ``config`` and the attributes this class reads from it (after
        ``nn.Module.__init__``, before any layer is built)."""
        self.config = config
        self.num_classes = config.num_classes
        self.global_pool = config.global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = config.embed_dim
        self.n_iter = config.n_iter
        self.asym_lambda = float(config.asym_lambda)
        self.breaking_weight_decay = bool(config.breaking_weight_decay)
        self.grad_checkpointing = False

    def _add_head(self) -> None:
        """timm's ``feature_info`` (one entry per block), the head's dropout and the head,
        once ``stem``, ``blocks`` and ``norm`` are built (the head's draws come last)."""
        self.feature_info = [dict(module=f"blocks.{i}", num_chs=self.embed_dim,
                                  reduction=self.stem.feat_ratio())
                             for i in range(len(self.blocks))]
        self.head_drop = nn.Dropout(self.config.drop_rate)
        self.head = (nn.Linear(self.embed_dim, self.num_classes) if self.num_classes > 0
                     else nn.Identity())

    @abc.abstractmethod
    def embed(self, x: Tensor) -> Tensor:
        """Images ``[B, in_chans, H, W]`` → tokens ``[B, S, C]`` (each family its own)."""

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
            total = total + cast(_Penalised, blk).penalty()
        return self.asym_lambda * total
