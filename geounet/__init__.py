"""geounet: U-Nets on the sphere, on triangles and on meshes.

Implements the framework of Williams, Falck et al., "A Unified Framework for U-Net
Design and Analysis" (NeurIPS 2023) on geometric hierarchies.
"""

__version__ = "0.1.0"
