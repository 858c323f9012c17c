"""Every figure geounet draws: fields on HEALPix, the square and triangles, meshes, training
curves, diffusion samples and the noise analysis. Matplotlib runs with the Agg backend."""
