"""Compile and export a U-Net together with the geometry it runs on.

A geounet model holds no geometry: it is called ``model(x, hierarchy)`` and reads the
per-level tensors it needs (prepared graphs, sparse operators, restrict / prolong data)
from memos on the hierarchy, building them on first use. Building them inside a traced
region would trace index computations with data-dependent shapes (graph breaks), so every
entry point here first runs :func:`prepare_geometry`, after which a traced call only reads
tensors.

- :func:`compile_unet`: ``torch.compile`` of the model, still called ``compiled(x, hierarchy)``.
- :func:`export`: a ``torch.export`` program of ``x -> model(x, hierarchy)`` with the
  hierarchy's tensors bound as constants; its ``.module()`` runs with and without gradients.
- :func:`export_onnx`: the same program as an ONNX file (needs the ``onnx`` extra).

Under ``torch.export`` the linear-kernel convolutions take the gather formulation (index
select + batched matmul over the neighbour table) instead of the sparse custom op, so the
program holds only standard operators (see :class:`~geounet.nn.message_passing.KernelConv`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from geounet.data.outputs import check_output, write_output
from geounet.errors import GeounetError
from geounet.hierarchy.base import Hierarchy
from geounet.nn.message_passing import KernelConv
from geounet.nn.unet import UNet, geometry_for


def prepare_geometry(model: UNet, hierarchy: Hierarchy) -> Hierarchy:
    """Build and memoise on ``hierarchy`` every tensor ``model`` reads from it, on the eager
    and on the exported paths, and return ``hierarchy`` (for chaining).

    One eager no-grad call on a zero batch of one sample fills the memos of the eager path
    (restrict / prolong, sparse operators); each convolution then memoises its prepared
    graph (:meth:`KernelConv.prepare`).
    """
    if not isinstance(model, UNet):
        raise GeounetError(f"compile and export take a geounet UNet (e.g. from build_unet), got {type(model).__name__}")
    levels = geometry_for(model, hierarchy, model.kind, model.num_levels)
    hierarchy.materialize()
    weight = model.lift.weight
    zeros = torch.zeros(1, levels.num_nodes(levels.finest_level), model.in_channels, dtype=weight.dtype,
                        device=weight.device)  # [1, N, C_in]
    with torch.no_grad():
        model(zeros, hierarchy)
    for module in model.modules():
        if isinstance(module, KernelConv):
            module.prepare(levels)
    return hierarchy


def compile_unet(model: UNet, hierarchy: Hierarchy, **compile_options: Any) -> nn.Module:
    """``torch.compile(model, **compile_options)`` after :func:`prepare_geometry`: called
    ``compiled(x, hierarchy)`` like the model, sharing its parameters.

    The compiled code is specialised to ``hierarchy`` (its memoised tensors are guarded
    on): calling it with another geometry recompiles. Without a break in the U-Net
    (``fullgraph=True`` holds for every hierarchy kind), forward and backward each run as
    one compiled graph around the opaque sparse products. Sizes are static unless
    ``dynamic`` is given: a U-Net's levels are Python ints that name its modules, so a
    hierarchy of another size recompiles instead of tracing those ints symbolically (which
    breaks the graph once Dynamo has seen two sizes of one U-Net in a process).
    """
    prepare_geometry(model, hierarchy)
    return torch.compile(model, **{"dynamic": False, **compile_options})


class BoundGeometry(nn.Module):
    """``x [B, N, C_in] -> model(x, hierarchy) [B, N, C_out]``: a U-Net with its geometry bound,
    the module that :func:`export` traces (the hierarchy's tensors become constants of the
    program)."""

    def __init__(self, model: UNet, hierarchy: Hierarchy):
        super().__init__()
        self.model = model
        self.hierarchy = hierarchy

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x, self.hierarchy)


def export(model: UNet, hierarchy: Hierarchy, example_input: Tensor) -> torch.export.ExportedProgram:
    """A ``torch.export`` program computing ``model(x, hierarchy)`` for inputs shaped like
    ``example_input [B, N, C_in]``, with the geometry bound as constants.

    ``program.module()`` is an ``nn.Module`` called ``module(x)``; it records gradients
    like the model (for its own copies of the parameters), so it can be fine-tuned or
    differentiated with respect to ``x``. The program holds only standard ATen operators.
    """
    prepare_geometry(model, hierarchy)
    return torch.export.export(BoundGeometry(model, hierarchy), (example_input,))


def export_onnx(model: UNet, hierarchy: Hierarchy, example_input: Tensor, path: str | Path,
                tolerance: float = 1e-5, *, overwrite: bool = False) -> Path:
    """Write ``model(x, hierarchy)`` for inputs shaped like ``example_input [B, N, C_in]`` as an
    ONNX model to ``path`` (torch.onnx's ``torch.export``-based exporter) and return the path.

    The file is checked before it takes ``path``'s place (it is written to a temporary file
    beside ``path``, :func:`geounet.data.outputs.write_output`): ``onnx.checker`` validates it
    and onnxruntime's output on ``example_input`` must match the model's within ``tolerance``
    (largest absolute difference), else :class:`~geounet.errors.GeounetError` and ``path`` is
    untouched. ``path`` must end in ``.onnx``; an existing file is replaced only with
    ``overwrite``. Needs the ``onnx`` extra (``pip install 'geounet[onnx]'``).
    """
    try:
        import onnx
        import onnxruntime
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it; imported for a clear error)
    except ImportError as error:
        raise GeounetError(f"ONNX export needs the onnx extra ({error.name} is missing): "
                           "pip install 'geounet[onnx]'") from error
    path = check_output(path, (".onnx",), overwrite=overwrite, option="path", replace="call with overwrite=True")
    prepare_geometry(model, hierarchy)

    def write_and_check(tmp: Path) -> None:
        # weights inside the one file: an external-data sidecar would be named after the temporary
        torch.onnx.export(BoundGeometry(model, hierarchy), (example_input,), str(tmp), dynamo=True,
                          external_data=False, input_names=["x"], output_names=["y"], verbose=False)
        onnx.checker.check_model(str(tmp))
        session = onnxruntime.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        (output,) = session.run(None, {"x": example_input.detach().cpu().numpy()})
        with torch.no_grad():
            expected = model(example_input, hierarchy).cpu()
        error = (torch.from_numpy(output) - expected).abs().max().item()
        if not error <= tolerance:
            raise GeounetError(f"the ONNX model for {path} differs from the model by {error:.3g} under onnxruntime "
                               f"(tolerance {tolerance:g}); nothing written; export in float64 or raise the tolerance")

    return write_output(path, write_and_check)
