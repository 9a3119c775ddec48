"""Whether timm's published weights of a model can be had before timm is asked for them:
from the Hugging Face cache, or from a hub that answers.

Without either, huggingface_hub retries each file it looks for with a growing back-off (about
a minute for a model), and only then does ``--pretrained`` fail; one connection to the hub,
bounded by :data:`CONNECT_SECONDS`, tells the same at once. Weights in the cache are never
refused: timm loads them offline.
"""

from __future__ import annotations

import socket
import threading
from typing import Any
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

from ..errors import ConfigError

#: How long the hub (or the proxy to it) may take to accept a connection.
CONNECT_SECONDS = 3.0

#: The files timm looks for in a model's hub repository when its config names none.
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def check_hub_weights(name: str, kwargs: dict[str, Any]) -> None:
    """Raise a one-line :class:`ConfigError` when timm would download ``name``'s weights
    from the Hugging Face hub, they are not in the cache and the hub does not answer."""
    import huggingface_hub
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id or "pretrained_cfg" in kwargs or \
            "pretrained_cfg_overlay" in kwargs:
        return  # not a download from the hub, or one described by the caller
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        return  # huggingface_hub reads the cache only and says so at once
    repo, _, revision = cfg.hf_hub_id.partition("@")
    files = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else WEIGHT_FILES
    for file in files:
        cached = huggingface_hub.try_to_load_from_cache(repo, file, kwargs.get("cache_dir"),
                                                        revision or None)
        if isinstance(cached, str):
            return
    endpoint = huggingface_hub.constants.ENDPOINT
    why = unreachable(endpoint)
    if why is not None:
        raise ConfigError(f"cannot download pretrained weights for {name}: "
                          f"{urlparse(endpoint).netloc} unreachable ({why}); pass "
                          "--initial-checkpoint PATH with a local file")


def unreachable(url: str, seconds: float = CONNECT_SECONDS) -> str | None:
    """Why no connection to ``url``'s host (or to the proxy the environment names for it)
    opens within ``seconds``: ``no network``, ``connection refused``, ...; None if one
    does. The name lookup counts towards the time, which a socket timeout alone would not
    bound."""
    parts = urlparse(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = getproxies().get(parts.scheme)
    if proxy and not proxy_bypass(host):
        via = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = via.hostname or "", via.port or 80
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=seconds).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    attempt = threading.Thread(target=connect, name="hub-connect", daemon=True)
    attempt.start()
    attempt.join(seconds)
    if not outcome:
        return f"no answer within {seconds:g} s"
    err = outcome[0]
    if err is None:
        return None
    if isinstance(err, socket.gaierror):
        return "no network"
    if isinstance(err, ConnectionRefusedError):
        return f"connection to port {port} refused"
    if isinstance(err, TimeoutError):
        return f"no answer within {seconds:g} s"
    return err.strerror or type(err).__name__
