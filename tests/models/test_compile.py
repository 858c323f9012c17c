"""torch.compile of a message-passing Multi-ResNet (CPU here; slow because Inductor compiles C++)."""

import pytest
import torch

from geounet.hierarchy import SquareHaarHierarchy
from geounet.models.zoo import message_passing_unet


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["table", "pyg"])
def test_compiled_multiresnet_matches_eager_forward_and_backward(backend):
    torch.manual_seed(0)
    hierarchy = SquareHaarHierarchy(8, 2, periodic=True)
    model = message_passing_unet(hierarchy, 2, 1, width=4, backend=backend)
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 64, 2)
    expected = model(x)
    expected.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = compiled(x)
    out.square().sum().backward()
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)
    for grad, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, grad, rtol=1e-4, atol=1e-5)
