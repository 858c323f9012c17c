"""Data generators: the solvers and random geometries that make geounet's built-in data sets.

Rotating shallow water on the sphere, 2-D Navier-Stokes on the torus, P1 finite elements
on meshes, random planar domains and closed surfaces, and families of many meshes with
their solutions. Everything here is run on this machine: no data set is downloaded.
User data (netCDF / zarr, mesh files) is read by :mod:`geounet.data`.
"""
