"""The names of a hamixer Mixer's state-dict entries in each layout, and the entries that
differ in shape or are not read (a scalar norm gain, iMixer's logged σ)."""

from __future__ import annotations

from torch import nn

from ..imixer import InvertibleMLP
from ..mixer import HamMixer
from ..mlp import AsymmetricMLP, MixingMLP, SymmetricMLP
from ..norm import JointLayerNorm
from ..timm_compat import hamixer_to_timm_key

# The official iMixer's soft spectral norm keeps, per normalised linear, its raw weight and
# the power-iteration vectors (ours: fc_a/fc_b and sn_a/sn_b of the ContractiveResidual).
IMIXER_SPECTRAL = {"a": "fc_sn1", "b": "fc_sn2"}


def key_map(model: HamMixer, layout: str) -> dict[str, str]:
    """Our state-dict key → the key in ``layout``, for every entry of ``model.state_dict()``.

    Only MLPs are named differently, besides the ``mlp_tokens``/``mlp_channels`` of all
    three external layouts: the official SymMixer stores its tied matrix ``W`` ([hidden, in])
    as ``fc2.weight``; AsymMixer stores ``W`` as ``fc1.weight`` and the breaking matrix as
    ``fc2.weight``; iMixer's spectrally normalised linears are ``fc_sn1``/``fc_sn2``.
    """
    keys = list(model.state_dict())
    if layout == "hamixer":
        return {k: k for k in keys}
    mapping = {k: hamixer_to_timm_key(k) for k in keys}
    for path, module in model.named_modules():
        if isinstance(module, MixingMLP):
            theirs = hamixer_to_timm_key(f"{path}.")
            for ours_local, theirs_local in _mlp_names(module).items():
                mapping[f"{path}.{ours_local}"] = theirs + theirs_local
    return mapping


def _mlp_names(mlp: MixingMLP) -> dict[str, str]:
    """Our key inside ``mlp`` → the external one, where they differ."""
    if type(mlp) is SymmetricMLP:
        return {"weight": "fc2.weight"}
    if type(mlp) is AsymmetricMLP:
        return {"weight": "fc1.weight", "breaking": "fc2.weight"}
    if isinstance(mlp, InvertibleMLP):
        names = {}
        for ours, theirs in IMIXER_SPECTRAL.items():
            names.update({f"f.fc_{ours}.weight": f"{theirs}.weight_orig",
                          f"f.fc_{ours}.bias": f"{theirs}.bias",
                          f"f.sn_{ours}.u": f"{theirs}.weight_u",
                          f"f.sn_{ours}.v": f"{theirs}.weight_v"})
        return names
    return {}


def scalar_gains(model: nn.Module) -> set[str]:
    """Keys of joint-norm gains that are one scalar here and a [S, C] tensor elsewhere."""
    return {f"{path}.weight" for path, m in model.named_modules()
            if isinstance(m, JointLayerNorm) and m.affine == "scalar"}


def ignored_on_import(key: str, layout: str) -> bool:
    # the official spectral norm logs its last σ; ours recomputes it from u, W and v
    return layout == "imixer" and key.endswith(".weight_sigma")
