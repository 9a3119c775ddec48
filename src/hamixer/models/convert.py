"""State dicts in other code's layouts, translated to and from hamixer's models.

Three external layouts hold the same networks under other names (docs/checkpoints.md):

* ``"timm"``: timm's ``MlpMixer`` (``mixer_*``), our ``mlpmixer_*``.
* ``"paramixer"``: the official code of Karakida, Ota & Taki (2024), written on timm 0.9.2:
  its vanilla Mixer, ParaMixer, SymMixer and AsymMixer (and their ``n_iter`` variants), our
  ``vanillamixer_*``, ``paramixer_*``, ``symmixer_*`` and ``asymmixer_*``.
* ``"imixer"``: the official iMixer code (Ota & Taki 2023), our ``imixer_*``.

``"hamixer"`` is our own layout (a ``.safetensors`` of a run, say). A translation is exact or
refused: :func:`load_external` gives a model that computes what the external model computes
with the same weights, and :func:`to_external` a state dict that the external code loads
strictly and that computes what our model computes; where the external network cannot
express ours (or ours cannot express the file), a :class:`ConfigError` says what differs.

What a state dict cannot say is left to the model it is loaded into: the official
``aMlp`` (AsymMixer) and ``vMlp`` (ParaMixer) hold the same keys and shapes, and the number
of block iterations (``n_iter``), of fixed-point steps (iMixer's ``n_repeat``) and the
spectral bound ``coeff`` are not stored at all.
"""

from __future__ import annotations

import os
import re
import types
from collections.abc import Iterable, Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ConfigError
from ..io import atomic_path
from .blocks import ParallelMixerBlock, SerialMixerBlock
from .imixer import InvertibleMLP
from .mixer import HamMixer
from .mlp import AsymmetricMLP, FreeMLP, MixingMLP, SymmetricMLP
from .norm import JointLayerNorm, TokenLayerNorm
from .timm_compat import hamixer_to_timm_key

#: The layouts :func:`load_external` reads and :func:`to_external` writes.
LAYOUTS = ("hamixer", "timm", "paramixer", "imixer")
#: Files read with safetensors; every other accepted suffix with ``torch.load``.
SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".tar", ".ckpt")
#: Where a training checkpoint keeps the weights, in the order timm's ``load_checkpoint``
#: (what ``--initial-checkpoint`` does in timm) looks: the weight average first.
WRAPPER_KEYS = ("state_dict_ema", "model_ema", "state_dict", "model")
#: Prefixes of wrapped modules (DistributedDataParallel, torch.compile), dropped on reading.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")

# The official iMixer's soft spectral norm keeps, per normalised linear, its raw weight and
# the power-iteration vectors (ours: fc_a/fc_b and sn_a/sn_b of the ContractiveResidual).
_IMIXER_SPECTRAL = {"a": "fc_sn1", "b": "fc_sn2"}


# ------------------------------------------------------------------------- reading files
def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a checkpoint file, unwrapped (:func:`unwrap_state_dict`).

    ``.safetensors`` files are read with safetensors; ``.pth``, ``.pt``, ``.bin``, ``.tar``
    (timm's ``.pth.tar``) and ``.ckpt`` with ``torch.load(weights_only=True)``, which builds
    tensors and plain containers only (a timm training checkpoint's ``args`` come back as
    a ``SimpleNamespace``).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such checkpoint file")
    if path.suffix in SAFETENSORS_SUFFIXES:
        return unwrap_state_dict(_read_safetensors(path), str(path))
    if path.suffix in TORCH_SUFFIXES:
        return unwrap_state_dict(_read_pickle(path), str(path))
    raise ConfigError(f"{path}: unknown checkpoint format (expected "
                      f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)})")


def _read_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable safetensors file ({err})") from None


def _namespace_allowed() -> Any:
    """A context in which ``torch.load(weights_only=True)`` reads ``argparse.Namespace``
    (timm's training checkpoints store their arguments as one) as a ``SimpleNamespace``:
    attributes only, nothing executed. PyTorch without the aliasing form reads as is."""
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    if safe_globals is None:
        return nullcontext()
    try:
        return safe_globals([(types.SimpleNamespace, "argparse.Namespace")])
    except (TypeError, ValueError):
        return nullcontext()


def _read_pickle(path: Path) -> Any:
    import pickle

    try:
        with _namespace_allowed():
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        unsafe = _unsafe_globals(path)
        if not unsafe:
            raise ConfigError(f"{path}: not a readable PyTorch checkpoint (torch.load with "
                              "weights_only=True cannot parse it)") from None
        raise ConfigError(f"{path}: refused by torch.load(weights_only=True): it holds "
                          f"{unsafe}; save the state dict alone or as .safetensors") from None
    except (RuntimeError, EOFError, OSError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{path}: not a readable PyTorch checkpoint ({first[:160]})") from None


def _unsafe_globals(path: Path) -> str:
    find = getattr(torch.serialization, "get_unsafe_globals_in_checkpoint", None)
    try:
        return ", ".join(find(str(path))) if find else ""
    except Exception:  # only a better message is lost
        return ""


def unwrap_state_dict(obj: Any, source: str = "state dict") -> dict[str, Tensor]:
    """The state dict inside ``obj``: ``obj`` itself, or its entry under one of
    :data:`WRAPPER_KEYS` (timm's order), with :data:`WRAPPER_PREFIXES` removed."""
    if not isinstance(obj, Mapping):
        raise ConfigError(f"{source}: holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    others = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
    if others or not obj:
        found = f"non-tensor entries ({', '.join(others[:3])})" if others else "no tensors"
        raise ConfigError(f"{source}: not a state dict: {found}; weights are expected at the "
                          f"top level or under {', '.join(WRAPPER_KEYS)}")
    return {_strip_prefixes(k): v for k, v in obj.items()}


def _strip_prefixes(key: str) -> str:
    while key.startswith(WRAPPER_PREFIXES):
        key = key.split(".", 1)[1]
    return key


def as_state_dict(source: Mapping[str, Tensor] | str | os.PathLike) -> dict[str, Tensor]:
    """A path is read (:func:`read_state_dict`); a mapping is unwrapped."""
    if isinstance(source, (str, os.PathLike)):
        return read_state_dict(source)
    return unwrap_state_dict(source)


# ------------------------------------------------------------------------ layout detection
def detect_layout(state: Mapping[str, Tensor]) -> str:
    """Which of :data:`LAYOUTS` the keys (and norm shapes) of ``state`` are in."""
    keys = list(state)
    if any(".token_mlp." in k or ".channel_mlp." in k for k in keys):
        return "hamixer"
    if any(".mlp_tokens.fc_sn1." in k for k in keys):
        return "imixer"
    if any(".mlp_tokens." in k for k in keys):
        # the official Mixers normalise each block over (S, C): 2-D gains, or one `norm`
        joint = any(re.fullmatch(r"blocks\.\d+\.norm\.weight", k) for k in keys) or any(
            re.fullmatch(r"blocks\.\d+\.norm1\.weight", k) and v.dim() == 2
            for k, v in state.items())
        return "paramixer" if joint else "timm"
    shown = ", ".join(keys[:3]) + (", ..." if len(keys) > 3 else "")
    raise ConfigError(f"the state dict fits no known layout ({', '.join(LAYOUTS)}): no "
                      f"Mixer block MLP keys (keys: {shown})")


def _resolve_layout(layout: str, state: Mapping[str, Tensor]) -> str:
    if layout == "auto":
        return detect_layout(state)
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (one of auto, {', '.join(LAYOUTS)})")
    return layout


# -------------------------------------------------------------------- what each layout is
def _name(model: nn.Module) -> str:
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
    tok, ch = block.token_mlp, block.channel_mlp
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


def _paramixer_mlp_problems(mlp: MixingMLP) -> list[str]:
    if type(mlp) not in (FreeMLP, SymmetricMLP, AsymmetricMLP):
        return [f"a {type(mlp).__name__}: the official code has vMlp, sMlp and aMlp only"]
    if type(mlp) is not FreeMLP and (mlp.b1 is not None or mlp.b2 is not None):
        return [f"a {type(mlp).__name__} with biases: the official sMlp/aMlp apply none to "
                "the tied matrix (mlp_bias=False)"]
    return []


def _require_structure(model: nn.Module, layout: str, verb: str) -> None:
    if not isinstance(model, HamMixer):
        raise ConfigError(f"the {layout} layout is for hamixer's Mixers; {_name(model)} is a "
                          f"{type(model).__name__} (its own state dict loads as it is)")
    problems = structure_problems(model, layout)
    if problems:
        more = f" (+{len(problems) - 2} more)" if len(problems) > 2 else ""
        raise ConfigError(f"cannot {verb} {_name(model)} in the {layout} layout: "
                          f"{'; '.join(problems[:2])}{more}")


# ---------------------------------------------------------------------------- key names
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
        for ours, theirs in _IMIXER_SPECTRAL.items():
            names.update({f"f.fc_{ours}.weight": f"{theirs}.weight_orig",
                          f"f.fc_{ours}.bias": f"{theirs}.bias",
                          f"f.sn_{ours}.u": f"{theirs}.weight_u",
                          f"f.sn_{ours}.v": f"{theirs}.weight_v"})
        return names
    return {}


def _scalar_gains(model: nn.Module) -> set[str]:
    """Keys of joint-norm gains that are one scalar here and a [S, C] tensor elsewhere."""
    return {f"{path}.weight" for path, m in model.named_modules()
            if isinstance(m, JointLayerNorm) and m.affine == "scalar"}


def _ignored_on_import(key: str, layout: str) -> bool:
    # the official spectral norm logs its last σ; ours recomputes it from u, W and v
    return layout == "imixer" and key.endswith(".weight_sigma")


# ------------------------------------------------------------------------------- import
def from_external(model: nn.Module, state: Mapping[str, Tensor], layout: str = "auto"
                  ) -> dict[str, Tensor]:
    """``state`` (in ``layout``) as a state dict that ``model`` loads strictly."""
    state = unwrap_state_dict(state)
    layout = _resolve_layout(layout, state)
    _require_structure(model, layout, "load")
    mapping = key_map(model, layout)
    _check_keys(model, state, mapping, layout)
    expected = model.state_dict()
    scalar = _scalar_gains(model) if layout != "hamixer" else set()
    out, wrong = {}, []
    for ours, theirs in mapping.items():
        value = state[theirs]
        if ours in scalar and value.shape != expected[ours].shape:
            value = _uniform_gain(value, theirs)
        if value.shape != expected[ours].shape:
            wrong.append(f"{theirs} {list(value.shape)} (model: {list(expected[ours].shape)})")
        out[ours] = value
    if wrong:
        more = f" (+{len(wrong) - 2} more)" if len(wrong) > 2 else ""
        raise ConfigError(f"the {layout} state dict does not fit {_name(model)}: shapes differ: "
                          f"{'; '.join(wrong[:2])}{more}")
    return out


def _check_keys(model: nn.Module, state: Mapping[str, Tensor], mapping: Mapping[str, str],
                layout: str) -> None:
    wanted = set(mapping.values())
    missing = [k for k in mapping.values() if k not in state]
    unexpected = [k for k in state if k not in wanted and not _ignored_on_import(k, layout)]
    if missing or unexpected:
        parts = [f"{what} {_few(keys)}" for what, keys in
                 (("missing", missing), ("unexpected", unexpected)) if keys]
        raise ConfigError(f"the {layout} state dict does not fit {_name(model)}: "
                          f"{'; '.join(parts)}")


def _few(keys: Iterable[str], n: int = 2) -> str:
    keys = list(keys)
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def _uniform_gain(value: Tensor, key: str) -> Tensor:
    """A [S, C] gain as our one scalar, when all its entries are equal (else no model of
    ours with a scalar gain computes the same function)."""
    flat = value.reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        return flat[0].clone()
    raise ConfigError(f"{key}: the file's LayerNorm gain varies over (S, C) and this model's "
                      "is one scalar; build it with norm_affine='elementwise'")


def load_external(model: nn.Module, source: Mapping[str, Tensor] | str | os.PathLike,
                  layout: str = "auto") -> str:
    """Load weights in any of :data:`LAYOUTS` into ``model``; return the layout used.

    ``source`` is a state dict or a checkpoint file (:func:`read_state_dict`); ``layout``
    ``"auto"`` is :func:`detect_layout`. A model that is not one of hamixer's (a timm
    model) loads a plain state dict strictly. Raises :class:`ConfigError` when the weights
    do not fit, saying which keys or shapes differ or which model argument would fit.
    """
    state = as_state_dict(source)
    if not isinstance(model, HamMixer) and layout in ("auto", "hamixer"):
        _load_strict(model, state, source)
        return "hamixer"
    layout = _resolve_layout(layout, state)
    _load_strict(model, from_external(model, state, layout), source)
    return layout


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Tensor]) -> str | None:
    """``model.load_state_dict(state, strict=True)``; None when it fits, else the line of
    torch's error that says what does not (for a one-line message)."""
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        lines = [x.strip() for x in str(err).splitlines() if x.strip()]
        return (lines[1] if len(lines) > 1 else lines[0])[:200]
    return None


def _load_strict(model: nn.Module, state: Mapping[str, Tensor], source: Any) -> None:
    where = source if isinstance(source, (str, os.PathLike)) else "the state dict"
    detail = load_state_dict_strict(model, state)
    if detail is not None:
        raise ConfigError(f"{where}: weights do not fit {_name(model)} ({detail})")


def fitting_kwargs(source: Mapping[str, Tensor] | str | os.PathLike, layout: str = "auto"
                   ) -> dict[str, Any]:
    """Model arguments that the weights in ``source`` fix, for a registered name of the
    matching family to load them: ``num_classes`` (0 without a head) and, for the official
    layout, ``final_norm="token"``, ``mlp_bias`` and ``norm_affine="elementwise"`` where the
    block gains vary over (S, C) (the scalar gain of our parallel families cannot hold them).
    """
    state = as_state_dict(source)
    layout = _resolve_layout(layout, state)
    head = state.get("head.weight")
    kwargs: dict[str, Any] = {"num_classes": int(head.shape[0]) if head is not None else 0}
    if layout != "paramixer":
        return kwargs
    kwargs["final_norm"] = "token"
    kwargs["mlp_bias"] = any(re.fullmatch(r"blocks\.\d+\.mlp_\w+\.fc\d\.bias", k) for k in state)
    gains = [v for k, v in state.items() if re.fullmatch(r"blocks\.\d+\.norm\d?\.weight", k)]
    if any(bool((g != g.reshape(-1)[0]).any()) for g in gains):
        kwargs["norm_affine"] = "elementwise"
    return kwargs


# ------------------------------------------------------------------------------- export
@torch.no_grad()
def to_external(model: nn.Module, layout: str) -> dict[str, Tensor]:
    """``model``'s weights as a state dict in ``layout`` (one of :data:`LAYOUTS`): what the
    external code's model of the same configuration loads with ``strict=True``.

    A tied matrix is stored once, as the official code stores it; a scalar norm gain becomes
    the [S, C] gain of the official LayerNorm; iMixer's logged σ is ``uᵀ W v``.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r} (one of {', '.join(LAYOUTS)})")
    _require_structure(model, layout, "write")
    ours = model.state_dict()
    scalar = _scalar_gains(model) if layout != "hamixer" else set()
    out = {}
    for key, theirs in key_map(model, layout).items():
        value = ours[key]
        if key in scalar:
            norm = model.get_submodule(key.rpartition(".")[0])
            value = value.expand(norm.normalized_shape)
        out[theirs] = value
    if layout == "imixer":
        out.update(_imixer_sigmas(model))
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in out.items()}


def _imixer_sigmas(model: nn.Module) -> dict[str, Tensor]:
    """``fc_sn*.weight_sigma`` of the official iMixer: σ = uᵀ W v, shape [1]."""
    out = {}
    for path, mlp in model.named_modules():
        if isinstance(mlp, InvertibleMLP):
            prefix = hamixer_to_timm_key(f"{path}.")
            for ours, theirs in _IMIXER_SPECTRAL.items():
                sn, fc = getattr(mlp.f, f"sn_{ours}"), getattr(mlp.f, f"fc_{ours}")
                out[f"{prefix}{theirs}.weight_sigma"] = sn.sigma(fc.weight).reshape(1)
    return out


def save_external(model: nn.Module, path: str | os.PathLike, layout: str) -> Path:
    """Write :func:`to_external` to ``path`` atomically: ``.safetensors`` with safetensors,
    any of :data:`TORCH_SUFFIXES` with ``torch.save`` (a plain dict of tensors)."""
    path = Path(path)
    if path.suffix not in SAFETENSORS_SUFFIXES + TORCH_SUFFIXES:
        raise ConfigError(f"{path}: unknown checkpoint format (expected "
                          f"{', '.join(SAFETENSORS_SUFFIXES + TORCH_SUFFIXES)})")
    state = to_external(model, layout)
    with atomic_path(path) as tmp:
        if path.suffix in SAFETENSORS_SUFFIXES:
            from safetensors.torch import save_file

            save_file(state, str(tmp), metadata={"format": "pt", "layout": layout})
        else:
            torch.save(state, tmp)
    return path
