"""Geometry as plain data: HEALPix grids, triangles and meshes (no nn.Module)."""
