"""Test-only mirrors of the official paramixer and iMixer networks.

Each class has the parameter names, shapes and eval-mode forward of the network it mirrors,
as read in the official repositories (Toshihiro-Ota/paramixer: ``models/layers.py`` and
``models/mixers.py``, on timm 0.9.2; Toshihiro-Ota/imixer: ``models/mlp_imixer.py`` and
``utils/spectral_norm_fc.py``): what a checkpoint of that code holds, and what it computes.
Dropout and drop-path are left out (the comparisons run in eval mode).
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from timm.layers import Mlp, PatchEmbed
from torch import Tensor, nn

LayerNorm = partial(nn.LayerNorm, eps=1e-6)


# ------------------------------------------------------------------------ paramixer repo
class VMlp(nn.Module):
    """``vMlp``: ``fc2(GELU(fc1 x))``, biases optional (off by default)."""

    def __init__(self, features: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SMlp(nn.Module):
    """``sMlp``: one ``fc2 = Linear(in, hidden)``; ``Wᵀ GELU(W x)`` with ``W = fc2.weight``."""

    def __init__(self, features: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.fc2 = nn.Linear(features, hidden, bias=bias)  # the official name of the tie
        self.act = nn.GELU()

    def forward(self, x: Tensor) -> Tensor:
        w = self.fc2.weight
        return F.linear(self.act(F.linear(x, w)), w.T)


class AMlp(nn.Module):
    """``aMlp``: ``fc1.weightᵀ h + fc2(h)``, ``h = GELU(fc1.weight x)`` (fc2: the breaking)."""

    def __init__(self, features: int, hidden: int, bias: bool = False) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, hidden, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, features, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        h = self.act(F.linear(x, self.fc1.weight))
        return F.linear(h, self.fc1.weight.T) + self.fc2(h)


class VMixerBlock(nn.Module):
    """``vMixerBlock``: serial, both norms over (S, C), the pair applied ``n_iter`` times."""

    def __init__(self, dim: int, seq_len: int, mlp_layer: type[nn.Module], n_iter: int = 1,
                 bias: bool = False, mlp_ratio: tuple[float, float] = (0.5, 4.0)) -> None:
        super().__init__()
        tokens, channels = (int(r * dim) for r in mlp_ratio)
        self.norm1 = LayerNorm((seq_len, dim))
        self.mlp_tokens = mlp_layer(seq_len, tokens, bias=bias)
        self.norm2 = LayerNorm((seq_len, dim))
        self.mlp_channels = mlp_layer(dim, channels, bias=bias)
        self.n_iter = n_iter

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.n_iter):
            x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
            x = x + self.mlp_channels(self.norm2(x))
        return x


class PMixerBlock(nn.Module):
    """``pMixerBlock``: one norm over (S, C) feeding both MLPs, applied ``n_iter`` times."""

    def __init__(self, dim: int, seq_len: int, mlp_layer: type[nn.Module], n_iter: int = 1,
                 bias: bool = False, mlp_ratio: tuple[float, float] = (0.5, 4.0)) -> None:
        super().__init__()
        tokens, channels = (int(r * dim) for r in mlp_ratio)
        self.norm = LayerNorm((seq_len, dim))
        self.mlp_tokens = mlp_layer(seq_len, tokens, bias=bias)
        self.mlp_channels = mlp_layer(dim, channels, bias=bias)
        self.n_iter = n_iter

    def forward(self, x: Tensor) -> Tensor:
        for _ in range(self.n_iter):
            g = self.norm(x)
            x = x + self.mlp_tokens(g.transpose(1, 2)).transpose(1, 2) + self.mlp_channels(g)
        return x


class _Backbone(nn.Module):
    """``MlpMixer`` of both repositories: stem, blocks, LayerNorm over C, mean, head."""

    def __init__(self, blocks: list[nn.Module], stem: PatchEmbed, dim: int,
                 num_classes: int) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.norm = LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.norm(self.blocks(self.stem(x)))
        return self.head(x.mean(dim=1))


def official_mixer(kind: str, img_size: int = 8, patch_size: int = 2, in_chans: int = 1,
                   dim: int = 8, num_blocks: int = 2, num_classes: int = 5, n_iter: int = 1,
                   bias: bool = False) -> nn.Module:
    """The official network of ``kind`` (vanillamixer, paramixer, symmixer, asymmixer)."""
    block, mlp = {"vanillamixer": (VMixerBlock, VMlp), "paramixer": (PMixerBlock, VMlp),
                  "symmixer": (PMixerBlock, SMlp), "asymmixer": (PMixerBlock, AMlp)}[kind]
    stem = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                      embed_dim=dim)
    blocks = [block(dim, stem.num_patches, mlp, n_iter=n_iter, bias=bias)
              for _ in range(num_blocks)]
    return _Backbone(blocks, stem, dim, num_classes)


# --------------------------------------------------------------------------- imixer repo
class SoftSpectralLinear(nn.Module):
    """``spectral_norm_fc(nn.Linear(...), coeff)`` as its state dict shows it: ``bias``,
    ``weight_orig`` and the buffers ``weight_u``, ``weight_v``, ``weight_sigma``; in eval
    the weight is ``weight_orig / max(1, uᵀ W v / coeff)`` with the stored u, v."""

    def __init__(self, in_features: int, out_features: int, coeff: float = 0.9) -> None:
        super().__init__()
        self.coeff = coeff
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.weight_orig = nn.Parameter(torch.empty(out_features, in_features))
        nn.init.xavier_uniform_(self.weight_orig)
        self.register_buffer("weight_u", F.normalize(torch.randn(out_features), dim=0))
        self.register_buffer("weight_v", F.normalize(torch.randn(in_features), dim=0))
        self.register_buffer("weight_sigma", torch.ones(1))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            raise RuntimeError("the mirror computes the eval forward only")
        w = self.weight_orig
        sigma = torch.dot(self.weight_u, torch.mv(w, self.weight_v))
        return F.linear(x, w / torch.clamp(sigma / self.coeff, min=1.0), self.bias)


class IMlp(nn.Module):
    """``iMlp``: ``u = fc1 x``; ``n_repeat`` times ``x ← u + fc_sn2(GELU(fc_sn1(GELU x)))``;
    then ``fc2(GELU x)``."""

    def __init__(self, features: int, internal: int, hidden: int, n_repeat: int = 4,
                 coeff: float = 0.9) -> None:
        super().__init__()
        self.fc1 = nn.Linear(features, internal)
        self.fc_sn1 = SoftSpectralLinear(internal, hidden, coeff)
        self.fc_sn2 = SoftSpectralLinear(hidden, internal, coeff)
        self.fc2 = nn.Linear(internal, features)
        self.act = nn.GELU()
        self.n_repeat = n_repeat

    def forward(self, x: Tensor) -> Tensor:
        u = x = self.fc1(x)
        for _ in range(self.n_repeat):
            x = self.fc_sn2(self.act(self.fc_sn1(self.act(x)))) + u
        return self.fc2(self.act(x))


class IMixerBlock(nn.Module):
    """The iMixer's ``MixerBlock``: per-token norms, iMlp over tokens, timm ``Mlp``."""

    def __init__(self, dim: int, seq_len: int, hidden_ratio: float = 1.0, n_repeat: int = 4,
                 mlp_ratio: tuple[float, float] = (0.5, 4.0)) -> None:
        super().__init__()
        tokens, channels = (int(r * dim) for r in mlp_ratio)
        self.norm1 = LayerNorm(dim)
        self.mlp_tokens = IMlp(seq_len, tokens, int(tokens * hidden_ratio), n_repeat)
        self.norm2 = LayerNorm(dim)
        self.mlp_channels = Mlp(dim, channels)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp_channels(self.norm2(x))


def official_imixer(img_size: int = 8, patch_size: int = 2, in_chans: int = 1, dim: int = 8,
                    num_blocks: int = 2, num_classes: int = 5, hidden_ratio: float = 1.0,
                    n_repeat: int = 4) -> nn.Module:
    """The official iMixer network (its ``MlpMixer`` with iMixer blocks)."""
    stem = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                      embed_dim=dim)
    blocks = [IMixerBlock(dim, stem.num_patches, hidden_ratio, n_repeat)
              for _ in range(num_blocks)]
    return _Backbone(blocks, stem, dim, num_classes)
