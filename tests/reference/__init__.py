"""Plain-numpy oracle of the network in docs/network.md, used to check the numba engine."""

from .network import (
    ReferenceSpec,
    init_reference_params,
    reference_forward,
    reference_loss_and_grads,
)
from .optim import reference_optimizer_step

__all__ = [
    "ReferenceSpec",
    "init_reference_params",
    "reference_forward",
    "reference_loss_and_grads",
    "reference_optimizer_step",
]
