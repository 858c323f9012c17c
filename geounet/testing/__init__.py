"""Reusable property checks for hierarchies and models."""

from geounet.testing.hierarchy_checks import (
    check_constants_and_integrals,
    check_device_consistency,
    check_gradients,
    check_graphs,
    check_hierarchy,
    check_mass,
    check_nestedness,
    check_orthogonal_projection,
)

__all__ = [
    "check_constants_and_integrals",
    "check_device_consistency",
    "check_gradients",
    "check_graphs",
    "check_hierarchy",
    "check_mass",
    "check_nestedness",
    "check_orthogonal_projection",
]
