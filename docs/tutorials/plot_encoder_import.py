"""
Encoder importer: geounet's projections inside your own module, compiled and exported
=====================================================================================

You already have a model and a training loop, and you want geounet for one
thing: the multi-resolution *encoder* on a geometry you do not want to write
yourself. In a Multi-ResNet (Williams, Falck et al., NeurIPS 2023) the encoder
has no parameters at all: it maps a signal :math:`v` on the finest level to its
orthogonal projections onto nested subspaces,

.. math::

   v \\mapsto (P_0 v, P_1 v, \\dots, P_I v), \\qquad V_0 \\subset V_1 \\subset \\dots \\subset V_I,

and all the learning happens in the decoder. This tutorial takes the HEALPix
Haar hierarchy (the nested pixels of the HEALPix grid on the sphere), puts its
encoder and its prolongation into a small ``torch.nn.Module`` of our own,
checks numerically that the encoder really projects, trains the module for a
few steps, compiles it with ``torch.compile`` and exports it with
``torch.export`` and to ONNX, checking that every exported program computes
the same function. The module only calls the hierarchy's ``restrict`` and
``prolong``, which every geounet hierarchy has; for face signals on a mesh of
your own, the line that builds the hierarchy becomes
``ClusterHierarchy(load_mesh(path), num_levels=3).to(dtype=torch.float32)``
(``load_mesh`` from :mod:`geounet.data.meshes`;
hierarchies are built in float64).

Training here is a few dozen steps on random fields: **the loss values below
come from a tiny run** and only show that gradients flow. Trained comparisons
of Multi-ResNets against learned encoders are in ``experiments/RESULTS.md``.
"""

# %%
# The hierarchy and its encoder
# -----------------------------
#
# :class:`geounet.hierarchy.HealpixHaarHierarchy` holds the HEALPix grids of
# nside 16, 8 and 4 in NEST order. Level :math:`i` is the space of functions
# constant on each pixel of its grid; restriction (fine to coarse) averages the
# four children of every pixel, prolongation (coarse to fine) copies a pixel's
# value to its four children. Because all pixels have equal area, the mean is
# the :math:`L^2`-orthogonal projection. A hierarchy is data (tensors and
# sizes); the encoder :class:`geounet.nn.MultiResolutionEncoder` holds
# nothing and is called with the hierarchy.

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import onnxruntime
import torch
from torch import Tensor, nn

from geounet.hierarchy import HealpixHaarHierarchy
from geounet.nn import MultiResolutionEncoder

torch.manual_seed(0)
workdir = Path(tempfile.mkdtemp(prefix="geounet_export_"))  # every file of this tutorial goes here

hierarchy = HealpixHaarHierarchy(nside=16, num_levels=3)  # levels 0, 1, 2: nside 4, 8, 16
finest = hierarchy.finest_level
x = torch.randn(2, hierarchy.num_nodes(finest), 1)  # [batch, 12 * 16**2 pixels, channels]
pyramid = MultiResolutionEncoder()(x, hierarchy)  # [P_0 x, P_1 x, P_2 x = x], coarsest first
print([tuple(p.shape) for p in pyramid])

# %%
# Checking that the encoder projects
# ----------------------------------
#
# Write :math:`R_i` for restriction from level :math:`i` to :math:`i-1` and
# :math:`E_i` for prolongation from :math:`i-1` to :math:`i`. The spaces are
# nested when :math:`R_i E_i = \mathrm{id}`, and then
# :math:`\Pi_i = E_i R_i` on the finer level is a projection,
# :math:`\Pi_i \Pi_i = E_i (R_i E_i) R_i = \Pi_i`. It is the *orthogonal*
# projection when it is also self-adjoint in the mass inner product
# :math:`\langle a, b \rangle = \sum_n m_n a_n b_n`, i.e.
# :math:`\langle \Pi a, b \rangle = \langle a, \Pi b \rangle`. We check all
# three numerically in float64, with the hierarchy's own ``mass`` and
# ``inner``. (``geounet.testing.check_hierarchy`` runs these checks and more
# on any hierarchy.)

double = hierarchy.to(dtype=torch.float64)
a = torch.randn(3, double.num_nodes(finest), 1, dtype=torch.float64)
b = torch.randn(3, double.num_nodes(finest), 1, dtype=torch.float64)
coarse = torch.randn(3, double.num_nodes(finest - 1), 1, dtype=torch.float64)


def project(v: Tensor) -> Tensor:
    """Pi = prolong(restrict(v)): the finest level's projection onto the next coarser space."""
    return double.prolong(double.restrict(v, finest), finest - 1)


nested = (double.restrict(double.prolong(coarse, finest - 1), finest) - coarse).abs().max()
idempotent = (project(project(a)) - project(a)).abs().max()
self_adjoint = (double.inner(project(a), b, finest) - double.inner(a, project(b), finest)).abs().max()
print(f"|R E c - c| = {nested:.1e},  |P P a - P a| = {idempotent:.1e},  "
      f"|<P a, b> - <a, P b>| = {self_adjoint:.1e}")
assert max(nested, idempotent, self_adjoint) < 1e-12

# %%
# Your own module
# ---------------
#
# Here is a model of our own: the parameter-free encoder gives the pyramid,
# and a decoder of a few lines climbs it back, coarsest first: at each level
# the state from below is prolonged, the level's skip :math:`P_i x` is lifted
# by a linear layer and added, then a nonlinearity,
#
# .. math::
#
#    h_0 = \sigma(A_0 P_0 x), \qquad
#    h_i = \sigma\big(E_i h_{i-1} + A_i P_i x\big), \qquad y = B h_I .
#
# Only :math:`A_i` and :math:`B` are learned. The hierarchy is stored as a
# plain attribute (not a parameter or buffer): it is the geometry the module
# is bound to. Everything it calls is ordinary tensor code, so the module
# trains, compiles and exports like any other.


class PyramidRegressor(nn.Module):
    """``x [B, N, C_in] -> y [B, N, C_out]`` on a fixed hierarchy: geounet's encoder, our decoder."""

    def __init__(self, hierarchy, in_channels: int, out_channels: int, width: int = 16):
        super().__init__()
        self.hierarchy = hierarchy
        self.encoder = MultiResolutionEncoder()
        self.skips = nn.ModuleList(nn.Linear(in_channels, width) for _ in range(hierarchy.num_levels))
        self.head = nn.Linear(width, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        pyramid = self.encoder(x, self.hierarchy)  # pyramid[i]: [B, N_i, C_in]
        state = torch.tanh(self.skips[0](pyramid[0]))  # [B, N_0, width]
        for level in range(1, self.hierarchy.num_levels):
            state = torch.tanh(self.hierarchy.prolong(state, level - 1) + self.skips[level](pyramid[level]))
        return self.head(state)  # [B, N_I, C_out]


model = PyramidRegressor(hierarchy, in_channels=1, out_channels=1)
print(f"{sum(p.numel() for p in model.parameters())} parameters, all in the decoder")

# %%
# A few training steps
# --------------------
#
# A toy target that needs more than one scale: the local energy of the input
# at the middle level, :math:`y = \Pi_1 (x^2)` (the mean of :math:`x^2` over
# each nside-8 pixel) plus the large-scale part of the input, :math:`P_0 x`.
# Fresh random fields at every step; plain Adam.


def toy_batch(batch: int) -> tuple[Tensor, Tensor]:
    inputs = torch.randn(batch, hierarchy.num_nodes(finest), 1)  # [B, N, 1]
    local_energy = hierarchy.prolong(hierarchy.restrict(inputs**2, finest), finest - 1)
    large_scale = hierarchy.prolong(hierarchy.prolong(hierarchy.project(inputs, finest, 0), 0), 1)
    return inputs, local_energy + large_scale


optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
losses = []
for _ in range(60):
    inputs, target = toy_batch(8)
    loss = (model(inputs) - target).square().mean()
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    losses.append(loss.item())
print(f"mean squared error: {losses[0]:.3f} at step 0, {losses[-1]:.3f} at step {len(losses) - 1}")

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(losses)
ax.set(xlabel="step", ylabel="training MSE", title="PyramidRegressor (tiny run)")
fig.tight_layout()

# %%
# ``torch.compile``
# -----------------
#
# The module compiles in one graph (``fullgraph=True`` fails loudly on a graph
# break): on HEALPix NEST, restrict and prolong are a reshape with a mean and an
# expand with a reshape, plain tensor operations that Dynamo traces.

model.eval()
test_inputs, _ = toy_batch(4)
compiled = torch.compile(model, fullgraph=True)
with torch.no_grad():
    eager_output = model(test_inputs)
    compiled_difference = (compiled(test_inputs) - eager_output).abs().max()
print(f"compiled vs eager: max |difference| = {compiled_difference:.1e}")

# %%
# ``torch.export`` and ONNX
# -------------------------
#
# ``torch.export`` traces the module into an ``ExportedProgram`` of standard
# ATen operators, with the geometry baked in; ``program.module()`` runs it as
# an ``nn.Module``. The same program goes to ONNX with ``torch.onnx.export``
# (``dynamo=True``, the ``torch.export``-based exporter), and onnxruntime runs
# the file without PyTorch. All three must agree with the eager module.
# (For a geounet ``UNet`` from ``build_unet``,
# :func:`geounet.inference.export` and :func:`geounet.inference.export_onnx`
# do the same and check the ONNX file for you.)

program = torch.export.export(model, (test_inputs,))
with torch.no_grad():
    exported_difference = (program.module()(test_inputs) - eager_output).abs().max()
print(f"torch.export vs eager: max |difference| = {exported_difference:.1e}")

onnx_path = workdir / "pyramid_regressor.onnx"
torch.onnx.export(model, (test_inputs,), str(onnx_path), dynamo=True, input_names=["x"], output_names=["y"],
                  external_data=False, verbose=False)
session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
(onnx_output,) = session.run(None, {"x": test_inputs.numpy()})
onnx_difference = np.abs(onnx_output - eager_output.numpy()).max()
print(f"onnxruntime vs eager: max |difference| = {onnx_difference:.1e} ({onnx_path.stat().st_size:,} bytes)")
assert max(compiled_difference, exported_difference, onnx_difference) < 1e-4
