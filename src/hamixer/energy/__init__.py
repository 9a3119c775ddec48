"""Deprecated: the HAM library is :mod:`hamixer.ham` and the Mixer's energy is
:mod:`hamixer.models.energy`. This name re-exports both for one release."""

import warnings

from ..ham import *  # noqa: F403
from ..ham import __all__ as _ham_all
from ..models.energy import (
    block_as_ham,
    block_energy,
    block_vector_field,
    check_energy_config,
    interaction_energy,
)

warnings.warn("hamixer.energy is deprecated: import the HAM library from hamixer.ham and the "
              "Mixer energy from hamixer.models.energy", DeprecationWarning, stacklevel=2)

__all__ = [*_ham_all, "block_as_ham", "block_energy", "block_vector_field",
           "check_energy_config", "interaction_energy"]
