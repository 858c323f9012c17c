"""Every figure geounet draws: fields on HEALPix, the square and triangles, meshes, training
curves, diffusion samples and the noise analysis. Figures are made outside pyplot and rendered by
Agg, so importing geounet leaves the caller's matplotlib backend alone (:mod:`geounet.plot.figure`)."""
