"""Reusable property checks for hierarchies and models."""

from geounet.testing.hierarchy_checks import (
    check_constants_and_integrals,
    check_data,
    check_device_consistency,
    check_gradients,
    check_graphs,
    check_hierarchy,
    check_mass,
    check_nestedness,
    check_orthogonal_projection,
)
from geounet.testing.model_checks import (
    check_batch_independence,
    check_equivariance,
    check_model,
    check_model_gradients,
    check_moves,
    check_parameters_only,
)

__all__ = [
    "check_batch_independence",
    "check_constants_and_integrals",
    "check_data",
    "check_device_consistency",
    "check_equivariance",
    "check_gradients",
    "check_graphs",
    "check_hierarchy",
    "check_mass",
    "check_model",
    "check_model_gradients",
    "check_moves",
    "check_nestedness",
    "check_orthogonal_projection",
    "check_parameters_only",
]
