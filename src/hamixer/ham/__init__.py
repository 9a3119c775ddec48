"""Hierarchical associative memory (THEORY §1): neurons with Lagrangians, synapses with
energies, the energy as a sum of parts, and the dynamics that descend it.

A leaf library: it imports nothing of hamixer but the axis-wise linear map of
:mod:`hamixer.ops`, so it can be used without the Mixer models.
"""

from .attention import AttentionSynapse
from .core import HAM, AxisSynapse, ChannelSynapse, DenseSynapse, Neurons, Synapse, TokenSynapse
from .dynamics import Trajectory, descend, integrate, integrate_ham
from .lagrangians import (
    LAGRANGIANS,
    GELULagrangian,
    IdentityLagrangian,
    Lagrangian,
    LayerNormLagrangian,
    ReLULagrangian,
    RePULagrangian,
    SoftmaxLagrangian,
    SphericalLagrangian,
    gelu_lagrangian,
)

__all__ = [
    "HAM", "LAGRANGIANS", "AttentionSynapse", "AxisSynapse", "ChannelSynapse", "DenseSynapse",
    "GELULagrangian", "IdentityLagrangian", "Lagrangian", "LayerNormLagrangian", "Neurons",
    "ReLULagrangian", "RePULagrangian", "SoftmaxLagrangian", "SphericalLagrangian", "Synapse",
    "TokenSynapse", "Trajectory", "descend", "gelu_lagrangian", "integrate", "integrate_ham",
]

from .dense_memory import (  # noqa: E402
    DenseAssociativeMemory,
    PolynomialLagrangian,
    Retrieval,
    SignLagrangian,
)
from .hopfield import (  # noqa: E402
    Hopfield,
    HopfieldLayer,
    HopfieldPooling,
    PatternSynapse,
    association,
    association_energy,
    association_update,
    retrieve,
)

__all__ += [
    "DenseAssociativeMemory", "Hopfield", "HopfieldLayer", "HopfieldPooling", "PatternSynapse",
    "PolynomialLagrangian", "Retrieval", "SignLagrangian", "association", "association_energy",
    "association_update", "retrieve",
]
