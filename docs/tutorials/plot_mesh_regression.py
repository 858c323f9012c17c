"""
Mesh engineer: from a folder of meshes to a prediction on a new mesh
====================================================================

You have simulation results on unstructured triangle meshes: one file per part
or domain, each mesh different, with input fields and the solution stored at
the vertices (``point_data`` of ``.vtu`` files, as ParaView and most solvers
write them). You want a surrogate model that maps the inputs to the solution
on a mesh it has never seen.

This tutorial trains one U-Net on a folder of such files with geounet's
``mesh_files`` task, loads the trained model from its run folder and predicts
on a held-back mesh, then renders the prediction. The steps:

1. write a folder of ``.vtu`` files: Darcy flow on random planar domains with
   holes, solved with finite elements by geounet's own generator;
2. train with ``geounet train`` on spaces built from each mesh's own
   Laplacian eigenbasis;
3. load the model with :func:`geounet.load_model <geounet.inference.mesh_model.load_model>` and predict on a new file;
4. draw input, truth, prediction and error on the new mesh.

The data set and the training are CI-sized (two dozen meshes, 300
optimiser steps), so that the documentation build can run it on a CPU: **the numbers
below come from a tiny run.** The real comparisons on 300 domains, held-out
geometries and resolution transfer are in ``experiments/RESULTS.md`` and
``experiments/darcy_mesh/``.
"""

# %%
# A folder of mesh files
# ----------------------
#
# :class:`geounet.datagen.mesh_families.DarcyFamily` draws random polygonal
# domains with holes, meshes them with Triangle at varying resolution, draws a
# log-normal permeability :math:`k` and solves Darcy's equation with P1 finite
# elements,
#
# .. math::
#
#    -\nabla \cdot \big(k(x) \nabla u(x)\big) = 1 \quad \text{in } \Omega,
#    \qquad u = 0 \quad \text{on } \partial\Omega .
#
# We store :math:`\log k` and :math:`u` (scaled by 30 to order one, which only
# keeps the printed numbers readable: the model standardises every channel
# anyway) as point data in ``.vtu`` files with
# :func:`geounet.data.mesh_fields.write_mesh_fields`; with your own data you
# start here, from your folder. One mesh is kept out of the folder: it plays
# the part of the new design the model is asked about after training.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from geounet.data.mesh_fields import write_mesh_fields
from geounet.datagen.mesh_families import DarcyFamily
from geounet.geometry.mesh import Mesh

workdir = Path(tempfile.mkdtemp(prefix="geounet_meshes_"))  # every file of this tutorial goes here
folder = workdir / "my_meshes"
folder.mkdir()

NUM_MESHES = 25
family = DarcyFamily(num_meshes=NUM_MESHES, faces=(200, 500), seed=0)
for mesh_id in range(NUM_MESHES):
    data = family.sample(mesh_id)
    fields = {"log_k": np.log(data["k_vertex"][0]), "u": 30 * data["u_vertex"][0]}  # [V] each
    held_back = mesh_id == NUM_MESHES - 1
    path = workdir / "new_domain.vtu" if held_back else folder / f"domain{mesh_id:02d}.vtu"
    write_mesh_fields(path, Mesh(data["vertices"], data["faces"]), fields, at="vertex")

print(sorted(p.name for p in folder.iterdir()))

# %%
# Spaces from each mesh's Laplacian
# ---------------------------------
#
# A U-Net needs nested spaces :math:`V_0 \subset V_1 \subset \dots \subset V_I`
# on every mesh. For vertex fields the ``eigenbases`` recipe takes them from
# the mesh itself: with the cotangent Laplacian :math:`L` and the lumped mass
# matrix :math:`M` of the mesh, the generalised eigenpairs
# :math:`L \phi_k = \lambda_k M \phi_k`, :math:`\Phi^\top M \Phi = I`, ordered by frequency give
#
# .. math::
#
#    V_i = \operatorname{span}\{\phi_1, \dots, \phi_{n_i}\}, \quad i < I,
#    \qquad V_I = \text{all vertex values},
#
# with the band limits :math:`n_i` of ``band_limits`` (lowered to the nearest
# spectral gap, so that no eigenspace is split). A coarse level stores the
# :math:`n_i` coefficients of a function in its basis; restriction from vertex
# values computes them by the :math:`M`-orthogonal projection, prolongation
# synthesises the function back, and the two compose to
# :math:`\Phi_i \Phi_i^\top M`, the orthogonal projection onto :math:`V_i` in
# the mass inner product. The Multi-ResNet's parameter-free encoder thus hands
# the decoder the smooth parts of the inputs at every scale. The bases are computed once per mesh and cached;
# the *weights* of the model do not depend on the mesh, so one model serves
# every mesh of the folder and any new one.
#
# The files are split by name: ``test_fraction`` of them are held out of
# training and scored after it. The config (TOML; relative paths resolve
# against its folder):

config = workdir / "my_meshes.toml"
config.write_text("""
[task]
name = "mesh_files"
folder = "my_meshes"
inputs = ["log_k"]            # point_data arrays (at = "vertex")
targets = ["u"]
at = "vertex"
recipe = "eigenbases"         # Laplacian eigenbases for vertex fields
band_limits = [8, 32]         # V_0 = 8 modes, V_1 = 32 modes, V_2 = vertex values
test_fraction = 0.2
cache_dir = "cache"

[model]
variant = "multiresnet"
num_levels = 3
width = 16

[train]
steps = 300
batch_size = 4
lr = 3e-3
eval_every = 300
checkpoint_every = 300
""")

# %%
# Training
# --------
#
# ``geounet train --config my_meshes.toml --out runs/my_meshes`` on the command
# line; :func:`geounet.cli.main` runs the same command from Python. Every
# batch mixes different meshes: their hierarchies are joined into one disjoint
# union, and the model is trained in standard units (the training means and
# standard deviations are stored in the checkpoint with the weights).

from geounet.cli import main  # noqa: E402  (imports follow the story)

run_dir = workdir / "runs" / "my_meshes"
status = main(["train", "--config", str(config), "--out", str(run_dir), "--quiet"])
assert status == 0, "training failed"

# %%
# Predicting on a new mesh
# ------------------------
#
# :func:`geounet.load_model <geounet.inference.mesh_model.load_model>` rebuilds the model, its hierarchy recipe and its
# normalisation from the run folder alone. ``predict`` reads a mesh file's
# input fields, builds the recipe's spaces on that mesh (here: its eigenbasis)
# and returns the targets in the units of the files; ``predict_file`` writes
# inputs and predictions into a new ``.vtu`` for ParaView
# (``geounet predict RUN --mesh new.vtu --out predicted.vtu`` in a shell).

import geounet  # noqa: E402
from geounet.data.mesh_fields import read_mesh_fields  # noqa: E402

trained = geounet.load_model(run_dir)
new_file = workdir / "new_domain.vtu"
predicted = trained.predict(new_file)[:, 0].numpy()  # [V], in the units of u
written = trained.predict_file(new_file, workdir / "new_domain_predicted.vtu")

mesh, truth = read_mesh_fields(new_file, ["log_k", "u"], at="vertex")
error = predicted - truth["u"][:, 0]
relative = np.sqrt(mesh.lumped_mass @ error**2 / (mesh.lumped_mass @ truth["u"][:, 0] ** 2))
print(f"new mesh: {mesh.num_vertices} vertices, {mesh.num_faces} faces; relative L2 error {relative:.3f}")
print("written:", written.name)

# %%
# Rendering the prediction
# ------------------------
#
# :func:`geounet.plot.meshes.draw_mesh_panel` draws a field on a planar mesh
# (``tripcolor``) or on a surface in 3-D. Truth and prediction share one colour
# scale; input and error are centred on zero.

from matplotlib.colors import Normalize  # noqa: E402

from geounet.plot.meshes import draw_mesh_panel  # noqa: E402

u_range = Normalize(0.0, float(truth["u"].max()))  # u >= 0: one sequential scale for truth and prediction
panels = (("input log k", truth["log_k"][:, 0], "RdBu_r", None),
          ("u (finite elements)", truth["u"][:, 0], "viridis", u_range),
          ("u predicted", predicted, "viridis", u_range),
          ("error", error, "RdBu_r", None))
fig = plt.figure(figsize=(13, 3.6))
for column, (title, values, cmap, norm) in enumerate(panels):
    draw_mesh_panel(fig, (1, 4, column + 1), mesh, values, float(np.abs(values).max()), title, cmap=cmap, norm=norm)
fig.suptitle(f"A domain the model never saw (tiny run: 300 steps, {NUM_MESHES - 1} files)")
fig.tight_layout()
