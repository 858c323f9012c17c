"""geounet: U-Nets on the sphere, on triangles and on meshes.

Implements the framework of Williams, Falck et al., "A Unified Framework for U-Net
Design and Analysis" (NeurIPS 2023) on geometric hierarchies.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    """``geounet.load_model`` (:func:`geounet.inference.mesh_model.load_model`), imported on first use."""
    if name == "load_model":
        from geounet.inference.mesh_model import load_model

        return load_model
    raise AttributeError(f"module 'geounet' has no attribute {name!r}")
