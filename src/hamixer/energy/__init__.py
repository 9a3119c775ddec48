"""Energy view of the Mixer family: hierarchical associative memory (HAM) library, the
energy of a parallel Mixer block, continuous dynamics, and the Energy MetaFormer memory."""

from .dynamics import Trajectory, descend, integrate, integrate_ham
from .ham import HAM, AxisSynapse, ChannelSynapse, DenseSynapse, Neurons, Synapse, TokenSynapse
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
from .mixer_energy import (
    block_as_ham,
    block_energy,
    block_vector_field,
    check_energy_config,
    interaction_energy,
)

__all__ = [
    "HAM", "LAGRANGIANS", "AxisSynapse", "ChannelSynapse", "DenseSynapse", "GELULagrangian",
    "IdentityLagrangian", "Lagrangian", "LayerNormLagrangian", "Neurons", "ReLULagrangian",
    "RePULagrangian", "SoftmaxLagrangian", "SphericalLagrangian", "Synapse", "TokenSynapse",
    "Trajectory", "block_as_ham", "block_energy", "block_vector_field", "check_energy_config",
    "descend", "gelu_lagrangian", "integrate", "integrate_ham", "interaction_energy",
]
