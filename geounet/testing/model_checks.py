"""Property checks for models that take their geometry as an input, ``model(x, hierarchy)``.

Each check raises ``AssertionError`` naming what failed; ``check_model`` runs them all:

  1. the state_dict holds only parameters (no geometry-sized buffer);
  2. a batch of geometries (their disjoint union) gives every geometry the output it gets
     alone, so a mesh's prediction never depends on its batch companions;
  3. ``.to()`` moves the model and the hierarchy together: float64 agrees with float32, and
     CUDA with the CPU when a GPU is available;
  4. float64 gradcheck through the input and every parameter;
  5. for isotropic models, exact equivariance under the grid symmetries that permute nodes
     (``Hierarchy.node_symmetries``: HEALPix 90° rotations about the polar axis, the square's rot90).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from geounet.hierarchy.base import Hierarchy
from geounet.hierarchy.batching import batch_hierarchies


def _input(hierarchy: Hierarchy, channels: int, batch: int = 2, seed: int = 0, dtype=torch.float64) -> Tensor:
    generator = torch.Generator().manual_seed(seed)
    nodes = hierarchy.num_nodes(hierarchy.finest_level)
    return torch.randn(batch, nodes, channels, generator=generator, dtype=dtype)  # [B, N, C]


def _perturbed(model: nn.Module, seed: int = 0) -> nn.Module:
    """A float64 copy with every parameter moved off its initialisation (zero-initialised
    layers would hide errors)."""
    model = copy.deepcopy(model).double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    return model


def check_parameters_only(model: nn.Module) -> None:
    """Every state_dict entry is a parameter: the model keeps no geometry."""
    parameters = {name for name, _ in model.named_parameters()}
    extra = [name for name in model.state_dict() if name not in parameters]
    assert not extra, f"the state_dict holds non-parameter tensors {extra[:5]}: geometry belongs in the hierarchy"


def check_batch_independence(model: nn.Module, hierarchies: Sequence[Hierarchy], in_channels: int,
                             tol: float = 1e-10) -> None:
    """The union of ``hierarchies`` gives each part the output the model gives it alone."""
    model = _perturbed(model)
    union = batch_hierarchies(hierarchies)
    level = union.finest_level
    xs = [_input(h, in_channels, seed=j) for j, h in enumerate(hierarchies)]
    together = union.split(model(union.join(xs, level), union), level)
    for j, (h, x, out) in enumerate(zip(hierarchies, xs, together, strict=True)):
        alone = model(x, h)
        error = (out - alone).abs().max().item()
        assert error <= tol * max(1.0, alone.abs().max().item()), (
            f"geometry {j} gets another output in a batch than alone (max deviation {error:.2e})")


def check_moves(model: nn.Module, hierarchy: Hierarchy, in_channels: int) -> None:
    """float64 model + hierarchy agree with float32 ones; CUDA agrees with the CPU when present."""
    reference = _perturbed(model)
    x = _input(hierarchy, in_channels)
    expected = reference(x, hierarchy)
    single = copy.deepcopy(reference).float()
    low = single(x.float(), hierarchy.to(dtype=torch.float32)).double()
    error = ((low - expected).norm() / expected.norm()).item()
    assert error < 1e-4, f"float32 and float64 outputs differ by {error:.2e} (relative)"
    if torch.cuda.is_available():
        on_gpu = copy.deepcopy(reference).cuda()(x.cuda(), hierarchy.to("cuda")).cpu()
        error = ((on_gpu - expected).norm() / expected.norm()).item()
        assert error < 1e-10, f"CUDA and CPU outputs differ by {error:.2e} (relative)"


def check_model_gradients(model: nn.Module, hierarchy: Hierarchy, in_channels: int) -> None:
    """float64 gradcheck of the output with respect to the input and all parameters."""
    model = _perturbed(model)
    names = [name for name, _ in model.named_parameters()]
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    x = _input(hierarchy, in_channels, batch=1).requires_grad_(True)

    def output(x: Tensor, *values: Tensor) -> Tensor:
        return torch.func.functional_call(model, dict(zip(names, values, strict=True)), (x, hierarchy))

    assert torch.autograd.gradcheck(output, (x, *params), fast_mode=True), "gradcheck failed"


def check_equivariance(model: nn.Module, hierarchy: Hierarchy, in_channels: int, tol: float = 1e-10) -> None:
    """model(g x) == g model(x) exactly for every node symmetry g of ``hierarchy``."""
    symmetries = hierarchy.node_symmetries()
    assert symmetries, f"no node-permuting symmetries are known for {hierarchy.kind}"
    model = _perturbed(model)
    x = _input(hierarchy, in_channels)
    out = model(x, hierarchy)
    for name, perm in symmetries.items():
        error = (model(x[:, perm], hierarchy) - out[:, perm]).abs().max().item()
        assert error <= tol * max(1.0, out.abs().max().item()), f"not equivariant under {name}: {error:.2e}"


def check_model(model: nn.Module, hierarchies: Sequence[Hierarchy], in_channels: int, *,
                isotropic: bool = False) -> None:
    """Run every model check on small ``hierarchies`` of the model's kind (two or more for the
    batch check; the first is used for the others). ``isotropic``: also check equivariance."""
    check_parameters_only(model)
    if len(hierarchies) > 1:
        check_batch_independence(model, hierarchies, in_channels)
    check_moves(model, hierarchies[0], in_channels)
    check_model_gradients(model, hierarchies[0], in_channels)
    if isotropic:
        check_equivariance(model, hierarchies[0], in_channels)
