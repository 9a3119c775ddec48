"""Whether the network of a layout can compute what a hamixer Mixer computes: the blocks,
norms, MLPs and iterations each external network has, and the one-line refusal where they
differ."""

from __future__ import annotations

from torch import nn

from ...errors import ConfigError
from ..blocks import ParallelMixerBlock, SerialMixerBlock
from ..imixer import InvertibleMLP
from ..mixer import HamMixer
from ..mlp import AsymmetricMLP, FreeMLP, MixingMLP, SymmetricMLP
from ..norm import JointLayerNorm, TokenLayerNorm


def model_name(model: nn.Module) -> str:
    return getattr(model, "model_name", type(model).__name__)


def structure_problems(model: HamMixer, layout: str) -> list[str]:
    """Why the network of ``layout`` cannot compute what ``model`` computes (empty: it can)."""
    if layout == "hamixer":
        return []
    problems = []
    if not isinstance(model.norm, TokenLayerNorm):
        problems.append("its final norm is over (S, C), the external one per token "
                        "(final_norm='token')")
    for i, block in enumerate(model.blocks):
        problems += [f"block {i}: {p}" for p in _block_problems(block, layout)]
    if layout != "paramixer" and model.n_iter != 1:
        problems.append(f"n_iter={model.n_iter}: the {layout} Mixer applies each block once")
    if not isinstance(model.stem.norm, nn.Identity):
        # ours is nn.LayerNorm's default (eps 1e-5), the external stems' eps is 1e-6
        problems.append("stem_norm=True: the stem's LayerNorm eps differs")
    acts = [m.act for m in model.modules() if isinstance(m, MixingMLP)]
    if any(not isinstance(a, nn.GELU) or a.approximate != "none" for a in acts):
        problems.append("MLP activations other than GELU (act_layer)")
    return problems


def _block_problems(block: nn.Module, layout: str) -> list[str]:
    tok, ch = block.get_submodule("token_mlp"), block.get_submodule("channel_mlp")
    norms = [m for m in block.children() if isinstance(m, (TokenLayerNorm, JointLayerNorm))]
    if layout == "paramixer":
        out = [] if isinstance(block, (SerialMixerBlock, ParallelMixerBlock)) else [
            f"{type(block).__name__} is neither serial nor parallel"]
        out += [f"a {type(n).__name__} with affine={getattr(n, 'affine', 'elementwise')!r}, "
                "not a LayerNorm over (S, C) (norm='joint')"
                for n in norms if not isinstance(n, JointLayerNorm) or n.affine == "none"]
        if type(tok) is not type(ch):
            out.append("token and channel MLPs of different types (the official block "
                       "takes one mlp_layer)")
        out += [p for mlp in (tok, ch) for p in _paramixer_mlp_problems(mlp)]
        return out
    out = [] if isinstance(block, SerialMixerBlock) else [
        f"a {type(block).__name__}, not the {layout} Mixer's serial block"]
    if any(not isinstance(n, TokenLayerNorm) or n.weight is None for n in norms):
        out.append(f"norms over (S, C) or without gain (the {layout} Mixer normalises "
                   "each token, with a gain)")
    token_type = InvertibleMLP if layout == "imixer" else FreeMLP
    for mlp, wanted in ((tok, token_type), (ch, FreeMLP)):
        if type(mlp) is not wanted:
            out.append(f"a {type(mlp).__name__}, not the {layout} layout's "
                       f"{wanted.__name__}")
        elif mlp.b1 is None:
            out.append(f"MLPs without biases (the {layout} Mixer's have them: mlp_bias=True)")
    return out


def _paramixer_mlp_problems(mlp: nn.Module) -> list[str]:
    if type(mlp) not in (FreeMLP, SymmetricMLP, AsymmetricMLP):
        return [f"a {type(mlp).__name__}: the official code has vMlp, sMlp and aMlp only"]
    if type(mlp) is not FreeMLP and (mlp.b1 is not None or mlp.b2 is not None):
        return [f"a {type(mlp).__name__} with biases: the official sMlp/aMlp apply none to "
                "the tied matrix (mlp_bias=False)"]
    return []


def require_structure(model: nn.Module, layout: str, verb: str) -> HamMixer:
    """``model`` as the hamixer Mixer whose network ``layout`` expresses, or the one-line
    refusal saying why it cannot (``verb``: what was asked, load or write)."""
    if not isinstance(model, HamMixer):
        raise ConfigError(f"the {layout} layout is for hamixer's Mixers; {model_name(model)} is a "
                          f"{type(model).__name__} (its own state dict loads as it is)")
    problems = structure_problems(model, layout)
    if problems:
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        raise ConfigError(f"cannot {verb} {model_name(model)} in the {layout} layout: "
                          f"{'; '.join(problems[:2])}{more}")
    return model
