"""A model named on the command line with weights from a file or a download:
``--model NAME [--model-kwargs K=V ...] --initial-checkpoint PATH`` (timm's flag) and, for
``symmetry``, ``--pretrained`` (timm's published weights)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import ConfigError


def add_weight_arguments(p: argparse.ArgumentParser, pretrained: bool = False) -> None:
    p.add_argument("--model", default=None,
                   help="build this model (`hamixer models`) and take its weights from "
                        "--initial-checkpoint" + (" or --pretrained" if pretrained else "")
                        + " instead of a run's checkpoint")
    p.add_argument("--model-kwargs", nargs="+", metavar="K=V", default=None,
                   help="arguments of --model, e.g. n_iter=2 num_classes=10")
    p.add_argument("--initial-checkpoint", default=None, metavar="PATH",
                   help="weights for --model: .safetensors/.pth/.pt/.bin in hamixer's, "
                        "timm's or the official paramixer/iMixer layout (docs/checkpoints.md)")
    if pretrained:
        p.add_argument("--pretrained", action="store_true",
                       help="timm's published weights for --model (downloaded by timm)")


def fitted_model_kwargs(name: str, path: str, keep_head: bool) -> dict[str, Any]:
    """The arguments of the registered model ``name`` that the weights in ``path`` fix and
    that differ from its defaults (the official final norm per token, say); ``{}`` for a
    timm model, which loads its own state dict as it is."""
    from ..models.convert import fitting_kwargs
    from ..models.registry import MODEL_CONFIGS, model_args

    if name not in MODEL_CONFIGS:
        return {}
    fitted = fitting_kwargs(path)
    if not keep_head:
        fitted.pop("num_classes")
    defaults = model_args(name)
    return {k: v for k, v in fitted.items() if defaults.get(k) != v}


def model_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any]]:
    """``--model`` with its weights, in eval mode, and a description of it shaped like a
    checkpoint's metadata (``model``, ``model_kwargs``, ``path``, ``epoch`` = None)."""
    from ..models import create_model, load_external
    from ..models.registry import model_source
    from ..train.config import parse_kv

    model_source(args.model)  # an unknown name is that, whatever weights were (not) given
    kwargs = parse_kv(args.model_kwargs)
    pretrained = getattr(args, "pretrained", False)
    if pretrained and args.initial_checkpoint:
        raise ConfigError("--pretrained and --initial-checkpoint both give the weights; "
                          "pass one")
    if pretrained:
        model, source = pretrained_model(args.model, kwargs), "pretrained"
    elif args.initial_checkpoint:
        source = args.initial_checkpoint
        kwargs = {**fitted_model_kwargs(args.model, source, keep_head=True), **kwargs}
        model = create_model(args.model, **kwargs)
        load_external(model, source)
    else:
        other = " or --pretrained" if hasattr(args, "pretrained") else ""
        raise ConfigError(f"--model {args.model} needs weights: --initial-checkpoint PATH{other}")
    meta = {"model": args.model, "model_kwargs": kwargs, "path": str(source), "epoch": None}
    return model.eval(), meta


def pretrained_model(name: str, kwargs: dict[str, Any]) -> Any:
    """``create_model(name, pretrained=True)`` (arguments checked, hamixer's own names
    refused: they have no published weights); a failed download is a one-line
    :class:`ConfigError` naming the host that could not be reached."""
    from ..models import create_model
    from ..models.registry import model_args, model_source
    from ._hub import check_hub_weights

    if model_source(name) == "timm":
        model_args(name, **kwargs)  # a wrong argument is that, reachable hub or not
        check_hub_weights(name, kwargs)  # at once, not after the hub's retries
    try:
        return create_model(name, pretrained=True, **kwargs)
    except OSError as err:  # the hub's and urllib's failures are OSErrors
        raise ConfigError(f"cannot download pretrained weights for {name}: "
                          f"{_weights_host(name)} unreachable ({_why(err)}); pass "
                          "--initial-checkpoint PATH with a local file") from None
    except RuntimeError as err:
        if str(err).startswith("No pretrained weights exist"):
            raise ConfigError(f"timm publishes no weights for {name}") from None
        raise


def _weights_host(name: str) -> str:
    """Where timm downloads ``name``'s weights from."""
    from urllib.parse import urlparse

    import huggingface_hub
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is not None and cfg.hf_hub_id:
        return urlparse(huggingface_hub.constants.ENDPOINT).netloc  # HF_ENDPOINT's
    if cfg is not None and cfg.url:
        return urlparse(cfg.url).netloc
    return "the download server"


def _why(err: BaseException) -> str:
    """"no network" when a cause of ``err`` is a failed name lookup or connection."""
    import socket
    from urllib.error import URLError

    seen: BaseException | None = err
    while seen is not None:
        if "offline mode is enabled" in str(seen):
            return "offline mode: HF_HUB_OFFLINE is set"
        if isinstance(seen, (socket.gaierror, ConnectionError, TimeoutError, URLError)):
            return "no network"
        seen = seen.__cause__ or seen.__context__
    text = str(err).strip().splitlines()
    return text[0][:120] if text else type(err).__name__
