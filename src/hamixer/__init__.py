"""hamixer: a Mixer block is one update of a hierarchical Hopfield network.

``import hamixer`` registers the model family in timm, so that
``timm.create_model("symmixer_s16_224")`` works.
"""

from .errors import ConfigError, HamixerError
from .models import create_model, list_models, load_external
from .version import __version__

__all__ = ["ConfigError", "HamixerError", "__version__", "create_model", "list_models",
           "load_external"]
